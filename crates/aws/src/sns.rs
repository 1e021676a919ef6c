//! The topic on SNS: `Publish` and `PublishBatch` with the subject, the message (the order
//! mail for `email` subscribers, the event JSON for everyone else) and the message
//! attributes subscribers filter on.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_sns::Client;
use aws_sdk_sns::operation::publish_batch::PublishBatchOutput;
use aws_sdk_sns::types::{MessageAttributeValue, PublishBatchRequestEntry};
use orderflow_core::{
    MessageAttribute, OrderCreated, Publication, TOPIC_SUBJECT, Topic, TopicError,
};

/// "Publishes up to 10 messages to the specified topic in a single batch", and "the maximum
/// total payload size (the sum of the individual lengths of all of the batched messages)"
/// is 256 KiB (<https://docs.aws.amazon.com/sns/latest/api/API_PublishBatch.html>).
pub const MAX_BATCH_ENTRIES: usize = 10;
pub const MAX_BATCH_BYTES: usize = 262_144;

#[derive(Debug, Clone)]
pub struct SnsTopic {
    client: Client,
    topic_arn: String,
}

/// One `PublishBatch` entry SNS reported in `Failed`.
#[derive(Debug, thiserror::Error)]
#[error("SNS did not publish batch entry {id}: {code}{}", detail(.message))]
pub struct BatchEntryFailed {
    pub id: String,
    pub code: String,
    pub message: Option<String>,
    /// SNS's `SenderFault`: the entry itself is wrong, so sending it again fails again.
    pub sender_fault: bool,
}

fn detail(message: &Option<String>) -> String {
    message
        .as_deref()
        .map(|m| format!(" ({m})"))
        .unwrap_or_default()
}

/// The `Message` to publish and whether it is a per-protocol JSON object.
///
/// For an `OrderCreated` event: `MessageStructure=json` with `default` the event JSON (what
/// HTTP, SQS, Lambda and `email-json` subscribers receive, as before) and `email` the order
/// mail's text. "If you want to send different messages for each transport protocol, set
/// the value of the MessageStructure parameter to json"; the `default` key's message goes to
/// every protocol without a key of its own, and "keys that do not correspond to supported
/// transport protocols are ignored" (<https://docs.aws.amazon.com/sns/latest/api/API_Publish.html>,
/// `Message` and `MessageStructure`).
///
/// The event's own fields (`type`, `order`) are also top-level keys of the object, which SNS
/// therefore ignores for delivery. They are there for `FilterPolicyScope: MessageBody`: SNS
/// documents that such a policy applies "to the message body", not whether that is the
/// protocol's message or the published JSON object; moto matches the published object,
/// LocalStack the protocol's message. Either way a body filter sees the `OrderCreated` fields.
/// Any other message goes out as it is.
pub fn message_for(publication: &Publication) -> (String, bool) {
    let message = publication.message.trim();
    let fields = message
        .strip_prefix('{')
        .and_then(|m| m.strip_suffix('}'))
        .map(str::trim);
    match (OrderCreated::from_message(message), fields) {
        (Some(event), Some(fields)) => {
            let mail = event.mail();
            let head = serde_json::json!({ "default": publication.message, "email": mail.body })
                .to_string();
            let head = head.strip_suffix('}').expect("a JSON object ends with }");
            let structure = if fields.is_empty() {
                format!("{head}}}")
            } else {
                format!("{head},{fields}}}")
            };
            (structure, true)
        }
        _ => (publication.message.clone(), false),
    }
}

fn attribute_value(attribute: &MessageAttribute) -> Result<MessageAttributeValue, TopicError> {
    MessageAttributeValue::builder()
        .data_type(attribute.data_type())
        .string_value(attribute.value())
        .build()
        .map_err(|e| TopicError::Unavailable(Box::new(e)))
}

/// What counts against `PublishBatch`'s total: the message and its attributes.
fn payload_bytes(message: &str, attributes: &BTreeMap<String, MessageAttribute>) -> usize {
    message.len()
        + attributes
            .iter()
            .map(|(name, a)| name.len() + a.data_type().len() + a.value().len())
            .sum::<usize>()
}

/// Splits the publications, in order, into `PublishBatch` calls within both limits. An entry
/// larger than the limit on its own goes alone, for SNS to refuse just that entry.
fn chunks(sizes: &[usize]) -> Vec<std::ops::Range<usize>> {
    let mut chunks = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, size) in sizes.iter().enumerate() {
        if i > start && (i - start == MAX_BATCH_ENTRIES || bytes + size > MAX_BATCH_BYTES) {
            chunks.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < sizes.len() {
        chunks.push(start..sizes.len());
    }
    chunks
}

impl SnsTopic {
    pub fn new(client: Client, topic_arn: impl Into<String>) -> Self {
        Self {
            client,
            topic_arn: topic_arn.into(),
        }
    }

    pub fn topic_arn(&self) -> &str {
        &self.topic_arn
    }

    /// Only FIFO topics deduplicate; a standard topic refuses the deduplication parameters.
    fn is_fifo(&self) -> bool {
        self.topic_arn.ends_with(".fifo")
    }

    fn batch_entry(
        &self,
        id: usize,
        publication: &Publication,
        message: String,
        structured: bool,
    ) -> Result<PublishBatchRequestEntry, TopicError> {
        let mut entry = PublishBatchRequestEntry::builder()
            .id(id.to_string())
            .subject(&publication.subject)
            .message(message);
        if structured {
            entry = entry.message_structure("json");
        }
        for (name, attribute) in &publication.attributes {
            entry = entry.message_attributes(name, attribute_value(attribute)?);
        }
        if self.is_fifo() {
            // One group: a FIFO topic then keeps the stream's order for every order.
            entry = entry
                .message_deduplication_id(&publication.dedup_id)
                .message_group_id(TOPIC_SUBJECT);
        }
        entry
            .build()
            .map_err(|e| TopicError::Unavailable(Box::new(e)))
    }

    /// One `PublishBatch` call; one result per entry, in the entries' order.
    async fn publish_chunk(
        &self,
        publications: &[Publication],
    ) -> Result<Vec<Result<String, TopicError>>, TopicError> {
        let mut request = self.client.publish_batch().topic_arn(&self.topic_arn);
        for (i, publication) in publications.iter().enumerate() {
            let (message, structured) = message_for(publication);
            request = request.publish_batch_request_entries(self.batch_entry(
                i,
                publication,
                message,
                structured,
            )?);
        }
        let output = request
            .send()
            .await
            .map_err(|e| TopicError::Unavailable(Box::new(e)))?;
        Ok(entry_results(publications.len(), output))
    }
}

/// One result per entry of a `PublishBatch` call, in the entries' order: SNS answers with
/// `Successful` and `Failed` lists keyed by the entry `Id` (here the entry's index), "the
/// result of publishing each message is reported individually".
fn entry_results(entries: usize, output: PublishBatchOutput) -> Vec<Result<String, TopicError>> {
    let mut results: Vec<Option<Result<String, TopicError>>> = (0..entries).map(|_| None).collect();
    let slot = |id: &str| id.parse::<usize>().ok().filter(|i| *i < entries);
    for ok in output.successful.unwrap_or_default() {
        if let (Some(i), Some(message_id)) = (ok.id.as_deref().and_then(slot), ok.message_id) {
            results[i] = Some(Ok(message_id));
        }
    }
    for failed in output.failed.unwrap_or_default() {
        if let Some(i) = slot(&failed.id) {
            let error = BatchEntryFailed {
                id: failed.id,
                code: failed.code,
                message: failed.message,
                sender_fault: failed.sender_fault,
            };
            results[i] = Some(Err(if error.sender_fault {
                TopicError::Rejected(error.to_string())
            } else {
                TopicError::Unavailable(Box::new(error))
            }));
        }
    }
    results
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|| {
                Err(TopicError::Rejected(
                    "SNS answered PublishBatch without a result for this entry".into(),
                ))
            })
        })
        .collect()
}

#[async_trait]
impl Topic for SnsTopic {
    async fn publish(&self, publication: &Publication) -> Result<String, TopicError> {
        let (message, structured) = message_for(publication);
        let mut request = self
            .client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(&publication.subject)
            .message(message);
        if structured {
            request = request.message_structure("json");
        }
        for (name, attribute) in &publication.attributes {
            request = request.message_attributes(name, attribute_value(attribute)?);
        }
        if self.is_fifo() {
            request = request
                .message_deduplication_id(&publication.dedup_id)
                .message_group_id(TOPIC_SUBJECT);
        }
        let output = request
            .send()
            .await
            .map_err(|e| TopicError::Unavailable(Box::new(e)))?;
        output
            .message_id
            .ok_or_else(|| TopicError::Rejected("SNS answered without a message id".into()))
    }

    /// `PublishBatch`, up to ten entries per call. SNS reports each entry on its own, so every
    /// publication gets its own result; after a call with a failed entry no further call is
    /// made (the stream retries from the first failed record, so later ones would only be
    /// announced twice). A call that fails as a whole fails its first entry.
    async fn publish_batch(&self, publications: &[Publication]) -> Vec<Result<String, TopicError>> {
        let sizes: Vec<usize> = publications
            .iter()
            .map(|p| payload_bytes(&message_for(p).0, &p.attributes))
            .collect();
        let mut results = Vec::with_capacity(publications.len());
        for range in chunks(&sizes) {
            match self.publish_chunk(&publications[range]).await {
                Ok(chunk) => {
                    let failed = chunk.iter().any(Result::is_err);
                    results.extend(chunk);
                    if failed {
                        break;
                    }
                }
                Err(e) => {
                    results.push(Err(e));
                    break;
                }
            }
        }
        results
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orderflow_core::conformance::sample_order;

    #[test]
    fn an_order_goes_out_as_json_structure_with_the_event_as_default_and_the_mail_as_email() {
        let event = OrderCreated::new(sample_order());
        let publication = event.to_publication("d".into());
        let (message, structured) = message_for(&publication);
        assert!(structured);
        let structure: serde_json::Value = serde_json::from_str(&message).unwrap();
        let mut keys: Vec<&String> = structure.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(
            keys,
            ["default", "email", "order", "type"],
            "no email-json key: it falls back to default"
        );
        assert_eq!(structure["default"], publication.message.as_str());
        let mail = event.mail();
        assert_eq!(
            structure["email"],
            mail.body.as_str(),
            "the text serve mails"
        );
        assert_eq!(publication.subject, mail.subject, "the subject serve mails");
        let event_fields: serde_json::Value = serde_json::from_str(&publication.message).unwrap();
        assert_eq!(structure["type"], event_fields["type"], "for body filters");
        assert_eq!(
            structure["order"], event_fields["order"],
            "for body filters"
        );
        assert!(
            message.contains(&format!("\"total\":{}", event.order.total)),
            "numbers keep their exact text: {message}"
        );
    }

    #[test]
    fn any_other_message_goes_out_as_it_is() {
        let publication = Publication {
            dedup_id: "d".into(),
            subject: "S".into(),
            message: "{\"not\":\"an order\"}".into(),
            attributes: BTreeMap::new(),
        };
        assert_eq!(
            message_for(&publication),
            (publication.message.clone(), false)
        );
    }

    #[test]
    fn each_entry_gets_its_own_result_by_id_whatever_the_order_sns_lists_them_in() {
        use aws_sdk_sns::types::{BatchResultErrorEntry, PublishBatchResultEntry};
        let ok = |id: &str, message_id: &str| {
            PublishBatchResultEntry::builder()
                .id(id)
                .message_id(message_id)
                .build()
        };
        let failed = |id: &str, sender_fault: bool| {
            BatchResultErrorEntry::builder()
                .id(id)
                .code(if sender_fault {
                    "InvalidParameter"
                } else {
                    "InternalError"
                })
                .message("no")
                .sender_fault(sender_fault)
                .build()
                .unwrap()
        };
        let output = PublishBatchOutput::builder()
            .successful(ok("3", "m3"))
            .successful(ok("0", "m0"))
            .failed(failed("2", false))
            .failed(failed("1", true))
            .build();
        let results = entry_results(5, output);
        assert!(matches!(&results[0], Ok(id) if id == "m0"));
        match &results[1] {
            Err(TopicError::Rejected(why)) => assert!(why.contains("InvalidParameter"), "{why}"),
            other => panic!("a sender fault is a rejection: {other:?}"),
        }
        match &results[2] {
            Err(TopicError::Unavailable(source)) => {
                assert!(source.downcast_ref::<BatchEntryFailed>().is_some())
            }
            other => panic!("a service fault is unavailability, kept as the source: {other:?}"),
        }
        assert!(matches!(&results[3], Ok(id) if id == "m3"));
        assert!(
            matches!(&results[4], Err(TopicError::Rejected(_))),
            "an entry SNS did not report on is not taken as published"
        );
    }

    #[test]
    fn batches_hold_at_most_ten_entries_and_256_kib() {
        assert_eq!(chunks(&[1; 25]), [0..10, 10..20, 20..25]);
        assert_eq!(chunks(&[100_000; 5]), [0..2, 2..4, 4..5]);
        assert_eq!(
            chunks(&[10, 300_000, 10]),
            [0..1, 1..2, 2..3],
            "an oversized entry goes alone"
        );
        assert!(chunks(&[]).is_empty());
    }
}

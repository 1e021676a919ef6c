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
use serde_json::value::RawValue;

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

/// The top-level keys SNS reads as protocols in a `MessageStructure=json` message
/// (subscription protocols and mobile platforms,
/// <https://docs.aws.amazon.com/sns/latest/api/API_Publish.html> and
/// <https://docs.aws.amazon.com/sns/latest/dg/sns-send-custom-platform-specific-payloads-mobile-devices.html>).
/// The event's own fields must never take one of these names: SNS would deliver a string value
/// to that protocol instead of `default`, or, "Duplicate keys are not allowed", refuse the publish.
pub const PROTOCOL_KEYS: &[&str] = &[
    "default",
    "http",
    "https",
    "email",
    "email-json",
    "sqs",
    "lambda",
    "sms",
    "application",
    "firehose",
    "APNS",
    "APNS_SANDBOX",
    "APNS_VOIP",
    "APNS_VOIP_SANDBOX",
    "MACOS",
    "MACOS_SANDBOX",
    "GCM",
    "ADM",
    "BAIDU",
    "MPNS",
    "WNS",
];

/// The `Message` to publish and whether it is a per-protocol JSON object.
///
/// For an `OrderCreated` event: `MessageStructure=json` with `default` the event JSON (what
/// HTTP, SQS, Lambda and `email-json` subscribers receive, as before) and `email` the order
/// mail's text. With `MessageStructure=json` the message must "be a syntactically valid JSON
/// object" and "contain at least a top-level JSON key of "default" with a value that is a
/// string"; "keys in the JSON object that correspond to supported transport protocols must have
/// simple JSON string values", "non-string values will cause the key to be ignored", "keys that
/// do not correspond to supported transport protocols are ignored" and "duplicate keys are not
/// allowed" (<https://docs.aws.amazon.com/sns/latest/api/API_Publish.html>, `Message` and
/// `MessageStructure`).
///
/// The event's own top-level fields (`type`, `order`) are also keys of the object: by the rules
/// above SNS ignores them for delivery (neither is a protocol; `order` is not even a string).
/// They are there for `FilterPolicyScope: MessageBody`: SNS documents that such a policy
/// applies "to the message body", not whether that is the protocol's message or the published
/// JSON object; moto matches the published object, LocalStack the protocol's message. Either
/// way a body filter sees the `OrderCreated` fields. A field named like a protocol is left out
/// (it would be delivered, or be a duplicate key). Numbers keep their exact text (raw values).
/// Any other message goes out as it is.
pub fn message_for(publication: &Publication) -> (String, bool) {
    let Some(event) = OrderCreated::from_message(&publication.message) else {
        return (publication.message.clone(), false);
    };
    let Ok(fields) = serde_json::from_str::<BTreeMap<String, Box<RawValue>>>(&publication.message)
    else {
        return (publication.message.clone(), false);
    };
    let text = |s: &str| serde_json::value::to_raw_value(s).expect("a string serializes");
    let mut structure: BTreeMap<String, Box<RawValue>> = fields
        .into_iter()
        .filter(|(key, _)| !PROTOCOL_KEYS.contains(&key.as_str()))
        .collect();
    structure.insert("default".into(), text(&publication.message));
    structure.insert("email".into(), text(&event.mail().body));
    let structure = serde_json::to_string(&structure).expect("a map of JSON values serializes");
    (structure, true)
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

    /// A JSON object's members in order, duplicates kept (a `Value` would keep only the last).
    struct Members(Vec<(String, serde_json::Value)>);

    impl<'de> serde::Deserialize<'de> for Members {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct Visitor;
            impl<'de> serde::de::Visitor<'de> for Visitor {
                type Value = Members;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("a JSON object")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut map: A,
                ) -> Result<Members, A::Error> {
                    let mut members = Vec::new();
                    while let Some(member) = map.next_entry()? {
                        members.push(member);
                    }
                    Ok(Members(members))
                }
            }
            d.deserialize_map(Visitor)
        }
    }

    /// SNS's rules for a `MessageStructure=json` message, as API_Publish states them: a JSON
    /// object, a string `default`, string values for every protocol key, no duplicate keys.
    fn assert_sns_accepts_as_structure(message: &str) -> Vec<(String, serde_json::Value)> {
        let Members(members) = serde_json::from_str(message).expect("a JSON object");
        let mut keys: Vec<&str> = members.iter().map(|(k, _)| k.as_str()).collect();
        keys.sort();
        let before = keys.len();
        keys.dedup();
        assert_eq!(
            keys.len(),
            before,
            "duplicate keys are not allowed: {message}"
        );
        assert!(keys.contains(&"default"), "{message}");
        for (key, value) in &members {
            if PROTOCOL_KEYS.contains(&key.as_str()) {
                assert!(value.is_string(), "{key} must be a string: {message}");
            }
        }
        members
    }

    #[test]
    fn the_structure_keeps_snss_rules_for_message_structure_json() {
        let publication = OrderCreated::new(sample_order()).to_publication("d".into());
        let (message, structured) = message_for(&publication);
        assert!(structured);
        let members = assert_sns_accepts_as_structure(&message);
        let mut non_protocol: Vec<&str> = members
            .iter()
            .map(|(k, _)| k.as_str())
            .filter(|k| !PROTOCOL_KEYS.contains(k))
            .collect();
        non_protocol.sort();
        assert_eq!(
            non_protocol,
            ["order", "type"],
            "only the event's fields, which SNS ignores for delivery"
        );
    }

    #[test]
    fn an_event_field_named_like_a_protocol_is_left_out_rather_than_duplicated_or_delivered() {
        let event = OrderCreated::new(sample_order());
        let plain = serde_json::to_string(&event).unwrap();
        // Fields an event could grow: they must not become a second `email` or an `sqs` message.
        let message = format!(
            "{{\"email\":\"not the mail\",\"sqs\":\"not the event\",\"default\":{{}},{}",
            &plain[1..]
        );
        let publication = Publication {
            dedup_id: "d".into(),
            subject: "S".into(),
            message: message.clone(),
            attributes: BTreeMap::new(),
        };
        let (structure, structured) = message_for(&publication);
        assert!(structured, "still an OrderCreated event");
        let members = assert_sns_accepts_as_structure(&structure);
        let keys: Vec<&str> = members.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["default", "email", "order", "type"], "{structure}");
        let value = |key: &str| &members.iter().find(|(k, _)| k == key).unwrap().1;
        assert_eq!(value("default"), message.as_str());
        assert_eq!(value("email"), event.mail().body.as_str());
    }

    /// The structure carries the event twice (as `default`'s string and as the body-filter
    /// fields) and the mail once; SNS refuses a message over 256 KiB. The schema's limits (100
    /// items, 64-character SKUs and ids, 254-character e-mail, 1000-character notes, address
    /// fields of 200/100/20) filled with the characters that grow most when escaped (a control
    /// character: `\u0001` in JSON, again escaped in `default`, `\u{1}` in the mail) must fit.
    #[test]
    fn the_largest_order_the_schema_admits_fits_one_sns_message() {
        let mut order = sample_order();
        let worst = |n: usize| "\u{1}".repeat(n);
        let mut item = order.order.items[0].clone();
        item.sku = worst(64);
        order.order.items = vec![item; 100];
        order.order.customer_id = worst(64);
        order.order.customer_email = Some(worst(254));
        order.order.notes = Some(worst(1000));
        let address = order.order.shipping_address.as_mut().unwrap();
        address.line1 = worst(200);
        address.city = worst(100);
        address.postal_code = worst(20);
        address.country = worst(2);
        let publication = OrderCreated::new(order).to_publication("d".into());
        let (message, structured) = message_for(&publication);
        assert!(structured);
        let size = payload_bytes(&message, &publication.attributes);
        assert!(
            size <= MAX_BATCH_BYTES,
            "{size} bytes: over SNS's limit, such an order could never be published"
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

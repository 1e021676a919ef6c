//! Announcements SNS could not take, held back whole on an SQS queue for `scripts/aws-redrive`.
//!
//! A DynamoDB stream keeps records for 24 hours and its on-failure destination receives only
//! their shard and sequence numbers, so an SNS outage longer than the retries would lose
//! announcements. Holding the publication itself on a queue that keeps messages 14 days
//! (SQS's maximum) turns a long outage into a backlog one command republishes.

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use orderflow_core::{Publication, Topic, TopicError};
use serde_json::{Map, Value, json};

/// A topic that holds back, on an SQS queue, what the inner topic could not publish.
#[derive(Debug)]
pub struct HeldBackTopic<T> {
    inner: T,
    sqs: Client,
    queue_url: String,
}

impl<T: Topic> HeldBackTopic<T> {
    pub fn new(inner: T, sqs: Client, queue_url: impl Into<String>) -> Self {
        Self {
            inner,
            sqs,
            queue_url: queue_url.into(),
        }
    }

    /// Holds `publication` back; on success the announcement counts as made (its id says
    /// where it is), on failure the topic's own error stands and the stream retries.
    async fn hold(
        &self,
        publication: &Publication,
        error: TopicError,
    ) -> Result<String, TopicError> {
        let sent = self
            .sqs
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(held_back_message(publication).to_string())
            .send()
            .await;
        match sent {
            Ok(output) => {
                tracing::warn!(
                    error = %orderflow_core::error_chain(&error),
                    dedup_id = %publication.dedup_id,
                    "the topic did not take the announcement; held back for scripts/aws-redrive"
                );
                Ok(format!(
                    "held-back:{}",
                    output.message_id.unwrap_or_default()
                ))
            }
            Err(hold_error) => {
                tracing::error!(
                    error = %orderflow_core::error_chain(&hold_error),
                    "the announcement could not be held back either"
                );
                Err(error)
            }
        }
    }
}

/// The held-back message: SNS `Publish` parameters, so republishing passes them as they are.
/// An order's announcement is kept as [`SnsTopic`](crate::sns::SnsTopic) sends it
/// (`MessageStructure=json`, with the readable mail under `email`), so e-mail subscribers get
/// the same mail from a republished announcement as from a first one.
pub fn held_back_message(publication: &Publication) -> Value {
    let (message, structured) = crate::sns::message_for(publication);
    let attributes: Map<String, Value> = publication
        .attributes
        .iter()
        .map(|(name, attribute)| {
            (
                name.clone(),
                json!({ "DataType": attribute.data_type(), "StringValue": attribute.value() }),
            )
        })
        .collect();
    let mut held = json!({
        "Subject": publication.subject,
        "Message": message,
        "MessageAttributes": attributes,
        "DeduplicationId": publication.dedup_id,
    });
    if structured {
        held["MessageStructure"] = json!("json");
    }
    held
}

#[async_trait]
impl<T: Topic> Topic for HeldBackTopic<T> {
    async fn publish(&self, publication: &Publication) -> Result<String, TopicError> {
        match self.inner.publish(publication).await {
            Ok(id) => Ok(id),
            Err(error) => self.hold(publication, error).await,
        }
    }

    async fn publish_batch(&self, publications: &[Publication]) -> Vec<Result<String, TopicError>> {
        let mut results = self.inner.publish_batch(publications).await;
        let mut out = Vec::with_capacity(publications.len());
        for (i, publication) in publications.iter().enumerate() {
            let result = if i < results.len() {
                std::mem::replace(&mut results[i], Ok(String::new()))
            } else {
                // The inner topic stopped at an earlier failure: it is down, hold the rest.
                Err(TopicError::Rejected(
                    "not attempted after an earlier failure".into(),
                ))
            };
            let held = match result {
                Ok(id) => Ok(id),
                Err(error) => self.hold(publication, error).await,
            };
            let failed = held.is_err();
            out.push(held);
            if failed {
                break;
            }
        }
        out
    }
}

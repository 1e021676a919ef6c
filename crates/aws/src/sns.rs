//! The topic on SNS: `Publish` with the subject, the message and the message attributes
//! subscribers filter on.

use async_trait::async_trait;
use aws_sdk_sns::Client;
use aws_sdk_sns::types::MessageAttributeValue;
use orderflow_core::{Publication, Topic, TopicError};

#[derive(Debug, Clone)]
pub struct SnsTopic {
    client: Client,
    topic_arn: String,
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
}

#[async_trait]
impl Topic for SnsTopic {
    async fn publish(&self, publication: &Publication) -> Result<String, TopicError> {
        let mut request = self
            .client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(&publication.subject)
            .message(&publication.message);
        for (name, attribute) in &publication.attributes {
            let value = MessageAttributeValue::builder()
                .data_type(attribute.data_type())
                .string_value(attribute.value())
                .build()
                .map_err(|e| TopicError::Unavailable(Box::new(e)))?;
            request = request.message_attributes(name, value);
        }
        if self.is_fifo() {
            request = request
                .message_deduplication_id(&publication.dedup_id)
                .message_group_id(&publication.subject);
        }
        let output = request
            .send()
            .await
            .map_err(|e| TopicError::Unavailable(Box::new(e)))?;
        output
            .message_id
            .ok_or_else(|| TopicError::Rejected("SNS answered without a message id".into()))
    }
}

//! The two ports the handlers need: a table that stores new orders, a topic that announces them.

use std::collections::BTreeMap;
use std::fmt::Debug;

use async_trait::async_trait;

use crate::order::{OrderId, StoredOrder};

pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// The conditional put found this very order (same [`crate::ContentHash`]) already stored.
    /// The queue delivers at least once, so callers treat this as success.
    #[error("order {0} already exists")]
    AlreadyExists(OrderId),
    /// An order with this id is stored and its content differs (by [`crate::ContentHash`]): a
    /// different order under a taken id, never success, so it ends in the dead-letter queue.
    #[error("order {0} conflicts with the stored order")]
    Conflict(OrderId),
    #[error("the order table is unavailable")]
    Unavailable(#[source] BoxError),
    #[error("a stored item could not be read as an order")]
    Corrupt(#[source] BoxError),
}

/// The `orders` table, keyed by `orderID`.
#[async_trait]
pub trait OrderTable: Send + Sync + Debug {
    /// Stores `order` only if no order with its id exists (a conditional put). When one
    /// does, `AlreadyExists` if its content hash is the same, `Conflict` if not; the stored
    /// order is never changed.
    async fn put_new(&self, order: &StoredOrder) -> Result<(), TableError>;

    async fn get(&self, id: &OrderId) -> Result<Option<StoredOrder>, TableError>;
}

/// A message attribute as SNS carries it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "Type", content = "Value")]
pub enum MessageAttribute {
    String(String),
    /// An exact decimal, in its text form (SNS `DataType: Number`).
    Number(String),
}

impl MessageAttribute {
    pub fn data_type(&self) -> &'static str {
        match self {
            MessageAttribute::String(_) => "String",
            MessageAttribute::Number(_) => "Number",
        }
    }

    pub fn value(&self) -> &str {
        match self {
            MessageAttribute::String(v) | MessageAttribute::Number(v) => v,
        }
    }
}

/// What the publish handler hands to the topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publication {
    /// Stable across retries of the same stream record; a topic that can deduplicate uses it.
    pub dedup_id: String,
    pub subject: String,
    pub message: String,
    pub attributes: BTreeMap<String, MessageAttribute>,
}

#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    #[error("the topic is unavailable")]
    Unavailable(#[source] BoxError),
    #[error("the topic refused the message: {0}")]
    Rejected(String),
}

/// The topic downstream teams subscribe to.
#[async_trait]
pub trait Topic: Send + Sync + Debug {
    /// Publishes one message and returns its message id.
    async fn publish(&self, publication: &Publication) -> Result<String, TopicError>;

    /// Publishes messages in order and returns one result per message attempted, in order: it
    /// stops after the first failure, so a shorter result means the rest were not attempted.
    /// Adapters that can publish many at once (one transaction, SNS `PublishBatch`) override
    /// it; one that sends several per call reports every entry of the call that failed, and
    /// callers act on the first failure.
    async fn publish_batch(&self, publications: &[Publication]) -> Vec<Result<String, TopicError>> {
        let mut results = Vec::with_capacity(publications.len());
        for publication in publications {
            let result = self.publish(publication).await;
            let failed = result.is_err();
            results.push(result);
            if failed {
                break;
            }
        }
        results
    }
}

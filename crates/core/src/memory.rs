//! In-memory twins of the ports, for tests and examples.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;

use crate::content_hash::ContentHash;
use crate::order::{OrderId, StoredOrder};
use crate::ports::{OrderTable, Publication, TableError, Topic, TopicError};

#[derive(Debug, Default)]
pub struct InMemoryOrderTable {
    orders: Mutex<BTreeMap<OrderId, StoredOrder>>,
}

impl InMemoryOrderTable {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.orders.lock().expect("lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl OrderTable for InMemoryOrderTable {
    async fn put_new(&self, order: &StoredOrder) -> Result<(), TableError> {
        let mut orders = self.orders.lock().expect("lock");
        if let Some(stored) = orders.get(order.id()) {
            let same = ContentHash::of(&stored.order) == ContentHash::of(&order.order);
            let id = order.id().clone();
            return Err(if same {
                TableError::AlreadyExists(id)
            } else {
                TableError::Conflict(id)
            });
        }
        orders.insert(order.id().clone(), order.clone());
        Ok(())
    }

    async fn get(&self, id: &OrderId) -> Result<Option<StoredOrder>, TableError> {
        Ok(self.orders.lock().expect("lock").get(id).cloned())
    }
}

/// Records what was published; deduplicates on `dedup_id` like the embedded topic does.
#[derive(Debug, Default)]
pub struct InMemoryTopic {
    published: Mutex<Vec<(String, Publication)>>,
    by_dedup: Mutex<HashMap<String, String>>,
    fail_next: Mutex<usize>,
}

impl InMemoryTopic {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn published(&self) -> Vec<Publication> {
        self.published
            .lock()
            .expect("lock")
            .iter()
            .map(|(_, p)| p.clone())
            .collect()
    }

    /// Makes the next `n` publishes fail as if the topic were down.
    pub fn fail_next(&self, n: usize) {
        *self.fail_next.lock().expect("lock") = n;
    }
}

#[async_trait]
impl Topic for InMemoryTopic {
    async fn publish(&self, publication: &Publication) -> Result<String, TopicError> {
        {
            let mut fail = self.fail_next.lock().expect("lock");
            if *fail > 0 {
                *fail -= 1;
                return Err(TopicError::Unavailable("injected failure".into()));
            }
        }
        let mut by_dedup = self.by_dedup.lock().expect("lock");
        if let Some(id) = by_dedup.get(&publication.dedup_id) {
            return Ok(id.clone());
        }
        let id = uuid::Uuid::new_v4().to_string();
        by_dedup.insert(publication.dedup_id.clone(), id.clone());
        self.published
            .lock()
            .expect("lock")
            .push((id.clone(), publication.clone()));
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn in_memory_table_conforms() {
        crate::conformance::order_table(&InMemoryOrderTable::new()).await;
    }

    #[tokio::test]
    async fn in_memory_topic_conforms() {
        crate::conformance::topic(&InMemoryTopic::new()).await;
    }
}

//! Accepting an order onto the queue: a resend of a stored or queued order is idempotent,
//! a different order under a taken `orderID` is refused as a conflict.
//!
//! The check and the enqueue are one job on the writer, which runs jobs one at a time, so
//! two concurrent posts of the same id cannot both pass the check.

use std::collections::BTreeMap;

use orderflow_core::{ContentHash, Order, OrderId};
use rusqlite::{Connection, OptionalExtension, params};

use crate::db::{DbError, now_ms};
use crate::queue::Queue;

/// What became of an accepted order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intake {
    /// Put on the queue; the message id.
    Queued(String),
    /// This very order is already stored: nothing was queued.
    AlreadyStored,
}

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("order {0} conflicts with an order already stored or queued under that id")]
    Conflict(OrderId),
    #[error("the order could not be queued")]
    Db(#[from] DbError),
}

/// The content hash of the stored order `order_id`, if one is stored. Orders stored before
/// hashes were kept have none in their row; theirs is computed from the item.
pub(crate) fn stored_hash(c: &Connection, order_id: &str) -> Result<Option<ContentHash>, DbError> {
    let row: Option<(Option<Vec<u8>>, String)> = c
        .prepare_cached("SELECT content_hash, item FROM orders WHERE order_id = ?1")?
        .query_row(params![order_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((hash, item)) = row else {
        return Ok(None);
    };
    if let Some(hash) = hash.as_deref().and_then(ContentHash::from_slice) {
        return Ok(Some(hash));
    }
    Ok(Some(ContentHash::of(&crate::table::decode(&item)?.order)))
}

impl Queue {
    /// Queues `order` unless its id is taken: by the same order (idempotent) or by a
    /// different one stored or waiting on the queue (a conflict). A message in the DLQ does
    /// not hold its id: resending it is how a client gets past a failure.
    pub async fn send_order(
        &self,
        order: &Order,
        attributes: BTreeMap<String, String>,
    ) -> Result<Intake, IntakeError> {
        let id = uuid::Uuid::now_v7().to_string();
        let queue = self.config().name.clone();
        let message_id = id.clone();
        let order_id = order.order_id.clone();
        let body = order.to_json();
        let hash = ContentHash::of(order);
        let attributes = serde_json::to_string(&attributes).expect("attributes serialize");
        self.flow().sent(1);
        let written = self
            .db()
            .write(move |c| {
                let key = order_id.as_str();
                if let Some(stored) = stored_hash(c, key)? {
                    return Ok(if stored == hash {
                        Ok(Intake::AlreadyStored)
                    } else {
                        Err(order_id)
                    });
                }
                let queued: Vec<Option<Vec<u8>>> = c
                    .prepare_cached(
                        "SELECT content_hash FROM queue_messages WHERE order_id = ?1 AND queue = ?2",
                    )?
                    .query_map(params![key, queue], |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
                if queued
                    .iter()
                    .any(|h| h.as_deref() != Some(hash.as_bytes().as_slice()))
                {
                    return Ok(Err(order_id));
                }
                let now = now_ms();
                c.prepare_cached(
                    "INSERT INTO queue_messages (queue, message_id, body, attributes, sent_at, visible_at, order_id, content_hash)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, ?7)",
                )?
                .execute(params![queue, message_id, body, attributes, now, key, hash.as_bytes().as_slice()])?;
                Ok(Ok(Intake::Queued(message_id)))
            })
            .await;
        let outcome = match written {
            Ok(Ok(Intake::Queued(id))) => {
                self.notify().notify_waiters();
                return Ok(Intake::Queued(id));
            }
            Ok(Ok(other)) => Ok(other),
            Ok(Err(id)) => Err(IntakeError::Conflict(id)),
            Err(e) => Err(IntakeError::Db(e)),
        };
        self.flow().unsent(1);
        outcome
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use orderflow_core::OrderTable;

    use super::*;
    use crate::db::Db;
    use crate::queue::QueueConfig;
    use crate::table::SqliteOrderTable;

    const BODY: &str = r#"{"orderID":"dup-1","customerId":"c","items":[{"sku":"A","quantity":2,"unitPrice":19.9}],"currency":"EUR"}"#;

    fn open(dir: &tempfile::TempDir) -> (Arc<Db>, Queue) {
        let db = Db::open(&dir.path().join("t.db"), crate::schema::migrate).unwrap();
        let queue = Queue::new(Arc::clone(&db), QueueConfig::orders());
        (db, queue)
    }

    fn order(body: &str) -> Order {
        Order::parse(body.as_bytes()).unwrap()
    }

    async fn queued(queue: &Queue) -> usize {
        queue.stats().await.unwrap().visible as usize
    }

    #[tokio::test]
    async fn an_identical_resend_of_a_queued_order_is_queued_again_and_a_different_one_conflicts() {
        let dir = tempfile::tempdir().unwrap();
        let (_db, queue) = open(&dir);
        assert!(matches!(
            queue.send_order(&order(BODY), BTreeMap::new()).await,
            Ok(Intake::Queued(_))
        ));
        let respelled = BODY.replace("19.9", "19.90");
        assert!(matches!(
            queue.send_order(&order(&respelled), BTreeMap::new()).await,
            Ok(Intake::Queued(_))
        ));
        let other = BODY.replace("\"c\"", "\"mallory\"");
        match queue.send_order(&order(&other), BTreeMap::new()).await {
            Err(IntakeError::Conflict(id)) => assert_eq!(id.as_str(), "dup-1"),
            other => panic!("expected a conflict, got {other:?}"),
        }
        assert_eq!(
            queued(&queue).await,
            2,
            "the conflicting order was not queued"
        );
    }

    #[tokio::test]
    async fn a_resend_of_a_stored_order_queues_nothing_and_a_different_one_conflicts() {
        let dir = tempfile::tempdir().unwrap();
        let (db, queue) = open(&dir);
        let table = SqliteOrderTable::new(Arc::clone(&db));
        let now = chrono::SubsecRound::trunc_subsecs(chrono::Utc::now(), 3);
        let stored = orderflow_core::StoredOrder::new(order(BODY), now, now).unwrap();
        table.put_new(&stored).await.unwrap();
        assert_eq!(
            queue
                .send_order(&order(BODY), BTreeMap::new())
                .await
                .unwrap(),
            Intake::AlreadyStored
        );
        let other = BODY.replace("\"quantity\":2", "\"quantity\":3");
        assert!(matches!(
            queue.send_order(&order(&other), BTreeMap::new()).await,
            Err(IntakeError::Conflict(_))
        ));
        assert_eq!(queued(&queue).await, 0);
        assert_eq!(
            table.get(stored.id()).await.unwrap().unwrap(),
            stored,
            "untouched"
        );
    }

    /// The check and the insert are one writer job: of many different orders posted at once
    /// under one id, exactly one is queued.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn of_concurrent_different_orders_under_one_id_exactly_one_is_queued() {
        let dir = tempfile::tempdir().unwrap();
        let (_db, queue) = open(&dir);
        let queue = Arc::new(queue);
        let mut tasks = Vec::new();
        for i in 0..32 {
            let queue = Arc::clone(&queue);
            let body = BODY.replace("\"c\"", &format!("\"customer-{i}\""));
            tasks.push(tokio::spawn(async move {
                queue.send_order(&order(&body), BTreeMap::new()).await
            }));
        }
        let mut accepted = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(Intake::Queued(_)) => accepted += 1,
                Err(IntakeError::Conflict(_)) => {}
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(accepted, 1);
        assert_eq!(queued(&queue).await, 1);
    }

    #[tokio::test]
    async fn an_order_in_the_dead_letter_queue_does_not_hold_its_id() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("t.db"), crate::schema::migrate).unwrap();
        let mut config = QueueConfig::orders();
        config.max_receive_count = 1;
        config.visibility_timeout = std::time::Duration::ZERO;
        let queue = Queue::new(db, config);
        queue
            .send_order(&order(BODY), BTreeMap::new())
            .await
            .unwrap();
        assert_eq!(queue.receive(10).await.unwrap().messages.len(), 1);
        assert!(
            queue.receive(10).await.unwrap().messages.is_empty(),
            "moved to the DLQ"
        );
        let fixed = BODY.replace("\"c\"", "\"fixed\"");
        assert!(matches!(
            queue.send_order(&order(&fixed), BTreeMap::new()).await,
            Ok(Intake::Queued(_))
        ));
    }
}

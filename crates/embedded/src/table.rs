//! The `orders` table: a conditional put that appends the INSERT stream record in the same
//! transaction, so the change stream can never miss or invent an order.

use std::sync::Arc;

use async_trait::async_trait;
use orderflow_core::item::{from_item, key_of, to_item};
use orderflow_core::{ContentHash, OrderId, OrderTable, StoredOrder, TableError};
use rusqlite::{OptionalExtension, params};
use tokio::sync::Notify;

use crate::db::{Db, DbError, now_ms};

#[derive(Debug)]
pub struct SqliteOrderTable {
    db: Arc<Db>,
    stream_notify: Arc<Notify>,
}

/// One page of stored orders, newest first.
#[derive(Debug)]
pub struct OrderPage {
    pub orders: Vec<StoredOrder>,
    pub next_cursor: Option<String>,
}

impl From<DbError> for TableError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Corrupt(source) => TableError::Corrupt(source),
            other => TableError::Unavailable(Box::new(other)),
        }
    }
}

impl SqliteOrderTable {
    pub fn new(db: Arc<Db>) -> Self {
        SqliteOrderTable {
            db,
            stream_notify: Arc::new(Notify::new()),
        }
    }

    /// Wakes the stream poller when a record is appended.
    pub fn stream_notify(&self) -> &Arc<Notify> {
        &self.stream_notify
    }

    /// The most recent orders first; `cursor` is the `next_cursor` of the previous page.
    pub async fn list(&self, limit: usize, cursor: Option<&str>) -> Result<OrderPage, TableError> {
        let before = match cursor {
            None => i64::MAX,
            Some(c) => c
                .parse::<i64>()
                .map_err(|_| TableError::Corrupt(format!("invalid cursor {c:?}").into()))?,
        };
        let limit = limit.clamp(1, 1000);
        self.db
            .read(move |c| {
                let mut stmt = c.prepare_cached(
                    "SELECT seq, item FROM orders WHERE seq < ?1 ORDER BY seq DESC LIMIT ?2",
                )?;
                let rows: Vec<(i64, String)> = stmt
                    .query_map(params![before, limit as i64 + 1], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })?
                    .collect::<Result<_, _>>()?;
                let has_more = rows.len() > limit;
                let mut orders = Vec::with_capacity(limit);
                let mut last_seq = None;
                for (seq, item) in rows.into_iter().take(limit) {
                    orders.push(decode(&item)?);
                    last_seq = Some(seq);
                }
                Ok(OrderPage {
                    orders,
                    next_cursor: if has_more {
                        last_seq.map(|s| s.to_string())
                    } else {
                        None
                    },
                })
            })
            .await
            .map_err(TableError::from)
    }

    /// Up to `limit` orders whose ids sort after `after`, in id order, and whether more
    /// follow: DynamoDB's `Scan` pages by key (`ExclusiveStartKey`).
    pub async fn scan(&self, after: Option<&str>, limit: usize) -> Result<KeyPage, TableError> {
        let after = after.unwrap_or("").to_owned();
        let limit = limit.clamp(1, 1000);
        self.db
            .read(move |c| {
                let mut stmt = c.prepare_cached(
                    "SELECT item FROM orders WHERE order_id > ?1 ORDER BY order_id LIMIT ?2",
                )?;
                let rows: Vec<String> = stmt
                    .query_map(params![after, limit as i64 + 1], |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
                let more = rows.len() > limit;
                let orders = rows
                    .iter()
                    .take(limit)
                    .map(|item| decode(item))
                    .collect::<Result<_, _>>()?;
                Ok(KeyPage { orders, more })
            })
            .await
            .map_err(TableError::from)
    }

    /// [`OrderTable::put_new`], returning only once the order and its stream record are
    /// fsync'd: for a put acknowledged to a client (DynamoDB's `PutItem`), where the store
    /// handler's put can rely on the queue message it deletes afterwards.
    pub async fn put_new_synced(&self, order: &StoredOrder) -> Result<(), TableError> {
        self.put(order, true).await
    }

    pub async fn count(&self) -> Result<u64, TableError> {
        Ok(self
            .db
            .read(|c| crate::counters::counter(c, "orders"))
            .await?)
    }
}

/// One page of a scan in key order (DynamoDB's `Scan`).
#[derive(Debug)]
pub struct KeyPage {
    pub orders: Vec<StoredOrder>,
    /// Whether orders with greater keys remain.
    pub more: bool,
}

/// What a conditional put found.
enum Put {
    Inserted,
    /// The same order (by content hash) was already stored.
    Resent,
    /// A different order is stored under the id.
    Conflict,
}

/// Reads an `orders` row: the stored order's own JSON or, in rows written by versions before
/// retention, its DynamoDB item (`{"orderID":{"S":...}}`), a third larger for the same order.
/// The change stream carries the item either way.
pub(crate) fn decode(text: &str) -> Result<StoredOrder, DbError> {
    if text.contains(r#""orderID":{"S""#) {
        let item: serde_dynamo::Item =
            serde_json::from_str(text).map_err(|e| DbError::Corrupt(e.into()))?;
        return from_item(&item).map_err(|e| DbError::Corrupt(e.into()));
    }
    serde_json::from_str(text).map_err(|e| DbError::Corrupt(e.into()))
}

impl SqliteOrderTable {
    async fn put(&self, order: &StoredOrder, synced: bool) -> Result<(), TableError> {
        let id = order.id().clone();
        let row = serde_json::to_string(order).expect("orders serialize");
        let item = serde_json::to_string(&to_item(order)).expect("items serialize");
        let keys = serde_json::to_string(&key_of(order)).expect("keys serialize");
        let order_id = id.to_string();
        let hash = ContentHash::of(&order.order);
        let put = move |c: &rusqlite::Connection| {
            let inserted = c
                    .prepare_cached("INSERT INTO orders (order_id, item, content_hash) VALUES (?1, ?2, ?3) ON CONFLICT (order_id) DO NOTHING")?
                    .execute(params![order_id, row, hash.as_bytes().as_slice()])?;
            if inserted == 0 {
                let same = crate::intake::stored_hash(c, &order_id)? == Some(hash);
                return Ok(if same { Put::Resent } else { Put::Conflict });
            }
            let size = (keys.len() + item.len()) as i64;
            // The event id is time-ordered (UUIDv7), so its unique index grows at
            // the end rather than taking a write on a random page.
            c.prepare_cached(
                        "INSERT INTO stream_records (event_id, event_name, keys, new_image, created_at, size_bytes)
                         VALUES (?1, 'INSERT', ?2, ?3, ?4, ?5)",
                    )?
                    .execute(params![uuid::Uuid::now_v7().simple().to_string(), keys, item, now_ms(), size])?;
            Ok(Put::Inserted)
        };
        let outcome = if synced {
            self.db.write(put).await?
        } else {
            self.db.write_relaxed(put).await?
        };
        match outcome {
            Put::Inserted => {
                self.stream_notify.notify_waiters();
                Ok(())
            }
            Put::Resent => Err(TableError::AlreadyExists(id)),
            Put::Conflict => Err(TableError::Conflict(id)),
        }
    }
}

#[async_trait]
impl OrderTable for SqliteOrderTable {
    async fn put_new(&self, order: &StoredOrder) -> Result<(), TableError> {
        self.put(order, false).await
    }

    async fn get(&self, id: &OrderId) -> Result<Option<StoredOrder>, TableError> {
        let id = id.to_string();
        self.db
            .read(move |c| {
                let item: Option<String> = c
                    .prepare_cached("SELECT item FROM orders WHERE order_id = ?1")?
                    .query_row(params![id], |r| r.get(0))
                    .optional()?;
                item.as_deref().map(decode).transpose()
            })
            .await
            .map_err(TableError::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(dir: &tempfile::TempDir) -> SqliteOrderTable {
        SqliteOrderTable::new(Db::open(&dir.path().join("t.db"), crate::schema::migrate).unwrap())
    }

    #[tokio::test]
    async fn sqlite_table_conforms() {
        let dir = tempfile::tempdir().unwrap();
        orderflow_core::conformance::order_table(&table(&dir)).await;
    }

    #[tokio::test]
    async fn listing_pages_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let t = table(&dir);
        let mut ids = Vec::new();
        for _ in 0..5 {
            let o = orderflow_core::conformance::sample_order();
            ids.push(o.id().clone());
            t.put_new(&o).await.unwrap();
        }
        let p1 = t.list(2, None).await.unwrap();
        assert_eq!(
            p1.orders.iter().map(|o| o.id().clone()).collect::<Vec<_>>(),
            vec![ids[4].clone(), ids[3].clone()]
        );
        let p2 = t.list(2, p1.next_cursor.as_deref()).await.unwrap();
        let p3 = t.list(2, p2.next_cursor.as_deref()).await.unwrap();
        assert_eq!(p3.orders.len(), 1);
        assert_eq!(p3.next_cursor, None);
        assert_eq!(t.count().await.unwrap(), 5);
    }

    #[tokio::test]
    async fn a_scan_pages_in_key_order_from_an_exclusive_start() {
        let dir = tempfile::tempdir().unwrap();
        let t = table(&dir);
        let mut ids = Vec::new();
        for _ in 0..5 {
            let o = orderflow_core::conformance::sample_order();
            ids.push(o.id().to_string());
            t.put_new_synced(&o).await.unwrap();
        }
        ids.sort();
        let p1 = t.scan(None, 2).await.unwrap();
        let got = |p: &KeyPage| {
            p.orders
                .iter()
                .map(|o| o.id().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(got(&p1), ids[..2]);
        assert!(p1.more);
        let p2 = t.scan(Some(&ids[1]), 3).await.unwrap();
        assert_eq!(got(&p2), ids[2..]);
        assert!(!p2.more, "nothing after the last id");
        assert!(t.scan(Some("zzz"), 3).await.unwrap().orders.is_empty());
    }

    /// Rows written by earlier versions hold the DynamoDB item; they still read, and a
    /// resend of such an order is told from a conflict.
    #[tokio::test]
    async fn an_order_stored_as_its_dynamodb_item_still_reads() {
        let dir = tempfile::tempdir().unwrap();
        let t = table(&dir);
        let order = orderflow_core::conformance::sample_order();
        let item = serde_json::to_string(&to_item(&order)).unwrap();
        let id = order.id().to_string();
        t.db.write(move |c| {
            c.execute(
                "INSERT INTO orders (order_id, item) VALUES (?1, ?2)",
                params![id, item],
            )?;
            Ok(())
        })
        .await
        .unwrap();
        assert_eq!(t.get(order.id()).await.unwrap().unwrap(), order);
        assert!(matches!(
            t.put_new(&order).await,
            Err(TableError::AlreadyExists(_))
        ));
        let mut other = order.clone();
        other.order.customer_id = "someone-else".into();
        assert!(matches!(
            t.put_new(&other).await,
            Err(TableError::Conflict(_))
        ));
    }
}

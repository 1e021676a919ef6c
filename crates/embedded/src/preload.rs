//! Bulk-loads stored orders straight into a data directory, for benchmarks at scale.
//!
//! The rows are exactly what the pipeline writes (the order row and its INSERT stream
//! record), with the stream consumer already past them, as if they had been published.

use std::path::Path;

use orderflow_core::item::{key_of, to_item};
use orderflow_core::{Order, OrderId, StoredOrder};
use rusqlite::{Connection, params};

use crate::DATABASE_FILE;

pub fn preload_orders(data_dir: &Path, count: u64) -> Result<(), crate::EngineError> {
    std::fs::create_dir_all(data_dir).map_err(|source| crate::EngineError::DataDir {
        path: data_dir.to_owned(),
        source,
    })?;
    let mut conn = Connection::open(data_dir.join(DATABASE_FILE)).map_err(crate::DbError::from)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(crate::DbError::from)?;
    crate::schema::migrate(&conn).map_err(crate::DbError::from)?;
    let template = br#"{"orderID":"x","customerId":"preload","customerEmail":"bulk@example.com","items":[{"sku":"SKU-1","quantity":2,"unitPrice":19.99},{"sku":"SKU-2","quantity":1,"unitPrice":0.5}],"currency":"EUR","shippingAddress":{"line1":"1 Main St","city":"Berlin","postalCode":"10115","country":"DE"}}"#;
    let base: Order = Order::parse(template).expect("template order is valid");
    let now = chrono::Utc::now();
    let mut done = 0u64;
    while done < count {
        let tx = conn.transaction().map_err(crate::DbError::from)?;
        {
            let mut put = tx
                .prepare("INSERT INTO orders (order_id, item, content_hash) VALUES (?1, ?2, ?3)")
                .map_err(crate::DbError::from)?;
            let mut rec = tx
                .prepare(
                    "INSERT INTO stream_records (event_id, event_name, keys, new_image, created_at, size_bytes)
                     VALUES (?1, 'INSERT', ?2, ?3, ?4, ?5)",
                )
                .map_err(crate::DbError::from)?;
            for _ in 0..(count - done).min(50_000) {
                let mut order = base.clone();
                order.order_id = OrderId::generate();
                let stored = StoredOrder::new(order, now, now).expect("total");
                let item = serde_json::to_string(&to_item(&stored)).expect("item");
                let keys = serde_json::to_string(&key_of(&stored)).expect("keys");
                let hash = orderflow_core::ContentHash::of(&stored.order);
                let row = serde_json::to_string(&stored).expect("order");
                put.execute(params![
                    stored.id().as_str(),
                    row,
                    hash.as_bytes().as_slice()
                ])
                .map_err(crate::DbError::from)?;
                rec.execute(params![
                    uuid::Uuid::now_v7().simple().to_string(),
                    keys,
                    item,
                    now.timestamp_millis(),
                    (keys.len() + item.len()) as i64
                ])
                .map_err(crate::DbError::from)?;
                done += 1;
            }
        }
        tx.commit().map_err(crate::DbError::from)?;
    }
    conn.execute(
        "INSERT INTO stream_checkpoints (consumer, seq, attempts)
         VALUES (?1, (SELECT coalesce(max(seq), 0) FROM stream_records), 0)
         ON CONFLICT (consumer) DO UPDATE SET seq = excluded.seq, attempts = 0",
        params![crate::STREAM_CONSUMER],
    )
    .map_err(crate::DbError::from)?;
    conn.pragma_update(None, "wal_checkpoint", "TRUNCATE")
        .map_err(crate::DbError::from)?;
    Ok(())
}

//! The database schema, created on open; `user_version` records which migrations ran.

use rusqlite::Connection;

const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE queue_messages (
    seq               INTEGER PRIMARY KEY AUTOINCREMENT,
    queue             TEXT    NOT NULL,
    message_id        TEXT    NOT NULL UNIQUE,
    body              TEXT    NOT NULL,
    attributes        TEXT    NOT NULL DEFAULT '{}',
    sent_at           INTEGER NOT NULL,
    visible_at        INTEGER NOT NULL,
    receive_count     INTEGER NOT NULL DEFAULT 0,
    first_received_at INTEGER,
    receipt_handle    TEXT,
    source_queue      TEXT,
    dead_lettered_at  INTEGER,
    last_error        TEXT
);
CREATE INDEX queue_messages_visible ON queue_messages (queue, visible_at);
CREATE INDEX queue_messages_receipt ON queue_messages (receipt_handle);

CREATE TABLE orders (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id TEXT    NOT NULL UNIQUE,
    item     TEXT    NOT NULL
);

CREATE TABLE stream_records (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id   TEXT    NOT NULL UNIQUE,
    event_name TEXT    NOT NULL,
    keys       TEXT    NOT NULL,
    new_image  TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    size_bytes INTEGER NOT NULL
);

CREATE TABLE stream_checkpoints (
    consumer TEXT    PRIMARY KEY,
    seq      INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE stream_failures (
    seq       INTEGER PRIMARY KEY,
    event_id  TEXT    NOT NULL,
    record    TEXT    NOT NULL,
    attempts  INTEGER NOT NULL,
    failed_at INTEGER NOT NULL
);

CREATE TABLE subscriptions (
    id           TEXT    PRIMARY KEY,
    arn          TEXT    NOT NULL UNIQUE,
    protocol     TEXT    NOT NULL,
    endpoint     TEXT    NOT NULL,
    status       TEXT    NOT NULL,
    token        TEXT    NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    confirmed_at INTEGER
);

CREATE TABLE topic_messages (
    message_id   TEXT    PRIMARY KEY,
    dedup_id     TEXT    NOT NULL UNIQUE,
    subject      TEXT    NOT NULL,
    message      TEXT    NOT NULL,
    attributes   TEXT    NOT NULL,
    published_at INTEGER NOT NULL
);

CREATE TABLE deliveries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    subscription_id TEXT    NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    kind            TEXT    NOT NULL,
    message_id      TEXT    NOT NULL,
    state           TEXT    NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    delivered_at    INTEGER,
    UNIQUE (subscription_id, message_id)
);
CREATE INDEX deliveries_due ON deliveries (state, next_attempt_at);
"#,
    // Fan-out: subscription settings (filter policy, raw delivery, retry policy, queue
    // settings) as JSON, who manages it, filtered-out counts, and dead-letter times.
    r#"
ALTER TABLE subscriptions ADD COLUMN name TEXT;
ALTER TABLE subscriptions ADD COLUMN settings TEXT NOT NULL DEFAULT '{}';
ALTER TABLE subscriptions ADD COLUMN source TEXT NOT NULL DEFAULT 'api';
ALTER TABLE subscriptions ADD COLUMN filtered INTEGER NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX subscriptions_name ON subscriptions (name) WHERE name IS NOT NULL;
ALTER TABLE deliveries ADD COLUMN failed_at INTEGER;
CREATE INDEX deliveries_subscription ON deliveries (subscription_id, state);
"#,
    // Why a stream record went to the on-failure destination.
    r#"
ALTER TABLE stream_failures ADD COLUMN last_error TEXT;
"#,
    // The delivery worker reads each subscription's due deliveries in order, without sorting.
    r#"
CREATE INDEX deliveries_subscription_due ON deliveries (subscription_id, state, next_attempt_at, id);
"#,
    // deliveries_subscription_due starts with the same columns, so it serves every query the
    // older index did; each delivery written updated both.
    r#"
DROP INDEX IF EXISTS deliveries_subscription;
"#,
    // What the store poller saw of each order it handed to the store handler, for `trace`.
    // Earlier versions created it outside the migrations, hence IF NOT EXISTS.
    r#"
CREATE TABLE IF NOT EXISTS order_receipts (
    order_id          TEXT    PRIMARY KEY,
    message_id        TEXT    NOT NULL,
    receive_count     INTEGER NOT NULL,
    first_received_at INTEGER NOT NULL,
    last_received_at  INTEGER NOT NULL,
    last_error        TEXT
);
"#,
];

pub fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Databases from before `order_receipts` joined the migrations already have it.
    #[test]
    fn a_database_that_made_order_receipts_itself_migrates() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(MIGRATIONS[..5].join("\n").as_str())
            .unwrap();
        conn.pragma_update(None, "user_version", 5).unwrap();
        conn.execute_batch(
            "CREATE TABLE order_receipts (order_id TEXT PRIMARY KEY, message_id TEXT NOT NULL,
             receive_count INTEGER NOT NULL, first_received_at INTEGER NOT NULL,
             last_received_at INTEGER NOT NULL, last_error TEXT);
             INSERT INTO order_receipts VALUES ('o-1', 'm-1', 1, 1, 1, NULL);",
        )
        .unwrap();
        migrate(&conn).unwrap();
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, MIGRATIONS.len() as i64);
        let kept: i64 = conn
            .query_row("SELECT count(*) FROM order_receipts", [], |r| r.get(0))
            .unwrap();
        assert_eq!(kept, 1, "the receipts already noted are kept");
    }

    /// Each index on `deliveries` costs a page write per delivery recorded; the worker's
    /// per-subscription read must still be an index seek without the dropped one.
    #[test]
    fn deliveries_keep_one_index_per_access_path() {
        let conn = Connection::open_in_memory().unwrap();
        migrate(&conn).unwrap();
        migrate(&conn).expect("migrating twice is a no-op");
        let indexes: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'deliveries' AND sql IS NOT NULL ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(indexes, ["deliveries_due", "deliveries_subscription_due"]);
        let plan: String = conn
            .prepare(
                "EXPLAIN QUERY PLAN SELECT id FROM deliveries
                 WHERE subscription_id = 's' AND state = 'pending' AND next_attempt_at <= 1
                 ORDER BY next_attempt_at, id",
            )
            .unwrap()
            .query_map([], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap()
            .join("\n");
        assert!(
            plan.contains("USING COVERING INDEX deliveries_subscription_due")
                || plan.contains("USING INDEX deliveries_subscription_due"),
            "{plan}"
        );
        assert!(!plan.contains("TEMP B-TREE"), "sorted by the index: {plan}");
    }
}

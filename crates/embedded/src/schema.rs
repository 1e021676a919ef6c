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
    // Conflicting duplicates: each order's canonical content hash, kept with the stored
    // order and with the queued message (whose order id is indexed), so a resend is told
    // from a different order under the same id (`intake`).
    r#"
ALTER TABLE orders ADD COLUMN content_hash BLOB;
ALTER TABLE queue_messages ADD COLUMN order_id TEXT;
ALTER TABLE queue_messages ADD COLUMN content_hash BLOB;
CREATE INDEX queue_messages_order ON queue_messages (order_id) WHERE order_id IS NOT NULL;
"#,
    // Retention: the trace looks stream records up by key and deliveries by message id, and
    // pruning finds a message's deliveries by its id; both were full scans. `/stats` and
    // `/metrics` read counters kept by triggers in the writer's own transactions instead of
    // counting history. A delivery pruned as delivered still counts as delivered; one removed
    // any other way (its subscription deleted, a dead letter purged) no longer counts.
    r#"
CREATE INDEX stream_records_keys ON stream_records (keys);
CREATE INDEX deliveries_message ON deliveries (message_id);

CREATE TABLE counters (
    name  TEXT    PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO counters SELECT 'orders', count(*) FROM orders;
INSERT INTO counters SELECT 'stream_failures', count(*) FROM stream_failures;
CREATE TRIGGER orders_count AFTER INSERT ON orders BEGIN
    UPDATE counters SET value = value + 1 WHERE name = 'orders';
END;
-- Failures are written with INSERT OR REPLACE, whose implicit delete fires no trigger, so
-- they are recounted: a dead-letter store is small, and written rarely.
CREATE TRIGGER stream_failures_added AFTER INSERT ON stream_failures BEGIN
    UPDATE counters SET value = (SELECT count(*) FROM stream_failures) WHERE name = 'stream_failures';
END;
CREATE TRIGGER stream_failures_removed AFTER DELETE ON stream_failures BEGIN
    UPDATE counters SET value = (SELECT count(*) FROM stream_failures) WHERE name = 'stream_failures';
END;

CREATE TABLE delivery_counts (
    subscription_id TEXT    NOT NULL,
    state           TEXT    NOT NULL,
    n               INTEGER NOT NULL,
    PRIMARY KEY (subscription_id, state)
) WITHOUT ROWID;
INSERT INTO delivery_counts
    SELECT subscription_id, state, count(*) FROM deliveries WHERE kind = 'Notification' GROUP BY 1, 2;
CREATE TRIGGER deliveries_count_insert AFTER INSERT ON deliveries WHEN NEW.kind = 'Notification' BEGIN
    INSERT OR IGNORE INTO delivery_counts VALUES (NEW.subscription_id, NEW.state, 0);
    UPDATE delivery_counts SET n = n + 1 WHERE subscription_id = NEW.subscription_id AND state = NEW.state;
END;
CREATE TRIGGER deliveries_count_update AFTER UPDATE OF state ON deliveries
WHEN NEW.kind = 'Notification' AND OLD.state IS NOT NEW.state BEGIN
    UPDATE delivery_counts SET n = n - 1 WHERE subscription_id = OLD.subscription_id AND state = OLD.state;
    INSERT OR IGNORE INTO delivery_counts VALUES (NEW.subscription_id, NEW.state, 0);
    UPDATE delivery_counts SET n = n + 1 WHERE subscription_id = NEW.subscription_id AND state = NEW.state;
END;
CREATE TRIGGER deliveries_count_delete AFTER DELETE ON deliveries
WHEN OLD.kind = 'Notification' AND OLD.state != 'delivered' BEGIN
    UPDATE delivery_counts SET n = n - 1 WHERE subscription_id = OLD.subscription_id AND state = OLD.state;
END;
CREATE TRIGGER subscriptions_uncount AFTER DELETE ON subscriptions BEGIN
    DELETE FROM delivery_counts WHERE subscription_id = OLD.id;
END;
"#,
    // The worker reads pending deliveries and the dead-letter views failed ones; a delivered
    // one is history, which the indexes over all states carried forever. Indexes over only
    // those states stay the size of the backlog, and marking a delivery delivered takes its
    // entries out instead of moving them: two index writes fewer per notification. (The
    // unique (subscription_id, message_id) index still serves the cascade from a removed
    // subscription, deliveries_message the trace and retention.)
    r#"
CREATE INDEX deliveries_pending ON deliveries (subscription_id, next_attempt_at, id) WHERE state = 'pending';
CREATE INDEX deliveries_pending_due ON deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX deliveries_failed ON deliveries (subscription_id, id) WHERE state = 'failed';
DROP INDEX deliveries_due;
DROP INDEX deliveries_subscription_due;
"#,
    // Delivery cursors: a notification's row is written when its first attempt settles, not
    // when it is published. Each subscription keeps a cursor into the topic's messages in
    // publication order (`seq`): every message at or before it is delivered, filtered out,
    // or has its row (a retry, a dead letter); every one after it is still to be sent and
    // has none. `first_seq` is the last message published before the subscription was
    // confirmed: it gets the ones after. Messages get their `seq` by rebuilding the table
    // (AUTOINCREMENT: never reused, even once retention has pruned the newest).
    r#"
CREATE TABLE topic_messages_seq (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id   TEXT    NOT NULL UNIQUE,
    dedup_id     TEXT    NOT NULL UNIQUE,
    subject      TEXT    NOT NULL,
    message      TEXT    NOT NULL,
    attributes   TEXT    NOT NULL,
    published_at INTEGER NOT NULL
);
INSERT INTO topic_messages_seq (message_id, dedup_id, subject, message, attributes, published_at)
    SELECT message_id, dedup_id, subject, message, attributes, published_at FROM topic_messages ORDER BY rowid;
DROP TABLE topic_messages;
ALTER TABLE topic_messages_seq RENAME TO topic_messages;
ALTER TABLE subscriptions ADD COLUMN cursor INTEGER NOT NULL DEFAULT 0;
ALTER TABLE subscriptions ADD COLUMN first_seq INTEGER NOT NULL DEFAULT 0;
-- What was published before this version has its rows already.
UPDATE subscriptions SET cursor = (SELECT coalesce(max(seq), 0) FROM topic_messages),
                         first_seq = (SELECT coalesce(max(seq), 0) FROM topic_messages);
-- A cursor's advance writes its delivered rows and adds them to the count in one statement.
DROP TRIGGER deliveries_count_insert;
CREATE TRIGGER deliveries_count_insert AFTER INSERT ON deliveries
WHEN NEW.kind = 'Notification' AND NEW.state != 'delivered' BEGIN
    INSERT OR IGNORE INTO delivery_counts VALUES (NEW.subscription_id, NEW.state, 0);
    UPDATE delivery_counts SET n = n + 1 WHERE subscription_id = NEW.subscription_id AND state = NEW.state;
END;
"#,
];

/// The schema version this binary migrates to.
pub fn latest_version() -> i64 {
    MIGRATIONS.len() as i64
}

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

    /// A database from before delivery cursors keeps what it had: its messages are numbered
    /// in the order they were published, its pending rows stay due (and are counted once),
    /// and each cursor starts after the newest message, which already has its rows.
    #[test]
    fn a_database_from_before_cursors_keeps_its_deliveries_and_counts() {
        let conn = Connection::open_in_memory().unwrap();
        let before = MIGRATIONS.len() - 1;
        conn.execute_batch(MIGRATIONS[..before].join("\n").as_str())
            .unwrap();
        conn.pragma_update(None, "user_version", before as i64)
            .unwrap();
        conn.execute_batch(
            "INSERT INTO subscriptions (id, arn, protocol, endpoint, status, token, created_at)
                 VALUES ('s', 'arn:aws:sns:us-east-1:000000000000:orders:s', 'queue', 'q', 'Confirmed', 't', 1);
             INSERT INTO topic_messages VALUES ('m-b', 'r-b', '', '{}', '{}', 1);
             INSERT INTO topic_messages VALUES ('m-a', 'r-a', '', '{}', '{}', 2);
             INSERT INTO deliveries (subscription_id, kind, message_id, state, next_attempt_at, created_at)
                 VALUES ('s', 'Notification', 'm-b', 'pending', 1, 1), ('s', 'Notification', 'm-a', 'pending', 1, 2);
             UPDATE deliveries SET state = 'delivered' WHERE message_id = 'm-b';",
        )
        .unwrap();
        migrate(&conn).unwrap();
        let order: Vec<(i64, String)> = conn
            .prepare("SELECT seq, message_id FROM topic_messages ORDER BY seq")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(order, [(1, "m-b".into()), (2, "m-a".into())]);
        let cursor: (i64, i64) = conn
            .query_row("SELECT cursor, first_seq FROM subscriptions", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!(cursor, (2, 2));
        let stats = crate::counters::deliveries(&conn, None).unwrap();
        assert_eq!((stats.pending, stats.delivered), (1, 1));
        // The next message gets the next number, and is pending by the cursor alone.
        conn.execute(
            "INSERT INTO topic_messages (message_id, dedup_id, subject, message, attributes, published_at)
             VALUES ('m-c', 'r-c', '', '{}', '{}', 3)",
            [],
        )
        .unwrap();
        let stats = crate::counters::deliveries(&conn, None).unwrap();
        assert_eq!((stats.pending, stats.delivered), (2, 1));
    }

    /// Each index on `deliveries` costs page writes per delivery recorded; the worker's reads
    /// must still be index seeks, sorted by the index, over pending deliveries only.
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
        // deliveries_message serves the trace and retention (a message's deliveries).
        assert_eq!(
            indexes,
            [
                "deliveries_failed",
                "deliveries_message",
                "deliveries_pending",
                "deliveries_pending_due"
            ]
        );
        for (sql, index) in [
            (
                "SELECT id FROM deliveries
                 WHERE subscription_id = 's' AND state = 'pending' AND next_attempt_at <= 1
                 ORDER BY next_attempt_at, id",
                "deliveries_pending",
            ),
            (
                "SELECT min(next_attempt_at) FROM deliveries WHERE state = 'pending' AND next_attempt_at > 1",
                "deliveries_pending_due",
            ),
            (
                "SELECT id FROM deliveries WHERE subscription_id = 's' AND state = 'failed' ORDER BY id",
                "deliveries_failed",
            ),
        ] {
            let plan = plan(&conn, sql);
            assert!(plan.contains(&format!("INDEX {index} ")), "{sql}:\n{plan}");
            assert!(!plan.contains("TEMP B-TREE"), "sorted by the index: {plan}");
        }
    }

    /// A delivered delivery is history: it leaves the partial indexes the worker reads, so
    /// they stay the size of the backlog however long the log grows.
    #[test]
    fn a_delivered_delivery_leaves_the_indexes_of_pending_and_failed_ones() {
        let conn = Connection::open_in_memory().unwrap();
        migrate(&conn).unwrap();
        conn.execute_batch(
            "INSERT INTO subscriptions (id, arn, protocol, endpoint, status, token, created_at)
                 VALUES ('s', 'arn:aws:sns:us-east-1:000000000000:orders:s', 'http', 'http://x', 'Confirmed', 't', 1);
             INSERT INTO deliveries (subscription_id, kind, message_id, state, next_attempt_at, created_at)
                 VALUES ('s', 'Notification', 'm1', 'pending', 1, 1), ('s', 'Notification', 'm2', 'pending', 1, 1),
                        ('s', 'Notification', 'm3', 'pending', 1, 1);
             UPDATE deliveries SET state = 'delivered' WHERE message_id = 'm1';
             UPDATE deliveries SET state = 'failed' WHERE message_id = 'm2';",
        )
        .unwrap();
        let stat: Vec<(String, i64)> = {
            conn.execute_batch("ANALYZE").unwrap();
            conn.prepare("SELECT idx, CAST(stat AS INTEGER) FROM sqlite_stat1 WHERE tbl = 'deliveries' ORDER BY idx")
                .unwrap()
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        // sqlite_stat1's first number is the index's entry count: one each, of three rows.
        assert!(stat.contains(&("deliveries_pending".into(), 1)), "{stat:?}");
        assert!(
            stat.contains(&("deliveries_pending_due".into(), 1)),
            "{stat:?}"
        );
        assert!(stat.contains(&("deliveries_failed".into(), 1)), "{stat:?}");
    }

    fn plan(conn: &Connection, sql: &str) -> String {
        conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap()
            .query_map([], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap()
            .join("\n")
    }

    /// The trace's lookups by stream key and by message id, retention's, and the counters
    /// `/stats` and `/metrics` read are index seeks, never scans of a table that grows.
    #[test]
    fn trace_retention_and_stats_lookups_use_indexes() {
        let conn = Connection::open_in_memory().unwrap();
        migrate(&conn).unwrap();
        let latest_error = crate::topic::LATEST_ERROR_SQL.replace("?1", "'s'");
        for (sql, index) in [
            (
                "SELECT seq, event_id FROM stream_records WHERE keys = '{}' AND event_name = 'INSERT'",
                "stream_records_keys",
            ),
            (
                "SELECT s.id, d.state FROM deliveries d JOIN subscriptions s ON s.id = d.subscription_id
                 WHERE d.message_id = 'm' AND d.kind = 'Notification' ORDER BY s.created_at, s.id",
                "deliveries_message",
            ),
            (
                "SELECT 1 FROM deliveries WHERE message_id = 'm' AND state != 'delivered' LIMIT 1",
                "deliveries_message",
            ),
            (
                "SELECT content_hash FROM queue_messages WHERE order_id = 'o' AND queue = 'orders'",
                "queue_messages_order",
            ),
            // The health query: each side of its union on its own partial index.
            (latest_error.as_str(), "deliveries_pending (subscription_id=?)"),
            (latest_error.as_str(), "deliveries_failed (subscription_id=?)"),
            ("SELECT value FROM counters WHERE name = 'orders'", "PRIMARY KEY"),
            (
                "SELECT sum(n) FROM delivery_counts WHERE subscription_id = 's'",
                "PRIMARY KEY",
            ),
        ] {
            let plan = plan(&conn, sql);
            assert!(plan.contains(index), "{sql}:\n{plan}");
            assert!(!plan.contains("SCAN d\n") && !plan.starts_with("SCAN"), "{sql}:\n{plan}");
        }
    }

    /// The counters follow inserts, state changes and deletes in the same transaction.
    #[test]
    fn counters_follow_the_rows_they_count() {
        let conn = Connection::open_in_memory().unwrap();
        migrate(&conn).unwrap();
        conn.execute_batch(
            "INSERT INTO orders (order_id, item) VALUES ('a', '{}'), ('b', '{}');
             INSERT INTO subscriptions (id, arn, protocol, endpoint, status, token, created_at)
                 VALUES ('s', 'arn', 'queue', 'q', 'Confirmed', 't', 0);
             INSERT INTO deliveries (subscription_id, kind, message_id, state, next_attempt_at, created_at)
                 VALUES ('s', 'Notification', 'm1', 'pending', 0, 0), ('s', 'Notification', 'm2', 'pending', 0, 0),
                        ('s', 'SubscriptionConfirmation', 'c', 'pending', 0, 0);
             UPDATE deliveries SET state = 'delivered' WHERE message_id = 'm1';
             UPDATE deliveries SET state = 'failed' WHERE message_id = 'm2';
             DELETE FROM deliveries WHERE message_id = 'm1';",
        )
        .unwrap();
        let orders: i64 = conn
            .query_row(
                "SELECT value FROM counters WHERE name = 'orders'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(orders, 2);
        let counts: Vec<(String, i64)> = conn
            .prepare("SELECT state, n FROM delivery_counts ORDER BY state")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            counts,
            [
                ("delivered".to_owned(), 1),
                ("failed".to_owned(), 1),
                ("pending".to_owned(), 0)
            ],
            "a pruned delivered row still counts; confirmations do not"
        );
        conn.execute_batch("DELETE FROM subscriptions WHERE id = 's'")
            .unwrap();
        let left: i64 = conn
            .query_row("SELECT count(*) FROM delivery_counts", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 0, "a deleted subscription's counts go with it");
    }
}

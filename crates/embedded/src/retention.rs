//! Retention: pruning what only records history, so the database grows with orders and not
//! with traffic.
//!
//! Kept forever: orders. Kept until redriven or purged: dead letters (the orders DLQ, stream
//! failures, each subscription's dead-letter store). Pruned after their retention: stream
//! records already published (DynamoDB Streams keeps records 24 hours), topic messages
//! delivered to every subscription (with their delivery rows), and the store handler's
//! receipts.
//!
//! Each step is one relaxed job on the writer that looks at a bounded window of rows in
//! insertion order and deletes what in it has expired, then the pruner sleeps before the
//! next; so the writer is never held for more than one small step, and no step scans a
//! table. SQLite puts the freed pages on its free list and reuses them for new rows, so the
//! file stops growing once history is pruned as fast as it is written.

use std::sync::Arc;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use tokio::sync::watch;

use crate::db::{Db, DbError, now_ms};

/// Default retention of published stream records: what DynamoDB Streams keeps.
pub const DEFAULT_STREAM_RETENTION: Duration = Duration::from_secs(24 * 3600);
/// Default retention of delivered messages and of receipts.
pub const DEFAULT_HISTORY_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

#[derive(Debug, Clone)]
pub struct RetentionConfig {
    /// Published stream records older than this are pruned; `None` keeps them.
    pub stream: Option<Duration>,
    /// Messages delivered to every subscription, older than this, are pruned with their
    /// deliveries; and so are the store handler's receipts. `None` keeps them.
    pub history: Option<Duration>,
    /// Most rows one step looks at.
    pub batch: usize,
    /// Pause between two steps, which lets the writer's other jobs through.
    pub pause: Duration,
    /// How often a pruning pass starts.
    pub every: Duration,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            stream: Some(DEFAULT_STREAM_RETENTION),
            history: Some(DEFAULT_HISTORY_RETENTION),
            batch: 64,
            pause: Duration::from_millis(10),
            every: Duration::from_secs(60),
        }
    }
}

/// What one pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PruneReport {
    pub stream_records: u64,
    pub messages: u64,
    pub deliveries: u64,
    pub receipts: u64,
}

/// One table's walk: the last rowid looked at, and whether the walk reached rows too young.
struct Walk {
    cursor: i64,
    done: bool,
}

fn cutoff(retention: Duration) -> i64 {
    now_ms().saturating_sub(i64::try_from(retention.as_millis()).unwrap_or(i64::MAX))
}

/// Published (at or before the consumer's checkpoint) records older than `cutoff`, among the
/// `batch` after `cursor`; a record kept as a stream failure, or whose message still has a
/// delivery to make or a dead letter, stays (the trace reads it).
fn prune_stream_step(
    c: &Connection,
    consumer: &str,
    cursor: i64,
    cutoff: i64,
    batch: usize,
) -> Result<(Walk, u64), DbError> {
    let checkpoint: i64 = c
        .prepare_cached("SELECT seq FROM stream_checkpoints WHERE consumer = ?1")?
        .query_row(params![consumer], |r| r.get(0))
        .optional()?
        .unwrap_or(0);
    let rows: Vec<(i64, i64)> = c
        .prepare_cached(
            "SELECT seq, created_at FROM stream_records WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )?
        .query_map(params![cursor, batch as i64], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .collect::<Result<_, _>>()?;
    let mut walk = Walk {
        cursor,
        done: rows.len() < batch,
    };
    let reached = reached_by_every_cursor(c)?;
    // The record links an order to its message for the trace: it stays while that message
    // has a delivery that is not done (not yet attempted, pending a retry, or in a
    // dead-letter store).
    let mut delete = c.prepare_cached(
        "DELETE FROM stream_records AS r WHERE seq = ?1
           AND NOT EXISTS (SELECT 1 FROM stream_failures WHERE seq = ?1)
           AND NOT EXISTS (SELECT 1 FROM topic_messages m WHERE m.dedup_id = r.event_id AND m.seq > ?2)
           AND NOT EXISTS (SELECT 1 FROM topic_messages m JOIN deliveries d ON d.message_id = m.message_id
                           WHERE m.dedup_id = r.event_id AND d.state != 'delivered')",
    )?;
    let mut removed = 0;
    for (seq, created_at) in rows {
        if seq > checkpoint || created_at >= cutoff {
            walk.done = true;
            break;
        }
        removed += delete.execute(params![seq, reached])? as u64;
        walk.cursor = seq;
    }
    Ok((walk, removed))
}

/// The newest message every confirmed subscription's cursor has passed (`i64::MAX` with
/// none): the ones after it are still to be attempted by some subscription.
fn reached_by_every_cursor(c: &Connection) -> Result<i64, DbError> {
    let reached: Option<i64> = c
        .prepare_cached("SELECT min(cursor) FROM subscriptions WHERE status = 'Confirmed'")?
        .query_row([], |r| r.get(0))?;
    Ok(reached.unwrap_or(i64::MAX))
}

/// Messages older than `cutoff` whose every delivery is delivered (or that had no
/// subscriber), with those deliveries, among the `batch` after `cursor`; the walk ends at
/// the first message a subscription's cursor has not passed.
fn prune_messages_step(
    c: &Connection,
    cursor: i64,
    cutoff: i64,
    batch: usize,
) -> Result<(Walk, u64, u64), DbError> {
    let rows: Vec<(i64, String, i64)> = c
        .prepare_cached(
            "SELECT rowid, message_id, published_at FROM topic_messages WHERE rowid > ?1 ORDER BY rowid LIMIT ?2",
        )?
        .query_map(params![cursor, batch as i64], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    let mut walk = Walk {
        cursor,
        done: rows.len() < batch,
    };
    let reached = reached_by_every_cursor(c)?;
    let mut open = c.prepare_cached(
        "SELECT 1 FROM deliveries WHERE message_id = ?1 AND state != 'delivered' LIMIT 1",
    )?;
    let mut delete_deliveries = c.prepare_cached("DELETE FROM deliveries WHERE message_id = ?1")?;
    let mut delete_message = c.prepare_cached("DELETE FROM topic_messages WHERE rowid = ?1")?;
    let (mut messages, mut deliveries) = (0, 0);
    for (rowid, message_id, published_at) in rows {
        // The rowid is the message's seq.
        if published_at >= cutoff || rowid > reached {
            walk.done = true;
            break;
        }
        walk.cursor = rowid;
        if open.exists(params![message_id])? {
            continue;
        }
        deliveries += delete_deliveries.execute(params![message_id])? as u64;
        messages += delete_message.execute(params![rowid])? as u64;
    }
    Ok((walk, messages, deliveries))
}

/// Receipts first noted before `cutoff` and not touched since, among the `batch` after `cursor`.
fn prune_receipts_step(
    c: &Connection,
    cursor: i64,
    cutoff: i64,
    batch: usize,
) -> Result<(Walk, u64), DbError> {
    let rows: Vec<(i64, i64, i64)> = c
        .prepare_cached(
            "SELECT rowid, first_received_at, last_received_at FROM order_receipts WHERE rowid > ?1 ORDER BY rowid LIMIT ?2",
        )?
        .query_map(params![cursor, batch as i64], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    let mut walk = Walk {
        cursor,
        done: rows.len() < batch,
    };
    let mut delete = c.prepare_cached("DELETE FROM order_receipts WHERE rowid = ?1")?;
    let mut removed = 0;
    for (rowid, first, last) in rows {
        if first >= cutoff {
            walk.done = true;
            break;
        }
        walk.cursor = rowid;
        if last < cutoff {
            removed += delete.execute(params![rowid])? as u64;
        }
    }
    Ok((walk, removed))
}

/// Prunes what has expired, one small writer step at a time.
#[derive(Debug, Clone)]
pub struct Pruner {
    db: Arc<Db>,
    consumer: String,
    config: RetentionConfig,
}

impl Pruner {
    pub fn new(db: Arc<Db>, consumer: impl Into<String>, config: RetentionConfig) -> Self {
        Pruner {
            db,
            consumer: consumer.into(),
            config,
        }
    }

    /// One full pass over the three kinds of history.
    pub async fn prune(&self) -> Result<PruneReport, DbError> {
        let mut report = PruneReport::default();
        let batch = self.config.batch.max(1);
        if let Some(retention) = self.config.stream {
            let cutoff = cutoff(retention);
            let mut cursor = 0;
            loop {
                let consumer = self.consumer.clone();
                let (walk, removed) = self
                    .db
                    .write_relaxed(move |c| prune_stream_step(c, &consumer, cursor, cutoff, batch))
                    .await?;
                report.stream_records += removed;
                if walk.done {
                    break;
                }
                cursor = walk.cursor;
                tokio::time::sleep(self.config.pause).await;
            }
        }
        if let Some(retention) = self.config.history {
            let cutoff = cutoff(retention);
            let mut cursor = 0;
            loop {
                let (walk, messages, deliveries) = self
                    .db
                    .write_relaxed(move |c| prune_messages_step(c, cursor, cutoff, batch))
                    .await?;
                report.messages += messages;
                report.deliveries += deliveries;
                if walk.done {
                    break;
                }
                cursor = walk.cursor;
                tokio::time::sleep(self.config.pause).await;
            }
            let mut cursor = 0;
            loop {
                let (walk, removed) = self
                    .db
                    .write_relaxed(move |c| prune_receipts_step(c, cursor, cutoff, batch))
                    .await?;
                report.receipts += removed;
                if walk.done {
                    break;
                }
                cursor = walk.cursor;
                tokio::time::sleep(self.config.pause).await;
            }
        }
        Ok(report)
    }

    /// Runs a pass every `every` until shutdown.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        if self.config.stream.is_none() && self.config.history.is_none() {
            // Still a task until shutdown: `/healthz` counts a finished task as a failure.
            let _ = shutdown.wait_for(|stop| *stop).await;
            return;
        }
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(self.config.every) => {}
            }
            match self.prune().await {
                Ok(report) if report != PruneReport::default() => {
                    tracing::debug!(?report, "pruned expired history");
                }
                Ok(_) => {}
                Err(DbError::Closed) => return,
                Err(e) => {
                    tracing::warn!(error = %orderflow_core::error_chain(&e), "pruning history failed; retried next pass");
                }
            }
        }
    }
}

/// Parses a retention such as `24h`, `7d`, `90m`, `30s`, or `off` (kept forever).
pub fn parse_retention(text: &str) -> Result<Option<Duration>, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("off") || text.eq_ignore_ascii_case("forever") {
        return Ok(None);
    }
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{text:?} needs a unit: s, m, h or d (e.g. 24h), or off"))?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} does not start with a whole number"))?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?}: use s, m, h or d"
            ));
        }
    };
    Ok(Some(Duration::from_secs(n.saturating_mul(seconds))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Engine, EngineConfig};

    fn order(i: usize) -> orderflow_core::Order {
        orderflow_core::Order::parse(
            format!(
                r#"{{"orderID":"kept-{i:05}","customerId":"c","items":[{{"sku":"A","quantity":1,"unitPrice":1.5}}],"currency":"EUR","notes":"{}"}}"#,
                "n".repeat(200)
            )
            .as_bytes(),
        )
        .unwrap()
    }

    /// An engine that keeps history for `retention` (pruned only when asked), with a
    /// confirmed `log` subscription that takes every message (and keeps nothing in the database).
    async fn engine(dir: &std::path::Path, retention: Option<Duration>) -> Arc<Engine> {
        let mut config = EngineConfig::new(dir);
        config.delivery.sign = false;
        config.burst.rate = 0;
        config.retention = RetentionConfig {
            stream: retention,
            history: retention,
            every: Duration::from_secs(3600),
            ..RetentionConfig::default()
        };
        let engine = Engine::open(config).unwrap();
        engine.start("http://127.0.0.1:9").await.unwrap();
        let spec = serde_json::from_value::<crate::fanout::spec::SubscriptionRequest>(
            serde_json::json!({"protocol": "log", "endpoint": "all.log"}),
        )
        .unwrap()
        .validate(&engine.subscription_rules(true))
        .unwrap();
        engine
            .topic()
            .subscribe(spec, crate::topic::Source::Api)
            .await
            .unwrap();
        engine
    }

    /// Sends orders `from..to` and waits until each is delivered to the subscription.
    async fn send_and_deliver(engine: &Engine, from: usize, to: usize) {
        for i in from..to {
            engine
                .queue()
                .send_order(&order(i), Default::default())
                .await
                .unwrap();
        }
        let all = async {
            loop {
                let stats = engine.stats().await.unwrap();
                if stats.orders.stored == to as u64
                    && stats.stream.pending == 0
                    && stats.deliveries.pending == 0
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(60), all)
            .await
            .expect("every order stored and delivered");
    }

    async fn count(engine: &Engine, table: &'static str) -> i64 {
        engine
            .db
            .read(move |c| {
                Ok(c.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?)
            })
            .await
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pruning_removes_published_history_and_keeps_orders_and_dead_letters() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine(dir.path(), Some(Duration::ZERO)).await;
        send_and_deliver(&engine, 0, 40).await;
        // A delivery in the subscription's dead-letter store, and a stream failure.
        engine
            .db
            .write(|c| {
                c.execute(
                    "UPDATE deliveries SET state = 'failed', failed_at = 1
                     WHERE id = (SELECT min(id) FROM deliveries WHERE kind = 'Notification')",
                    [],
                )?;
                c.execute(
                    "INSERT INTO stream_failures (seq, event_id, record, attempts, failed_at)
                     SELECT seq, event_id, '{}', 3, 1 FROM stream_records ORDER BY seq DESC LIMIT 1",
                    [],
                )?;
                Ok(())
            })
            .await
            .unwrap();

        let report = engine.prune_history().await.unwrap();

        assert_eq!(
            report,
            PruneReport {
                stream_records: 38,
                messages: 39,
                deliveries: 39,
                receipts: 40
            },
            "all but the dead letters' history"
        );
        assert_eq!(count(&engine, "orders").await, 40, "orders are kept");
        assert_eq!(count(&engine, "stream_failures").await, 1);
        assert_eq!(
            count(&engine, "deliveries").await,
            1,
            "the dead letter is kept"
        );
        let stats = engine.stats().await.unwrap();
        assert_eq!(stats.orders.stored, 40);
        assert_eq!(stats.stream.failed, 1);
        assert_eq!(
            (stats.deliveries.delivered, stats.deliveries.failed),
            (39, 1),
            "pruned deliveries still count as delivered"
        );
        assert_eq!(
            engine.prune_history().await.unwrap(),
            PruneReport::default()
        );
        engine.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_trace_of_a_pruned_order_says_which_stages_were_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine(dir.path(), Some(Duration::ZERO)).await;
        send_and_deliver(&engine, 0, 3).await;
        let before = engine.trace("kept-00001").await.unwrap().unwrap();
        assert_eq!(before.stage, "delivered");
        assert!(before.pruned.is_empty());

        engine.prune_history().await.unwrap();

        let after = engine.trace("kept-00001").await.unwrap().unwrap();
        assert_eq!(after.stage, "published", "{after:?}");
        assert_eq!(after.pruned, ["received", "published", "deliveries"]);
        assert_eq!(after.stored_at, before.stored_at);
        assert_eq!(after.accepted_at, before.accepted_at);
        engine.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn history_younger_than_its_retention_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine(dir.path(), Some(Duration::from_secs(3600))).await;
        send_and_deliver(&engine, 0, 10).await;
        assert_eq!(
            engine.prune_history().await.unwrap(),
            PruneReport::default()
        );
        assert_eq!(count(&engine, "stream_records").await, 10);
        engine.shutdown().await;
    }

    /// Pruned pages go on SQLite's free list and take the next rows: a second round of the
    /// same traffic, pruned too, grows the file far less than the first did.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pages_freed_by_pruning_are_reused_and_the_file_stops_growing_with_history() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine(dir.path(), Some(Duration::ZERO)).await;
        let pages = async |engine: &Engine| -> (i64, i64) {
            engine
                .db
                .write(|c| {
                    Ok((
                        c.pragma_query_value(None, "page_count", |r| r.get(0))?,
                        c.pragma_query_value(None, "freelist_count", |r| r.get(0))?,
                    ))
                })
                .await
                .unwrap()
        };
        let (start, _) = pages(&engine).await;
        send_and_deliver(&engine, 0, 400).await;
        engine.prune_history().await.unwrap();
        let (first, free) = pages(&engine).await;
        assert!(free > 0, "pruning freed pages");
        send_and_deliver(&engine, 400, 800).await;
        engine.prune_history().await.unwrap();
        let (second, _) = pages(&engine).await;
        let (first_growth, second_growth) = (first - start, second - first);
        assert!(
            second_growth * 2 < first_growth,
            "pages: {start} at the start, {first} after 400 orders, {second} after 400 more"
        );
        engine.shutdown().await;
    }

    /// A first attempt has no delivery row until it settles, so a message a subscription's
    /// cursor has not reached must be kept however old it is: pruning it would lose it.
    #[tokio::test]
    async fn a_message_some_subscription_has_not_reached_is_kept_however_old() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("t.db"), crate::schema::migrate).unwrap();
        let topic = crate::topic::SqliteTopic::new(Arc::clone(&db));
        let spec = serde_json::from_value::<crate::fanout::spec::SubscriptionRequest>(
            serde_json::json!({"protocol": "queue", "endpoint": "q"}),
        )
        .unwrap()
        .validate(&crate::fanout::spec::Validation {
            email_enabled: false,
            trusted: true,
        })
        .unwrap();
        topic
            .subscribe(spec, crate::topic::Source::Api)
            .await
            .unwrap();
        for i in 0..3 {
            orderflow_core::Topic::publish(
                &topic,
                &orderflow_core::Publication {
                    dedup_id: format!("r{i}"),
                    subject: "OrderCreated".into(),
                    message: "{}".into(),
                    attributes: Default::default(),
                },
            )
            .await
            .unwrap();
        }
        db.write(|c| Ok(c.execute("UPDATE topic_messages SET published_at = 1", [])?))
            .await
            .unwrap();
        let step = || db.write_relaxed(|c| prune_messages_step(c, 0, now_ms(), 64));
        let (walk, messages, _) = step().await.unwrap();
        assert_eq!(messages, 0, "not one was attempted");
        assert!(walk.done, "the walk stops at the first message not reached");
        assert_eq!(topic.deliver_all().await, 3);
        let (_, messages, deliveries) = step().await.unwrap();
        assert_eq!((messages, deliveries), (3, 3));
        assert_eq!(
            topic.delivery_stats().await.unwrap().delivered,
            3,
            "pruned ones still count"
        );
    }

    #[test]
    fn retentions_read_as_a_number_and_a_unit_or_off() {
        assert_eq!(
            parse_retention("24h"),
            Ok(Some(Duration::from_secs(86_400)))
        );
        assert_eq!(
            parse_retention("7d"),
            Ok(Some(Duration::from_secs(604_800)))
        );
        assert_eq!(parse_retention("0s"), Ok(Some(Duration::ZERO)));
        assert_eq!(parse_retention("off"), Ok(None));
        assert!(parse_retention("12").is_err());
        assert!(parse_retention("1w").is_err());
        assert!(parse_retention("h").is_err());
    }

    /// The figures in BENCHMARKS.md ("Retention"): disk per stored order once history is
    /// pruned, against the stored order's JSON, and the latency of the stats behind `/stats`
    /// and `/metrics`. `ORDERFLOW_MEASURE_ORDERS` sets the size (default 100,000).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "a measurement, run by hand: cargo test --release -p orderflow-embedded -- --ignored measure"]
    async fn measure_disk_per_order_after_pruning_and_stats_latency() {
        let n: u64 = std::env::var("ORDERFLOW_MEASURE_ORDERS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(100_000);
        let dir = tempfile::tempdir().unwrap();
        let started = std::time::Instant::now();
        crate::preload::preload_orders(dir.path(), n).unwrap();
        eprintln!("preloaded {n} orders in {:.1?}", started.elapsed());
        let mut config = EngineConfig::new(dir.path());
        config.retention.stream = Some(Duration::ZERO);
        config.retention.history = Some(Duration::ZERO);
        let engine = Engine::open(config).unwrap();
        let sizes = async |engine: &Engine| -> (i64, i64, i64) {
            let path = engine.db.path().to_owned();
            tokio::task::spawn_blocking(move || {
                let c = Connection::open(path).unwrap();
                c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                    .unwrap();
                let get = |p: &str| c.pragma_query_value(None, p, |r| r.get(0)).unwrap();
                (get("page_count"), get("freelist_count"), get("page_size"))
            })
            .await
            .unwrap()
        };
        let stats_latency = async |engine: &Engine| {
            let mut took: Vec<Duration> = Vec::new();
            for _ in 0..50 {
                let t = std::time::Instant::now();
                engine.stats().await.unwrap();
                took.push(t.elapsed());
            }
            took.sort();
            (took[25], took[49])
        };
        let json: usize = {
            let page = engine.table().list(100, None).await.unwrap();
            page.orders
                .iter()
                .map(|o| serde_json::to_string(o).unwrap().len())
                .sum::<usize>()
                / page.orders.len()
        };
        let (pages, free, page_size) = sizes(&engine).await;
        let (median, worst) = stats_latency(&engine).await;
        eprintln!(
            "before pruning: {} bytes used per order ({} pages, {free} free), stats median {median:?} max {worst:?}",
            (pages - free) * page_size / n as i64,
            pages
        );
        let count_started = std::time::Instant::now();
        engine
            .db
            .read(|c| {
                Ok(c.query_row("SELECT count(*) FROM stream_records", [], |r| {
                    r.get::<_, i64>(0)
                })?)
            })
            .await
            .unwrap();
        eprintln!(
            "for comparison, count(*) of stream_records: {:?}",
            count_started.elapsed()
        );
        // How long a synced write (what a POST /orders waits for) takes, without and then
        // with pruning running beside it.
        let probe = |db: Arc<Db>, stop: Arc<std::sync::atomic::AtomicBool>| {
            tokio::spawn(async move {
                let mut took = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let t = std::time::Instant::now();
                    db.write(|_| Ok(())).await.unwrap();
                    took.push(t.elapsed());
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                took.sort();
                let p = |q: f64| took[((took.len() - 1) as f64 * q) as usize];
                (took.len(), p(0.5), p(0.99), p(1.0))
            })
        };
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let alone = probe(Arc::clone(&engine.db), Arc::clone(&stop));
        tokio::time::sleep(Duration::from_secs(3)).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        eprintln!(
            "synced writes alone (n, p50, p99, max): {:?}",
            alone.await.unwrap()
        );
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let beside = probe(Arc::clone(&engine.db), Arc::clone(&stop));
        let started = std::time::Instant::now();
        let report = engine.prune_history().await.unwrap();
        eprintln!("pruned {report:?} in {:.1?}", started.elapsed());
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        eprintln!(
            "synced writes while pruning (n, p50, p99, max): {:?}",
            beside.await.unwrap()
        );
        let (pages, free, page_size) = sizes(&engine).await;
        let used = (pages - free) * page_size / n as i64;
        let item: f64 = engine
            .db
            .read(|c| Ok(c.query_row("SELECT avg(length(item)) FROM orders", [], |r| r.get(0))?))
            .await
            .unwrap();
        eprintln!("an orders row holds {item:.0} bytes of order on average");
        let (median, worst) = stats_latency(&engine).await;
        eprintln!(
            "after pruning: {used} bytes used per order, {} bytes of file per order ({pages} pages, {free} free); \
             stored order JSON {json} bytes: {:.2}x; stats median {median:?} max {worst:?}",
            pages * page_size / n as i64,
            used as f64 / json as f64
        );
        engine.shutdown().await;
    }
}

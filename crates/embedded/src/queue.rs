//! A durable queue with SQS standard-queue semantics: visibility timeout, receive count,
//! redrive to a dead-letter queue after `max_receive_count` receives, batch receive, delete.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{OptionalExtension, params};
use serde::Serialize;
use tokio::sync::Notify;

use crate::burst::Flow;
use crate::db::{Db, DbError, now_ms};

/// The columns [`dead_letter_from_row`] reads, in its order.
const DEAD_LETTER_COLUMNS: &str =
    "message_id, body, receive_count, sent_at, dead_lettered_at, last_error";

fn dead_letter_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DeadLetter> {
    let sent: i64 = r.get(3)?;
    let dead: Option<i64> = r.get(4)?;
    Ok(DeadLetter {
        message_id: r.get(0)?,
        body: r.get(1)?,
        receive_count: r.get(2)?,
        sent_timestamp: fmt_ms(sent),
        dead_lettered_at: dead.map(fmt_ms),
        last_error: r.get(5)?,
    })
}

/// SQS's own limits for one receive.
pub const MAX_RECEIVE_BATCH: usize = 10;

/// The largest batch the store poller takes at once: Lambda's SQS event source mapping
/// gathers up to 10,000 messages (`BatchSize`) from several receives.
pub const MAX_MAPPING_BATCH: usize = 10_000;

#[derive(Debug, Clone)]
pub struct QueueConfig {
    pub name: String,
    pub visibility_timeout: Duration,
    /// After this many receives without a delete, the next receive moves it to the DLQ.
    pub max_receive_count: u32,
}

impl QueueConfig {
    pub fn orders() -> Self {
        QueueConfig {
            name: "orders".into(),
            visibility_timeout: Duration::from_secs(30),
            max_receive_count: 5,
        }
    }

    pub fn dlq_name(&self) -> String {
        format!("{}-dlq", self.name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    pub message_id: String,
    pub receipt_handle: String,
    pub body: String,
    pub attributes: BTreeMap<String, String>,
    pub sent_at: i64,
    pub receive_count: u32,
    pub first_received_at: i64,
    /// The queue the redrive policy moved this message from, when it was dead-lettered
    /// (SQS's `DeadLetterQueueSourceArn`); `None` for one sent to this queue directly, and
    /// cleared when a redrive puts it back.
    pub dead_letter_source: Option<String>,
}

#[derive(Debug, Default)]
pub struct Received {
    pub messages: Vec<ReceivedMessage>,
    /// When the next invisible message becomes visible again, if any is in flight.
    pub next_visible_at: Option<i64>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct QueueStats {
    pub visible: u64,
    pub in_flight: u64,
    pub dead_letter: u64,
    /// Age of the oldest message not yet deleted, in milliseconds.
    pub oldest_age_ms: Option<i64>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    pub message_id: String,
    pub body: String,
    pub receive_count: u32,
    pub sent_timestamp: String,
    pub dead_lettered_at: Option<String>,
    pub last_error: Option<String>,
}

/// What [`Queue::change_visibility`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VisibilityChange {
    Changed,
    /// No message of this queue was last received with this handle.
    UnknownReceipt,
    /// The message is visible again (its timeout ran out, or it was released).
    NotInFlight,
}

/// A visible message as read inside a receive.
struct Candidate {
    seq: i64,
    message_id: String,
    body: String,
    attributes: String,
    sent_at: i64,
    receive_count: i64,
    first_received_at: Option<i64>,
    source_queue: Option<String>,
}

#[derive(Debug)]
pub struct Queue {
    db: Arc<Db>,
    config: QueueConfig,
    dlq: String,
    notify: Arc<Notify>,
    flow: Arc<Flow>,
}

impl Queue {
    pub fn new(db: Arc<Db>, config: QueueConfig) -> Self {
        Queue {
            db,
            dlq: config.dlq_name(),
            config,
            notify: Arc::new(Notify::new()),
            flow: Arc::new(Flow::default()),
        }
    }

    /// Messages sent and first received since the start: what the burst policy watches.
    pub fn flow(&self) -> &Arc<Flow> {
        &self.flow
    }

    pub fn config(&self) -> &QueueConfig {
        &self.config
    }

    pub(crate) fn db(&self) -> &Arc<Db> {
        &self.db
    }

    /// Wakes pollers when messages arrive.
    pub fn notify(&self) -> &Arc<Notify> {
        &self.notify
    }

    /// Appends a message; returns its id once it is on disk.
    pub async fn send(
        &self,
        body: String,
        attributes: BTreeMap<String, String>,
    ) -> Result<String, DbError> {
        // Time-ordered ids (UUIDv7) append to the unique index instead of landing on a
        // random page of it: fewer pages written per commit as the table grows.
        let id = uuid::Uuid::now_v7().to_string();
        let queue = self.config.name.clone();
        let message_id = id.clone();
        let attributes = serde_json::to_string(&attributes).expect("attributes serialize");
        self.flow.sent(1);
        let written = self
            .db
            .write(move |c| {
                let now = now_ms();
                c.prepare_cached(
                    "INSERT INTO queue_messages (queue, message_id, body, attributes, sent_at, visible_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                )?
                .execute(params![queue, message_id, body, attributes, now])?;
                Ok(())
            })
            .await;
        if let Err(e) = written {
            self.flow.unsent(1);
            return Err(e);
        }
        self.notify.notify_waiters();
        Ok(id)
    }

    /// Receives up to `max` visible messages (at most 10, as SQS), hiding each for the
    /// visibility timeout. A message already received `max_receive_count` times moves to the
    /// DLQ instead.
    pub async fn receive(&self, max: usize) -> Result<Received, DbError> {
        self.receive_batch(max.clamp(1, MAX_RECEIVE_BATCH)).await
    }

    /// Like [`Queue::receive`], for the store poller: up to `max` messages in one step, as
    /// the event source mapping gathers them (at most [`MAX_MAPPING_BATCH`]).
    pub async fn receive_batch(&self, max: usize) -> Result<Received, DbError> {
        let queue = self.config.name.clone();
        let dlq = self.dlq.clone();
        let max_receives = i64::from(self.config.max_receive_count);
        let timeout = i64::try_from(self.config.visibility_timeout.as_millis()).unwrap_or(i64::MAX);
        let max = max.clamp(1, MAX_MAPPING_BATCH);
        let received = self
            .db
            .write_relaxed(move |c| {
                let now = now_ms();
                let mut messages = Vec::new();
                // Moving to the DLQ does not count against `max`, so loop until filled.
                loop {
                    let candidates: Vec<Candidate> = c
                        .prepare_cached(
                            "SELECT seq, message_id, body, attributes, sent_at, receive_count, first_received_at,
                             source_queue FROM queue_messages WHERE queue = ?1 AND visible_at <= ?2
                             ORDER BY visible_at, seq LIMIT ?3",
                        )?
                        .query_map(params![queue, now, (max - messages.len()) as i64], |r| {
                            Ok(Candidate {
                                seq: r.get(0)?,
                                message_id: r.get(1)?,
                                body: r.get(2)?,
                                attributes: r.get(3)?,
                                sent_at: r.get(4)?,
                                receive_count: r.get(5)?,
                                first_received_at: r.get(6)?,
                                source_queue: r.get(7)?,
                            })
                        })?
                        .collect::<Result<_, _>>()?;
                    if candidates.is_empty() {
                        break;
                    }
                    for Candidate {
                        seq,
                        message_id,
                        body,
                        attributes,
                        sent_at,
                        receive_count: count,
                        first_received_at: first,
                        source_queue,
                    } in candidates
                    {
                        if count >= max_receives {
                            c.prepare_cached(
                                "UPDATE queue_messages SET queue = ?2, source_queue = queue, visible_at = ?3,
                                 dead_lettered_at = ?3, receipt_handle = NULL WHERE seq = ?1",
                            )?
                            .execute(params![seq, dlq, now])?;
                            tracing::warn!(%message_id, receive_count = count, "message moved to the dead-letter queue");
                            continue;
                        }
                        let handle = uuid::Uuid::now_v7().to_string();
                        let first = first.unwrap_or(now);
                        c.prepare_cached(
                            "UPDATE queue_messages SET receive_count = receive_count + 1, receipt_handle = ?2,
                             visible_at = ?3, first_received_at = ?4 WHERE seq = ?1",
                        )?
                        .execute(params![seq, handle, now.saturating_add(timeout), first])?;
                        messages.push(ReceivedMessage {
                            message_id,
                            receipt_handle: handle,
                            body,
                            attributes: serde_json::from_str(&attributes).map_err(|e| DbError::Corrupt(e.into()))?,
                            sent_at,
                            receive_count: u32::try_from(count + 1).unwrap_or(u32::MAX),
                            first_received_at: first,
                            dead_letter_source: source_queue,
                        });
                    }
                    if messages.len() >= max {
                        break;
                    }
                }
                let next_visible_at = if messages.is_empty() {
                    c.prepare_cached("SELECT min(visible_at) FROM queue_messages WHERE queue = ?1")?
                        .query_row(params![queue], |r| r.get::<_, Option<i64>>(0))?
                } else {
                    None
                };
                Ok(Received { messages, next_visible_at })
            })
            .await?;
        let first = received
            .messages
            .iter()
            .filter(|m| m.receive_count == 1 && self.flow.counts(m.sent_at))
            .count();
        self.flow.first_received(first as u64);
        Ok(received)
    }

    /// Deletes received messages by receipt handle; a stale handle, or one of another
    /// queue's messages, deletes nothing (as SQS scopes a receipt handle to its queue).
    pub async fn delete(&self, receipt_handles: Vec<String>) -> Result<usize, DbError> {
        if receipt_handles.is_empty() {
            return Ok(0);
        }
        let queue = self.config.name.clone();
        self.db
            .write_relaxed(move |c| {
                let mut stmt = c.prepare_cached(
                    "DELETE FROM queue_messages WHERE receipt_handle = ?1 AND queue = ?2",
                )?;
                let mut n = 0;
                for h in &receipt_handles {
                    n += stmt.execute(params![h, queue])?;
                }
                Ok(n)
            })
            .await
    }

    /// Notes why a received message failed, for the DLQ listing; visibility is unchanged.
    pub async fn record_failure(
        &self,
        receipt_handle: String,
        error: String,
    ) -> Result<(), DbError> {
        let queue = self.config.name.clone();
        self.db
            .write_relaxed(move |c| {
                c.prepare_cached(
                    "UPDATE queue_messages SET last_error = ?2 WHERE receipt_handle = ?1 AND queue = ?3",
                )?
                .execute(params![receipt_handle, error, queue])?;
                Ok(())
            })
            .await
    }

    /// Makes in-flight messages visible at once (used on shutdown instead of waiting out the timeout).
    pub async fn release(&self, receipt_handles: Vec<String>) -> Result<(), DbError> {
        let queue = self.config.name.clone();
        self.db
            .write_relaxed(move |c| {
                let now = now_ms();
                let mut stmt = c.prepare_cached(
                    "UPDATE queue_messages SET visible_at = ?2 WHERE receipt_handle = ?1 AND queue = ?3",
                )?;
                for h in &receipt_handles {
                    stmt.execute(params![h, now, queue])?;
                }
                Ok(())
            })
            .await?;
        self.notify.notify_waiters();
        Ok(())
    }

    /// Makes every in-flight message visible again. Used at start: only this process reads
    /// the queue (the data directory is locked), so receipts from before a crash are void and
    /// their messages need not wait out the visibility timeout.
    pub async fn release_all_in_flight(&self) -> Result<usize, DbError> {
        let queue = self.config.name.clone();
        let n = self
            .db
            .write_relaxed(move |c| {
                let now = now_ms();
                Ok(c.execute(
                    "UPDATE queue_messages SET visible_at = ?2, receipt_handle = NULL
                     WHERE queue = ?1 AND visible_at > ?2 AND receipt_handle IS NOT NULL",
                    params![queue, now],
                )?)
            })
            .await?;
        if n > 0 {
            self.notify.notify_waiters();
        }
        Ok(n)
    }

    pub async fn stats(&self) -> Result<QueueStats, DbError> {
        let queue = self.config.name.clone();
        let dlq = self.dlq.clone();
        self.db
            .read(move |c| {
                let now = now_ms();
                let (visible, in_flight, oldest): (i64, i64, Option<i64>) = c.query_row(
                    "SELECT coalesce(sum(visible_at <= ?2), 0), coalesce(sum(visible_at > ?2), 0), min(sent_at)
                     FROM queue_messages WHERE queue = ?1",
                    params![queue, now],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )?;
                let dead: i64 =
                    c.query_row("SELECT count(*) FROM queue_messages WHERE queue = ?1", params![dlq], |r| r.get(0))?;
                Ok(QueueStats {
                    visible: visible as u64,
                    in_flight: in_flight as u64,
                    dead_letter: dead as u64,
                    oldest_age_ms: oldest.map(|t| (now - t).max(0)),
                })
            })
            .await
    }

    pub async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, DbError> {
        let dlq = self.dlq.clone();
        self.db
            .read(move |c| {
                let mut stmt = c.prepare_cached(&format!(
                    "SELECT {DEAD_LETTER_COLUMNS} FROM queue_messages WHERE queue = ?1 ORDER BY seq LIMIT ?2"
                ))?;
                let rows = stmt
                    .query_map(params![dlq, limit as i64], dead_letter_from_row)?
                    .collect::<Result<_, _>>()?;
                Ok(rows)
            })
            .await
    }

    /// One dead letter by message id.
    pub async fn dead_letter(&self, message_id: String) -> Result<Option<DeadLetter>, DbError> {
        let dlq = self.dlq.clone();
        self.db
            .read(move |c| {
                Ok(c.query_row(
                    &format!(
                        "SELECT {DEAD_LETTER_COLUMNS} FROM queue_messages WHERE queue = ?1 AND message_id = ?2"
                    ),
                    params![dlq, message_id],
                    dead_letter_from_row,
                )
                .optional()?)
            })
            .await
    }

    /// Moves dead letters back to the source queue with a fresh receive count (all of them,
    /// or the given ids), no longer marked as dead-lettered. Returns how many moved.
    pub async fn redrive(&self, message_ids: Option<Vec<String>>) -> Result<usize, DbError> {
        let queue = self.config.name.clone();
        let dlq = self.dlq.clone();
        let n = self
            .db
            .write(move |c| {
                let now = now_ms();
                let sql =
                    "UPDATE queue_messages SET queue = ?1, visible_at = ?3, receive_count = 0,
                           first_received_at = NULL, receipt_handle = NULL, dead_lettered_at = NULL,
                           source_queue = NULL WHERE queue = ?2";
                Ok(match message_ids {
                    None => c.execute(sql, params![queue, dlq, now])?,
                    Some(ids) => {
                        let mut stmt = c.prepare(&format!("{sql} AND message_id = ?4"))?;
                        let mut n = 0;
                        for id in ids {
                            n += stmt.execute(params![queue, dlq, now, id])?;
                        }
                        n
                    }
                })
            })
            .await?;
        self.notify.notify_waiters();
        Ok(n)
    }

    /// Deletes dead letters for good (all, or the given ids).
    pub async fn purge_dead_letters(
        &self,
        message_ids: Option<Vec<String>>,
    ) -> Result<usize, DbError> {
        let dlq = self.dlq.clone();
        self.db
            .write(move |c| {
                Ok(match message_ids {
                    None => {
                        c.execute("DELETE FROM queue_messages WHERE queue = ?1", params![dlq])?
                    }
                    Some(ids) => {
                        let mut stmt = c.prepare(
                            "DELETE FROM queue_messages WHERE queue = ?1 AND message_id = ?2",
                        )?;
                        let mut n = 0;
                        for id in ids {
                            n += stmt.execute(params![dlq, id])?;
                        }
                        n
                    }
                })
            })
            .await
    }

    /// The same queue, hiding what it receives for `timeout` instead of the configured
    /// visibility timeout (SQS `ReceiveMessage`'s `VisibilityTimeout`).
    pub fn with_visibility_timeout(&self, timeout: Duration) -> Queue {
        Queue {
            db: Arc::clone(&self.db),
            config: QueueConfig {
                visibility_timeout: timeout,
                ..self.config.clone()
            },
            dlq: self.dlq.clone(),
            notify: Arc::clone(&self.notify),
            flow: Arc::clone(&self.flow),
        }
    }

    /// This queue's dead-letter queue, as a queue of its own: a DLQ has no redrive policy,
    /// so its messages never move on however often they are received.
    pub fn dead_letter_queue(&self) -> Queue {
        Queue::new(
            Arc::clone(&self.db),
            QueueConfig {
                name: self.dlq.clone(),
                visibility_timeout: self.config.visibility_timeout,
                max_receive_count: u32::MAX,
            },
        )
    }

    /// Hides an in-flight message for `timeout` from now (SQS `ChangeMessageVisibility`;
    /// zero makes it visible at once).
    pub async fn change_visibility(
        &self,
        receipt_handle: String,
        timeout: Duration,
    ) -> Result<VisibilityChange, DbError> {
        let queue = self.config.name.clone();
        let timeout = i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX);
        let change = self
            .db
            .write_relaxed(move |c| {
                let now = now_ms();
                let visible_at: Option<i64> = c
                    .query_row(
                        "SELECT visible_at FROM queue_messages WHERE receipt_handle = ?1 AND queue = ?2",
                        params![receipt_handle, queue],
                        |r| r.get(0),
                    )
                    .optional()?;
                Ok(match visible_at {
                    None => VisibilityChange::UnknownReceipt,
                    Some(at) if at <= now => VisibilityChange::NotInFlight,
                    Some(_) => {
                        c.execute(
                            "UPDATE queue_messages SET visible_at = ?3 WHERE receipt_handle = ?1 AND queue = ?2",
                            params![receipt_handle, queue, now.saturating_add(timeout)],
                        )?;
                        VisibilityChange::Changed
                    }
                })
            })
            .await?;
        if change == VisibilityChange::Changed {
            self.notify.notify_waiters();
        }
        Ok(change)
    }

    /// Deletes every message of this queue, visible or in flight (SQS `PurgeQueue`); its
    /// dead-letter queue is a queue of its own and keeps its messages.
    pub async fn purge(&self) -> Result<usize, DbError> {
        let queue = self.config.name.clone();
        self.db
            .write(move |c| {
                Ok(c.execute(
                    "DELETE FROM queue_messages WHERE queue = ?1",
                    params![queue],
                )?)
            })
            .await
    }

    /// True when a message with this id is still queued (visible, in flight or dead).
    pub async fn contains(&self, message_id: String) -> Result<bool, DbError> {
        self.db
            .read(move |c| {
                Ok(c.query_row(
                    "SELECT 1 FROM queue_messages WHERE message_id = ?1",
                    params![message_id],
                    |_| Ok(()),
                )
                .optional()?
                .is_some())
            })
            .await
    }
}

fn fmt_ms(ms: i64) -> String {
    orderflow_core::time::from_millis(ms)
        .map(|t| orderflow_core::time::format(&t))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(dir: &tempfile::TempDir, vt_ms: u64, max: u32) -> Queue {
        let db = Db::open(&dir.path().join("q.db"), crate::schema::migrate).unwrap();
        Queue::new(
            db,
            QueueConfig {
                name: "orders".into(),
                visibility_timeout: Duration::from_millis(vt_ms),
                max_receive_count: max,
            },
        )
    }

    #[tokio::test]
    async fn a_received_message_is_invisible_until_the_timeout_then_counts_another_receive() {
        let dir = tempfile::tempdir().unwrap();
        let q = queue(&dir, 150, 5);
        q.send("a".into(), BTreeMap::new()).await.unwrap();
        let first = q.receive(10).await.unwrap();
        assert_eq!(first.messages.len(), 1);
        assert_eq!(first.messages[0].receive_count, 1);
        let hidden = q.receive(10).await.unwrap();
        assert!(hidden.messages.is_empty());
        assert!(
            hidden.next_visible_at.is_some(),
            "the poller learns when to look again"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        let again = q.receive(10).await.unwrap();
        assert_eq!(again.messages[0].receive_count, 2);
        assert_ne!(
            again.messages[0].receipt_handle,
            first.messages[0].receipt_handle
        );
    }

    /// `receive` keeps SQS's limit of 10; the store poller's batch takes more at once, in
    /// send order, each message received exactly once.
    #[tokio::test]
    async fn a_mapping_batch_takes_more_than_ten_in_order_but_receive_keeps_the_sqs_limit() {
        let dir = tempfile::tempdir().unwrap();
        let q = queue(&dir, 30_000, 5);
        for i in 0..40 {
            q.send(format!("m{i}"), BTreeMap::new()).await.unwrap();
        }
        assert_eq!(q.receive(100).await.unwrap().messages.len(), 10);
        let batch = q.receive_batch(25).await.unwrap().messages;
        let bodies: Vec<String> = batch.iter().map(|m| m.body.clone()).collect();
        let expected: Vec<String> = (10..35).map(|i| format!("m{i}")).collect();
        assert_eq!(bodies, expected);
        assert_eq!(q.receive_batch(100).await.unwrap().messages.len(), 5);
        assert!(q.receive_batch(100).await.unwrap().messages.is_empty());
    }

    #[tokio::test]
    async fn a_deleted_message_is_gone_and_a_stale_handle_deletes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let q = queue(&dir, 50, 5);
        q.send("a".into(), BTreeMap::new()).await.unwrap();
        let r1 = q.receive(10).await.unwrap().messages.remove(0);
        tokio::time::sleep(Duration::from_millis(80)).await;
        let r2 = q.receive(10).await.unwrap().messages.remove(0);
        assert_eq!(q.delete(vec![r1.receipt_handle]).await.unwrap(), 0);
        assert_eq!(q.delete(vec![r2.receipt_handle]).await.unwrap(), 1);
        assert!(!q.contains(r2.message_id).await.unwrap());
    }

    #[tokio::test]
    async fn after_max_receives_the_message_moves_to_the_dead_letter_queue_and_can_be_redriven() {
        let dir = tempfile::tempdir().unwrap();
        let q = queue(&dir, 1, 3);
        let id = q.send("poison".into(), BTreeMap::new()).await.unwrap();
        for expected in 1..=3 {
            let r = q.receive(10).await.unwrap();
            assert_eq!(r.messages[0].receive_count, expected);
            q.record_failure(r.messages[0].receipt_handle.clone(), "boom".into())
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(q.receive(10).await.unwrap().messages.is_empty());
        let dead = q.dead_letters(10).await.unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].message_id, id);
        assert_eq!(dead[0].receive_count, 3);
        assert_eq!(dead[0].last_error.as_deref(), Some("boom"));
        assert_eq!(q.stats().await.unwrap().dead_letter, 1);

        assert_eq!(q.redrive(None).await.unwrap(), 1);
        let r = q.receive(10).await.unwrap();
        assert_eq!(
            r.messages[0].receive_count, 1,
            "a redriven message starts over"
        );
    }

    /// SQS's `DeadLetterQueueSourceArn` names the queue the redrive policy moved a message
    /// from; a message sent to the DLQ directly has none, and a redrive back clears it.
    #[tokio::test]
    async fn a_dead_lettered_message_names_the_queue_it_came_from_until_it_is_redriven() {
        let dir = tempfile::tempdir().unwrap();
        let q = queue(&dir, 30_000, 1);
        let dlq = q.dead_letter_queue();
        q.send("poison".into(), BTreeMap::new()).await.unwrap();
        let first = q.receive(10).await.unwrap().messages.remove(0);
        assert_eq!(first.dead_letter_source, None);
        q.release(vec![first.receipt_handle]).await.unwrap();
        assert!(q.receive(10).await.unwrap().messages.is_empty(), "moved");
        dlq.send("sent straight".into(), BTreeMap::new())
            .await
            .unwrap();

        let dead = dlq.receive(10).await.unwrap().messages;
        let source = |body: &str| {
            dead.iter()
                .find(|m| m.body == body)
                .map(|m| m.dead_letter_source.clone())
                .unwrap()
        };
        assert_eq!(source("poison").as_deref(), Some("orders"));
        assert_eq!(source("sent straight"), None);

        dlq.release(dead.iter().map(|m| m.receipt_handle.clone()).collect())
            .await
            .unwrap();
        assert_eq!(q.redrive(None).await.unwrap(), 2);
        let back = q.receive(10).await.unwrap().messages;
        assert_eq!(back.len(), 2);
        assert!(
            back.iter().all(|m| m.dead_letter_source.is_none()),
            "a redriven message is no longer a dead letter: {back:?}"
        );
    }

    #[tokio::test]
    async fn a_visibility_change_hides_or_releases_only_an_in_flight_message_of_its_queue() {
        let dir = tempfile::tempdir().unwrap();
        let q = queue(&dir, 30_000, 5);
        q.send("a".into(), BTreeMap::new()).await.unwrap();
        let r = q.receive(10).await.unwrap().messages.remove(0);
        let other = q.dead_letter_queue();
        assert_eq!(
            other
                .change_visibility(r.receipt_handle.clone(), Duration::ZERO)
                .await
                .unwrap(),
            VisibilityChange::UnknownReceipt,
            "a receipt is scoped to its queue"
        );
        assert!(q.receive(10).await.unwrap().messages.is_empty());
        assert_eq!(
            q.change_visibility(r.receipt_handle.clone(), Duration::ZERO)
                .await
                .unwrap(),
            VisibilityChange::Changed
        );
        assert_eq!(
            q.change_visibility(r.receipt_handle.clone(), Duration::from_secs(5))
                .await
                .unwrap(),
            VisibilityChange::NotInFlight
        );
        let again = q
            .with_visibility_timeout(Duration::from_millis(50))
            .receive(10)
            .await
            .unwrap();
        assert_eq!(again.messages[0].receive_count, 2);
        assert!(q.receive(10).await.unwrap().messages.is_empty());
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert_eq!(
            q.receive(10).await.unwrap().messages.len(),
            1,
            "the override's timeout ran out"
        );
    }

    #[tokio::test]
    async fn a_purge_empties_the_queue_and_leaves_its_dead_letters() {
        let dir = tempfile::tempdir().unwrap();
        let q = queue(&dir, 30_000, 1);
        q.send("poison".into(), BTreeMap::new()).await.unwrap();
        q.receive(10).await.unwrap();
        q.release_all_in_flight().await.unwrap();
        assert!(
            q.receive(10).await.unwrap().messages.is_empty(),
            "moved to the DLQ"
        );
        q.send("a".into(), BTreeMap::new()).await.unwrap();
        q.send("b".into(), BTreeMap::new()).await.unwrap();
        q.receive(1).await.unwrap();
        assert_eq!(q.purge().await.unwrap(), 2);
        let stats = q.stats().await.unwrap();
        assert_eq!(
            (stats.visible, stats.in_flight, stats.dead_letter),
            (0, 0, 1)
        );
        let dlq = q.dead_letter_queue();
        for _ in 0..3 {
            let dead = dlq.receive(10).await.unwrap().messages;
            assert_eq!(dead[0].body, "poison", "a DLQ never moves its messages on");
            dlq.release(vec![dead[0].receipt_handle.clone()])
                .await
                .unwrap();
        }
    }

    #[tokio::test]
    async fn a_batch_receive_takes_at_most_ten_and_messages_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let q = queue(&dir, 30_000, 5);
            for i in 0..15 {
                q.send(format!("m{i}"), BTreeMap::new()).await.unwrap();
            }
        }
        let q = queue(&dir, 30_000, 5);
        assert_eq!(q.receive(100).await.unwrap().messages.len(), 10);
        assert_eq!(q.receive(100).await.unwrap().messages.len(), 5);
        let stats = q.stats().await.unwrap();
        assert_eq!((stats.visible, stats.in_flight), (0, 15));
    }
}

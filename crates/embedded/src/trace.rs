//! Where one order is in the pipeline: its journey assembled from the queue, the store
//! handler's receipts, the table, the change stream, the topic and the delivery log.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use orderflow_core::MessageAttribute;

use rusqlite::{OptionalExtension, params};
use serde::Serialize;
use serde_dynamo::{AttributeValue, Item};

use crate::db::{Db, DbError, now_ms};
use crate::queue::ReceivedMessage;
use crate::{Engine, STREAM_CONSUMER};

/// The `orderID` at the start of a queued order's body, without parsing the whole order.
fn order_id_of(body: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(rename = "orderID")]
        order_id: Option<String>,
    }
    serde_json::from_str::<Probe>(body).ok()?.order_id
}

/// Notes one store-handler invocation: each message's receive count and, when it failed, why.
pub(crate) async fn note_receipts(
    db: &Db,
    messages: &[ReceivedMessage],
    failures: &HashMap<String, String>,
) -> Result<(), DbError> {
    let rows: Vec<(String, String, u32, i64, Option<String>)> = messages
        .iter()
        .filter_map(|m| {
            let id = order_id_of(&m.body)?;
            let error = failures.get(&m.message_id).cloned();
            Some((
                id,
                m.message_id.clone(),
                m.receive_count,
                m.first_received_at,
                error,
            ))
        })
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    db.write_relaxed(move |c| {
        let mut stmt = c.prepare_cached(
            "INSERT INTO order_receipts (order_id, message_id, receive_count, first_received_at, last_received_at, last_error)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (order_id) DO UPDATE SET message_id = excluded.message_id,
                 receive_count = max(receive_count, excluded.receive_count),
                 last_received_at = excluded.last_received_at,
                 last_error = coalesce(excluded.last_error, last_error)",
        )?;
        let now = now_ms();
        for (order_id, message_id, count, first, error) in rows {
            stmt.execute(params![order_id, message_id, count, first, now, error])?;
        }
        Ok(())
    })
    .await
}

/// One order's journey. Absent stages have not happened (yet).
#[derive(Debug, Clone, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct OrderTrace {
    #[serde(rename = "orderID")]
    pub order_id: String,
    pub request_id: Option<String>,
    /// Where the order is now: `queued`, `dead-lettered`, `stored`, `publish-failed`,
    /// `published`, `delivering`, `delivery-failed`, `delivered`, or `unknown`.
    pub stage: String,
    /// The `202` was sent: the message was on disk.
    pub accepted_at: Option<String>,
    pub received: Option<Received>,
    pub stored_at: Option<String>,
    pub published: Option<Published>,
    pub deliveries: Vec<DeliveryTrace>,
    /// Stages whose history retention has pruned (`received`, `published`, `deliveries`):
    /// they happened, and their details are gone. See [`crate::retention`].
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pruned: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Received {
    pub message_id: String,
    pub receive_count: u32,
    pub first_received_at: Option<String>,
    pub last_received_at: Option<String>,
    pub last_error: Option<String>,
    /// Set when the message was moved to the orders dead-letter queue.
    pub dead_lettered_at: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Published {
    pub event_id: String,
    /// `pending` (in the stream, not yet published), `published`, or `failed` (in the
    /// stream's on-failure destination).
    pub state: String,
    pub message_id: Option<String>,
    pub at: Option<String>,
    pub attempts: Option<u32>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryTrace {
    pub subscription_id: String,
    pub subscription_arn: String,
    pub name: Option<String>,
    pub protocol: String,
    pub endpoint: String,
    /// `pending` (not attempted yet, or being retried), `delivered`, or `failed` (in its
    /// dead-letter store).
    pub state: String,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub created_at: Option<String>,
    pub delivered_at: Option<String>,
    pub failed_at: Option<String>,
    pub next_attempt_at: Option<String>,
}

/// A queued message: id, sent, receive count, first received, last error, dead-lettered, attributes.
type QueuedRow = (
    String,
    i64,
    u32,
    Option<i64>,
    Option<String>,
    Option<i64>,
    String,
);

fn ts(ms: i64) -> Option<String> {
    orderflow_core::time::from_millis(ms).map(|t| orderflow_core::time::format(&t))
}

impl Engine {
    /// The journey of `order_id`, or `None` when the pipeline has never seen it.
    pub async fn trace(&self, order_id: &str) -> Result<Option<OrderTrace>, DbError> {
        let id = order_id.to_owned();
        let queue = self.config.queue.name.clone();
        let dlq = self.config.queue.dlq_name();
        let keys = serde_json::to_string(&Item::from(HashMap::from([(
            "orderID".to_owned(),
            AttributeValue::S(id.clone()),
        )])))
        .expect("keys serialize");
        let db: &Arc<Db> = &self.db;
        let mut trace = db
            .read(move |c| {
                let mut t = OrderTrace {
                    order_id: id.clone(),
                    ..OrderTrace::default()
                };
                let item: Option<String> = c
                    .prepare_cached("SELECT item FROM orders WHERE order_id = ?1")?
                    .query_row(params![id], |r| r.get(0))
                    .optional()?;
                if let Some(item) = item {
                    let order = crate::table::decode(&item)?;
                    t.request_id = order.request_id.map(|r| r.to_string());
                    t.accepted_at = Some(orderflow_core::time::format(&order.received_at));
                    t.stored_at = Some(orderflow_core::time::format(&order.stored_at));
                }
                // Not stored yet: look for it on the queue (a body starts with its orderID).
                let prefix = format!("{{\"orderID\":{},", serde_json::Value::String(id.clone()));
                let queued: Option<QueuedRow> = c
                    .prepare_cached(
                        "SELECT message_id, sent_at, receive_count, first_received_at, last_error, dead_lettered_at, attributes
                         FROM queue_messages WHERE queue IN (?1, ?2) AND substr(body, 1, ?3) = ?4
                         ORDER BY seq DESC LIMIT 1",
                    )?
                    .query_row(params![queue, dlq, prefix.len() as i64, prefix], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?))
                    })
                    .optional()?;
                let receipt: Option<(String, u32, i64, i64, Option<String>)> = c
                    .query_row(
                        "SELECT message_id, receive_count, first_received_at, last_received_at, last_error
                         FROM order_receipts WHERE order_id = ?1",
                        params![id],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
                    )
                    .optional()
                    .or_else(|e| match e {
                        // Before the first start of a binary that keeps receipts.
                        rusqlite::Error::SqliteFailure(_, Some(ref m)) if m.contains("no such table") => Ok(None),
                        e => Err(e),
                    })?;
                if let Some((message_id, sent_at, count, first, error, dead, attributes)) = queued {
                    if t.accepted_at.is_none() {
                        t.accepted_at = ts(sent_at);
                    }
                    if t.request_id.is_none() {
                        let attributes: HashMap<String, String> =
                            serde_json::from_str(&attributes).unwrap_or_default();
                        t.request_id = attributes
                            .get(orderflow_core::correlation::REQUEST_ID_ATTRIBUTE)
                            .cloned();
                    }
                    if count > 0 || dead.is_some() {
                        t.received = Some(Received {
                            message_id,
                            receive_count: count,
                            first_received_at: first.and_then(ts),
                            last_received_at: None,
                            last_error: error,
                            dead_lettered_at: dead.and_then(ts),
                        });
                    }
                }
                if let Some((message_id, count, first, last, error)) = receipt {
                    let r = t.received.get_or_insert(Received {
                        message_id,
                        receive_count: count,
                        first_received_at: ts(first),
                        last_received_at: None,
                        last_error: None,
                        dead_lettered_at: None,
                    });
                    r.receive_count = r.receive_count.max(count);
                    r.last_received_at = ts(last);
                    if r.last_error.is_none() {
                        r.last_error = error;
                    }
                }
                let record: Option<(i64, String)> = c
                    .prepare_cached("SELECT seq, event_id FROM stream_records WHERE keys = ?1 AND event_name = 'INSERT'")?
                    .query_row(params![keys], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?;
                let stored = t.stored_at.is_some();
                if stored && t.received.is_none() {
                    t.pruned.push("received".into());
                }
                if stored && record.is_none() {
                    // Every stored order has its INSERT record, and only published ones are
                    // pruned; the link to its message and deliveries went with it.
                    t.pruned.push("published".into());
                    t.pruned.push("deliveries".into());
                }
                if let Some((seq, event_id)) = record {
                    let message: Option<(String, i64)> = c
                        .prepare_cached("SELECT message_id, published_at FROM topic_messages WHERE dedup_id = ?1")?
                        .query_row(params![event_id], |r| Ok((r.get(0)?, r.get(1)?)))
                        .optional()?;
                    let failure: Option<(u32, i64)> = c
                        .prepare_cached("SELECT attempts, failed_at FROM stream_failures WHERE seq = ?1")?
                        .query_row(params![seq], |r| Ok((r.get(0)?, r.get(1)?)))
                        .optional()?;
                    let (state, at, attempts) = match (&message, failure) {
                        (Some((_, at)), _) => ("published", ts(*at), None),
                        (None, Some((attempts, at))) => ("failed", ts(at), Some(attempts)),
                        (None, None) if seq <= checkpoint_of(c)? => {
                            // Published, and the message pruned with its deliveries.
                            t.pruned.push("deliveries".into());
                            ("published", None, None)
                        }
                        (None, None) => {
                            let attempts: Option<u32> = c
                                .query_row(
                                    "SELECT attempts FROM stream_checkpoints WHERE consumer = ?1 AND seq = ?2 - 1",
                                    params![STREAM_CONSUMER, seq],
                                    |r| r.get(0),
                                )
                                .optional()?;
                            ("pending", None, attempts.filter(|a| *a > 0))
                        }
                    };
                    t.published = Some(Published {
                        event_id,
                        state: state.into(),
                        message_id: message.as_ref().map(|(m, _)| m.clone()),
                        at,
                        attempts,
                    });
                    if let Some((message_id, _)) = message {
                        let mut stmt = c.prepare_cached(
                            "SELECT s.id, s.arn, s.name, s.protocol, s.endpoint, d.state, d.attempts, d.last_error,
                                    d.created_at, d.delivered_at, d.failed_at, d.next_attempt_at
                             FROM deliveries d JOIN subscriptions s ON s.id = d.subscription_id
                             WHERE d.message_id = ?1 AND d.kind = 'Notification' ORDER BY s.created_at, s.id",
                        )?;
                        t.deliveries = stmt
                            .query_map(params![message_id], |r| {
                                let state: String = r.get(5)?;
                                let next: i64 = r.get(11)?;
                                Ok(DeliveryTrace {
                                    subscription_id: r.get(0)?,
                                    subscription_arn: r.get(1)?,
                                    name: r.get(2)?,
                                    protocol: r.get(3)?,
                                    endpoint: r.get(4)?,
                                    next_attempt_at: (state == "pending").then(|| ts(next)).flatten(),
                                    state,
                                    attempts: r.get(6)?,
                                    last_error: r.get(7)?,
                                    created_at: ts(r.get(8)?),
                                    delivered_at: r.get::<_, Option<i64>>(9)?.and_then(ts),
                                    failed_at: r.get::<_, Option<i64>>(10)?.and_then(ts),
                                })
                            })?
                            .collect::<Result<_, _>>()?;
                        t.deliveries.extend(not_yet_attempted(c, &message_id)?);
                    }
                }
                Ok(t)
            })
            .await?;
        trace.stage = stage_of(&trace).into();
        Ok(
            (trace.accepted_at.is_some() || trace.stored_at.is_some() || trace.received.is_some())
                .then_some(trace),
        )
    }
}

/// A message's first attempts not made yet, which have no row: one for each confirmed
/// subscription whose cursor has not passed it and whose filter policy lets it through.
pub(crate) fn not_yet_attempted(
    c: &rusqlite::Connection,
    message_id: &str,
) -> Result<Vec<DeliveryTrace>, DbError> {
    let Some((seq, body, attributes, published_at)) = c
        .prepare_cached(
            "SELECT seq, message, attributes, published_at FROM topic_messages WHERE message_id = ?1",
        )?
        .query_row(params![message_id], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, i64>(3)?))
        })
        .optional()?
    else {
        return Ok(Vec::new());
    };
    let attributes: BTreeMap<String, MessageAttribute> =
        serde_json::from_str(&attributes).unwrap_or_default();
    let mut stmt = c.prepare_cached(
        "SELECT id, arn, name, protocol, endpoint, settings FROM subscriptions
         WHERE status = 'Confirmed' AND cursor < ?1 AND first_seq < ?1 ORDER BY created_at, id",
    )?;
    let rows = stmt.query_map(params![seq], |r| {
        Ok((
            DeliveryTrace {
                subscription_id: r.get(0)?,
                subscription_arn: r.get(1)?,
                name: r.get(2)?,
                protocol: r.get(3)?,
                endpoint: r.get(4)?,
                state: "pending".into(),
                attempts: 0,
                last_error: None,
                created_at: ts(published_at),
                delivered_at: None,
                failed_at: None,
                next_attempt_at: ts(published_at),
            },
            r.get::<_, String>(5)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (delivery, settings) = row?;
        let policy = crate::topic::parse_policy(&settings);
        if policy.is_none_or(|p| p.matches(&body, &attributes)) {
            out.push(delivery);
        }
    }
    Ok(out)
}

fn checkpoint_of(c: &rusqlite::Connection) -> Result<i64, DbError> {
    Ok(
        c.prepare_cached("SELECT seq FROM stream_checkpoints WHERE consumer = ?1")?
            .query_row(params![STREAM_CONSUMER], |r| r.get(0))
            .optional()?
            .unwrap_or(0),
    )
}

fn stage_of(t: &OrderTrace) -> &'static str {
    if t.stored_at.is_none() {
        return match &t.received {
            Some(r) if r.dead_lettered_at.is_some() => "dead-lettered",
            _ if t.accepted_at.is_some() => "queued",
            _ => "unknown",
        };
    }
    match t.published.as_ref().map(|p| p.state.as_str()) {
        Some("published") => {}
        None if t.pruned.iter().any(|p| p == "published") => {}
        Some("failed") => return "publish-failed",
        _ => return "stored",
    }
    if t.deliveries.iter().any(|d| d.state == "failed") {
        "delivery-failed"
    } else if t.deliveries.iter().any(|d| d.state == "pending") {
        "delivering"
    } else if t.deliveries.is_empty() {
        "published"
    } else {
        "delivered"
    }
}

//! The orders topic: subscriptions with the SNS confirmation handshake, and a durable
//! delivery log with one row per (subscription, message) that is retried until delivered.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use orderflow_core::{MessageAttribute, Publication, Topic, TopicError};
use rusqlite::{OptionalExtension, params};
use serde::Serialize;
use tokio::sync::Notify;

use crate::db::{Db, DbError, now_ms};

pub const TOPIC_ARN: &str = "arn:aws:sns:local:000000000000:orders";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Http,
    Https,
}

impl Protocol {
    pub fn parse(s: &str) -> Option<Protocol> {
        match s {
            "http" => Some(Protocol::Http),
            "https" => Some(Protocol::Https),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Https => "https",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum SubscriptionStatus {
    PendingConfirmation,
    Confirmed,
}

impl SubscriptionStatus {
    fn parse(s: &str) -> SubscriptionStatus {
        if s == "Confirmed" {
            SubscriptionStatus::Confirmed
        } else {
            SubscriptionStatus::PendingConfirmation
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    pub id: String,
    pub subscription_arn: String,
    pub topic_arn: String,
    pub protocol: Protocol,
    pub endpoint: String,
    pub status: SubscriptionStatus,
    pub created_at: String,
    pub confirmed_at: Option<String>,
    #[serde(skip)]
    pub token: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryKind {
    SubscriptionConfirmation,
    Notification,
}

impl DeliveryKind {
    fn as_str(self) -> &'static str {
        match self {
            DeliveryKind::SubscriptionConfirmation => "SubscriptionConfirmation",
            DeliveryKind::Notification => "Notification",
        }
    }
}

#[derive(Debug, Clone)]
pub struct TopicMessage {
    pub message_id: String,
    pub subject: String,
    pub message: String,
    pub attributes: BTreeMap<String, MessageAttribute>,
    pub published_at: i64,
}

/// A delivery whose next attempt is due.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    pub id: i64,
    pub kind: DeliveryKind,
    pub message_id: String,
    pub attempts: u32,
    pub created_at: i64,
    pub subscription: Subscription,
    pub message: Option<TopicMessage>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryStats {
    pub pending: u64,
    pub delivered: u64,
    pub failed: u64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionHealth {
    #[serde(flatten)]
    pub subscription: Subscription,
    pub deliveries: DeliveryStats,
    pub last_error: Option<String>,
}

#[derive(Debug)]
pub struct SqliteTopic {
    db: Arc<Db>,
    delivery_notify: Arc<Notify>,
}

fn fmt_ms(ms: i64) -> String {
    orderflow_core::time::from_millis(ms)
        .map(|t| orderflow_core::time::format(&t))
        .unwrap_or_default()
}

const SUBSCRIPTION_COLUMNS: &str =
    "s.id, s.arn, s.protocol, s.endpoint, s.status, s.token, s.created_at, s.confirmed_at";

fn subscription_from_row(r: &rusqlite::Row<'_>, offset: usize) -> rusqlite::Result<Subscription> {
    let protocol: String = r.get(offset + 2)?;
    let status: String = r.get(offset + 4)?;
    let confirmed: Option<i64> = r.get(offset + 7)?;
    Ok(Subscription {
        id: r.get(offset)?,
        subscription_arn: r.get(offset + 1)?,
        topic_arn: TOPIC_ARN.into(),
        protocol: Protocol::parse(&protocol).unwrap_or(Protocol::Http),
        endpoint: r.get(offset + 3)?,
        status: SubscriptionStatus::parse(&status),
        token: r.get(offset + 5)?,
        created_at: fmt_ms(r.get(offset + 6)?),
        confirmed_at: confirmed.map(fmt_ms),
    })
}

impl SqliteTopic {
    pub fn new(db: Arc<Db>) -> Self {
        SqliteTopic {
            db,
            delivery_notify: Arc::new(Notify::new()),
        }
    }

    /// Wakes the delivery worker when there is something new to send.
    pub fn delivery_notify(&self) -> &Arc<Notify> {
        &self.delivery_notify
    }

    /// Creates a pending subscription and queues its confirmation request.
    pub async fn subscribe(
        &self,
        protocol: Protocol,
        endpoint: String,
    ) -> Result<Subscription, DbError> {
        let id = uuid::Uuid::new_v4().to_string();
        let arn = format!("{TOPIC_ARN}:{id}");
        let token = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let sub = self
            .db
            .write(move |c| {
                let now = now_ms();
                c.execute(
                    "INSERT INTO subscriptions (id, arn, protocol, endpoint, status, token, created_at)
                     VALUES (?1, ?2, ?3, ?4, 'PendingConfirmation', ?5, ?6)",
                    params![id, arn, protocol.as_str(), endpoint, token, now],
                )?;
                c.execute(
                    "INSERT INTO deliveries (subscription_id, kind, message_id, state, next_attempt_at, created_at)
                     VALUES (?1, 'SubscriptionConfirmation', ?2, 'pending', ?3, ?3)",
                    params![id, uuid::Uuid::new_v4().to_string(), now],
                )?;
                Ok(Subscription {
                    id,
                    subscription_arn: arn,
                    topic_arn: TOPIC_ARN.into(),
                    protocol,
                    endpoint,
                    status: SubscriptionStatus::PendingConfirmation,
                    created_at: fmt_ms(now),
                    confirmed_at: None,
                    token,
                })
            })
            .await?;
        self.delivery_notify.notify_waiters();
        Ok(sub)
    }

    /// Confirms the subscription the token was sent to; `None` for an unknown token.
    pub async fn confirm(&self, token: String) -> Result<Option<Subscription>, DbError> {
        self.db
            .write(move |c| {
                c.execute(
                    "UPDATE subscriptions SET status = 'Confirmed', confirmed_at = coalesce(confirmed_at, ?2)
                     WHERE token = ?1",
                    params![token, now_ms()],
                )?;
                // The handshake is done; an unsent confirmation request is moot.
                c.execute(
                    "UPDATE deliveries SET state = 'delivered', delivered_at = ?2
                     WHERE kind = 'SubscriptionConfirmation' AND state = 'pending'
                       AND subscription_id = (SELECT id FROM subscriptions WHERE token = ?1)",
                    params![token, now_ms()],
                )?;
                Ok(c.query_row(
                    &format!("SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions s WHERE token = ?1"),
                    params![token],
                    |r| subscription_from_row(r, 0),
                )
                .optional()?)
            })
            .await
    }

    /// Removes a subscription (by id or ARN) and its undelivered messages.
    pub async fn unsubscribe(&self, id_or_arn: String) -> Result<bool, DbError> {
        self.db
            .write(move |c| {
                Ok(c.execute(
                    "DELETE FROM subscriptions WHERE id = ?1 OR arn = ?1",
                    params![id_or_arn],
                )? > 0)
            })
            .await
    }

    pub async fn get(&self, id_or_arn: String) -> Result<Option<Subscription>, DbError> {
        self.db
            .read(move |c| {
                Ok(c.query_row(
                    &format!("SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions s WHERE id = ?1 OR arn = ?1"),
                    params![id_or_arn],
                    |r| subscription_from_row(r, 0),
                )
                .optional()?)
            })
            .await
    }

    pub async fn list(&self) -> Result<Vec<Subscription>, DbError> {
        self.db
            .read(|c| {
                let mut stmt = c.prepare_cached(&format!(
                    "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions s ORDER BY created_at, id"
                ))?;
                let rows = stmt
                    .query_map([], |r| subscription_from_row(r, 0))?
                    .collect::<Result<_, _>>()?;
                Ok(rows)
            })
            .await
    }

    /// Each subscription with its delivery counts and latest error.
    pub async fn health(&self) -> Result<Vec<SubscriptionHealth>, DbError> {
        let subs = self.list().await?;
        self.db
            .read(move |c| {
                let mut out = Vec::with_capacity(subs.len());
                let mut stmt = c.prepare_cached(
                    "SELECT coalesce(sum(state = 'pending'), 0), coalesce(sum(state = 'delivered'), 0),
                            coalesce(sum(state = 'failed'), 0)
                     FROM deliveries WHERE subscription_id = ?1 AND kind = 'Notification'",
                )?;
                let mut err_stmt = c.prepare_cached(
                    "SELECT last_error FROM deliveries WHERE subscription_id = ?1 AND last_error IS NOT NULL
                     AND state != 'delivered' ORDER BY id DESC LIMIT 1",
                )?;
                for s in subs {
                    let (p, d, f): (i64, i64, i64) =
                        stmt.query_row(params![s.id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
                    let last_error: Option<String> = err_stmt.query_row(params![s.id], |r| r.get(0)).optional()?;
                    out.push(SubscriptionHealth {
                        subscription: s,
                        deliveries: DeliveryStats {
                            pending: p as u64,
                            delivered: d as u64,
                            failed: f as u64,
                        },
                        last_error,
                    });
                }
                Ok(out)
            })
            .await
    }

    /// Deliveries due now, oldest first, skipping those already being attempted. Also returns
    /// when the next not-yet-due delivery falls due.
    pub async fn due(
        &self,
        limit: usize,
        in_flight: HashSet<i64>,
    ) -> Result<(Vec<DueDelivery>, Option<i64>), DbError> {
        self.db
            .read(move |c| {
                let now = now_ms();
                let mut stmt = c.prepare_cached(&format!(
                    "SELECT d.id, d.kind, d.message_id, d.attempts, d.created_at,
                            m.subject, m.message, m.attributes, m.published_at, {SUBSCRIPTION_COLUMNS}
                     FROM deliveries d
                     JOIN subscriptions s ON s.id = d.subscription_id
                     LEFT JOIN topic_messages m ON m.message_id = d.message_id
                     WHERE d.state = 'pending' AND d.next_attempt_at <= ?1
                     ORDER BY d.next_attempt_at, d.id LIMIT ?2"
                ))?;
                let rows = stmt
                    .query_map(params![now, (limit + in_flight.len()) as i64], |r| {
                        let kind: String = r.get(1)?;
                        let subject: Option<String> = r.get(5)?;
                        let message = match subject {
                            Some(subject) => {
                                let attributes: String = r.get(7)?;
                                Some(TopicMessage {
                                    message_id: r.get(2)?,
                                    subject,
                                    message: r.get(6)?,
                                    attributes: serde_json::from_str(&attributes).unwrap_or_default(),
                                    published_at: r.get(8)?,
                                })
                            }
                            None => None,
                        };
                        Ok(DueDelivery {
                            id: r.get(0)?,
                            kind: if kind == "Notification" {
                                DeliveryKind::Notification
                            } else {
                                DeliveryKind::SubscriptionConfirmation
                            },
                            message_id: r.get(2)?,
                            attempts: r.get(3)?,
                            created_at: r.get(4)?,
                            subscription: subscription_from_row(r, 9)?,
                            message,
                        })
                    })?
                    .filter(|d| d.as_ref().map_or(true, |d| !in_flight.contains(&d.id)))
                    .take(limit)
                    .collect::<Result<Vec<_>, _>>()?;
                let next: Option<i64> = c
                    .prepare_cached("SELECT min(next_attempt_at) FROM deliveries WHERE state = 'pending' AND next_attempt_at > ?1")?
                    .query_row(params![now], |r| r.get(0))?;
                Ok((rows, next))
            })
            .await
    }

    pub async fn mark_delivered(&self, id: i64) -> Result<(), DbError> {
        self.db
            .write_relaxed(move |c| {
                c.prepare_cached(
                    "UPDATE deliveries SET state = 'delivered', attempts = attempts + 1, delivered_at = ?2,
                     last_error = NULL WHERE id = ?1",
                )?
                .execute(params![id, now_ms()])?;
                Ok(())
            })
            .await
    }

    /// Records a failed attempt: the next one at `next_attempt_at`, or none (`failed`).
    pub async fn mark_attempt_failed(
        &self,
        id: i64,
        error: String,
        next_attempt_at: Option<i64>,
    ) -> Result<(), DbError> {
        self.db
            .write_relaxed(move |c| {
                match next_attempt_at {
                    Some(at) => c
                        .prepare_cached(
                            "UPDATE deliveries SET attempts = attempts + 1, next_attempt_at = ?2, last_error = ?3
                             WHERE id = ?1",
                        )?
                        .execute(params![id, at, error])?,
                    None => c
                        .prepare_cached(
                            "UPDATE deliveries SET attempts = attempts + 1, state = 'failed', last_error = ?2
                             WHERE id = ?1",
                        )?
                        .execute(params![id, error])?,
                };
                Ok(())
            })
            .await
    }

    pub async fn delivery_stats(&self) -> Result<DeliveryStats, DbError> {
        self.db
            .read(|c| {
                let (p, d, f): (i64, i64, i64) = c.query_row(
                    "SELECT coalesce(sum(state = 'pending'), 0), coalesce(sum(state = 'delivered'), 0),
                            coalesce(sum(state = 'failed'), 0)
                     FROM deliveries WHERE kind = 'Notification'",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )?;
                Ok(DeliveryStats {
                    pending: p as u64,
                    delivered: d as u64,
                    failed: f as u64,
                })
            })
            .await
    }
}

#[async_trait]
impl Topic for SqliteTopic {
    /// Stores the message and one pending delivery per confirmed subscription, atomically.
    /// A publication whose `dedup_id` was seen before returns the first message id and
    /// delivers nothing new, so a retried stream record is announced once.
    async fn publish(&self, publication: &Publication) -> Result<String, TopicError> {
        let p = publication.clone();
        let (message_id, fresh) = self
            .db
            .write_relaxed(move |c| {
                let existing: Option<String> = c
                    .prepare_cached("SELECT message_id FROM topic_messages WHERE dedup_id = ?1")?
                    .query_row(params![p.dedup_id], |r| r.get(0))
                    .optional()?;
                if let Some(id) = existing {
                    return Ok((id, false));
                }
                let id = uuid::Uuid::new_v4().to_string();
                let now = now_ms();
                let attributes = serde_json::to_string(&p.attributes).expect("attributes serialize");
                c.prepare_cached(
                    "INSERT INTO topic_messages (message_id, dedup_id, subject, message, attributes, published_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?
                .execute(params![id, p.dedup_id, p.subject, p.message, attributes, now])?;
                c.prepare_cached(
                    "INSERT INTO deliveries (subscription_id, kind, message_id, state, next_attempt_at, created_at)
                     SELECT id, 'Notification', ?1, 'pending', ?2, ?2 FROM subscriptions WHERE status = 'Confirmed'",
                )?
                .execute(params![id, now])?;
                Ok((id, true))
            })
            .await
            .map_err(|e| TopicError::Unavailable(Box::new(e)))?;
        if fresh {
            self.delivery_notify.notify_waiters();
        }
        Ok(message_id)
    }
}

impl DeliveryKind {
    pub fn header_value(self) -> &'static str {
        self.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(dir: &tempfile::TempDir) -> SqliteTopic {
        SqliteTopic::new(Db::open(&dir.path().join("t.db"), crate::schema::migrate).unwrap())
    }

    #[tokio::test]
    async fn sqlite_topic_conforms() {
        let dir = tempfile::tempdir().unwrap();
        orderflow_core::conformance::topic(&topic(&dir)).await;
    }

    #[tokio::test]
    async fn only_confirmed_subscriptions_get_deliveries_and_a_repeat_publication_adds_none() {
        let dir = tempfile::tempdir().unwrap();
        let t = topic(&dir);
        let confirmed = t
            .subscribe(Protocol::Http, "http://127.0.0.1:1/a".into())
            .await
            .unwrap();
        let _pending = t
            .subscribe(Protocol::Http, "http://127.0.0.1:1/b".into())
            .await
            .unwrap();
        let c = t.confirm(confirmed.token.clone()).await.unwrap().unwrap();
        assert_eq!(c.status, SubscriptionStatus::Confirmed);
        assert!(t.confirm("nope".into()).await.unwrap().is_none());

        let p = Publication {
            dedup_id: "rec-1".into(),
            subject: "OrderCreated".into(),
            message: "{}".into(),
            attributes: BTreeMap::new(),
        };
        let id1 = t.publish(&p).await.unwrap();
        let id2 = t.publish(&p).await.unwrap();
        assert_eq!(id1, id2);
        assert_eq!(t.delivery_stats().await.unwrap().pending, 1);

        let (due, _) = t.due(10, HashSet::new()).await.unwrap();
        let notifications: Vec<_> = due
            .iter()
            .filter(|d| d.kind == DeliveryKind::Notification)
            .collect();
        assert_eq!(notifications.len(), 1);
        assert_eq!(notifications[0].subscription.id, confirmed.id);

        assert!(
            t.unsubscribe(confirmed.subscription_arn.clone())
                .await
                .unwrap()
        );
        assert_eq!(
            t.delivery_stats().await.unwrap().pending,
            0,
            "deliveries go with the subscription"
        );
    }
}

//! The orders topic: subscriptions with the SNS confirmation handshake, and a durable
//! delivery log with one row per (subscription, message) that is retried until delivered.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use orderflow_core::filter::FilterPolicy;
use orderflow_core::{MessageAttribute, Publication, Topic, TopicError};
use rusqlite::{OptionalExtension, params};
use serde::Serialize;
use tokio::sync::Notify;

use crate::db::{Db, DbError, now_ms};
use crate::fanout::spec::{SubscriptionSettings, SubscriptionSpec};

pub const TOPIC_ARN: &str = "arn:aws:sns:local:000000000000:orders";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Http,
    Https,
    /// A person's mailbox, through the SMTP relay.
    Email,
    /// A named pull queue with SQS semantics, read over HTTP.
    Queue,
    /// JSON lines to stdout or a file.
    Log,
}

impl Protocol {
    pub fn parse(s: &str) -> Option<Protocol> {
        match s {
            "http" => Some(Protocol::Http),
            "https" => Some(Protocol::Https),
            "email" => Some(Protocol::Email),
            "queue" => Some(Protocol::Queue),
            "log" => Some(Protocol::Log),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Https => "https",
            Protocol::Email => "email",
            Protocol::Queue => "queue",
            Protocol::Log => "log",
        }
    }

    /// As with SNS, an endpoint someone else owns must confirm; a queue or a log of this
    /// server is ours, so it is confirmed at once (as SNS does for a queue in the same account).
    pub fn needs_confirmation(self) -> bool {
        matches!(self, Protocol::Http | Protocol::Https | Protocol::Email)
    }
}

/// Who manages a subscription: the API (and CLI), or the `--subscriptions` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Api,
    File,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Source::Api => "api",
            Source::File => "file",
        }
    }

    fn parse(s: &str) -> Source {
        if s == "file" {
            Source::File
        } else {
            Source::Api
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SubscribeError {
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// The internal name of a `queue` subscription's pull queue (its DLQ adds `-dlq`).
pub fn pull_queue_name(endpoint: &str) -> String {
    format!("subscription/{endpoint}")
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub protocol: Protocol,
    pub endpoint: String,
    pub status: SubscriptionStatus,
    pub created_at: String,
    pub confirmed_at: Option<String>,
    #[serde(flatten)]
    pub settings: SubscriptionSettings,
    pub managed_by: Source,
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
    /// Retries exhausted: in the subscription's dead-letter store until redriven.
    pub failed: u64,
    /// Messages the subscription's filter policy did not match (counted, never sent).
    #[serde(default)]
    pub filtered: u64,
}

/// A delivery whose retries ran out, kept in its subscription's dead-letter store.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterDelivery {
    pub delivery_id: i64,
    pub message_id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub created_at: String,
    pub failed_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// What applying the declarative subscriptions file changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AppliedFile {
    pub created: Vec<String>,
    pub updated: Vec<String>,
    pub replaced: Vec<String>,
    pub removed: Vec<String>,
    pub unchanged: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionHealth {
    #[serde(flatten)]
    pub subscription: Subscription,
    pub deliveries: DeliveryStats,
    pub last_error: Option<String>,
}

/// Parsed filter policies by their stored settings text, so a publish parses each once.
type PolicyCache = Arc<Mutex<HashMap<String, Option<Arc<FilterPolicy>>>>>;

#[derive(Debug)]
pub struct SqliteTopic {
    pub(crate) db: Arc<Db>,
    pub(crate) delivery_notify: Arc<Notify>,
    policies: PolicyCache,
}

fn fmt_ms(ms: i64) -> String {
    orderflow_core::time::from_millis(ms)
        .map(|t| orderflow_core::time::format(&t))
        .unwrap_or_default()
}

pub(crate) const SUBSCRIPTION_COLUMNS: &str = "s.id, s.arn, s.protocol, s.endpoint, s.status, s.token, s.created_at, s.confirmed_at, s.name, s.settings, s.source";

pub(crate) fn subscription_from_row(
    r: &rusqlite::Row<'_>,
    offset: usize,
) -> rusqlite::Result<Subscription> {
    let protocol: String = r.get(offset + 2)?;
    let status: String = r.get(offset + 4)?;
    let confirmed: Option<i64> = r.get(offset + 7)?;
    let settings: String = r.get(offset + 9)?;
    let source: String = r.get(offset + 10)?;
    Ok(Subscription {
        id: r.get(offset)?,
        subscription_arn: r.get(offset + 1)?,
        topic_arn: TOPIC_ARN.into(),
        name: r.get(offset + 8)?,
        protocol: Protocol::parse(&protocol).unwrap_or(Protocol::Http),
        endpoint: r.get(offset + 3)?,
        status: SubscriptionStatus::parse(&status),
        token: r.get(offset + 5)?,
        created_at: fmt_ms(r.get(offset + 6)?),
        confirmed_at: confirmed.map(fmt_ms),
        settings: serde_json::from_str(&settings).unwrap_or_default(),
        managed_by: Source::parse(&source),
    })
}

/// Inserts a subscription (and, if it must confirm, its confirmation request).
pub(crate) fn insert_subscription(
    c: &rusqlite::Connection,
    spec: &SubscriptionSpec,
    source: Source,
) -> Result<Subscription, SubscribeError> {
    if let Some(name) = &spec.name {
        let taken: Option<String> = c
            .query_row(
                "SELECT id FROM subscriptions WHERE name = ?1",
                params![name],
                |r| r.get(0),
            )
            .optional()
            .map_err(DbError::from)?;
        if taken.is_some() {
            return Err(SubscribeError::Conflict(format!(
                "a subscription named {name} already exists"
            )));
        }
    }
    if spec.protocol == crate::topic::Protocol::Queue {
        let taken: Option<String> = c
            .query_row(
                "SELECT id FROM subscriptions WHERE protocol = 'queue' AND endpoint = ?1",
                params![spec.endpoint],
                |r| r.get(0),
            )
            .optional()
            .map_err(DbError::from)?;
        if taken.is_some() {
            return Err(SubscribeError::Conflict(format!(
                "queue {} already belongs to a subscription",
                spec.endpoint
            )));
        }
    }
    let id = uuid::Uuid::new_v4().to_string();
    let arn = format!("{TOPIC_ARN}:{id}");
    let token = crate::fanout::tokens::new_token();
    let now = now_ms();
    let confirmed = !spec.protocol.needs_confirmation();
    let status = if confirmed {
        SubscriptionStatus::Confirmed
    } else {
        SubscriptionStatus::PendingConfirmation
    };
    let settings = serde_json::to_string(&spec.settings).expect("settings serialize");
    c.execute(
        "INSERT INTO subscriptions (id, arn, protocol, endpoint, status, token, created_at, confirmed_at, name, settings, source)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            id,
            arn,
            spec.protocol.as_str(),
            spec.endpoint,
            if confirmed { "Confirmed" } else { "PendingConfirmation" },
            token,
            now,
            confirmed.then_some(now),
            spec.name,
            settings,
            source.as_str()
        ],
    )
    .map_err(DbError::from)?;
    if !confirmed {
        c.execute(
            "INSERT INTO deliveries (subscription_id, kind, message_id, state, next_attempt_at, created_at)
             VALUES (?1, 'SubscriptionConfirmation', ?2, 'pending', ?3, ?3)",
            params![id, uuid::Uuid::new_v4().to_string(), now],
        )
        .map_err(DbError::from)?;
    }
    Ok(Subscription {
        id,
        subscription_arn: arn,
        topic_arn: TOPIC_ARN.into(),
        name: spec.name.clone(),
        protocol: spec.protocol,
        endpoint: spec.endpoint.clone(),
        status,
        created_at: fmt_ms(now),
        confirmed_at: confirmed.then(|| fmt_ms(now)),
        settings: spec.settings.clone(),
        managed_by: source,
        token,
    })
}

/// Deletes a subscription, its deliveries and, for a queue, its pull queue and DLQ.
pub(crate) fn delete_subscription(
    c: &rusqlite::Connection,
    id_or_arn: &str,
) -> Result<bool, DbError> {
    let found: Option<(String, String)> = c
        .query_row(
            "SELECT protocol, endpoint FROM subscriptions WHERE id = ?1 OR arn = ?1",
            params![id_or_arn],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((protocol, endpoint)) = found else {
        return Ok(false);
    };
    if protocol == "queue" {
        let queue = pull_queue_name(&endpoint);
        c.execute(
            "DELETE FROM queue_messages WHERE queue = ?1 OR queue = ?2",
            params![queue, format!("{queue}-dlq")],
        )?;
    }
    c.execute(
        "DELETE FROM subscriptions WHERE id = ?1 OR arn = ?1",
        params![id_or_arn],
    )?;
    Ok(true)
}

/// What one delivery attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    Delivered(i64),
    /// Failed; try again at `at` (ms since the epoch).
    Retry {
        id: i64,
        error: String,
        at: i64,
    },
    /// Failed for good: into the subscription's dead-letter store.
    Failed {
        id: i64,
        error: String,
    },
}

impl DeliveryOutcome {
    pub fn id(&self) -> i64 {
        match self {
            DeliveryOutcome::Delivered(id)
            | DeliveryOutcome::Retry { id, .. }
            | DeliveryOutcome::Failed { id, .. } => *id,
        }
    }
}

fn due_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DueDelivery> {
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
}

impl SqliteTopic {
    pub fn new(db: Arc<Db>) -> Self {
        SqliteTopic {
            db,
            delivery_notify: Arc::new(Notify::new()),
            policies: Arc::default(),
        }
    }

    /// Wakes the delivery worker when there is something new to send. It has one waiter, so
    /// every write signals with `notify_one`, which keeps the wake-up when the worker is
    /// between two waits (`notify_waiters` would drop it, and the worker would only find
    /// the work at its next timed poll).
    pub fn delivery_notify(&self) -> &Arc<Notify> {
        &self.delivery_notify
    }

    /// Creates a subscription: pending with a confirmation request queued when its protocol
    /// needs one, confirmed at once otherwise.
    pub async fn subscribe(
        &self,
        spec: SubscriptionSpec,
        source: Source,
    ) -> Result<Subscription, SubscribeError> {
        let result = self
            .db
            .write(move |c| Ok(insert_subscription(c, &spec, source)))
            .await?;
        let sub = result?;
        self.delivery_notify.notify_one();
        Ok(sub)
    }

    /// Makes the stored subscriptions match the declarative file: entries are matched by
    /// name; a changed protocol or endpoint replaces the subscription (a new confirmation),
    /// changed settings are updated in place; file-managed subscriptions no longer listed
    /// are removed. Subscriptions made over the API are left alone. One transaction.
    pub async fn apply_file(
        &self,
        specs: Vec<SubscriptionSpec>,
    ) -> Result<AppliedFile, SubscribeError> {
        let result = self
            .db
            .write(move |c| {
                let mut applied = AppliedFile::default();
                let mut run = || -> Result<(), SubscribeError> {
                    let listed: HashSet<&str> =
                        specs.iter().filter_map(|s| s.name.as_deref()).collect();
                    let stale: Vec<(String, String)> = c
                        .prepare("SELECT id, name FROM subscriptions WHERE source = 'file'")
                        .and_then(|mut st| {
                            st.query_map([], |r| Ok((r.get(0)?, r.get::<_, Option<String>>(1)?)))?
                                .collect::<Result<Vec<_>, _>>()
                        })
                        .map_err(DbError::from)?
                        .into_iter()
                        .filter_map(|(id, name)| {
                            let name = name.unwrap_or_default();
                            (!listed.contains(name.as_str())).then_some((id, name))
                        })
                        .collect();
                    for (id, name) in stale {
                        delete_subscription(c, &id)?;
                        applied.removed.push(name);
                    }
                    for spec in &specs {
                        let name = spec.name.clone().unwrap_or_default();
                        let existing = c
                            .query_row(
                                &format!("SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions s WHERE name = ?1"),
                                params![name],
                                |r| subscription_from_row(r, 0),
                            )
                            .optional()
                            .map_err(DbError::from)?;
                        match existing {
                            None => {
                                insert_subscription(c, spec, Source::File)?;
                                applied.created.push(name);
                            }
                            Some(old)
                                if old.protocol != spec.protocol
                                    || old.endpoint != spec.endpoint =>
                            {
                                delete_subscription(c, &old.id)?;
                                insert_subscription(c, spec, Source::File)?;
                                applied.replaced.push(name);
                            }
                            Some(old)
                                if old.settings != spec.settings
                                    || old.managed_by != Source::File =>
                            {
                                let settings = serde_json::to_string(&spec.settings)
                                    .expect("settings serialize");
                                c.execute(
                                    "UPDATE subscriptions SET settings = ?2, source = 'file' WHERE id = ?1",
                                    params![old.id, settings],
                                )
                                .map_err(DbError::from)?;
                                applied.updated.push(name);
                            }
                            Some(_) => applied.unchanged.push(name),
                        }
                    }
                    Ok(())
                };
                // The savepoint rolls back the whole file when any entry fails.
                match run() {
                    Ok(()) => Ok(applied),
                    Err(SubscribeError::Db(e)) => Err(e),
                    Err(conflict) => Err(DbError::Corrupt(Box::new(ConflictInFile(
                        conflict.to_string(),
                    )))),
                }
            })
            .await;
        let applied = match result {
            Ok(applied) => applied,
            Err(DbError::Corrupt(e)) if e.is::<ConflictInFile>() => {
                return Err(SubscribeError::Conflict(e.to_string()));
            }
            Err(e) => return Err(e.into()),
        };
        self.delivery_notify.notify_one();
        Ok(applied)
    }

    /// Confirms the subscription the token was sent to; `None` for an unknown token or one
    /// issued more than three days ago. `authenticate_on_unsubscribe` sets SNS's flag of
    /// that name: from then on only the API key removes the subscription.
    pub async fn confirm(
        &self,
        token: String,
        authenticate_on_unsubscribe: bool,
    ) -> Result<Option<Subscription>, DbError> {
        self.confirm_at(token, authenticate_on_unsubscribe, now_ms())
            .await
    }

    async fn confirm_at(
        &self,
        token: String,
        authenticate_on_unsubscribe: bool,
        now: i64,
    ) -> Result<Option<Subscription>, DbError> {
        let issued_after = now - crate::fanout::tokens::CONFIRMATION_TOKEN_LIFETIME_MS;
        self.db
            .write(move |c| {
                c.execute(
                    "UPDATE subscriptions SET status = 'Confirmed', confirmed_at = coalesce(confirmed_at, ?2),
                         settings = CASE WHEN ?4 THEN json_set(settings, '$.authenticateOnUnsubscribe', json('true'))
                                    ELSE settings END
                     WHERE token = ?1 AND created_at > ?3",
                    params![token, now, issued_after, authenticate_on_unsubscribe],
                )?;
                // The handshake is done; an unsent confirmation request is moot.
                c.execute(
                    "UPDATE deliveries SET state = 'delivered', delivered_at = ?2
                     WHERE kind = 'SubscriptionConfirmation' AND state = 'pending'
                       AND subscription_id = (SELECT id FROM subscriptions WHERE token = ?1 AND created_at > ?3)",
                    params![token, now, issued_after],
                )?;
                Ok(c.query_row(
                    &format!("SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions s WHERE token = ?1 AND created_at > ?2"),
                    params![token, issued_after],
                    |r| subscription_from_row(r, 0),
                )
                .optional()?)
            })
            .await
    }

    /// Removes a subscription (by id or ARN) and its undelivered messages (for a queue,
    /// its pull queue too).
    pub async fn unsubscribe(&self, id_or_arn: String) -> Result<bool, DbError> {
        self.db
            .write(move |c| delete_subscription(c, &id_or_arn))
            .await
    }

    /// The `queue` subscription that owns pull queue `name`.
    pub async fn by_queue(&self, name: String) -> Result<Option<Subscription>, DbError> {
        self.db
            .read(move |c| {
                Ok(c.query_row(
                    &format!("SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions s WHERE protocol = 'queue' AND endpoint = ?1"),
                    params![name],
                    |r| subscription_from_row(r, 0),
                )
                .optional()?)
            })
            .await
    }

    /// The subscription's dead-letter store: deliveries whose retries ran out, oldest first.
    /// `None` when there is no such subscription.
    pub async fn dead_letters(
        &self,
        id_or_arn: String,
        limit: usize,
    ) -> Result<Option<Vec<DeadLetterDelivery>>, DbError> {
        let Some(sub) = self.get(id_or_arn).await? else {
            return Ok(None);
        };
        self.db
            .read(move |c| {
                let mut stmt = c.prepare_cached(
                    "SELECT d.id, d.message_id, d.kind, d.attempts, d.last_error, d.created_at, d.failed_at,
                            m.subject, m.message
                     FROM deliveries d LEFT JOIN topic_messages m ON m.message_id = d.message_id
                     WHERE d.subscription_id = ?1 AND d.state = 'failed' ORDER BY d.id LIMIT ?2",
                )?;
                let rows = stmt
                    .query_map(params![sub.id, limit as i64], |r| {
                        let kind: String = r.get(2)?;
                        let failed: Option<i64> = r.get(6)?;
                        Ok(DeadLetterDelivery {
                            delivery_id: r.get(0)?,
                            message_id: r.get(1)?,
                            kind: if kind == "Notification" {
                                "Notification"
                            } else {
                                "SubscriptionConfirmation"
                            },
                            attempts: r.get(3)?,
                            last_error: r.get(4)?,
                            created_at: fmt_ms(r.get(5)?),
                            failed_at: failed.map(fmt_ms),
                            subject: r.get(7)?,
                            message: r.get(8)?,
                        })
                    })?
                    .collect::<Result<_, _>>()?;
                Ok(Some(rows))
            })
            .await
    }

    /// Moves dead-lettered deliveries (all, or the given delivery ids) back to pending with
    /// fresh attempts. `None` when there is no such subscription.
    pub async fn redrive(
        &self,
        id_or_arn: String,
        delivery_ids: Option<Vec<i64>>,
    ) -> Result<Option<usize>, DbError> {
        let Some(sub) = self.get(id_or_arn).await? else {
            return Ok(None);
        };
        let n = self
            .db
            .write(move |c| {
                let now = now_ms();
                let sql =
                    "UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = ?2,
                           failed_at = NULL WHERE subscription_id = ?1 AND state = 'failed'";
                Ok(match delivery_ids {
                    None => c.execute(sql, params![sub.id, now])?,
                    Some(ids) => {
                        let mut stmt = c.prepare(&format!("{sql} AND id = ?3"))?;
                        let mut n = 0;
                        for id in ids {
                            n += stmt.execute(params![sub.id, now, id])?;
                        }
                        n
                    }
                })
            })
            .await?;
        self.delivery_notify.notify_one();
        Ok(Some(n))
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
                let mut stmt = c.prepare_cached("SELECT filtered FROM subscriptions WHERE id = ?1")?;
                let mut err_stmt = c.prepare_cached(
                    // Named states, so the index skips the subscription's delivered history.
                    "SELECT last_error FROM deliveries WHERE subscription_id = ?1 AND last_error IS NOT NULL
                     AND state IN ('pending', 'failed') ORDER BY id DESC LIMIT 1",
                )?;
                for s in subs {
                    let filtered: Option<i64> = stmt.query_row(params![s.id], |r| r.get(0)).optional()?;
                    let counts = crate::counters::deliveries(c, Some(&s.id))?;
                    let last_error: Option<String> = err_stmt.query_row(params![s.id], |r| r.get(0)).optional()?;
                    out.push(SubscriptionHealth {
                        subscription: s,
                        deliveries: DeliveryStats {
                            filtered: filtered.unwrap_or(0) as u64,
                            ..counts
                        },
                        last_error,
                    });
                }
                Ok(out)
            })
            .await
    }

    /// Due deliveries per subscription: for each `(subscription id, n)`, up to `n` of its
    /// pending deliveries whose time has come, oldest first, skipping `exclude` (those the
    /// worker already holds). Also returns when the next not-yet-due delivery falls due.
    pub async fn due_for(
        &self,
        wants: Vec<(String, usize)>,
        exclude: HashSet<i64>,
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
                     WHERE d.subscription_id = ?1 AND d.state = 'pending' AND d.next_attempt_at <= ?2
                     ORDER BY d.next_attempt_at, d.id LIMIT ?3"
                ))?;
                let mut out = Vec::new();
                for (subscription, n) in wants {
                    // Held ones come first in the same order, so ask for enough to skip them.
                    let limit = (n + exclude.len()) as i64;
                    let rows = stmt.query_map(params![subscription, now, limit], due_from_row)?;
                    let mut taken = 0;
                    for row in rows {
                        let d = row?;
                        if exclude.contains(&d.id) {
                            continue;
                        }
                        out.push(d);
                        taken += 1;
                        if taken == n {
                            break;
                        }
                    }
                }
                let next: Option<i64> = c
                    .prepare_cached(
                        "SELECT min(next_attempt_at) FROM deliveries WHERE state = 'pending' AND next_attempt_at > ?1",
                    )?
                    .query_row(params![now], |r| r.get(0))?;
                Ok((out, next))
            })
            .await
    }

    /// Ids of every subscription, the worker's unit of fairness.
    pub async fn subscription_ids(&self) -> Result<Vec<String>, DbError> {
        self.db
            .read(|c| {
                let mut stmt = c.prepare_cached("SELECT id FROM subscriptions ORDER BY id")?;
                let ids = stmt
                    .query_map([], |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
                Ok(ids)
            })
            .await
    }

    /// Records many attempts' outcomes in one transaction.
    pub async fn record_outcomes(&self, outcomes: Vec<DeliveryOutcome>) -> Result<(), DbError> {
        self.db
            .write_relaxed(move |c| {
                let now = now_ms();
                let mut delivered = c.prepare_cached(
                    "UPDATE deliveries SET state = 'delivered', attempts = attempts + 1, delivered_at = ?2,
                     last_error = NULL WHERE id = ?1",
                )?;
                let mut retry = c.prepare_cached(
                    "UPDATE deliveries SET attempts = attempts + 1, next_attempt_at = ?2, last_error = ?3
                     WHERE id = ?1",
                )?;
                let mut failed = c.prepare_cached(
                    "UPDATE deliveries SET attempts = attempts + 1, state = 'failed', last_error = ?2,
                     failed_at = ?3 WHERE id = ?1",
                )?;
                for o in &outcomes {
                    match o {
                        DeliveryOutcome::Delivered(id) => delivered.execute(params![id, now])?,
                        DeliveryOutcome::Retry { id, error, at } => retry.execute(params![id, at, error])?,
                        DeliveryOutcome::Failed { id, error } => failed.execute(params![id, error, now])?,
                    };
                }
                Ok(())
            })
            .await
    }

    pub async fn mark_delivered(&self, id: i64) -> Result<(), DbError> {
        self.record_outcomes(vec![DeliveryOutcome::Delivered(id)])
            .await
    }

    /// Records a failed attempt: the next one at `next_attempt_at`, or none (`failed`).
    pub async fn mark_attempt_failed(
        &self,
        id: i64,
        error: String,
        next_attempt_at: Option<i64>,
    ) -> Result<(), DbError> {
        let outcome = match next_attempt_at {
            Some(at) => DeliveryOutcome::Retry { id, error, at },
            None => DeliveryOutcome::Failed { id, error },
        };
        self.record_outcomes(vec![outcome]).await
    }

    pub async fn delivery_stats(&self) -> Result<DeliveryStats, DbError> {
        self.db
            .read(|c| {
                let counts = crate::counters::deliveries(c, None)?;
                let filtered: i64 = c.query_row(
                    "SELECT coalesce(sum(filtered), 0) FROM subscriptions",
                    [],
                    |r| r.get(0),
                )?;
                Ok(DeliveryStats {
                    filtered: filtered as u64,
                    ..counts
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
        let mut results = self.publish_batch(std::slice::from_ref(publication)).await;
        results
            .pop()
            .unwrap_or_else(|| Err(TopicError::Rejected("nothing was published".into())))
    }

    /// Publishes the whole batch in one transaction: one commit for a stream batch instead
    /// of one per order.
    async fn publish_batch(&self, publications: &[Publication]) -> Vec<Result<String, TopicError>> {
        if publications.is_empty() {
            return Vec::new();
        }
        let batch = publications.to_vec();
        let policies = Arc::clone(&self.policies);
        let outcome = self
            .db
            .write_relaxed(move |c| {
                batch
                    .iter()
                    .map(|p| publish_in(c, &policies, p))
                    .collect::<Result<Vec<_>, _>>()
            })
            .await;
        match outcome {
            Ok(published) => {
                if published.iter().any(|(_, fresh)| *fresh) {
                    self.delivery_notify.notify_one();
                }
                published.into_iter().map(|(id, _)| Ok(id)).collect()
            }
            // Nothing of the batch was kept; the first publication carries the error.
            Err(e) => vec![Err(TopicError::Unavailable(Box::new(e)))],
        }
    }
}

/// One publication inside the writer's transaction: `(message id, newly published)`.
fn publish_in(
    c: &rusqlite::Connection,
    policies: &PolicyCache,
    p: &Publication,
) -> Result<(String, bool), DbError> {
    let existing: Option<String> = c
        .prepare_cached("SELECT message_id FROM topic_messages WHERE dedup_id = ?1")?
        .query_row(params![p.dedup_id], |r| r.get(0))
        .optional()?;
    if let Some(id) = existing {
        return Ok((id, false));
    }
    // Time-ordered, like the queue's ids: appends to the primary key's index.
    let id = uuid::Uuid::now_v7().to_string();
    let now = now_ms();
    let attributes = serde_json::to_string(&p.attributes).expect("attributes serialize");
    c.prepare_cached(
        "INSERT INTO topic_messages (message_id, dedup_id, subject, message, attributes, published_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![id, p.dedup_id, p.subject, p.message, attributes, now])?;
    let subscribers: Vec<(String, String)> = c
        .prepare_cached("SELECT id, settings FROM subscriptions WHERE status = 'Confirmed'")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut deliver = c.prepare_cached(
        "INSERT INTO deliveries (subscription_id, kind, message_id, state, next_attempt_at, created_at)
         VALUES (?1, 'Notification', ?2, 'pending', ?3, ?3)",
    )?;
    let mut filtered =
        c.prepare_cached("UPDATE subscriptions SET filtered = filtered + 1 WHERE id = ?1")?;
    for (subscription, settings) in subscribers {
        let matches = policy_for(policies, &settings)
            .is_none_or(|policy| policy.matches(&p.message, &p.attributes));
        if matches {
            deliver.execute(params![subscription, id, now])?;
        } else {
            filtered.execute(params![subscription])?;
        }
    }
    Ok((id, true))
}

/// The subscription's filter policy, parsed once per distinct settings text.
fn policy_for(cache: &PolicyCache, settings: &str) -> Option<Arc<FilterPolicy>> {
    if settings == "{}" {
        return None;
    }
    let mut cache = cache.lock().expect("policy cache lock");
    if let Some(policy) = cache.get(settings) {
        return policy.clone();
    }
    let policy = serde_json::from_str::<SubscriptionSettings>(settings)
        .ok()
        .and_then(|s| s.policy())
        .map(Arc::new);
    // Settings change rarely; a bound keeps a churn of subscriptions from growing it forever.
    if cache.len() >= 1024 {
        cache.clear();
    }
    cache.insert(settings.to_owned(), policy.clone());
    policy
}

/// A declarative-file entry that conflicts with a stored subscription; rolls the file back.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct ConflictInFile(String);

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

    fn spec(value: serde_json::Value) -> SubscriptionSpec {
        serde_json::from_value::<crate::fanout::spec::SubscriptionRequest>(value)
            .unwrap()
            .validate(&crate::fanout::spec::Validation {
                email_enabled: true,
                trusted: true,
            })
            .unwrap()
    }

    fn http_spec(url: &str) -> SubscriptionSpec {
        spec(serde_json::json!({"protocol": "http", "endpoint": url}))
    }

    fn order_publication(dedup: &str, currency: &str, total: &str) -> Publication {
        Publication {
            dedup_id: dedup.into(),
            subject: "OrderCreated".into(),
            message: serde_json::json!({"type": "OrderCreated", "order": {"currency": currency}})
                .to_string(),
            attributes: BTreeMap::from([
                (
                    "currency".to_owned(),
                    MessageAttribute::String(currency.into()),
                ),
                ("total".to_owned(), MessageAttribute::Number(total.into())),
            ]),
        }
    }

    /// Every due delivery of every subscription.
    async fn all_due(t: &SqliteTopic) -> Vec<DueDelivery> {
        let wants = t
            .subscription_ids()
            .await
            .unwrap()
            .into_iter()
            .map(|id| (id, 1000))
            .collect();
        t.due_for(wants, HashSet::new()).await.unwrap().0
    }

    async fn notifications_for(t: &SqliteTopic, subscription: &str) -> usize {
        let due = all_due(t).await;
        due.iter()
            .filter(|d| d.kind == DeliveryKind::Notification && d.subscription.id == subscription)
            .count()
    }

    /// A publication made while the delivery worker is busy (not waiting) still wakes it
    /// the next time it waits; a lost wake-up left deliveries idle for seconds.
    #[tokio::test]
    async fn a_publication_wakes_a_worker_that_was_not_yet_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let t = topic(&dir);
        t.subscribe(http_spec("http://127.0.0.1:9/hook"), Source::Api)
            .await
            .unwrap();
        // Take any wake-up the subscription itself left.
        let _ = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            t.delivery_notify().notified(),
        )
        .await;
        t.publish_batch(&[order_publication("m-1", "EUR", "1")])
            .await
            .into_iter()
            .for_each(|r| {
                r.unwrap();
            });
        tokio::time::timeout(
            std::time::Duration::from_secs(1),
            t.delivery_notify().notified(),
        )
        .await
        .expect("the wake-up was kept for the next wait");
    }

    #[tokio::test]
    async fn a_filter_policy_lets_only_matching_messages_through_and_counts_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let t = topic(&dir);
        let eur = t
            .subscribe(
                spec(serde_json::json!({"protocol": "queue", "endpoint": "eur", "filterPolicy": {"currency": ["EUR"]}})),
                Source::Api,
            )
            .await
            .unwrap();
        let body = t
            .subscribe(
                spec(serde_json::json!({"protocol": "queue", "endpoint": "usd", "filterPolicyScope": "MessageBody",
                    "filterPolicy": {"order": {"currency": ["USD"]}}})),
                Source::Api,
            )
            .await
            .unwrap();
        let all = t
            .subscribe(
                spec(serde_json::json!({"protocol": "log", "endpoint": "stdout"})),
                Source::Api,
            )
            .await
            .unwrap();
        assert_eq!(
            eur.status,
            SubscriptionStatus::Confirmed,
            "a queue needs no handshake"
        );
        for (i, currency) in ["EUR", "USD", "EUR", "GBP"].iter().enumerate() {
            t.publish(&order_publication(&format!("r{i}"), currency, "10"))
                .await
                .unwrap();
        }
        assert_eq!(notifications_for(&t, &eur.id).await, 2);
        assert_eq!(notifications_for(&t, &body.id).await, 1);
        assert_eq!(notifications_for(&t, &all.id).await, 4);
        let health = t.health().await.unwrap();
        let filtered = |id: &str| {
            health
                .iter()
                .find(|h| h.subscription.id == id)
                .unwrap()
                .deliveries
                .filtered
        };
        assert_eq!(
            (filtered(&eur.id), filtered(&body.id), filtered(&all.id)),
            (2, 3, 0)
        );
        assert_eq!(t.delivery_stats().await.unwrap().filtered, 5);
    }

    #[tokio::test]
    async fn a_failed_delivery_waits_in_the_dead_letter_store_until_redriven() {
        let dir = tempfile::tempdir().unwrap();
        let t = topic(&dir);
        let sub = t
            .subscribe(
                spec(serde_json::json!({"protocol": "queue", "endpoint": "q"})),
                Source::Api,
            )
            .await
            .unwrap();
        t.publish(&order_publication("r1", "EUR", "1"))
            .await
            .unwrap();
        let due = all_due(&t).await;
        t.mark_attempt_failed(due[0].id, "boom".into(), None)
            .await
            .unwrap();
        assert_eq!(notifications_for(&t, &sub.id).await, 0);
        let dead = t.dead_letters(sub.id.clone(), 10).await.unwrap().unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].last_error.as_deref(), Some("boom"));
        assert_eq!(dead[0].attempts, 1);
        assert!(dead[0].message.is_some());
        assert!(t.dead_letters("nope".into(), 10).await.unwrap().is_none());

        assert_eq!(
            t.redrive(sub.subscription_arn.clone(), None).await.unwrap(),
            Some(1)
        );
        assert!(
            t.dead_letters(sub.id.clone(), 10)
                .await
                .unwrap()
                .unwrap()
                .is_empty()
        );
        let due = all_due(&t).await;
        assert_eq!(due[0].attempts, 0, "a redriven delivery starts over");
    }

    #[tokio::test]
    async fn a_backlog_of_one_subscription_does_not_crowd_out_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let t = topic(&dir);
        let slow = t
            .subscribe(
                spec(serde_json::json!({"protocol": "queue", "endpoint": "slow"})),
                Source::Api,
            )
            .await
            .unwrap();
        for i in 0..50 {
            t.publish(&order_publication(&format!("early{i}"), "EUR", "1"))
                .await
                .unwrap();
        }
        let fast = t
            .subscribe(
                spec(serde_json::json!({"protocol": "queue", "endpoint": "fast"})),
                Source::Api,
            )
            .await
            .unwrap();
        t.publish(&order_publication("late", "EUR", "1"))
            .await
            .unwrap();
        let wants = vec![(slow.id.clone(), 4), (fast.id.clone(), 4)];
        let (due, _) = t.due_for(wants, HashSet::new()).await.unwrap();
        assert!(
            due.iter().any(|d| d.subscription.id == fast.id),
            "the fast subscription is served"
        );
        let slow_due: Vec<i64> = due
            .iter()
            .filter(|d| d.subscription.id == slow.id)
            .map(|d| d.id)
            .collect();
        assert_eq!(
            slow_due.len(),
            4,
            "each subscription gets at most what was asked"
        );
        let held: HashSet<i64> = slow_due.iter().copied().collect();
        let (next, _) = t
            .due_for(vec![(slow.id.clone(), 4)], held.clone())
            .await
            .unwrap();
        assert!(
            next.iter().all(|d| !held.contains(&d.id)) && next.len() == 4,
            "deliveries the worker holds are not read again"
        );
        let (due, _) = t
            .due_for(vec![(fast.id.clone(), 4)], HashSet::new())
            .await
            .unwrap();
        assert!(
            due.iter().all(|d| d.subscription.id == fast.id),
            "a saturated subscription is not asked for"
        );
    }

    #[tokio::test]
    async fn applying_the_file_creates_updates_replaces_and_removes_by_name_only_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let t = topic(&dir);
        let api = t
            .subscribe(http_spec("http://127.0.0.1:1/api"), Source::Api)
            .await
            .unwrap();
        let first = vec![
            spec(serde_json::json!({"name": "a", "protocol": "queue", "endpoint": "qa"})),
            spec(serde_json::json!({"name": "b", "protocol": "log", "endpoint": "stdout"})),
            spec(serde_json::json!({"name": "c", "protocol": "queue", "endpoint": "qc"})),
        ];
        let applied = t.apply_file(first.clone()).await.unwrap();
        assert_eq!(applied.created, ["a", "b", "c"]);
        assert_eq!(
            t.apply_file(first).await.unwrap().unchanged,
            ["a", "b", "c"]
        );

        let second = vec![
            spec(
                serde_json::json!({"name": "a", "protocol": "queue", "endpoint": "qa", "maxReceiveCount": 9}),
            ),
            spec(serde_json::json!({"name": "b", "protocol": "log", "endpoint": "other.jsonl"})),
        ];
        let applied = t.apply_file(second).await.unwrap();
        assert_eq!(applied.updated, ["a"]);
        assert_eq!(applied.replaced, ["b"]);
        assert_eq!(applied.removed, ["c"]);
        let names: Vec<_> = t
            .list()
            .await
            .unwrap()
            .into_iter()
            .map(|s| (s.name, s.managed_by))
            .collect();
        assert!(names.contains(&(None, Source::Api)), "{names:?}");
        assert_eq!(names.len(), 3, "{names:?}");
        assert!(t.get(api.id).await.unwrap().is_some());

        t.subscribe(
            spec(serde_json::json!({"protocol": "queue", "endpoint": "apiq"})),
            Source::Api,
        )
        .await
        .unwrap();
        let clash = vec![
            spec(
                serde_json::json!({"name": "a", "protocol": "queue", "endpoint": "qa", "maxReceiveCount": 9}),
            ),
            spec(serde_json::json!({"name": "z", "protocol": "queue", "endpoint": "apiq"})),
        ];
        assert!(matches!(
            t.apply_file(clash).await,
            Err(SubscribeError::Conflict(_))
        ));
        assert_eq!(
            t.list().await.unwrap().len(),
            4,
            "a failed file changes nothing"
        );
    }

    #[tokio::test]
    async fn a_confirmation_token_expires_after_three_days_and_can_ask_for_authenticated_unsubscribes()
     {
        use crate::fanout::tokens::CONFIRMATION_TOKEN_LIFETIME_MS;
        let dir = tempfile::tempdir().unwrap();
        let t = topic(&dir);
        let late = t
            .subscribe(http_spec("http://127.0.0.1:1/late"), Source::Api)
            .await
            .unwrap();
        let in_time = t
            .subscribe(http_spec("http://127.0.0.1:1/in-time"), Source::Api)
            .await
            .unwrap();
        let later = now_ms() + CONFIRMATION_TOKEN_LIFETIME_MS + 1;
        assert!(
            t.confirm_at(late.token.clone(), false, later)
                .await
                .unwrap()
                .is_none()
        );
        let late = t.get(late.id).await.unwrap().unwrap();
        assert_eq!(late.status, SubscriptionStatus::PendingConfirmation);

        let confirmed = t
            .confirm(in_time.token.clone(), true)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(confirmed.status, SubscriptionStatus::Confirmed);
        assert!(confirmed.settings.authenticate_on_unsubscribe);
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
            .subscribe(http_spec("http://127.0.0.1:1/a"), Source::Api)
            .await
            .unwrap();
        let _pending = t
            .subscribe(http_spec("http://127.0.0.1:1/b"), Source::Api)
            .await
            .unwrap();
        let c = t
            .confirm(confirmed.token.clone(), false)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(c.status, SubscriptionStatus::Confirmed);
        assert!(t.confirm("nope".into(), false).await.unwrap().is_none());

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

        let due = all_due(&t).await;
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

//! The orders topic: subscriptions with the SNS confirmation handshake, and a durable
//! delivery log that is retried until delivered.
//!
//! Publishing writes the message alone. Each confirmed subscription keeps a cursor into
//! the messages in publication order: the worker reads past it, applies the subscription's
//! filter policy, and sends; the cursor moves over each run of settled attempts in the
//! transaction that writes their rows (delivered, to retry, or dead-lettered). So a
//! notification costs one row write, not a pending row written and then updated; and what
//! a crash leaves between the cursor and the worker's progress is sent again (at least
//! once). Confirmation requests, retries and redriven dead letters are rows the worker
//! reads by their due time.

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

mod deliveries;
mod subscriptions;
#[cfg(test)]
mod tests;

/// The topic's ARN unless the engine is told its region and account: the seed's topic
/// name, as the AWS protocols (`orderflow serve`'s SNS API) name it by default.
pub const DEFAULT_TOPIC_ARN: &str = "arn:aws:sns:us-east-1:000000000000:POC-Topic";

/// The ARN the topic had before it was named like the AWS deployment's; subscription
/// links sent under it (`SubscribeURL`, `UnsubscribeURL`) keep working.
pub const LEGACY_TOPIC_ARN: &str = "arn:aws:sns:local:000000000000:orders";

/// The topic ARN of a subscription ARN (`<topic ARN>:<subscription id>`).
pub fn topic_of(subscription_arn: &str) -> &str {
    subscription_arn
        .rsplit_once(':')
        .map_or(subscription_arn, |(topic, _)| topic)
}

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

/// Where a delivery is kept: its own row (a confirmation request, a retry, a redriven dead
/// letter), or nowhere yet, as a first attempt at the message `seq` after its
/// subscription's cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryRef {
    Row(i64),
    Cursor(i64),
}

/// A delivery whose next attempt is due.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    pub source: DeliveryRef,
    pub kind: DeliveryKind,
    pub message_id: String,
    pub attempts: u32,
    pub created_at: i64,
    /// Shared by every due delivery of the subscription read together.
    pub subscription: Arc<Subscription>,
    /// Shared by every subscription's delivery of the message read together.
    pub message: Option<Arc<TopicMessage>>,
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

/// Parsed filter policies by their stored settings text, so the worker's reads parse each once.
type PolicyCache = Arc<Mutex<HashMap<String, Option<Arc<FilterPolicy>>>>>;

#[derive(Debug)]
pub struct SqliteTopic {
    pub(crate) db: Arc<Db>,
    pub(crate) delivery_notify: Arc<Notify>,
    policies: PolicyCache,
    /// See [`SqliteTopic::arn`].
    arn: Arc<str>,
}

fn fmt_ms(ms: i64) -> String {
    orderflow_core::time::from_millis(ms)
        .map(|t| orderflow_core::time::format(&t))
        .unwrap_or_default()
}

/// A subscription's (`?1`) latest delivery error, for its health. One state a side, so each
/// side reads its partial index and never the subscription's delivered history.
pub(crate) const LATEST_ERROR_SQL: &str = "SELECT last_error FROM (
         SELECT id, last_error FROM deliveries
         WHERE subscription_id = ?1 AND state = 'pending' AND last_error IS NOT NULL
         UNION ALL
         SELECT id, last_error FROM deliveries
         WHERE subscription_id = ?1 AND state = 'failed' AND last_error IS NOT NULL
     ) ORDER BY id DESC LIMIT 1";

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
    let arn: String = r.get(offset + 1)?;
    Ok(Subscription {
        id: r.get(offset)?,
        topic_arn: topic_of(&arn).to_owned(),
        subscription_arn: arn,
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
    topic_arn: &str,
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
    let arn = format!("{topic_arn}:{id}");
    let token = crate::fanout::tokens::new_token();
    let now = now_ms();
    let confirmed = !spec.protocol.needs_confirmation();
    let status = if confirmed {
        SubscriptionStatus::Confirmed
    } else {
        SubscriptionStatus::PendingConfirmation
    };
    let settings = serde_json::to_string(&spec.settings).expect("settings serialize");
    // Its cursor starts at the newest message: it gets what is published from now on (a
    // subscription that must confirm starts again when it does).
    c.execute(
        "INSERT INTO subscriptions (id, arn, protocol, endpoint, status, token, created_at, confirmed_at, name, settings, source,
                                    cursor, first_seq)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12)",
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
            source.as_str(),
            newest_message(c)?
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
        topic_arn: topic_arn.to_owned(),
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

/// The last `seq` given to a message (0 before the first). SQLite keeps it for the
/// AUTOINCREMENT key even once retention has pruned that message, when the table's own
/// `max(seq)` falls behind.
pub(crate) fn newest_message(c: &rusqlite::Connection) -> Result<i64, DbError> {
    Ok(c.prepare_cached(
        "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'topic_messages'), 0)",
    )?
    .query_row([], |r| r.get(0))?)
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
pub enum Settled {
    Delivered,
    /// Failed; try again at `at` (ms since the epoch).
    Retry {
        error: String,
        at: i64,
    },
    /// Failed for good: into the subscription's dead-letter store.
    Failed {
        error: String,
    },
}

/// One attempt's outcome, with what a first attempt's row is written from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryOutcome {
    pub source: DeliveryRef,
    pub subscription_id: String,
    pub message_id: String,
    /// When the delivery was first due: the message's publication.
    pub created_at: i64,
    /// When the attempt ended.
    pub at: i64,
    pub settled: Settled,
}

impl DeliveryOutcome {
    pub fn of(d: &DueDelivery, settled: Settled) -> Self {
        DeliveryOutcome {
            source: d.source,
            subscription_id: d.subscription.id.clone(),
            message_id: d.message_id.clone(),
            created_at: d.created_at,
            at: now_ms(),
            settled,
        }
    }
}

/// A subscription's cursor moving to `to`: the first attempts it passes, in order, and how
/// many messages its filter policy turned away on the way.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CursorAdvance {
    pub subscription_id: String,
    pub to: i64,
    pub filtered: u64,
    pub settled: Vec<DeliveryOutcome>,
}

/// What the worker asks of one subscription: up to `n` due deliveries; first attempts
/// after `after` (its own note of what it has read; `None`: the stored cursor), reading at
/// most `room` messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Want {
    pub subscription_id: String,
    pub n: usize,
    pub after: Option<i64>,
    pub room: usize,
}

/// How far a read went along one subscription's messages (`upto`, the last one read), with
/// the messages its filter policy turned away (settled at once, sent nowhere).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LaneRead {
    pub upto: i64,
    pub filtered: Vec<i64>,
    /// The read found every message there is, short of what it was allowed.
    pub reached_end: bool,
}

/// One read of due work.
#[derive(Debug, Clone, Default)]
pub struct Due {
    pub deliveries: Vec<DueDelivery>,
    /// Per confirmed subscription asked for.
    pub lanes: HashMap<String, LaneRead>,
    /// When the next not-yet-due retry falls due.
    pub next_due: Option<i64>,
}

fn message_from_row(r: &rusqlite::Row<'_>, message_id: &str) -> rusqlite::Result<TopicMessage> {
    let attributes: String = r.get(2)?;
    Ok(TopicMessage {
        message_id: message_id.to_owned(),
        subject: r.get(0)?,
        message: r.get(1)?,
        attributes: serde_json::from_str(&attributes).unwrap_or_default(),
        published_at: r.get(3)?,
    })
}

impl SqliteTopic {
    pub fn new(db: Arc<Db>) -> Self {
        SqliteTopic {
            db,
            delivery_notify: Arc::new(Notify::new()),
            policies: Arc::default(),
            arn: Arc::from(DEFAULT_TOPIC_ARN),
        }
    }

    /// The topic under another ARN (the region and account `orderflow serve` answers
    /// as); [`SqliteTopic::adopt_arn`] renames the stored subscriptions to match.
    pub fn with_arn(mut self, arn: &str) -> Self {
        self.arn = Arc::from(arn);
        self
    }

    /// The topic's ARN: what envelopes, headers and the SNS API name it.
    pub fn arn(&self) -> &str {
        &self.arn
    }

    /// Whether `arn` names this topic: its ARN, or the legacy one that links sent before
    /// it was renamed still carry.
    pub fn is_named(&self, arn: &str) -> bool {
        arn == self.arn() || arn == LEGACY_TOPIC_ARN
    }

    /// A subscription id or ARN as stored. A subscription ARN names its subscription by
    /// the id after its last `:`, so one made while the topic had another ARN (the legacy
    /// one, or another `--aws-region` or `--aws-account-id`), as links sent then carry it,
    /// names the same subscription: subscriptions are renamed with the topic.
    pub(crate) fn stored_key(&self, id_or_arn: String) -> String {
        let parts: Vec<&str> = id_or_arn.split(':').collect();
        match parts.as_slice() {
            ["arn", "aws", "sns", _, _, _, id] if !id.is_empty() => format!("{}:{id}", self.arn),
            _ => id_or_arn,
        }
    }

    /// Renames every stored subscription to `<this topic's ARN>:<id>`, so subscriptions
    /// made under another region, account or the legacy ARN are named as the topic is now.
    /// Returns how many were renamed.
    pub async fn adopt_arn(&self) -> Result<usize, DbError> {
        let arn = self.arn.to_string();
        self.db
            .write(move |c| {
                Ok(c.execute(
                    "UPDATE subscriptions SET arn = ?1 || ':' || id WHERE arn != ?1 || ':' || id",
                    params![arn],
                )?)
            })
            .await
    }

    /// Wakes the delivery worker when there is something new to send. It has one waiter, so
    /// every write signals with `notify_one`, which keeps the wake-up when the worker is
    /// between two waits (`notify_waiters` would drop it, and the worker would only find
    /// the work at its next timed poll).
    pub fn delivery_notify(&self) -> &Arc<Notify> {
        &self.delivery_notify
    }
}

#[async_trait]
impl Topic for SqliteTopic {
    /// Stores the message, which every confirmed subscription's cursor then reaches (see
    /// `delivery`): nothing is written per subscriber until an attempt settles. A publication whose `dedup_id` was seen before returns the first message id and
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
        let outcome = self
            .db
            .write_relaxed(move |c| {
                batch
                    .iter()
                    .map(|p| publish_in(c, p))
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
fn publish_in(c: &rusqlite::Connection, p: &Publication) -> Result<(String, bool), DbError> {
    let existing: Option<String> = c
        .prepare_cached("SELECT message_id FROM topic_messages WHERE dedup_id = ?1")?
        .query_row(params![p.dedup_id], |r| r.get(0))
        .optional()?;
    if let Some(id) = existing {
        return Ok((id, false));
    }
    // Time-ordered, like the queue's ids: appends to its unique index.
    let id = uuid::Uuid::now_v7().to_string();
    let now = now_ms();
    let attributes = serde_json::to_string(&p.attributes).expect("attributes serialize");
    c.prepare_cached(
        "INSERT INTO topic_messages (message_id, dedup_id, subject, message, attributes, published_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![id, p.dedup_id, p.subject, p.message, attributes, now])?;
    Ok((id, true))
}

/// The filter policy in a subscription's stored settings text, if it has one.
pub(crate) fn parse_policy(settings: &str) -> Option<FilterPolicy> {
    serde_json::from_str::<SubscriptionSettings>(settings)
        .ok()
        .and_then(|s| s.policy())
}

/// The subscription's filter policy, parsed once per distinct settings text.
pub(crate) fn policy_for(cache: &PolicyCache, settings: &str) -> Option<Arc<FilterPolicy>> {
    if settings == "{}" {
        return None;
    }
    let mut cache = cache.lock().expect("policy cache lock");
    if let Some(policy) = cache.get(settings) {
        return policy.clone();
    }
    let policy = parse_policy(settings).map(Arc::new);
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

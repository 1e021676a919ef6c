//! `queue` subscriptions: one durable pull queue per subscription with SQS semantics
//! (visibility timeout, receive count, its own dead-letter queue), read over HTTP.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use crate::db::{Db, DbError, now_ms};
use crate::fanout::spec::{DEFAULT_MAX_RECEIVE_COUNT, DEFAULT_VISIBILITY_TIMEOUT_SECONDS};
use crate::queue::{DeadLetter, Queue, QueueConfig, QueueStats, ReceivedMessage};
use crate::topic::{Subscription, pull_queue_name};

/// SQS: a receive waits at most 20 seconds for a message.
pub const MAX_WAIT: Duration = Duration::from_secs(20);

/// The pull queues of all `queue` subscriptions, on the engine's database.
#[derive(Debug)]
pub struct PullQueues {
    db: Arc<Db>,
    /// Wakes long-polling receives of a queue when a message is sent to it.
    arrivals: Mutex<HashMap<String, Arc<Notify>>>,
}

impl PullQueues {
    pub fn new(db: Arc<Db>) -> Self {
        PullQueues {
            db,
            arrivals: Mutex::new(HashMap::new()),
        }
    }

    fn arrivals(&self, name: &str) -> Arc<Notify> {
        let mut map = self.arrivals.lock().expect("arrivals lock");
        Arc::clone(map.entry(name.to_owned()).or_default())
    }

    /// The subscription's queue, with its visibility timeout or `visibility`.
    fn queue(&self, sub: &Subscription, visibility: Option<Duration>) -> Queue {
        let settings = &sub.settings;
        Queue::new(
            Arc::clone(&self.db),
            QueueConfig {
                name: pull_queue_name(&sub.endpoint),
                visibility_timeout: visibility.unwrap_or(Duration::from_secs(u64::from(
                    settings
                        .visibility_timeout_seconds
                        .unwrap_or(DEFAULT_VISIBILITY_TIMEOUT_SECONDS),
                ))),
                max_receive_count: settings
                    .max_receive_count
                    .unwrap_or(DEFAULT_MAX_RECEIVE_COUNT),
            },
        )
    }

    pub async fn send(
        &self,
        sub: &Subscription,
        body: String,
        attributes: BTreeMap<String, String>,
    ) -> Result<String, DbError> {
        let id = self.queue(sub, None).send(body, attributes).await?;
        self.arrivals(&sub.endpoint).notify_waiters();
        Ok(id)
    }

    /// Receives up to `max` messages (at most 10), waiting up to `wait` for the first.
    pub async fn receive(
        &self,
        sub: &Subscription,
        max: usize,
        visibility: Option<Duration>,
        wait: Duration,
    ) -> Result<Vec<ReceivedMessage>, DbError> {
        let queue = self.queue(sub, visibility);
        let arrivals = self.arrivals(&sub.endpoint);
        let deadline = tokio::time::Instant::now() + wait.min(MAX_WAIT);
        loop {
            let notified = arrivals.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let received = queue.receive(max).await?;
            if !received.messages.is_empty() || tokio::time::Instant::now() >= deadline {
                return Ok(received.messages);
            }
            // Also wake when an in-flight message's visibility timeout runs out.
            let until = received
                .next_visible_at
                .map(|at| {
                    tokio::time::Instant::now()
                        + Duration::from_millis((at - now_ms()).max(0) as u64)
                })
                .unwrap_or(deadline)
                .min(deadline);
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep_until(until) => {}
            }
        }
    }

    /// The subscription's queue itself, for what the methods here do not cover (the SQS
    /// wire protocol's visibility changes, purges and dead-letter queue).
    pub fn queue_of(&self, sub: &Subscription) -> Queue {
        self.queue(sub, None)
    }

    pub async fn delete(
        &self,
        sub: &Subscription,
        receipt_handles: Vec<String>,
    ) -> Result<usize, DbError> {
        self.queue(sub, None).delete(receipt_handles).await
    }

    pub async fn stats(&self, sub: &Subscription) -> Result<QueueStats, DbError> {
        self.queue(sub, None).stats().await
    }

    pub async fn dead_letters(&self, sub: &Subscription) -> Result<Vec<DeadLetter>, DbError> {
        self.queue(sub, None).dead_letters(1000).await
    }

    pub async fn redrive(
        &self,
        sub: &Subscription,
        message_ids: Option<Vec<String>>,
    ) -> Result<usize, DbError> {
        let n = self.queue(sub, None).redrive(message_ids).await?;
        self.arrivals(&sub.endpoint).notify_waiters();
        Ok(n)
    }
}

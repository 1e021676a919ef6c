//! Which SQS queues `orderflow serve` has, their stable names, URLs and ARNs, and the
//! engine queue behind each: the orders queue (`POC-Queue`, the seed's name) and its DLQ,
//! and every `queue` subscription's pull queue and its DLQ.

use std::time::Duration;

use orderflow_embedded::fanout::pull::MAX_WAIT;
use orderflow_embedded::queue::{Queue, QueueStats, ReceivedMessage};
use orderflow_embedded::topic::Subscription;
use orderflow_embedded::{DbError, Protocol};

use crate::AppState;
use crate::awsapi::AwsError;

/// The orders queue's SQS name: the seed template's queue.
pub const ORDERS_QUEUE: &str = "POC-Queue";
/// The orders queue's dead-letter queue.
pub const ORDERS_DLQ: &str = "POC-Queue-DLQ";
/// A subscription queue's DLQ is its name and this suffix (a subscription queue's own name
/// may not end in it, so the two never collide).
pub const SUBSCRIPTION_DLQ_SUFFIX: &str = "-dlq";

/// A receive on a queue nothing signals (the dead-letter queues) looks again this often.
const UNSIGNALLED_POLL: Duration = Duration::from_millis(250);

/// One of our queues, as an SQS request names it.
#[derive(Debug, Clone)]
pub enum Target {
    Orders,
    OrdersDlq,
    Subscription(Subscription),
    SubscriptionDlq(Subscription),
}

impl Target {
    pub fn name(&self) -> String {
        match self {
            Target::Orders => ORDERS_QUEUE.to_owned(),
            Target::OrdersDlq => ORDERS_DLQ.to_owned(),
            Target::Subscription(s) => s.endpoint.clone(),
            Target::SubscriptionDlq(s) => format!("{}{SUBSCRIPTION_DLQ_SUFFIX}", s.endpoint),
        }
    }

    /// This queue's DLQ, if it has one.
    pub fn dead_letter_queue(&self) -> Option<Target> {
        match self {
            Target::Orders => Some(Target::OrdersDlq),
            Target::Subscription(s) => Some(Target::SubscriptionDlq(s.clone())),
            _ => None,
        }
    }

    /// The queue whose redrive policy names this one as its DLQ, if this is a DLQ: each of
    /// our DLQs has exactly one source.
    pub fn dead_letter_source(&self) -> Option<Target> {
        match self {
            Target::OrdersDlq => Some(Target::Orders),
            Target::SubscriptionDlq(s) => Some(Target::Subscription(s.clone())),
            _ => None,
        }
    }

    /// Messages delivered by the topic carry typed attributes (`{"Type", "Value"}` JSON, as
    /// raw delivery stores them); the orders queue carries plain strings, which is what
    /// the store handler reads.
    pub fn typed_attributes(&self) -> bool {
        !matches!(self, Target::Orders | Target::OrdersDlq)
    }

    pub fn max_receive_count(&self, state: &AppState) -> Option<u32> {
        match self {
            Target::Orders => Some(state.engine.queue().config().max_receive_count),
            Target::Subscription(s) => Some(
                s.settings
                    .max_receive_count
                    .unwrap_or(orderflow_embedded::fanout::spec::DEFAULT_MAX_RECEIVE_COUNT),
            ),
            _ => None,
        }
    }

    /// The engine queue behind this one.
    pub fn queue(&self, state: &AppState) -> Queue {
        let orders = state.engine.queue();
        match self {
            Target::Orders => orders.with_visibility_timeout(orders.config().visibility_timeout),
            Target::OrdersDlq => orders.dead_letter_queue(),
            Target::Subscription(s) => state.engine.pull_queues().queue_of(s),
            Target::SubscriptionDlq(s) => {
                state.engine.pull_queues().queue_of(s).dead_letter_queue()
            }
        }
    }

    pub fn visibility_timeout(&self, state: &AppState) -> Duration {
        self.queue(state).config().visibility_timeout
    }

    pub async fn stats(&self, state: &AppState) -> Result<QueueStats, DbError> {
        self.queue(state).stats().await
    }

    /// Appends a message as a producer would on AWS: to the orders queue it enters the
    /// pipeline as an order from the API does (its store poller is woken).
    pub async fn send(
        &self,
        state: &AppState,
        body: String,
        attributes: std::collections::BTreeMap<String, String>,
    ) -> Result<String, DbError> {
        match self {
            Target::Orders => state.engine.queue().send(body, attributes).await,
            Target::Subscription(s) => state.engine.pull_queues().send(s, body, attributes).await,
            Target::OrdersDlq | Target::SubscriptionDlq(_) => {
                self.queue(state).send(body, attributes).await
            }
        }
    }

    /// Receives up to `max` messages, waiting up to `wait` for the first (long polling).
    pub async fn receive(
        &self,
        state: &AppState,
        max: usize,
        visibility: Option<Duration>,
        wait: Duration,
    ) -> Result<Vec<ReceivedMessage>, DbError> {
        if let Target::Subscription(s) = self {
            return state
                .engine
                .pull_queues()
                .receive(s, max, visibility, wait)
                .await;
        }
        let base = self.queue(state);
        let queue = match visibility {
            Some(v) => base.with_visibility_timeout(v),
            None => base,
        };
        let deadline = tokio::time::Instant::now() + wait.min(MAX_WAIT);
        let notify = std::sync::Arc::clone(queue.notify());
        loop {
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let received = queue.receive(max).await?;
            let now = tokio::time::Instant::now();
            if !received.messages.is_empty() || now >= deadline {
                return Ok(received.messages);
            }
            let until = (now + UNSIGNALLED_POLL).min(deadline);
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep_until(until) => {}
            }
        }
    }
}

/// Every queue, in a stable order: the orders queue and its DLQ, then each subscription
/// queue (by name) and its DLQ. A subscription named like the orders queue is not listed
/// (its pull queue is reached over our own routes only).
pub async fn all(state: &AppState) -> Result<Vec<Target>, AwsError> {
    let mut subscriptions: Vec<Subscription> = state
        .engine
        .topic()
        .list()
        .await
        .map_err(AwsError::internal)?
        .into_iter()
        .filter(|s| s.protocol == Protocol::Queue)
        .filter(|s| s.endpoint != ORDERS_QUEUE && s.endpoint != ORDERS_DLQ)
        .collect();
    subscriptions.sort_by(|a, b| a.endpoint.cmp(&b.endpoint));
    let mut targets = vec![Target::Orders, Target::OrdersDlq];
    for s in subscriptions {
        targets.push(Target::Subscription(s.clone()));
        targets.push(Target::SubscriptionDlq(s));
    }
    Ok(targets)
}

/// The queue named `name`, or `QueueDoesNotExist`.
pub async fn by_name(state: &AppState, name: &str) -> Result<Target, AwsError> {
    match name {
        ORDERS_QUEUE => return Ok(Target::Orders),
        ORDERS_DLQ => return Ok(Target::OrdersDlq),
        _ => {}
    }
    let (base, dlq) = match name.strip_suffix(SUBSCRIPTION_DLQ_SUFFIX) {
        Some(base) => (base, true),
        None => (name, false),
    };
    let sub = state
        .engine
        .topic()
        .by_queue(base.to_owned())
        .await
        .map_err(AwsError::internal)?
        .ok_or_else(AwsError::queue_does_not_exist)?;
    Ok(if dlq {
        Target::SubscriptionDlq(sub)
    } else {
        Target::Subscription(sub)
    })
}

/// Where queues are: the account's path under the address the client used, as AWS's
/// `https://sqs.<region>.amazonaws.com/<account>/<name>`.
#[derive(Debug, Clone)]
pub struct Addressing {
    pub base_url: String,
    pub region: String,
    pub account_id: String,
}

impl Addressing {
    pub fn url(&self, name: &str) -> String {
        format!("{}/{}/{name}", self.base_url, self.account_id)
    }

    pub fn arn(&self, name: &str) -> String {
        format!("arn:aws:sqs:{}:{}:{name}", self.region, self.account_id)
    }

    /// The queue name in a queue URL of this account (any host: the SDKs send the URL they
    /// were given, which may name this server by another address).
    pub fn name_in_url<'a>(&self, url: &'a str) -> Result<&'a str, AwsError> {
        let path = url
            .split_once("://")
            .map(|(_, rest)| rest.split_once('/').map_or("", |(_, path)| path))
            .unwrap_or(url)
            .trim_start_matches('/');
        match path.split_once('/') {
            Some((account, name)) if account == self.account_id && !name.contains('/') => Ok(name),
            _ => Err(AwsError::queue_does_not_exist()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addressing() -> Addressing {
        Addressing {
            base_url: "http://127.0.0.1:8080".into(),
            region: "us-east-1".into(),
            account_id: "000000000000".into(),
        }
    }

    #[test]
    fn a_queue_url_names_the_queue_only_under_this_account() {
        let a = addressing();
        assert_eq!(
            a.url("POC-Queue"),
            "http://127.0.0.1:8080/000000000000/POC-Queue"
        );
        assert_eq!(
            a.arn("POC-Queue"),
            "arn:aws:sqs:us-east-1:000000000000:POC-Queue"
        );
        assert_eq!(
            a.name_in_url("http://localhost:9/000000000000/POC-Queue")
                .unwrap(),
            "POC-Queue"
        );
        assert!(
            a.name_in_url("http://localhost:9/123456789012/POC-Queue")
                .is_err()
        );
        assert!(
            a.name_in_url("http://localhost:9/000000000000/a/b")
                .is_err()
        );
    }
}

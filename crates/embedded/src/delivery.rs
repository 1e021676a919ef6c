//! Delivers the topic's messages to every subscriber (HTTP in SNS's JSON envelope, e-mail,
//! pull queues, logs: see `fanout`), retrying with exponential backoff and jitter under each
//! subscription's policy, then keeping what still fails in that subscription's dead-letter
//! store; a slow subscriber never blocks the others.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use serde_json::{Map, Value, json};
use tokio::sync::{Semaphore, watch};

use crate::db::now_ms;
use crate::fanout::Deliverers;
use crate::topic::{DeliveryKind, DueDelivery, SqliteTopic, TOPIC_ARN};

#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    /// Base URL subscribers use to reach this server (`SubscribeURL`, `UnsubscribeURL`).
    pub public_url: String,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// Attempts before a delivery is marked failed (kept, and visible, not dropped).
    pub max_attempts: u32,
    pub request_timeout: Duration,
    pub max_in_flight: usize,
    pub max_in_flight_per_subscription: usize,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            public_url: "http://127.0.0.1:8080".into(),
            min_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(20),
            max_attempts: 100,
            request_timeout: Duration::from_secs(15),
            max_in_flight: 64,
            max_in_flight_per_subscription: 16,
        }
    }
}

impl DeliveryConfig {
    /// Delay before attempt `attempts + 1`: exponential, capped, with equal jitter.
    pub fn backoff(&self, attempts: u32) -> Duration {
        backoff(self.min_backoff, self.max_backoff, attempts)
    }

    /// The retry policy of one subscription: its own settings, else the server's.
    pub fn policy_for(&self, d: &DueDelivery) -> (u32, Duration, Duration) {
        let own = d.subscription.settings.delivery_policy.unwrap_or_default();
        let min = own
            .min_delay_ms
            .map_or(self.min_backoff, Duration::from_millis);
        let max = own
            .max_delay_ms
            .map_or(self.max_backoff, Duration::from_millis)
            .max(min);
        (own.max_attempts.unwrap_or(self.max_attempts), min, max)
    }
}

/// Exponential from `min`, capped at `max`, with equal jitter.
pub fn backoff(min: Duration, max: Duration, attempts: u32) -> Duration {
    let exp = min.saturating_mul(2u32.saturating_pow(attempts.min(20)));
    let capped = exp.min(max).max(min);
    let half = capped / 2;
    half + rand::rng().random_range(Duration::ZERO..=half)
}

fn timestamp(ms: i64) -> String {
    orderflow_core::time::from_millis(ms)
        .map(|t| orderflow_core::time::format(&t))
        .unwrap_or_default()
}

fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

pub fn subscribe_url(public_url: &str, token: &str) -> String {
    format!(
        "{}/subscriptions/confirm?Action=ConfirmSubscription&TopicArn={}&Token={}",
        public_url.trim_end_matches('/'),
        query_escape(TOPIC_ARN),
        query_escape(token)
    )
}

pub fn unsubscribe_url(public_url: &str, subscription_arn: &str) -> String {
    format!(
        "{}/subscriptions/unsubscribe?Action=Unsubscribe&SubscriptionArn={}",
        public_url.trim_end_matches('/'),
        query_escape(subscription_arn)
    )
}

/// The JSON body SNS would POST for this delivery.
pub fn envelope(d: &DueDelivery, public_url: &str) -> Value {
    match d.kind {
        DeliveryKind::SubscriptionConfirmation => json!({
            "Type": "SubscriptionConfirmation",
            "MessageId": d.message_id,
            "Token": d.subscription.token,
            "TopicArn": TOPIC_ARN,
            "Message": format!(
                "You have chosen to subscribe to the topic {TOPIC_ARN}.\nTo confirm the subscription, visit the SubscribeURL included in this message."
            ),
            "SubscribeURL": subscribe_url(public_url, &d.subscription.token),
            "Timestamp": timestamp(d.created_at),
        }),
        DeliveryKind::Notification => {
            let m = d.message.as_ref();
            let attributes: Map<String, Value> = m
                .map(|m| {
                    m.attributes
                        .iter()
                        .map(|(k, v)| {
                            (
                                k.clone(),
                                json!({"Type": v.data_type(), "Value": v.value()}),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            json!({
                "Type": "Notification",
                "MessageId": d.message_id,
                "TopicArn": TOPIC_ARN,
                "Subject": m.map(|m| m.subject.as_str()),
                "Message": m.map(|m| m.message.as_str()),
                "Timestamp": timestamp(m.map_or(d.created_at, |m| m.published_at)),
                "UnsubscribeURL": unsubscribe_url(public_url, &d.subscription.subscription_arn),
                "MessageAttributes": attributes,
            })
        }
    }
}

#[derive(Debug, Default)]
struct InFlight {
    ids: HashSet<i64>,
    per_subscription: HashMap<String, usize>,
}

/// Runs until shutdown; in-flight attempts finish or are retried after a restart.
pub async fn run_delivery_worker(
    topic: Arc<SqliteTopic>,
    deliverers: Arc<Deliverers>,
    config: DeliveryConfig,
    mut shutdown: watch::Receiver<bool>,
) {
    let in_flight = Arc::new(Mutex::new(InFlight::default()));
    let slots = Arc::new(Semaphore::new(config.max_in_flight));
    let notify = Arc::clone(topic.delivery_notify());
    while !*shutdown.borrow() {
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let (exclude, saturated) = {
            let f = in_flight.lock().expect("in-flight lock");
            let saturated: Vec<String> = f
                .per_subscription
                .iter()
                .filter(|(_, n)| **n >= config.max_in_flight_per_subscription)
                .map(|(id, _)| id.clone())
                .collect();
            (f.ids.clone(), saturated)
        };
        let free = slots.available_permits();
        let (due, next_due) = if free == 0 {
            (Vec::new(), None)
        } else {
            match topic
                .due(
                    free,
                    exclude,
                    saturated,
                    config.max_in_flight_per_subscription,
                )
                .await
            {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %orderflow_core::error_chain(&e), "could not read due deliveries");
                    (Vec::new(), Some(now_ms() + 1000))
                }
            }
        };
        let mut started = 0;
        for d in due {
            {
                let mut f = in_flight.lock().expect("in-flight lock");
                let n = f
                    .per_subscription
                    .entry(d.subscription.id.clone())
                    .or_default();
                if *n >= config.max_in_flight_per_subscription {
                    continue;
                }
                *n += 1;
                f.ids.insert(d.id);
            }
            let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
                release(&in_flight, &d);
                break;
            };
            started += 1;
            let (topic, deliverers, config, in_flight) = (
                Arc::clone(&topic),
                Arc::clone(&deliverers),
                config.clone(),
                Arc::clone(&in_flight),
            );
            tokio::spawn(async move {
                attempt(&topic, &deliverers, &config, &d).await;
                release(&in_flight, &d);
                drop(permit);
                topic.delivery_notify().notify_waiters();
            });
        }
        if started == 0 {
            let until = next_due.unwrap_or(now_ms() + 5_000);
            let wait = Duration::from_millis((until - now_ms()).clamp(0, 5_000) as u64);
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => {}
            }
        }
    }
}

fn release(in_flight: &Mutex<InFlight>, d: &DueDelivery) {
    let mut f = in_flight.lock().expect("in-flight lock");
    f.ids.remove(&d.id);
    if let Some(n) = f.per_subscription.get_mut(&d.subscription.id) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            f.per_subscription.remove(&d.subscription.id);
        }
    }
}

#[tracing::instrument(skip_all, fields(delivery = d.id, kind = d.kind.header_value(), protocol = d.subscription.protocol.as_str(), subscription = %d.subscription.id, attempt = d.attempts + 1))]
async fn attempt(
    topic: &SqliteTopic,
    deliverers: &Deliverers,
    config: &DeliveryConfig,
    d: &DueDelivery,
) {
    let result = match crate::fanout::deliver(deliverers, config, d).await {
        Ok(()) => {
            tracing::debug!("delivered");
            topic.mark_delivered(d.id).await
        }
        Err(error) => {
            let (max_attempts, min, max) = config.policy_for(d);
            let attempts = d.attempts + 1;
            let next = (attempts < max_attempts)
                .then(|| now_ms() + backoff(min, max, attempts - 1).as_millis() as i64);
            if next.is_some() {
                tracing::info!(%error, "delivery failed; will retry");
            } else {
                tracing::warn!(%error, attempts, "delivery failed for good; moved to the subscription's dead-letter store");
            }
            topic.mark_attempt_failed(d.id, error, next).await
        }
    };
    if let Err(e) = result {
        // The delivery stays pending and is attempted again: at least once, never dropped.
        tracing::error!(error = %orderflow_core::error_chain(&e), "could not record the delivery outcome");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_exponentially_within_bounds() {
        let c = DeliveryConfig {
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            ..DeliveryConfig::default()
        };
        for attempts in 0..30 {
            let d = c.backoff(attempts);
            assert!(
                d >= Duration::from_millis(50) && d <= Duration::from_secs(2),
                "{attempts}: {d:?}"
            );
        }
        assert!(c.backoff(0) <= Duration::from_millis(100));
        assert!(c.backoff(10) >= Duration::from_secs(1));
    }

    #[test]
    fn subscribe_url_escapes_the_topic_arn() {
        let url = subscribe_url("http://h:1/", "tok");
        assert_eq!(
            url,
            "http://h:1/subscriptions/confirm?Action=ConfirmSubscription&TopicArn=arn%3Aaws%3Asns%3Alocal%3A000000000000%3Aorders&Token=tok"
        );
    }
}

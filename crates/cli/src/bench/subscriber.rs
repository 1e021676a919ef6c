//! The bench's own HTTP subscriber: confirms its subscription and records when each
//! order's notification arrived, signed or not, and its duplicates.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::HeaderMap;
use serde_json::{Value, json};

use crate::BoxError;

/// Records when each order's notification arrived at our own subscriber.
#[derive(Debug, Default)]
pub struct Subscriber {
    pub delivered: Mutex<HashMap<String, Instant>>,
    pub confirmed: tokio::sync::Notify,
    pub duplicates: Mutex<usize>,
    /// Notifications that carried an SNS `Signature`, and those that did not: what the
    /// report says about signing is what arrived, not what was asked for.
    pub signed: AtomicUsize,
    pub unsigned: AtomicUsize,
}

impl Subscriber {
    /// The first arrival of an order's notification is its delivery; a repeat (delivery is
    /// at least once) only counts as a duplicate, so it cannot lengthen the order's time.
    pub fn record(&self, order_id: &str, at: Instant) {
        let mut delivered = self.delivered.lock().expect("lock");
        match delivered.entry(order_id.to_owned()) {
            std::collections::hash_map::Entry::Occupied(_) => {
                *self.duplicates.lock().expect("lock") += 1;
            }
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(at);
            }
        }
    }
}

pub async fn start_subscriber(
    client: reqwest::Client,
) -> Result<(String, Arc<Subscriber>), BoxError> {
    let sub = Arc::new(Subscriber::default());
    let state = (Arc::clone(&sub), client);
    let app = axum::Router::new()
        .route(
            "/hook",
            axum::routing::post(
                |axum::extract::State((sub, client)): axum::extract::State<(
                    Arc<Subscriber>,
                    reqwest::Client,
                )>,
                 headers: HeaderMap,
                 body: Bytes| async move {
                    let now = Instant::now();
                    let kind = headers
                        .get("x-amz-sns-message-type")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("");
                    let Ok(envelope) = serde_json::from_slice::<Value>(&body) else {
                        return axum::http::StatusCode::BAD_REQUEST;
                    };
                    match kind {
                        "SubscriptionConfirmation" => {
                            let confirmed = confirm(&client, &envelope).await;
                            if confirmed {
                                sub.confirmed.notify_one();
                            }
                        }
                        "Notification" => {
                            let counter = if envelope["Signature"]
                                .as_str()
                                .is_some_and(|s| !s.is_empty())
                            {
                                &sub.signed
                            } else {
                                &sub.unsigned
                            };
                            counter.fetch_add(1, Ordering::Relaxed);
                            let message: Value =
                                serde_json::from_str(envelope["Message"].as_str().unwrap_or("{}"))
                                    .unwrap_or_default();
                            if let Some(id) = message["order"]["orderID"].as_str() {
                                sub.record(id, now);
                            }
                        }
                        _ => {}
                    }
                    axum::http::StatusCode::OK
                },
            ),
        )
        .with_state(state);
    Ok((serve_hook(app).await?, sub))
}

/// Confirms the subscription a `SubscriptionConfirmation` envelope asks about, as a
/// subscriber does: a GET of its `SubscribeURL`. True once the server said yes.
pub async fn confirm(client: &reqwest::Client, envelope: &Value) -> bool {
    let Some(url) = envelope["SubscribeURL"].as_str() else {
        return false;
    };
    client
        .get(url)
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
}

/// Serves `app`, which routes `/hook`, on a free local port for the rest of the run; returns
/// the hook's URL.
pub async fn serve_hook(app: axum::Router) -> Result<String, BoxError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(url)
}

pub async fn wait_delivered(sub: &Subscriber, ids: &[String], timeout: Duration) -> usize {
    let deadline = Instant::now() + timeout;
    loop {
        let missing = {
            let d = sub.delivered.lock().expect("lock");
            ids.iter().filter(|id| !d.contains_key(*id)).count()
        };
        if missing == 0 || Instant::now() > deadline {
            return missing;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Starts the subscriber, subscribes it to the server at `url` over HTTP, and waits for it
/// to confirm; returns it and its subscription's ARN.
pub async fn subscribe(
    client: &reqwest::Client,
    url: &str,
) -> Result<(Arc<Subscriber>, String), BoxError> {
    let (hook, sub) = start_subscriber(client.clone()).await?;
    let confirmed = sub.confirmed.notified();
    let created = client
        .post(format!("{url}/subscriptions"))
        .header("content-type", "application/json")
        .body(json!({"protocol": "http", "endpoint": hook}).to_string())
        .send()
        .await?;
    if !created.status().is_success() {
        return Err(format!("could not subscribe: HTTP {}", created.status()).into());
    }
    let subscription_arn = created.json::<Value>().await?["subscriptionArn"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    tokio::time::timeout(Duration::from_secs(30), confirmed)
        .await
        .map_err(|_| "the subscriber was never asked to confirm")?;
    Ok((sub, subscription_arn))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_notification_counts_as_a_duplicate_and_keeps_the_first_arrival() {
        let sub = Subscriber::default();
        let first = Instant::now();
        sub.record("o-1", first);
        sub.record("o-1", first + Duration::from_secs(5));
        assert_eq!(sub.delivered.lock().unwrap()["o-1"], first);
        assert_eq!(*sub.duplicates.lock().unwrap(), 1);
    }
}

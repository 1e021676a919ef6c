//! `orderflow bench --fanout 1,10,100`: delivered notifications per second with N HTTP
//! subscribers, one round per N on the same server, so the rates compare within one run.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::HeaderMap;
use serde::Serialize;
use serde_json::{Value, json};

use super::closed_loop::post_orders;
use super::orders::order_bodies;
use super::server::urlencode;
use super::subscriber::{confirm, serve_hook};
use crate::BoxError;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FanoutRound {
    pub subscribers: usize,
    pub orders: usize,
    pub notifications: usize,
    /// From the first order sent to the last notification received.
    pub seconds: f64,
    pub notifications_per_second: f64,
    /// This round's rate over the one-subscriber round's (when there was one).
    pub to_one_subscriber: Option<f64>,
    /// RSA signatures the server made per order in this round (`orderflow_signatures_total`).
    pub signatures_per_order: Option<f64>,
}

/// Many endpoints on one listener: `/hook/{name}` confirms and counts notifications.
#[derive(Default)]
struct Hooks {
    confirmed: AtomicUsize,
    notifications: AtomicUsize,
}

async fn start_hooks(client: reqwest::Client) -> Result<(String, Arc<Hooks>), BoxError> {
    let hooks = Arc::new(Hooks::default());
    let state = (Arc::clone(&hooks), client);
    let app = axum::Router::new()
        .route(
            "/hook/{name}",
            axum::routing::post(
                |axum::extract::State((hooks, client)): axum::extract::State<(
                    Arc<Hooks>,
                    reqwest::Client,
                )>,
                 headers: HeaderMap,
                 body: Bytes| async move {
                    match headers
                        .get("x-amz-sns-message-type")
                        .and_then(|v| v.to_str().ok())
                    {
                        Some("SubscriptionConfirmation") => {
                            let envelope: Value = serde_json::from_slice(&body).unwrap_or_default();
                            if confirm(&client, &envelope).await {
                                hooks.confirmed.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Some("Notification") => {
                            hooks.notifications.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {}
                    }
                    axum::http::StatusCode::OK
                },
            ),
        )
        .with_state(state);
    Ok((serve_hook(app).await?, hooks))
}

async fn signatures(client: &reqwest::Client, url: &str) -> Option<f64> {
    let text = client
        .get(format!("{url}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("orderflow_signatures_total "))
        .and_then(|v| v.trim().parse().ok())
}

async fn wait_for(counter: &AtomicUsize, target: usize, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while counter.load(Ordering::Relaxed) < target {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    true
}

/// One round per entry of `subscribers`, each with about `notifications` notifications
/// (`notifications / N` orders, at least 50), its subscriptions removed after it.
pub async fn measure(
    client: &reqwest::Client,
    url: &str,
    subscribers: &[usize],
    notifications: usize,
    concurrency: usize,
) -> Result<Vec<FanoutRound>, BoxError> {
    let (base, hooks) = start_hooks(client.clone()).await?;
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let mut rounds: Vec<FanoutRound> = Vec::new();
    for (round, &n) in subscribers.iter().enumerate() {
        let n = n.max(1);
        let mut arns = Vec::with_capacity(n);
        let confirmed_before = hooks.confirmed.load(Ordering::Relaxed);
        for i in 0..n {
            let created = client
                .post(format!("{url}/subscriptions"))
                .header("content-type", "application/json")
                .body(
                    json!({"protocol": "http", "endpoint": format!("{base}/{round}-{i}")})
                        .to_string(),
                )
                .send()
                .await?;
            if !created.status().is_success() {
                return Err(format!(
                    "subscriber {i} of {n}: HTTP {} (serve --max-subscriptions or --max-confirmations-per-endpoint?)",
                    created.status()
                )
                .into());
            }
            arns.push(
                created.json::<Value>().await?["subscriptionArn"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            );
        }
        if !wait_for(
            &hooks.confirmed,
            confirmed_before + n,
            Duration::from_secs(60),
        )
        .await
        {
            return Err(format!("{n} subscribers were not all confirmed within 60 s").into());
        }
        let orders = (notifications / n).max(50);
        eprintln!("fan-out: {n} subscribers, {orders} orders");
        // Ids unique to the round: a repeated id is the same order, stored once and announced
        // once, so a second round of the same size would wait for notifications never due.
        let ids: Vec<String> = (0..orders)
            .map(|i| format!("{run}-f{round}x{n}-{i}"))
            .collect();
        let bodies = order_bodies(&ids);
        let signed_before = signatures(client, url).await;
        let received_before = hooks.notifications.load(Ordering::Relaxed);
        let started = Instant::now();
        let posted = post_orders(
            client,
            url,
            &format!("{n} subs"),
            &ids,
            &bodies,
            concurrency,
        )
        .await;
        let expected = received_before + posted.ok * n;
        let all = wait_for(&hooks.notifications, expected, Duration::from_secs(120)).await;
        let seconds = started.elapsed().as_secs_f64();
        let received = hooks.notifications.load(Ordering::Relaxed) - received_before;
        if !all || posted.errors > 0 {
            return Err(format!(
                "{n} subscribers: {received} of {} notifications, {} orders refused",
                posted.ok * n,
                posted.errors
            )
            .into());
        }
        let signatures_per_order = match (signed_before, signatures(client, url).await) {
            (Some(a), Some(b)) => Some((b - a) / posted.ok as f64),
            _ => None,
        };
        let per_second = received as f64 / seconds;
        let one = rounds
            .iter()
            .find(|r| r.subscribers == 1)
            .map(|r| r.notifications_per_second);
        rounds.push(FanoutRound {
            subscribers: n,
            orders: posted.ok,
            notifications: received,
            seconds,
            notifications_per_second: per_second,
            to_one_subscriber: one.map(|one| per_second / one),
            signatures_per_order,
        });
        for arn in arns {
            let _ = client
                .delete(format!("{url}/subscriptions/{}", urlencode(&arn)))
                .send()
                .await;
        }
    }
    Ok(rounds)
}

pub fn markdown(rounds: &[FanoutRound]) -> String {
    let mut out = String::from(
        "Fan-out: orders posted closed loop, until every subscriber has every notification:\n\n\
         | subscribers | orders | notifications | seconds | notifications/s | × one subscriber | signatures per order |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for r in rounds {
        out.push_str(&format!(
            "| {} | {} | {} | {:.2} | {:.0} | {} | {} |\n",
            r.subscribers,
            r.orders,
            r.notifications,
            r.seconds,
            r.notifications_per_second,
            r.to_one_subscriber
                .map_or_else(|| "-".into(), |x| format!("{x:.2}")),
            r.signatures_per_order
                .map_or_else(|| "?".into(), |x| format!("{x:.2}")),
        ));
    }
    out
}

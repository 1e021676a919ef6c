//! The closed-loop phases: a fixed number of requests with a fixed number in flight, as the
//! `/healthz` baseline and the durable ingest burst are measured.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use super::latency::Latency;
use super::orders::order_bodies;
use super::progress::progress;
use super::server::stats;
use super::subscriber::{Subscriber, wait_delivered};
use crate::BoxError;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClosedLoop {
    pub requests: usize,
    pub ok: usize,
    pub errors: usize,
    pub seconds: f64,
    pub per_second: f64,
    pub latency: Latency,
}

/// `n` requests, `concurrency` at a time; `make` builds request `i`.
pub async fn closed_loop(
    label: &str,
    n: usize,
    concurrency: usize,
    make: impl Fn(usize) -> reqwest::RequestBuilder,
    expect: reqwest::StatusCode,
    sent_at: Option<Arc<Mutex<HashMap<String, Instant>>>>,
    ids: &[String],
) -> ClosedLoop {
    let bar = progress(n as u64, label);
    let gate = Arc::new(Semaphore::new(concurrency));
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(n)));
    let errors = Arc::new(Mutex::new(0usize));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let permit = Arc::clone(&gate).acquire_owned().await.expect("semaphore");
        let request = make(i);
        let (latencies, errors, bar, sent_at) = (
            Arc::clone(&latencies),
            Arc::clone(&errors),
            bar.clone(),
            sent_at.clone(),
        );
        let id = ids.get(i).cloned();
        tasks.spawn(async move {
            let t0 = Instant::now();
            if let (Some(sent), Some(id)) = (&sent_at, &id) {
                sent.lock().expect("lock").insert(id.clone(), t0);
            }
            let ok = request.send().await.is_ok_and(|r| r.status() == expect);
            let dt = t0.elapsed();
            if ok {
                latencies.lock().expect("lock").push(dt);
            } else {
                *errors.lock().expect("lock") += 1;
            }
            bar.inc(1);
            drop(permit);
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let seconds = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let latencies = std::mem::take(&mut *latencies.lock().expect("lock"));
    let ok = latencies.len();
    ClosedLoop {
        requests: n,
        ok,
        errors: *errors.lock().expect("lock"),
        seconds,
        per_second: ok as f64 / seconds,
        latency: Latency::of(latencies),
    }
}

/// `POST /orders` of each of `bodies` (order `ids[i]`), `concurrency` at a time; a `202` is
/// success.
pub async fn post_orders(
    client: &reqwest::Client,
    url: &str,
    label: &str,
    ids: &[String],
    bodies: &[Bytes],
    concurrency: usize,
) -> ClosedLoop {
    let orders_url = format!("{url}/orders");
    closed_loop(
        label,
        ids.len(),
        concurrency,
        |i| {
            client
                .post(&orders_url)
                .header("content-type", "application/json")
                .body(bodies[i].clone())
        },
        reqwest::StatusCode::ACCEPTED,
        None,
        ids,
    )
    .await
}

/// What [`burst`] measured.
pub struct Burst {
    pub baseline: ClosedLoop,
    /// Measured again once the burst is drained, so a machine that got faster or slower
    /// during the run moves both sides of the ratio.
    pub baseline_after: ClosedLoop,
    pub ingest: ClosedLoop,
    pub drain: Value,
    /// Accepted orders not delivered within the drain's 300 s.
    pub undelivered: usize,
}

/// The ingest burst between two baselines: `GET /healthz`, then `orders` orders posted
/// `concurrency` at a time and drained (stored and delivered), then `GET /healthz` again.
pub async fn burst(
    client: &reqwest::Client,
    url: &str,
    sub: &Subscriber,
    orders: usize,
    concurrency: usize,
    run_id: &str,
) -> Result<Burst, BoxError> {
    eprintln!("baseline: GET /healthz x {orders} (concurrency {concurrency})");
    let healthz_url = format!("{url}/healthz");
    let measure_baseline = |label: &'static str| {
        closed_loop(
            label,
            orders,
            concurrency,
            |_| client.get(&healthz_url),
            reqwest::StatusCode::OK,
            None,
            &[],
        )
    };
    let baseline = measure_baseline("baseline").await;

    eprintln!("ingest: POST /orders x {orders} (concurrency {concurrency})");
    let ids: Vec<String> = (0..orders).map(|i| format!("{run_id}-c-{i}")).collect();
    // Bodies are built before the clock starts, so the client's own work stays out of the figure.
    let bodies = order_bodies(&ids);
    let stored_before = stats(client, url).await?["orders"]["stored"]
        .as_u64()
        .unwrap_or(0);
    let drain_started = Instant::now();
    let ingest = post_orders(client, url, "ingest", &ids, &bodies, concurrency).await;
    // What the pipeline stored while the burst was being accepted.
    let stored_during_ingest = stats(client, url).await?["orders"]["stored"]
        .as_u64()
        .unwrap_or(0)
        .saturating_sub(stored_before);
    // Drain: until every accepted order is stored and delivered.
    let mut stored_at = None;
    let deadline = Instant::now() + Duration::from_secs(300);
    let target = stored_before + ingest.ok as u64;
    while stored_at.is_none() && Instant::now() < deadline {
        let s = stats(client, url).await?;
        if s["orders"]["stored"].as_u64().unwrap_or(0) >= target {
            stored_at = Some(drain_started.elapsed());
        } else {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let undelivered = wait_delivered(sub, &ids, Duration::from_secs(300)).await;
    let delivered_at = drain_started.elapsed();
    eprintln!("baseline again, now that the burst is drained");
    let baseline_after = measure_baseline("baseline (after)").await;
    let drain = json!({
        "orders": ingest.ok,
        "storedDuringIngest": stored_during_ingest,
        "storedPerSecond": stored_at.map(|d| ingest.ok as f64 / d.as_secs_f64()),
        "deliveredPerSecond": ingest.ok as f64 / delivered_at.as_secs_f64(),
        "secondsUntilAllStored": stored_at.map(|d| d.as_secs_f64()),
        "secondsUntilAllDelivered": delivered_at.as_secs_f64(),
        "undelivered": undelivered,
    });
    Ok(Burst {
        baseline,
        baseline_after,
        ingest,
        drain,
        undelivered,
    })
}

//! `orderflow bench`: durable ingest, end-to-end latency and drain, each beside a baseline
//! measured in the same run against the same server (these machines are shared and noisy).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::HeaderMap;
use clap::Args;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::Semaphore;

use crate::BoxError;

mod fanout;
mod journey;
mod memory;
mod open_loop;
mod peer;
mod throughput;
mod verdict;
pub use journey::Journey;
pub use open_loop::OpenLoop;
#[cfg(test)]
pub use throughput::Throughput;

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Benchmark a running server instead of starting one (server RSS/startup are then not measured).
    #[arg(long, env = "ORDERFLOW_URL")]
    url: Option<String>,
    /// Orders for the closed-loop ingest phase (and requests for the baseline).
    #[arg(long, default_value_t = 20_000)]
    orders: usize,
    /// Requests in flight during closed-loop phases.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Offered rates (orders/s) for the open-loop end-to-end phases.
    #[arg(long, value_delimiter = ',', default_value = "250,500,1000,2000")]
    rates: Vec<u32>,
    /// Seconds each open-loop rate is offered.
    #[arg(long, default_value_t = 10)]
    rate_seconds: u64,
    /// Seconds an open-loop phase waits after its last send for its orders to be stored and
    /// delivered; what has not arrived by then is reported undelivered, and the run goes on.
    #[arg(long, default_value_t = 60)]
    drain_seconds: u64,
    /// Orders already stored before measuring (written straight into the fresh data directory).
    #[arg(long, default_value_t = 0)]
    preload: u64,
    /// A run that finishes in well under 30 seconds, to prove the benchmark works.
    #[arg(long)]
    quick: bool,
    /// Where the JSON, Markdown and SVG results are written.
    #[arg(long, default_value = "bench-results")]
    out_dir: PathBuf,
    /// Start the server with unsigned deliveries, to see what SNS-style signing costs.
    #[arg(long)]
    unsigned: bool,
    /// The started server's `--pipeline-nice` (0 runs the pipeline at the API's priority);
    /// its own default when not given.
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=19))]
    pipeline_nice: Option<u8>,
    /// The started server's `--burst-rate` (0: the drain never steps aside for a burst);
    /// its own default when not given.
    #[arg(long)]
    burst_rate: Option<u64>,
    /// Keep the server's data directory here instead of a temporary one.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Instead of the pipeline phases, compare SQS send-receive-delete cycles with a peer
    /// in one run: `moto` starts `moto_server`; otherwise the URL of a running server of
    /// SQS's JSON protocol.
    #[arg(long)]
    peer: Option<String>,
    /// The `moto_server` that `--peer moto` starts (default: `.venv/bin/moto_server` when it
    /// exists, else the one on PATH).
    #[arg(long)]
    moto_server: Option<PathBuf>,
    /// Cycles against each side with `--peer`.
    #[arg(long, default_value_t = 2_000)]
    peer_cycles: usize,
    /// The access key id `--peer` signs with (our server checks signatures only with
    /// `--api-key`; moto never does).
    #[arg(long, default_value = "test")]
    peer_access_key_id: String,
    /// The secret access key `--peer` signs with.
    #[arg(long, default_value = "test", hide_default_value = true)]
    peer_secret: String,
    /// The region `--peer` signs for.
    #[arg(long, default_value = "us-east-1")]
    peer_region: String,
    /// Instead of the pipeline phases, measure delivered notifications/s with each of these
    /// numbers of HTTP subscribers (e.g. `1,10,100`), one round each on the same server.
    #[arg(long, value_delimiter = ',')]
    fanout: Vec<usize>,
    /// Notifications each `--fanout` round aims at (orders = this / subscribers, at least 50).
    #[arg(long, default_value_t = 20_000)]
    fanout_notifications: usize,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Latency {
    pub count: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    fn of(mut samples: Vec<Duration>) -> Latency {
        samples.sort();
        let pick = |q: f64| -> f64 {
            if samples.is_empty() {
                return 0.0;
            }
            let i = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
            samples[i].as_secs_f64() * 1000.0
        };
        Latency {
            count: samples.len(),
            p50_ms: pick(0.50),
            p99_ms: pick(0.99),
            max_ms: samples.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
        }
    }
}

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

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub machine: Value,
    pub settings: Value,
    pub startup_to_healthy_ms: Option<f64>,
    /// Measured before the ingest phase.
    pub baseline: ClosedLoop,
    /// Measured again once the ingest burst is drained, so a machine that got faster or
    /// slower during the run moves both sides of the ratio.
    pub baseline_after: ClosedLoop,
    pub ingest: ClosedLoop,
    pub ingest_to_baseline_ratio: f64,
    pub drain: Value,
    pub end_to_end: Vec<OpenLoop>,
    /// Issue 17's "3,000 orders/s for 60 s" target, judged from `end_to_end`.
    pub sustained_rate_target: throughput::TargetVerdict,
    pub server_peak_rss_mib: Option<f64>,
    /// The server's RSS over the run, sampled from `/proc` (a server the bench started).
    pub memory: Option<memory::MemoryReport>,
    pub disk_bytes_per_order: Option<f64>,
    pub preloaded_orders: u64,
    /// What the subscriber received, counted as it arrived.
    pub notifications: Notifications,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Notifications {
    pub signed: usize,
    pub unsigned: usize,
    pub duplicates: usize,
}

/// Records when each order's notification arrived at our own subscriber.
#[derive(Debug, Default)]
struct Subscriber {
    delivered: Mutex<HashMap<String, Instant>>,
    confirmed: tokio::sync::Notify,
    duplicates: Mutex<usize>,
    /// Notifications that carried an SNS `Signature`, and those that did not: what the
    /// report says about signing is what arrived, not what was asked for.
    signed: AtomicUsize,
    unsigned: AtomicUsize,
}

impl Subscriber {
    /// The first arrival of an order's notification is its delivery; a repeat (delivery is
    /// at least once) only counts as a duplicate, so it cannot lengthen the order's time.
    fn record(&self, order_id: &str, at: Instant) {
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

async fn start_subscriber(client: reqwest::Client) -> Result<(String, Arc<Subscriber>), BoxError> {
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
                            if let Some(url) = envelope["SubscribeURL"].as_str()
                                && client
                                    .get(url)
                                    .send()
                                    .await
                                    .is_ok_and(|r| r.status().is_success())
                            {
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
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((url, sub))
}

struct Server {
    url: String,
    child: Option<tokio::process::Child>,
    data_dir: Option<PathBuf>,
    _temp: Option<tempfile::TempDir>,
    startup: Option<Duration>,
}

async fn start_server(args: &BenchArgs, client: &reqwest::Client) -> Result<Server, BoxError> {
    if let Some(url) = &args.url {
        return Ok(Server {
            url: url.trim_end_matches('/').to_owned(),
            child: None,
            data_dir: None,
            _temp: None,
            startup: None,
        });
    }
    let (temp, dir) = match &args.data_dir {
        Some(d) => (None, d.clone()),
        None => {
            let t = tempfile::Builder::new()
                .prefix("orderflow-bench-")
                .tempdir()?;
            let p = t.path().join("data");
            (Some(t), p)
        }
    };
    if args.preload > 0 {
        eprintln!(
            "preloading {} stored orders into {} ...",
            args.preload,
            dir.display()
        );
        let started = Instant::now();
        orderflow_embedded::preload::preload_orders(&dir, args.preload)?;
        eprintln!("preloaded in {:.1}s", started.elapsed().as_secs_f64());
    }
    let exe = std::env::current_exe()?;
    let started = Instant::now();
    let mut child = tokio::process::Command::new(exe)
        .args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
        .arg(&dir)
        .args([
            "--delivery-min-backoff-ms",
            "50",
            "--delivery-max-backoff-ms",
            "1000",
            "--sign-deliveries",
            if args.unsigned { "false" } else { "true" },
            // The open-loop phases keep every late request on its own connection; the
            // connection cap would turn an overload into refusals instead of measuring it.
            "--max-connections",
            "100000",
            // `--fanout` subscribes up to a hundred hooks on one local listener: one
            // confirmation target (scheme, host and port), which the mail-bomb guard would
            // otherwise hold to three confirmations an hour.
            "--max-confirmations-per-endpoint",
            "100000",
        ])
        .args(
            args.pipeline_nice
                .map(|n| vec!["--pipeline-nice".to_owned(), n.to_string()])
                .unwrap_or_default(),
        )
        .args(
            args.burst_rate
                .map(|n| vec!["--burst-rate".to_owned(), n.to_string()])
                .unwrap_or_default(),
        )
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let url = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await? {
            if let Some(rest) = line.split("listening on ").nth(1) {
                return Ok::<_, std::io::Error>(
                    rest.split_whitespace().next().unwrap_or("").to_owned(),
                );
            }
        }
        Err(std::io::Error::other("server exited before listening"))
    })
    .await
    .map_err(|_| "server did not start within 30s")??;
    // Healthy: the first 200 from /healthz.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if client
            .get(format!("{url}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            break;
        }
        if Instant::now() > deadline {
            return Err("server never became healthy".into());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let startup = started.elapsed();
    Ok(Server {
        url,
        child: Some(child),
        data_dir: Some(dir),
        _temp: temp,
        startup: Some(startup),
    })
}

fn order_body(id: &str, i: usize) -> String {
    json!({
        "orderID": id,
        "customerId": format!("bench-{}", i % 1000),
        "customerEmail": "bench@example.com",
        "items": [
            {"sku": "SKU-1", "quantity": 1 + (i % 5), "unitPrice": 19.99},
            {"sku": "SKU-2", "quantity": 2, "unitPrice": 0.5}
        ],
        "currency": "EUR",
        "shippingAddress": {"line1": "1 Main St", "city": "Berlin", "postalCode": "10115", "country": "DE"}
    })
    .to_string()
}

/// One order body per id, built before any clock starts.
fn order_bodies(ids: &[String]) -> Vec<Bytes> {
    ids.iter()
        .enumerate()
        .map(|(i, id)| Bytes::from(order_body(id, i)))
        .collect()
}

fn progress(total: u64, label: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg:>12} [{bar:40}] {pos}/{len} {per_sec} eta {eta}",
        )
        .expect("template")
        .progress_chars("=> "),
    );
    bar.set_message(label.to_owned());
    bar
}

/// `n` requests, `concurrency` at a time; `make` builds request `i`.
async fn closed_loop(
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

async fn wait_delivered(sub: &Subscriber, ids: &[String], timeout: Duration) -> usize {
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

/// The order's journey from the server, or what went wrong reading it.
async fn order_trace(client: &reqwest::Client, url: &str, id: &str) -> Value {
    let read = async {
        client
            .get(format!("{url}/orders/{}/trace", urlencode(id)))
            .send()
            .await?
            .error_for_status()?
            .json::<Value>()
            .await
    };
    read.await
        .unwrap_or_else(|e| json!({"error": orderflow_core::error_chain(&e)}))
}

fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn dir_size(path: &Path) -> u64 {
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_size(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map(|kib| (kib / 1024.0 / 1024.0 * 10.0).round() / 10.0);
    json!({
        "cpu": cpu,
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "memoryGiB": mem_gib,
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
        "build": if cfg!(debug_assertions) { "debug" } else { "release" },
        "date": orderflow_core::time::format(&chrono_now()),
    })
}

fn chrono_now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

pub async fn run(mut args: BenchArgs) -> Result<ExitCode, BoxError> {
    if args.quick {
        args.orders = args.orders.min(2_000);
        args.rates = vec![200, 500];
        args.rate_seconds = 2;
    }
    if args.concurrency == 0 || args.orders == 0 {
        return Err("--orders and --concurrency must be at least 1".into());
    }
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency.max(64))
        .timeout(Duration::from_secs(30))
        .build()?;
    let server = start_server(&args, &client).await?;
    let url = server.url.clone();
    if let Some(peer) = &args.peer {
        let settings = peer::PeerSettings {
            peer: peer.clone(),
            moto_server: args.moto_server.clone(),
            cycles: if args.quick {
                args.peer_cycles.min(200)
            } else {
                args.peer_cycles
            },
            concurrency: args.concurrency.min(16),
            region: args.peer_region.clone(),
            access_key_id: args.peer_access_key_id.clone(),
            secret: args.peer_secret.clone(),
        };
        let report = peer::compare(&client, &url, &settings).await;
        stop_server(server).await;
        let report = report?;
        let markdown = peer::markdown(&report);
        std::fs::create_dir_all(&args.out_dir)?;
        std::fs::write(
            args.out_dir.join("peer.json"),
            serde_json::to_string_pretty(&report)?,
        )?;
        std::fs::write(args.out_dir.join("peer.md"), &markdown)?;
        println!("{markdown}");
        let failed = report.ours.errors + report.peer_run.errors;
        return Ok(if failed == 0 {
            ExitCode::SUCCESS
        } else {
            eprintln!("warning: {failed} cycles failed");
            ExitCode::FAILURE
        });
    }
    if !args.fanout.is_empty() {
        let notifications = if args.quick {
            args.fanout_notifications.min(600)
        } else {
            args.fanout_notifications
        };
        let rounds =
            fanout::measure(&client, &url, &args.fanout, notifications, args.concurrency).await;
        stop_server(server).await;
        let rounds = rounds?;
        let markdown = fanout::markdown(&rounds);
        std::fs::create_dir_all(&args.out_dir)?;
        std::fs::write(
            args.out_dir.join("fanout.json"),
            serde_json::to_string_pretty(&rounds)?,
        )?;
        std::fs::write(args.out_dir.join("fanout.md"), &markdown)?;
        println!("{markdown}");
        return Ok(ExitCode::SUCCESS);
    }
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();

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
    let sampler = server
        .child
        .as_ref()
        .and_then(|c| c.id())
        .map(|pid| memory::Sampler::start(pid, &client, &url));

    eprintln!(
        "baseline: GET /healthz x {} (concurrency {})",
        args.orders, args.concurrency
    );
    let healthz_url = format!("{url}/healthz");
    let measure_baseline = |label: &'static str| {
        closed_loop(
            label,
            args.orders,
            args.concurrency,
            |_| client.get(&healthz_url),
            reqwest::StatusCode::OK,
            None,
            &[],
        )
    };
    let baseline = measure_baseline("baseline").await;

    eprintln!(
        "ingest: POST /orders x {} (concurrency {})",
        args.orders, args.concurrency
    );
    let ids: Vec<String> = (0..args.orders)
        .map(|i| format!("{run_id}-c-{i}"))
        .collect();
    // Bodies are built before the clock starts, so the client's own work stays out of the figure.
    let bodies = order_bodies(&ids);
    let orders_url = format!("{url}/orders");
    let stored_before = stats(&client, &url).await?["orders"]["stored"]
        .as_u64()
        .unwrap_or(0);
    let drain_started = Instant::now();
    let ingest = closed_loop(
        "ingest",
        args.orders,
        args.concurrency,
        |i| {
            client
                .post(&orders_url)
                .header("content-type", "application/json")
                .body(bodies[i].clone())
        },
        reqwest::StatusCode::ACCEPTED,
        None,
        &ids,
    )
    .await;
    // What the pipeline stored while the burst was being accepted.
    let stored_during_ingest = stats(&client, &url).await?["orders"]["stored"]
        .as_u64()
        .unwrap_or(0)
        .saturating_sub(stored_before);
    // Drain: until every accepted order is stored and delivered.
    let mut stored_at = None;
    let deadline = Instant::now() + Duration::from_secs(300);
    let target = stored_before + ingest.ok as u64;
    while stored_at.is_none() && Instant::now() < deadline {
        let s = stats(&client, &url).await?;
        if s["orders"]["stored"].as_u64().unwrap_or(0) >= target {
            stored_at = Some(drain_started.elapsed());
        } else {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let undelivered = wait_delivered(&sub, &ids, Duration::from_secs(300)).await;
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

    let mut end_to_end = Vec::new();
    for &rate in &args.rates {
        eprintln!(
            "end to end: {rate} orders/s offered for {}s",
            args.rate_seconds
        );
        let phase = open_loop::phase(
            &client,
            &url,
            &sub,
            rate,
            args.rate_seconds,
            Duration::from_secs(args.drain_seconds),
            &run_id,
        )
        .await?;
        eprintln!("{}", open_loop::summary(&phase));
        end_to_end.push(phase);
    }
    let burst_rate = match (&args.url, args.burst_rate) {
        (Some(_), _) => None,
        (None, rate) => Some(rate.unwrap_or(orderflow_embedded::burst::DEFAULT_BURST_RATE)),
    };
    let sustained_rate_target = throughput::sustained_rate_verdict(
        &end_to_end
            .iter()
            .map(|e| throughput::PhaseOutcome {
                offered_per_second: e.offered_per_second,
                sent: e.sent,
                throughput: &e.throughput,
                end_to_end_p99_ms: e.end_to_end.p99_ms,
            })
            .collect::<Vec<_>>(),
        args.rate_seconds,
        burst_rate,
    );

    let memory = match sampler {
        Some(s) => Some(s.finish().await),
        None => None,
    };
    let server_peak_rss_mib = server
        .child
        .as_ref()
        .and_then(|c| c.id())
        .and_then(peak_rss_mib);
    let final_stats = stats(&client, &url).await?;
    let stored = final_stats["orders"]["stored"].as_u64().unwrap_or(0);
    let disk_bytes_per_order = server
        .data_dir
        .as_deref()
        .filter(|_| stored > 0)
        .map(|d| dir_size(d) as f64 / stored as f64);
    let _ = client
        .delete(format!(
            "{url}/subscriptions/{}",
            urlencode(&subscription_arn)
        ))
        .send()
        .await;

    let report = Report {
        machine: machine(),
        settings: json!({
            "orders": args.orders, "concurrency": args.concurrency, "rates": args.rates,
            "rateSeconds": args.rate_seconds, "drainSeconds": args.drain_seconds, "keptUpShare": throughput::KEPT_UP_SHARE, "quick": args.quick, "signDeliveries": !args.unsigned, "pipelineNice": args.pipeline_nice.unwrap_or(orderflow_embedded::DEFAULT_PIPELINE_NICE), "burstRate": args.burst_rate.unwrap_or(orderflow_embedded::burst::DEFAULT_BURST_RATE), "target": args.url.clone().unwrap_or_else(|| "fresh server".into()),
        }),
        startup_to_healthy_ms: server.startup.map(|d| d.as_secs_f64() * 1000.0),
        ingest_to_baseline_ratio: ingest.per_second
            / ((baseline.per_second + baseline_after.per_second) / 2.0).max(f64::MIN_POSITIVE),
        baseline,
        baseline_after,
        ingest,
        drain,
        end_to_end,
        sustained_rate_target,
        server_peak_rss_mib,
        memory,
        disk_bytes_per_order,
        preloaded_orders: args.preload,
        notifications: Notifications {
            signed: sub.signed.load(Ordering::Relaxed),
            unsigned: sub.unsigned.load(Ordering::Relaxed),
            duplicates: *sub.duplicates.lock().expect("lock"),
        },
    };
    let markdown = markdown(&report);
    std::fs::create_dir_all(&args.out_dir)?;
    std::fs::write(
        args.out_dir.join("bench.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    std::fs::write(args.out_dir.join("bench.md"), &markdown)?;
    crate::chart::latency_chart(&report.end_to_end, &args.out_dir.join("latency.svg"))?;
    crate::chart::throughput_chart(&report.end_to_end, &args.out_dir.join("throughput.svg"))?;
    println!("{markdown}");
    eprintln!(
        "wrote {}/bench.json, bench.md, latency.svg and throughput.svg",
        args.out_dir.display()
    );

    stop_server(server).await;
    let lost = report.ingest.errors
        + report
            .end_to_end
            .iter()
            .map(|e| e.sent - e.accepted)
            .sum::<usize>();
    let undelivered_total = undelivered
        + report
            .end_to_end
            .iter()
            .map(|e| e.undelivered)
            .sum::<usize>();
    if lost > 0 || undelivered_total > 0 {
        eprintln!(
            "warning: {lost} orders not accepted, {undelivered_total} accepted orders not delivered in time"
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Stops a server the bench started (SIGTERM, as an operator would), waiting up to 10 s.
async fn stop_server(server: Server) {
    if let Some(mut child) = server.child {
        if let Some(pid) = child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn stats(client: &reqwest::Client, url: &str) -> Result<Value, BoxError> {
    Ok(client
        .get(format!("{url}/stats"))
        .send()
        .await?
        .json()
        .await?)
}

fn ms(v: f64) -> String {
    format!("{v:.2}")
}

pub fn markdown(r: &Report) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "Machine: {} ({} cores, {} GiB), {} build, {}\n\n",
        r.machine["cpu"].as_str().unwrap_or("?"),
        r.machine["cores"],
        r.machine["memoryGiB"],
        r.machine["build"].as_str().unwrap_or("?"),
        r.machine["date"].as_str().unwrap_or("?"),
    ));
    if r.settings["target"] == "fresh server" {
        out.push_str(&format!(
            "Server pipeline priority: `--pipeline-nice {}`; the drain steps aside for bursts from `--burst-rate {}` orders/s (0: never).\n\n",
            r.settings["pipelineNice"], r.settings["burstRate"]
        ));
    }
    let n = &r.notifications;
    out.push_str(&format!(
        "Notifications received: {} signed (SNS SignatureVersion 2), {} unsigned.\n\n",
        n.signed, n.unsigned
    ));
    if r.preloaded_orders > 0 {
        out.push_str(&format!(
            "Store preloaded with {} orders.\n\n",
            r.preloaded_orders
        ));
    }
    out.push_str("| measure | value |\n|---|---|\n");
    out.push_str(&format!(
        "| baseline `GET /healthz` | {:.0} req/s before ingest (p50 {} ms, p99 {} ms), {:.0} req/s after the drain (p50 {} ms, p99 {} ms) |\n",
        r.baseline.per_second,
        ms(r.baseline.latency.p50_ms),
        ms(r.baseline.latency.p99_ms),
        r.baseline_after.per_second,
        ms(r.baseline_after.latency.p50_ms),
        ms(r.baseline_after.latency.p99_ms)
    ));
    out.push_str(&format!(
        "| durable ingest `POST /orders` (202, fsync'd) | {:.0} orders/s (p50 {} ms, p99 {} ms, max {} ms), {} errors |\n",
        r.ingest.per_second,
        ms(r.ingest.latency.p50_ms),
        ms(r.ingest.latency.p99_ms),
        ms(r.ingest.latency.max_ms),
        r.ingest.errors
    ));
    out.push_str(&format!(
        "| ingest / baseline (mean of both) | {:.2} |\n",
        r.ingest_to_baseline_ratio
    ));
    out.push_str(&format!(
        "| pipeline drain (from the burst's start) | {:.0} stored/s, {:.0} delivered/s; {} of {} stored while the burst was accepted |\n",
        r.drain["storedPerSecond"].as_f64().unwrap_or(0.0),
        r.drain["deliveredPerSecond"].as_f64().unwrap_or(0.0),
        r.drain["storedDuringIngest"],
        r.drain["orders"]
    ));
    if let Some(s) = r.startup_to_healthy_ms {
        out.push_str(&format!("| startup to healthy | {} ms |\n", ms(s)));
    }
    if let Some(m) = r.server_peak_rss_mib {
        out.push_str(&format!("| server peak RSS | {m:.1} MiB |\n"));
    }
    if let Some(m) = &r.memory {
        out.push_str(&format!(
            "| server RSS after {}k orders / after the run | {} / {} MiB; steady memory: {} ({}) |\n",
            memory::REFERENCE_ORDERS / 1000,
            m.rss_at_reference_mib.map_or("-".into(), |v| format!("{v:.1}")),
            m.rss_after_run_mib.map_or("-".into(), |v| format!("{v:.1}")),
            m.verdict.as_str(),
            m.why
        ));
    }
    if let Some(b) = r.disk_bytes_per_order {
        out.push_str(&format!("| bytes on disk per stored order | {b:.0} |\n"));
    }
    out.push_str(&format!(
        "| duplicate deliveries seen | {} |\n",
        n.duplicates
    ));
    out.push_str(&open_loop::markdown(
        &r.end_to_end,
        &r.sustained_rate_target,
        &r.settings,
    ));
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_the_nearest_rank() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let l = Latency::of(samples);
        assert_eq!((l.p50_ms, l.p99_ms, l.max_ms), (50.0, 99.0, 100.0));
        assert_eq!(Latency::of(vec![]).count, 0);
    }

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

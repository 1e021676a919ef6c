//! Cold starts of Lambda bootstraps under a local Lambda Runtime API: for each start, the
//! time from spawning the process to its first `GET .../invocation/next` (ready for an
//! event), to its `POST .../response` for that first event, and its peak RSS. The functions
//! take turns, so a noisy machine slows all of them alike.

mod sandbox;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use clap::Parser;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;
use tokio::sync::watch;

/// Starts each function N times under a Runtime API on 127.0.0.1, sends it one SQS event
/// and writes the figures as JSON and Markdown.
#[derive(Debug, Parser)]
#[command(name = "lambda-bench")]
struct Args {
    /// `NAME=COMMAND` (the command split on whitespace); the first is the one measured
    /// against the others. Repeat for each function.
    #[arg(long = "function", required = true, value_parser = parse_function)]
    functions: Vec<(String, Vec<String>)>,
    /// `KEY=VALUE` for every function's environment (nothing else is inherited).
    #[arg(long = "env", value_parser = parse_pair)]
    env: Vec<(String, String)>,
    /// Measured cold starts per function.
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// Unmeasured starts per function first (page cache, the emulator's first request).
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Writes `<out>.json` and `<out>.md`.
    #[arg(long, default_value = "bench-results/lambda-startup")]
    out: String,
    /// Seconds one start may take before the run fails.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
    /// Recorded in the results: the command line that produced them.
    #[arg(long, default_value = "")]
    command: String,
}

fn parse_pair(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected NAME=VALUE, got {s:?}"))
}

fn parse_function(s: &str) -> Result<(String, Vec<String>), String> {
    let (name, command) = parse_pair(s)?;
    let argv: Vec<String> = command.split_whitespace().map(str::to_owned).collect();
    if argv.is_empty() {
        return Err(format!("{name}: empty command"));
    }
    Ok((name, argv))
}

/// One cold start as the Runtime API saw it.
#[derive(Debug, Clone, Copy)]
struct Sample {
    ready_ms: f64,
    first_event_ms: f64,
    peak_rss_kib: u64,
}

#[derive(Debug)]
struct Start {
    event: Bytes,
    request_id: String,
    pid: Mutex<Option<u32>>,
    next_calls: AtomicUsize,
    first_next: Mutex<Option<Instant>>,
    answered: Mutex<Option<(Instant, Result<Value, Value>)>>,
    peak_rss_kib: Mutex<Option<u64>>,
    init_error: Mutex<Option<Value>>,
    /// Set once the start is measured (or failed).
    done: watch::Sender<bool>,
    /// Set once the process is gone: the held second `next` returns.
    release: watch::Sender<bool>,
}

async fn next(State(start): State<Arc<Start>>) -> impl IntoResponse {
    let now = Instant::now();
    if start.next_calls.fetch_add(1, Ordering::SeqCst) == 0 {
        *start.first_next.lock().unwrap() = Some(now);
        let headers = sandbox::invocation_headers(
            &start.request_id,
            "arn:aws:lambda:us-east-1:123456789012:function:store-orders",
        );
        return (StatusCode::OK, headers, start.event.clone());
    }
    // The second `next`: the first event is answered and the process waits here, so it is
    // still alive to have its high-water mark read, as a frozen Lambda sandbox would be.
    let pid = *start.pid.lock().unwrap();
    *start.peak_rss_kib.lock().unwrap() = pid.and_then(peak_rss_kib);
    start.done.send_replace(true);
    let mut release = start.release.subscribe();
    let _ = release.wait_for(|r| *r).await;
    (StatusCode::GONE, HeaderMap::new(), Bytes::new())
}

async fn response(
    State(start): State<Arc<Start>>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    answer(&start, &id, Ok(json_of(&body)))
}

async fn error(State(start): State<Arc<Start>>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    answer(&start, &id, Err(json_of(&body)))
}

async fn init_error(State(start): State<Arc<Start>>, body: Bytes) -> StatusCode {
    *start.init_error.lock().unwrap() = Some(json_of(&body));
    start.done.send_replace(true);
    StatusCode::ACCEPTED
}

fn answer(start: &Start, id: &str, outcome: Result<Value, Value>) -> StatusCode {
    if id != start.request_id {
        return StatusCode::BAD_REQUEST;
    }
    start
        .answered
        .lock()
        .unwrap()
        .get_or_insert((Instant::now(), outcome));
    StatusCode::ACCEPTED
}

fn json_of(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

/// `VmHWM` of a live process: its peak resident set, which the kernel keeps for us.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// One SQS record holding one valid order, with an id no earlier start used, so the
/// conditional put really writes.
fn sqs_event(order_id: &str) -> Bytes {
    let order = json!({
        "orderID": order_id,
        "customerId": "cust-42",
        "customerEmail": "ada@example.com",
        "items": [{"sku": "BOOK-1", "quantity": 3, "unitPrice": 19.99},
                  {"sku": "PEN", "quantity": 1, "unitPrice": 0.1}],
        "currency": "EUR",
        "shippingAddress": {"line1": "1 Main St", "city": "Berlin", "postalCode": "10115", "country": "DE"}
    });
    let sent = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let event = json!({"Records": [{
        "messageId": format!("msg-{order_id}"),
        "receiptHandle": "AQEB-bench",
        "body": order.to_string(),
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": sent.to_string(),
            "SenderId": "AROAIWPX5BD2BHG722MW4:apigateway-orders",
            "ApproximateFirstReceiveTimestamp": sent.to_string()
        },
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:orders",
        "awsRegion": "us-east-1"
    }]});
    Bytes::from(event.to_string())
}

/// Starts `argv` once against a fresh Runtime API and measures it.
async fn cold_start(
    name: &str,
    argv: &[String],
    env: &[(String, String)],
    order_id: &str,
    timeout: Duration,
) -> Result<Sample, String> {
    let (done, mut finished) = watch::channel(false);
    let (release, released) = watch::channel(false);
    let start = Arc::new(Start {
        event: sqs_event(order_id),
        request_id: format!("req-{order_id}"),
        pid: Mutex::new(None),
        next_calls: AtomicUsize::new(0),
        first_next: Mutex::new(None),
        answered: Mutex::new(None),
        peak_rss_kib: Mutex::new(None),
        init_error: Mutex::new(None),
        done,
        release,
    });
    let router = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(response),
        )
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .with_state(start.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("bind the Runtime API: {e}"))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("Runtime API address: {e}"))?;
    let mut stop = released;
    let server = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|d| *d).await;
            })
            .await
    });

    let mut command = sandbox::bootstrap_command(&argv[0], name, addr, "bench");
    command
        .args(&argv[1..])
        .envs(env.iter().map(|(k, v)| (k, v)));
    // The clock starts here: fork and exec are part of a cold start.
    let spawned = Instant::now();
    let mut child = command
        .spawn()
        .map_err(|e| format!("start {}: {e}", argv[0]))?;
    *start.pid.lock().unwrap() = child.id();
    let output = Arc::new(Mutex::new(Vec::new()));
    let mut readers = Vec::new();
    for mut stream in sandbox::output_streams(&mut child) {
        let output = output.clone();
        readers.push(tokio::spawn(async move {
            let mut buffer = Vec::new();
            let _ = stream.read_to_end(&mut buffer).await;
            output.lock().unwrap().extend_from_slice(&buffer);
        }));
    }

    let outcome = tokio::select! {
        waited = tokio::time::timeout(timeout, finished.wait_for(|d| *d)) => match waited {
            Ok(_) => Ok(()),
            Err(_) => Err(format!("no second `next` within {} s", timeout.as_secs())),
        },
        status = child.wait() => Err(format!("exited before it was measured ({status:?})")),
    };
    let _ = child.kill().await;
    start.release.send_replace(true);
    for reader in readers {
        let _ = tokio::time::timeout(Duration::from_secs(5), reader).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    let failed = |why: String| {
        let output = String::from_utf8_lossy(&output.lock().unwrap()).into_owned();
        format!("{name}: {why}; its output:\n{output}")
    };
    outcome.map_err(&failed)?;
    if let Some(error) = start.init_error.lock().unwrap().take() {
        return Err(failed(format!("init failed: {error}")));
    }
    let first_next = start
        .first_next
        .lock()
        .unwrap()
        .ok_or_else(|| failed("never asked for an event".into()))?;
    let (answered_at, answer) = start
        .answered
        .lock()
        .unwrap()
        .take()
        .ok_or_else(|| failed("never answered the event".into()))?;
    match answer {
        Ok(body) if body == json!({"batchItemFailures": []}) => {}
        Ok(body) => return Err(failed(format!("a record failed: {body}"))),
        Err(body) => return Err(failed(format!("the invocation failed: {body}"))),
    }
    let peak_rss_kib = start
        .peak_rss_kib
        .lock()
        .unwrap()
        .ok_or_else(|| failed("its peak RSS could not be read".into()))?;
    Ok(Sample {
        ready_ms: millis(first_next - spawned),
        first_event_ms: millis(answered_at - spawned),
        peak_rss_kib,
    })
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Median, p90 (nearest rank), min and max.
fn summary(values: &[f64]) -> Value {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank =
        |p: f64| sorted[((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1];
    // The middle value, or the mean of the middle two.
    let median = (sorted[(sorted.len() - 1) / 2] + sorted[sorted.len() / 2]) / 2.0;
    json!({
        "median": round(median),
        "p90": round(rank(0.9)),
        "min": round(sorted[0]),
        "max": round(sorted[sorted.len() - 1]),
    })
}

fn round(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    let memory_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map(|kib| round(kib / 1024.0 / 1024.0))
        .unwrap_or_default();
    json!({
        "cpu": cpu,
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "memory_gib": memory_gib,
        "kernel": kernel,
    })
}

fn markdown(report: &Value) -> String {
    let mut md = String::new();
    let m = &report["machine"];
    md.push_str(&format!(
        "{} cold starts per function (after {} unmeasured), taking turns; {}, {} cores, {} GiB, Linux {}.\n\n",
        report["runs"],
        report["warmup"],
        m["cpu"].as_str().unwrap_or(""),
        m["cores"],
        m["memory_gib"],
        m["kernel"].as_str().unwrap_or(""),
    ));
    md.push_str("| function | ready for its first event, ms (median / p90) | first event handled, ms (median / p90) | peak RSS, MiB (median / max) |\n");
    md.push_str("|---|---|---|---|\n");
    for f in report["functions"].as_array().into_iter().flatten() {
        let s = &f["summary"];
        let mib = |v: &Value| v.as_f64().unwrap_or(0.0) / 1024.0;
        md.push_str(&format!(
            "| {} | {:.1} / {:.1} | {:.1} / {:.1} | {:.1} / {:.1} |\n",
            f["name"].as_str().unwrap_or(""),
            s["ready_ms"]["median"].as_f64().unwrap_or(0.0),
            s["ready_ms"]["p90"].as_f64().unwrap_or(0.0),
            s["first_event_ms"]["median"].as_f64().unwrap_or(0.0),
            s["first_event_ms"]["p90"].as_f64().unwrap_or(0.0),
            mib(&s["peak_rss_kib"]["median"]),
            mib(&s["peak_rss_kib"]["max"]),
        ));
    }
    for r in report["ratios"].as_array().into_iter().flatten() {
        md.push_str(&format!(
            "\n{} is ready {:.1}x sooner than {} and has handled its first event {:.1}x sooner (medians of the same run).",
            report["functions"][0]["name"].as_str().unwrap_or(""),
            r["ready"].as_f64().unwrap_or(0.0),
            r["against"].as_str().unwrap_or(""),
            r["first_event"].as_f64().unwrap_or(0.0),
        ));
    }
    md.push('\n');
    md
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    match run(Args::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("lambda-bench: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    if args.runs == 0 {
        return Err("--runs must be at least 1".into());
    }
    let timeout = Duration::from_secs(args.timeout);
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); args.functions.len()];
    for round in 0..args.warmup + args.runs {
        let measured = round >= args.warmup;
        // Take turns, and change who goes first each round.
        let count = args.functions.len();
        for k in 0..count {
            let index = (k + round) % count;
            let (name, argv) = &args.functions[index];
            let order_id = format!("bench-{stamp}-{round}-{index}");
            let sample = cold_start(name, argv, &args.env, &order_id, timeout).await?;
            eprintln!(
                "{}{name}: ready {:.1} ms, first event {:.1} ms, peak RSS {:.1} MiB",
                if measured { "" } else { "(warm-up) " },
                sample.ready_ms,
                sample.first_event_ms,
                sample.peak_rss_kib as f64 / 1024.0
            );
            if measured {
                samples[index].push(sample);
            }
        }
    }

    let functions: Vec<Value> = args
        .functions
        .iter()
        .zip(&samples)
        .map(|((name, argv), samples)| {
            let column = |f: fn(&Sample) -> f64| samples.iter().map(f).collect::<Vec<_>>();
            json!({
                "name": name,
                "command": argv.join(" "),
                "summary": {
                    "ready_ms": summary(&column(|s| s.ready_ms)),
                    "first_event_ms": summary(&column(|s| s.first_event_ms)),
                    "peak_rss_kib": summary(&column(|s| s.peak_rss_kib as f64)),
                },
                "samples": samples.iter().map(|s| json!({
                    "ready_ms": round(s.ready_ms),
                    "first_event_ms": round(s.first_event_ms),
                    "peak_rss_kib": s.peak_rss_kib,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let median = |f: &Value, key: &str| f["summary"][key]["median"].as_f64().unwrap_or(0.0);
    let ratios: Vec<Value> = functions
        .iter()
        .skip(1)
        .map(|other| {
            json!({
                "against": other["name"],
                "ready": round(median(other, "ready_ms") / median(&functions[0], "ready_ms")),
                "first_event": round(median(other, "first_event_ms") / median(&functions[0], "first_event_ms")),
            })
        })
        .collect();
    let report = json!({
        "benchmark": "lambda-startup",
        "command": args.command,
        "machine": machine(),
        "runs": args.runs,
        "warmup": args.warmup,
        "functions": functions,
        "ratios": ratios,
    });
    let md = markdown(&report);
    if let Some(dir) = std::path::Path::new(&args.out).parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    }
    let json_text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    for (path, text) in [
        (format!("{}.json", args.out), json_text + "\n"),
        (format!("{}.md", args.out), md.clone()),
    ] {
        std::fs::write(&path, text).map_err(|e| format!("write {path}: {e}"))?;
    }
    print!("{md}");
    Ok(())
}

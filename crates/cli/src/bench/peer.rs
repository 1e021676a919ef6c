//! `orderflow bench --peer`: the same SQS send, receive and delete cycle against another
//! SQS (moto's, or any server of SQS's JSON protocol) and against this server's, in one run,
//! taking turns, so both sides meet the same moments of a noisy machine.
//!
//! Requests speak the AWS JSON 1.0 protocol with our HTTP client and our own SigV4
//! signature (<https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html>),
//! so the AWS SDK stays out of this binary.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lc_rs::{digest, hmac};
use serde::Serialize;
use serde_json::{Value, json};

use super::latency::Latency;
use super::orders::order_body;
use crate::BoxError;

/// The queue both sides use: a `queue` subscription's pull queue on ours (nothing else
/// reads it), a queue made with `CreateQueue` on the peer.
pub const QUEUE: &str = "bench-peer";

/// How the peer is reached and signed for.
#[derive(Debug, Clone)]
pub struct PeerSettings {
    /// `moto` to start `moto_server`, or the URL of a running peer.
    pub peer: String,
    pub moto_server: Option<PathBuf>,
    pub cycles: usize,
    pub concurrency: usize,
    pub region: String,
    pub access_key_id: String,
    pub secret: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CycleRun {
    pub cycles: usize,
    pub seconds: f64,
    pub cycles_per_second: f64,
    /// One send, the receives until a message came back, and its delete.
    pub cycle_latency: Latency,
    /// Receives that found the queue empty (another worker took the message first).
    pub empty_receives: usize,
    pub errors: usize,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerReport {
    pub peer: String,
    pub peer_url: String,
    pub concurrency: usize,
    pub ours: CycleRun,
    pub peer_run: CycleRun,
    /// Our cycles per second over the peer's.
    pub ratio: f64,
}

/// One SQS endpoint and the credentials its requests are signed with.
#[derive(Clone)]
struct Sqs {
    client: reqwest::Client,
    url: String,
    host: String,
    region: String,
    access_key_id: String,
    secret: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `Authorization` for a `POST /` whose signed headers are content type, host, date and
/// target, as botocore signs SQS's JSON protocol.
pub fn authorization(
    (access_key_id, secret, region): (&str, &str, &str),
    host: &str,
    amz_date: &str,
    target: &str,
    body: &[u8],
) -> String {
    let date = &amz_date[..8];
    let signed = "content-type;host;x-amz-date;x-amz-target";
    let canonical = format!(
        "POST\n/\n\ncontent-type:application/x-amz-json-1.0\nhost:{host}\nx-amz-date:{amz_date}\nx-amz-target:{target}\n\n{signed}\n{}",
        hex(digest::digest(&digest::SHA256, body).as_ref())
    );
    let scope = format!("{date}/{region}/sqs/aws4_request");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex(digest::digest(&digest::SHA256, canonical.as_bytes()).as_ref())
    );
    let mut key = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, format!("AWS4{secret}").as_bytes()),
        date.as_bytes(),
    );
    for part in [region, "sqs", "aws4_request"] {
        key = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, key.as_ref()),
            part.as_bytes(),
        );
    }
    let signature = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, key.as_ref()),
        to_sign.as_bytes(),
    );
    format!(
        "AWS4-HMAC-SHA256 Credential={access_key_id}/{scope}, SignedHeaders={signed}, Signature={}",
        hex(signature.as_ref())
    )
}

impl Sqs {
    fn new(client: reqwest::Client, url: &str, s: &PeerSettings) -> Result<Sqs, BoxError> {
        let parsed = url::Url::parse(url)?;
        let host = match (parsed.host_str(), parsed.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            _ => return Err(format!("{url} names no host").into()),
        };
        Ok(Sqs {
            client,
            url: format!("{}/", url.trim_end_matches('/')),
            host,
            region: s.region.clone(),
            access_key_id: s.access_key_id.clone(),
            secret: s.secret.clone(),
        })
    }

    async fn call(&self, operation: &str, input: Value) -> Result<Value, BoxError> {
        let body = input.to_string();
        let target = format!("AmazonSQS.{operation}");
        let amz_date = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
        let auth = authorization(
            (&self.access_key_id, &self.secret, &self.region),
            &self.host,
            &amz_date,
            &target,
            body.as_bytes(),
        );
        let response = self
            .client
            .post(&self.url)
            .header("content-type", "application/x-amz-json-1.0")
            .header("x-amz-date", &amz_date)
            .header("x-amz-target", &target)
            .header("authorization", auth)
            .body(body)
            .send()
            .await?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            return Err(format!("{operation}: HTTP {status}: {text}").into());
        }
        Ok(serde_json::from_str(&text)?)
    }

    /// One cycle; returns how many receives found nothing.
    async fn cycle(&self, queue_url: &str, body: &str) -> Result<usize, BoxError> {
        self.call(
            "SendMessage",
            json!({"QueueUrl": queue_url, "MessageBody": body}),
        )
        .await?;
        for empty in 0..1_000 {
            let got = self
                .call(
                    "ReceiveMessage",
                    json!({"QueueUrl": queue_url, "MaxNumberOfMessages": 1, "WaitTimeSeconds": 0}),
                )
                .await?;
            if let Some(handle) = got["Messages"][0]["ReceiptHandle"].as_str() {
                self.call(
                    "DeleteMessage",
                    json!({"QueueUrl": queue_url, "ReceiptHandle": handle}),
                )
                .await?;
                return Ok(empty);
            }
        }
        Err("1,000 receives in a row found the queue empty".into())
    }
}

async fn run_cycles(sqs: &Sqs, queue_url: &str, n: usize, concurrency: usize) -> CycleRun {
    let body = order_body("bench-peer", 0);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let results = Arc::new(Mutex::new((Vec::with_capacity(n), 0usize, 0usize)));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (sqs, queue_url, body, next, results) = (
            sqs.clone(),
            queue_url.to_owned(),
            body.clone(),
            Arc::clone(&next),
            Arc::clone(&results),
        );
        tasks.spawn(async move {
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < n {
                let t0 = Instant::now();
                let outcome = sqs.cycle(&queue_url, &body).await;
                let mut r = results.lock().expect("lock");
                match outcome {
                    Ok(empty) => {
                        r.0.push(t0.elapsed());
                        r.1 += empty;
                    }
                    Err(e) => {
                        if r.2 == 0 {
                            eprintln!("peer cycle failed: {e}");
                        }
                        r.2 += 1;
                    }
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let seconds = started.elapsed().as_secs_f64();
    let (latencies, empty_receives, errors) = std::mem::take(&mut *results.lock().expect("lock"));
    CycleRun {
        cycles: latencies.len(),
        seconds,
        cycles_per_second: latencies.len() as f64 / seconds,
        cycle_latency: Latency::of(latencies),
        empty_receives,
        errors,
    }
}

fn add(a: CycleRun, b: CycleRun) -> CycleRun {
    let seconds = a.seconds + b.seconds;
    let cycles = a.cycles + b.cycles;
    CycleRun {
        cycles,
        seconds,
        cycles_per_second: cycles as f64 / seconds,
        // Percentiles do not add; the later half's stand for the whole (both are printed
        // in the JSON as halves would hide nothing the ratio needs).
        cycle_latency: if a.cycle_latency.p99_ms > b.cycle_latency.p99_ms {
            a.cycle_latency
        } else {
            b.cycle_latency
        },
        empty_receives: a.empty_receives + b.empty_receives,
        errors: a.errors + b.errors,
    }
}

/// A running `moto_server` on a free loopback port; stopped when dropped.
struct Moto {
    url: String,
    _child: tokio::process::Child,
}

async fn start_moto(path: Option<PathBuf>, client: &reqwest::Client) -> Result<Moto, BoxError> {
    let exe = path.unwrap_or_else(|| {
        let venv = PathBuf::from(".venv/bin/moto_server");
        if venv.exists() {
            venv
        } else {
            PathBuf::from("moto_server")
        }
    });
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = tokio::process::Command::new(&exe)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {} (--moto-server): {e}", exe.display()))?;
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !client
        .get(format!("{url}/moto-api/"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        if Instant::now() > deadline {
            return Err("moto_server did not answer within 30 s".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(Moto { url, _child: child })
}

/// The peer's queue: made with `CreateQueue`; a peer that is another `orderflow serve`
/// (which makes no queues over SQS) gets a `queue` subscription through its API instead.
async fn peer_queue(sqs: &Sqs, secret: &str) -> Result<String, BoxError> {
    match sqs.call("CreateQueue", json!({"QueueName": QUEUE})).await {
        Ok(out) => Ok(out["QueueUrl"]
            .as_str()
            .ok_or("CreateQueue returned no QueueUrl")?
            .to_owned()),
        Err(_) => our_queue(sqs, Some(secret)).await,
    }
}

/// A `queue` subscription on an `orderflow serve`, and its SQS queue URL.
async fn our_queue(sqs: &Sqs, api_key: Option<&str>) -> Result<String, BoxError> {
    let mut request = sqs
        .client
        .post(format!("{}subscriptions", sqs.url))
        .header("content-type", "application/json")
        .body(json!({"protocol": "queue", "endpoint": QUEUE}).to_string());
    if let Some(key) = api_key {
        request = request.header("x-api-key", key);
    }
    let created = request.send().await?;
    if !created.status().is_success() {
        return Err(format!("could not subscribe a queue: HTTP {}", created.status()).into());
    }
    let out = sqs.call("GetQueueUrl", json!({"QueueName": QUEUE})).await?;
    Ok(out["QueueUrl"]
        .as_str()
        .ok_or("GetQueueUrl returned no QueueUrl")?
        .to_owned())
}

/// Runs the comparison against our server at `ours`.
pub async fn compare(
    client: &reqwest::Client,
    ours: &str,
    s: &PeerSettings,
) -> Result<PeerReport, BoxError> {
    let moto = if s.peer == "moto" {
        Some(start_moto(s.moto_server.clone(), client).await?)
    } else {
        None
    };
    let peer_url = moto.as_ref().map_or(s.peer.clone(), |m| m.url.clone());
    let our_sqs = Sqs::new(client.clone(), ours, s)?;
    let peer_sqs = Sqs::new(client.clone(), &peer_url, s)?;
    let our_queue_url = our_queue(&our_sqs, None).await?;
    let peer_queue_url = peer_queue(&peer_sqs, &s.secret).await?;
    // Taking turns, half the cycles at a time, so a slow minute of the host weighs on both.
    let half = s.cycles.div_ceil(2);
    eprintln!(
        "SQS cycles: {} against ours, {} against {}, {half} at a time",
        s.cycles, s.cycles, s.peer
    );
    let ours_1 = run_cycles(&our_sqs, &our_queue_url, half, s.concurrency).await;
    let peer_1 = run_cycles(&peer_sqs, &peer_queue_url, half, s.concurrency).await;
    let ours_2 = run_cycles(&our_sqs, &our_queue_url, s.cycles - half, s.concurrency).await;
    let peer_2 = run_cycles(&peer_sqs, &peer_queue_url, s.cycles - half, s.concurrency).await;
    let (ours, peer_run) = (add(ours_1, ours_2), add(peer_1, peer_2));
    Ok(PeerReport {
        peer: s.peer.clone(),
        peer_url,
        concurrency: s.concurrency,
        ratio: ours.cycles_per_second / peer_run.cycles_per_second.max(f64::MIN_POSITIVE),
        ours,
        peer_run,
    })
}

pub fn markdown(r: &PeerReport) -> String {
    let row = |name: &str, c: &CycleRun| {
        format!(
            "| {name} | {} | {:.0} | {:.2} ms | {:.2} ms | {} | {} |\n",
            c.cycles,
            c.cycles_per_second,
            c.cycle_latency.p50_ms,
            c.cycle_latency.p99_ms,
            c.empty_receives,
            c.errors
        )
    };
    format!(
        "SQS JSON protocol, SendMessage + ReceiveMessage + DeleteMessage per cycle, {} at a time, SigV4-signed, taking turns:\n\n\
         | server | cycles | cycles/s | cycle p50 | cycle p99 | empty receives | errors |\n|---|---|---|---|---|---|---|\n{}{}\n\
         orderflow serve / {}: **{:.2}**\n",
        r.concurrency,
        row("orderflow serve", &r.ours),
        row(&format!("{} ({})", r.peer, r.peer_url), &r.peer_run),
        r.peer,
        r.ratio
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pinned against botocore's `SigV4Auth` (botocore 1.x, `.venv`), which signed the same
    /// request: `POST http://127.0.0.1:9324/`, body `{}`, JSON 1.0 content type, target
    /// `AmazonSQS.SendMessage`, at 2026-11-29T22:34:15Z.
    #[test]
    fn the_signature_is_the_one_botocore_makes_and_covers_the_target_the_body_and_the_host() {
        let sign = |host: &str, target: &str, body: &[u8]| {
            authorization(
                (
                    "AKIDEXAMPLE",
                    "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                    "us-east-1",
                ),
                host,
                "20261129T223415Z",
                target,
                body,
            )
        };
        let a = sign("127.0.0.1:9324", "AmazonSQS.SendMessage", b"{}");
        assert_eq!(
            a,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261129/us-east-1/sqs/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=5411a8175133e42b4d3fc2b822cec8d81bb25c3a0c4184996a5160e19319380b"
        );
        assert_ne!(a, sign("127.0.0.1:9325", "AmazonSQS.SendMessage", b"{}"));
        assert_ne!(a, sign("127.0.0.1:9324", "AmazonSQS.DeleteMessage", b"{}"));
        assert_ne!(a, sign("127.0.0.1:9324", "AmazonSQS.SendMessage", b"{ }"));
    }
}

//! The server under test: a fresh `orderflow serve` the bench starts and stops (or a running
//! one at `--url`), and what the bench reads of it: `/stats`, traces, memory and disk.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

use super::args::BenchArgs;
use crate::BoxError;

pub struct Server {
    pub url: String,
    pub child: Option<tokio::process::Child>,
    pub data_dir: Option<PathBuf>,
    _temp: Option<tempfile::TempDir>,
    pub startup: Option<Duration>,
}

pub async fn start_server(args: &BenchArgs, client: &reqwest::Client) -> Result<Server, BoxError> {
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

/// Stops a server the bench started (SIGTERM, as an operator would), waiting up to 10 s.
pub async fn stop_server(server: Server) {
    if let Some(mut child) = server.child {
        if let Some(pid) = child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
    }
}

pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub async fn stats(client: &reqwest::Client, url: &str) -> Result<Value, BoxError> {
    Ok(client
        .get(format!("{url}/stats"))
        .send()
        .await?
        .json()
        .await?)
}

/// The order's journey from the server, or what went wrong reading it.
pub async fn order_trace(client: &reqwest::Client, url: &str, id: &str) -> Value {
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

pub fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

pub fn dir_size(path: &Path) -> u64 {
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

//! The reports of `orderflow bench`: what `bench.json` holds, its Markdown table and the
//! machine it ran on, and how each kind of run writes its results.

use std::path::Path;

use serde::Serialize;
use serde_json::{Value, json};

use super::closed_loop::ClosedLoop;
use super::latency::ms;
use super::open_loop::{self, OpenLoop};
use super::{memory, throughput};
use crate::BoxError;

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

pub fn machine() -> Value {
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

/// Writes a run's results into `out_dir` as `{name}.json` and `{name}.md`.
pub fn write_results(
    out_dir: &Path,
    name: &str,
    results: &impl Serialize,
    markdown: &str,
) -> Result<(), BoxError> {
    std::fs::create_dir_all(out_dir)?;
    std::fs::write(
        out_dir.join(format!("{name}.json")),
        serde_json::to_string_pretty(results)?,
    )?;
    std::fs::write(out_dir.join(format!("{name}.md")), markdown)?;
    Ok(())
}

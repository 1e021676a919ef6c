//! The default run of `orderflow bench`: its own subscriber, the closed-loop burst between two
//! baselines, the open-loop phases, and the report with its charts.

use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::json;

use super::args::BenchArgs;
use super::closed_loop::{self, Burst};
use super::report::{Notifications, Report, machine, markdown, write_results};
use super::server::{Server, dir_size, peak_rss_mib, stats, stop_server, urlencode};
use super::{memory, open_loop, subscriber, throughput};
use crate::BoxError;

pub async fn run(
    args: &BenchArgs,
    client: &reqwest::Client,
    server: Server,
) -> Result<ExitCode, BoxError> {
    let url = server.url.clone();
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();

    let (sub, subscription_arn) = subscriber::subscribe(client, &url).await?;
    let sampler = server
        .child
        .as_ref()
        .and_then(|c| c.id())
        .map(|pid| memory::Sampler::start(pid, client, &url));

    let Burst {
        baseline,
        baseline_after,
        ingest,
        drain,
        undelivered,
    } = closed_loop::burst(client, &url, &sub, args.orders, args.concurrency, &run_id).await?;

    let mut end_to_end = Vec::new();
    for &rate in &args.rates {
        eprintln!(
            "end to end: {rate} orders/s offered for {}s",
            args.rate_seconds
        );
        let phase = open_loop::phase(
            client,
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
    let final_stats = stats(client, &url).await?;
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
    write_results(&args.out_dir, "bench", &report, &markdown)?;
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

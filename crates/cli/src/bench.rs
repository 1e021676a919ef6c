//! `orderflow bench`: durable ingest, end-to-end latency and drain, each beside a baseline
//! measured in the same run against the same server (these machines are shared and noisy).

use std::process::ExitCode;
use std::time::Duration;

use crate::BoxError;

mod args;
mod closed_loop;
mod fanout;
mod journey;
mod latency;
mod memory;
mod open_loop;
mod orders;
mod peer;
mod pipeline;
mod progress;
mod report;
mod server;
mod subscriber;
mod throughput;
mod verdict;
pub use args::BenchArgs;
pub use open_loop::OpenLoop;
use report::write_results;
use server::{start_server, stop_server};
#[cfg(test)]
pub use {latency::Latency, throughput::Throughput};

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
        write_results(&args.out_dir, "peer", &report, &markdown)?;
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
        write_results(&args.out_dir, "fanout", &rounds, &markdown)?;
        println!("{markdown}");
        return Ok(ExitCode::SUCCESS);
    }
    pipeline::run(&args, &client, server).await
}

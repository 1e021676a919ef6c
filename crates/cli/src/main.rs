//! `orderflow`: the all-in-one order pipeline (`serve`) and its command-line client.

mod aws_protocols;
mod backup;
mod bench;
mod chart;
mod client;
mod dlq;
mod guard;
mod network;
mod observe;
mod render;
mod retention;
mod serve;
mod subscriptions;

use clap::{Parser, Subcommand};
use orderflow_embedded::blocking::BlockingThreads;

#[derive(Debug, Parser)]
#[command(
    name = "orderflow",
    version,
    about = "Order ingestion pipeline: REST API -> durable queue -> orders table -> change stream -> subscribers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    // Boxed: its many flags make it far larger than the other commands.
    /// Run the whole pipeline on this machine: API, queue, store, stream, topic.
    Serve(Box<serve::ServeArgs>),
    /// Post orders to a running server: one JSON object, a JSON array, or JSON lines.
    Submit(client::SubmitArgs),
    /// Read stored orders from a running server.
    Orders(client::OrdersArgs),
    /// Measure durable ingest, end-to-end latency and drain against a same-run baseline.
    Bench(bench::BenchArgs),
    /// Dead letters: the orders queue's DLQ and the stream's on-failure destination.
    Dlq(dlq::DlqArgs),
    /// Manage subscriptions of a running server, and their dead-letter stores.
    Subscriptions(subscriptions::SubscriptionsArgs),
    /// A compact summary of a running server: counts, depths, lag, failing subscriptions.
    Status(observe::StatusArgs),
    /// One order's journey: accepted, received, stored, published, delivered to each subscription.
    Trace(observe::TraceArgs),
    /// Write a consistent copy of the database: from a running server (--url), or a stopped
    /// data directory (--data-dir).
    Backup(backup::BackupArgs),
    /// Replace a stopped data directory's database with a backup, after checking its integrity.
    Restore(backup::RestoreArgs),
}

/// Threads the API runtime may start for blocking work (store reads behind GET requests,
/// file I/O): sixteen on the two cores it was measured on. Tokio's default of 512 let a burst
/// of requests start a hundred, whose stacks and allocator caches stayed resident. A read
/// needs a core while it runs, so the bound grows with the cores.
const BLOCKING_THREADS: BlockingThreads = BlockingThreads {
    per_core: 8,
    floor: 16,
};

/// glibc's malloc gives busy threads arenas of their own (up to eight per core) and returns
/// only the top of a heap to the kernel: after a burst of 2,000 connections the server's
/// RSS went from 60 to 125 MiB and stayed there, idle (BENCHMARKS.md, "Steady memory").
/// jemalloc, with its background thread, gives freed pages back within seconds. (SQLite and
/// aws-lc still allocate through glibc: the allocator is prefixed.)
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads(BLOCKING_THREADS.here())
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve::run(*args).await,
            Command::Submit(args) => client::submit(args).await,
            Command::Orders(args) => client::orders(args).await,
            Command::Bench(args) => bench::run(args).await,
            Command::Dlq(args) => dlq::run(args).await,
            Command::Subscriptions(args) => subscriptions::run(args).await,
            Command::Status(args) => observe::status(args).await,
            Command::Backup(args) => backup::backup(args).await,
            Command::Restore(args) => backup::restore(args).await,
            Command::Trace(args) => observe::trace(args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", orderflow_core::error_chain(e.as_ref()));
            std::process::ExitCode::from(2)
        }
    }
}

pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_may_start_eight_blocking_threads_a_core_and_never_fewer_than_sixteen() {
        assert_eq!(BLOCKING_THREADS.on(1), 16);
        assert_eq!(
            BLOCKING_THREADS.on(2),
            16,
            "the bound measured on two cores"
        );
        assert_eq!(BLOCKING_THREADS.on(3), 24);
        assert_eq!(BLOCKING_THREADS.on(64), 512);
    }
}

//! `orderflow serve`: wires the embedded engine, its pollers and the HTTP API, and stops
//! them all cleanly on SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::Duration;

use clap::{Args, ValueEnum};
use orderflow_embedded::{Engine, EngineConfig};
use tracing_subscriber::EnvFilter;

use crate::BoxError;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "ORDERFLOW_ADDR", default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Directory for the database (created, owner-only, if missing).
    #[arg(long, env = "ORDERFLOW_DATA_DIR", default_value = "./orderflow-data")]
    data_dir: PathBuf,
    /// URL subscribers use to reach this server (confirmation links); default: the listen address.
    #[arg(long, env = "ORDERFLOW_PUBLIC_URL")]
    public_url: Option<String>,
    /// How long a received order stays invisible to other store workers.
    #[arg(
        long,
        env = "ORDERFLOW_VISIBILITY_TIMEOUT_MS",
        default_value_t = 30_000
    )]
    visibility_timeout_ms: u64,
    /// Receives before a message moves to the dead-letter queue.
    #[arg(long, env = "ORDERFLOW_MAX_RECEIVE_COUNT", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    max_receive_count: u32,
    /// Store batches processed concurrently.
    #[arg(long, env = "ORDERFLOW_STORE_CONCURRENCY", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    store_concurrency: u32,
    /// Most messages per store batch, like the SQS mapping's BatchSize (up to 10,000). A
    /// batch never waits to fill; under a backlog, larger batches mean fewer commits.
    #[arg(long, env = "ORDERFLOW_STORE_BATCH_SIZE", default_value_t = orderflow_embedded::DEFAULT_STORE_BATCH_SIZE as u32, value_parser = clap::value_parser!(u32).range(1..=orderflow_embedded::queue::MAX_MAPPING_BATCH as i64))]
    store_batch_size: u32,
    /// First retry delay for a failed delivery; doubles per attempt, with jitter.
    #[arg(long, env = "ORDERFLOW_DELIVERY_MIN_BACKOFF_MS", default_value_t = 500)]
    delivery_min_backoff_ms: u64,
    /// Longest delay between delivery attempts.
    #[arg(
        long,
        env = "ORDERFLOW_DELIVERY_MAX_BACKOFF_MS",
        default_value_t = 20_000
    )]
    delivery_max_backoff_ms: u64,
    /// Attempts before a delivery is marked failed (kept and listed, never dropped silently).
    #[arg(long, env = "ORDERFLOW_DELIVERY_MAX_ATTEMPTS", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    delivery_max_attempts: u32,
    /// Sign notifications as SNS does (SignatureVersion 2); `false` trades that for throughput.
    #[arg(long, env = "ORDERFLOW_SIGN_DELIVERIES", default_value_t = true, action = clap::ArgAction::Set)]
    sign_deliveries: bool,
    /// How much lower the pipeline's threads run than the API's (Unix nice steps, 0-19):
    /// a burst is accepted at full speed and drained with the CPU left. 0: the same, which
    /// keeps the pipeline's fair share on a machine busy with other programs.
    #[arg(long, env = "ORDERFLOW_PIPELINE_NICE", default_value_t = orderflow_embedded::DEFAULT_PIPELINE_NICE, value_parser = clap::value_parser!(u8).range(0..=19))]
    pipeline_nice: u8,
    /// Orders accepted per second from which the pipeline steps aside while at least
    /// 1,000 wait, so a burst is accepted at full speed and stored right after it. 0: the
    /// drain always runs beside the API.
    #[arg(long, env = "ORDERFLOW_BURST_RATE", default_value_t = orderflow_embedded::burst::DEFAULT_BURST_RATE)]
    burst_rate: u64,
    /// Orders waiting at which the drain runs beside the API again, burst or not (at most
    /// half of --max-queue-depth).
    #[arg(long, env = "ORDERFLOW_BURST_ALLOWANCE", default_value_t = orderflow_embedded::burst::DEFAULT_BURST_ALLOWANCE, value_parser = clap::value_parser!(u64).range(1..))]
    burst_allowance: u64,
    #[command(flatten)]
    fanout: crate::subscriptions::FanoutArgs,
    #[command(flatten)]
    guard: crate::guard::GuardArgs,
    #[command(flatten)]
    network: crate::network::NetworkArgs,
    #[command(flatten)]
    retention: crate::retention::RetentionArgs,
    #[command(flatten)]
    aws: crate::aws_protocols::AwsArgs,
    /// Log format on stderr.
    #[arg(
        long,
        env = "ORDERFLOW_LOG_FORMAT",
        value_enum,
        default_value = "pretty"
    )]
    log_format: LogFormat,
}

/// The burst allowance, kept under back-pressure: a drain that waits until the API refuses
/// orders would leave them refused.
fn burst_allowance(allowance: u64, max_queue_depth: Option<u64>) -> u64 {
    max_queue_depth.map_or(allowance, |max| allowance.min((max / 2).max(1)))
}

fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,tower_http=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

pub async fn run(args: ServeArgs) -> Result<ExitCode, BoxError> {
    init_tracing(args.log_format);
    if args.delivery_min_backoff_ms > args.delivery_max_backoff_ms {
        return Err("--delivery-min-backoff-ms must not exceed --delivery-max-backoff-ms".into());
    }
    let mut config = EngineConfig::new(&args.data_dir);
    config.queue.visibility_timeout = Duration::from_millis(args.visibility_timeout_ms);
    config.queue.max_receive_count = args.max_receive_count;
    config.store_concurrency = args.store_concurrency as usize;
    config.store_batch_size = args.store_batch_size as usize;
    config.delivery.min_backoff = Duration::from_millis(args.delivery_min_backoff_ms.max(1));
    config.delivery.max_backoff = Duration::from_millis(args.delivery_max_backoff_ms.max(1));
    config.delivery.max_attempts = args.delivery_max_attempts;
    config.delivery.sign = args.sign_deliveries;
    config.pipeline_nice = args.pipeline_nice;
    config.burst.rate = args.burst_rate;
    config.burst.allowance = burst_allowance(args.burst_allowance, args.guard.max_queue_depth());
    config.fanout = args.fanout.config()?;
    config.delivery.egress = args.network.egress(args.addr, args.public_url.as_deref());
    config.delivery.confirmation_max_attempts = args.network.confirmation_max_attempts();
    let tls = args.network.tls()?;
    config.admission = args.guard.admission();
    config.retention = args.retention.config();

    let api_key = args.guard.api_key()?;
    let aws = args
        .aws
        .settings(args.guard.api_key_secret()?, tls.is_some());
    config.topic_arn = aws.topic_arn();
    config.event_sources = aws.event_sources();
    let read_api_key = args.guard.read_api_key()?;
    let engine = Engine::open(config)?;
    crate::subscriptions::apply_file(&args.fanout, &engine).await?;
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.addr))?;
    let local = listener.local_addr()?;
    let url = format!("{}://{local}", if tls.is_some() { "https" } else { "http" });
    let public_url = args.public_url.clone().unwrap_or_else(|| url.clone());
    engine.start(&public_url).await?;

    let protected = api_key.is_some();
    let state = orderflow_http::AppState::new(engine.clone())
        .with_api_key(api_key)
        .with_read_api_key(read_api_key)
        .with_aws(aws)
        .with_metrics_open(args.guard.metrics_open)
        .with_limits(args.guard.limits())
        .with_allowed_hosts(
            args.network
                .allowed_hosts(local, args.public_url.as_deref()),
        );
    let accepting = state.accepting.clone();
    let app = orderflow_http::router(state);
    tracing::info!(%url, data_dir = %args.data_dir.display(), api_key_required = protected, "orderflow is ready");
    println!(
        "orderflow listening on {url} (data in {})",
        args.data_dir.display()
    );

    let grace = Duration::from_millis(args.guard.shutdown_grace_ms);
    let limit = Duration::from_millis(args.guard.shutdown_timeout_ms);
    let (signalled_tx, signalled) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(orderflow_http::connections::serve(
        listener,
        app,
        args.network.connection_limits(),
        tls,
        async move {
            shutdown_signal().await;
            // From here writes are answered 503 + Retry-After while the listener stays open
            // for the grace period; then in-flight requests finish and it closes.
            accepting.store(false, Ordering::Relaxed);
            let _ = signalled_tx.send(());
            tracing::info!(
                ?grace,
                "shutting down: refusing new writes, finishing in-flight work"
            );
            tokio::time::sleep(grace).await;
        },
    ));
    let server = async move { server.await.map_err(|e| -> BoxError { e.into() }) };
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => {
            // The server stopped without a signal: a listener error.
            engine.shutdown().await;
            result?;
            return Ok(ExitCode::FAILURE);
        }
        _ = signalled => {}
    }
    let stopped = tokio::time::timeout(limit, async {
        let served = server.await;
        // Pollers finish their current batch; the stream checkpoint and the WAL are flushed.
        engine.shutdown().await;
        served
    })
    .await;
    match stopped {
        Ok(result) => {
            result?;
            tracing::info!("stopped cleanly");
            Ok(ExitCode::SUCCESS)
        }
        Err(_) => {
            tracing::warn!(
                ?limit,
                "shutdown took too long; exiting anyway (in-flight work is redone at the next start)"
            );
            Ok(ExitCode::FAILURE)
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_burst_allowance_stays_under_back_pressure() {
        assert_eq!(burst_allowance(100_000, None), 100_000);
        assert_eq!(burst_allowance(100_000, Some(10_000)), 5_000);
        assert_eq!(burst_allowance(1_000, Some(10_000)), 1_000);
        assert_eq!(burst_allowance(100, Some(1)), 1);
    }
}

//! The flags of `orderflow bench`.

use std::path::PathBuf;

use clap::Args;

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Benchmark a running server instead of starting one (server RSS/startup are then not measured).
    #[arg(long, env = "ORDERFLOW_URL")]
    pub url: Option<String>,
    /// Orders for the closed-loop ingest phase (and requests for the baseline).
    #[arg(long, default_value_t = 20_000)]
    pub orders: usize,
    /// Requests in flight during closed-loop phases.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Offered rates (orders/s) for the open-loop end-to-end phases.
    #[arg(long, value_delimiter = ',', default_value = "250,500,1000,2000")]
    pub rates: Vec<u32>,
    /// Seconds each open-loop rate is offered.
    #[arg(long, default_value_t = 10)]
    pub rate_seconds: u64,
    /// Seconds an open-loop phase waits after its last send for its orders to be stored and
    /// delivered; what has not arrived by then is reported undelivered, and the run goes on.
    #[arg(long, default_value_t = 60)]
    pub drain_seconds: u64,
    /// Orders already stored before measuring (written straight into the fresh data directory).
    #[arg(long, default_value_t = 0)]
    pub preload: u64,
    /// A run that finishes in well under 30 seconds, to prove the benchmark works.
    #[arg(long)]
    pub quick: bool,
    /// Where the JSON, Markdown and SVG results are written.
    #[arg(long, default_value = "bench-results")]
    pub out_dir: PathBuf,
    /// Start the server with unsigned deliveries, to see what SNS-style signing costs.
    #[arg(long)]
    pub unsigned: bool,
    /// The started server's `--pipeline-nice` (0 runs the pipeline at the API's priority);
    /// its own default when not given.
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=19))]
    pub pipeline_nice: Option<u8>,
    /// The started server's `--burst-rate` (0: the drain never steps aside for a burst);
    /// its own default when not given.
    #[arg(long)]
    pub burst_rate: Option<u64>,
    /// Keep the server's data directory here instead of a temporary one.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Instead of the pipeline phases, compare SQS send-receive-delete cycles with a peer
    /// in one run: `moto` starts `moto_server`; otherwise the URL of a running server of
    /// SQS's JSON protocol.
    #[arg(long)]
    pub peer: Option<String>,
    /// The `moto_server` that `--peer moto` starts (default: `.venv/bin/moto_server` when it
    /// exists, else the one on PATH).
    #[arg(long)]
    pub moto_server: Option<PathBuf>,
    /// Cycles against each side with `--peer`.
    #[arg(long, default_value_t = 2_000)]
    pub peer_cycles: usize,
    /// The access key id `--peer` signs with (our server checks signatures only with
    /// `--api-key`; moto never does).
    #[arg(long, default_value = "test")]
    pub peer_access_key_id: String,
    /// The secret access key `--peer` signs with.
    #[arg(long, default_value = "test", hide_default_value = true)]
    pub peer_secret: String,
    /// The region `--peer` signs for.
    #[arg(long, default_value = "us-east-1")]
    pub peer_region: String,
    /// Instead of the pipeline phases, measure delivered notifications/s with each of these
    /// numbers of HTTP subscribers (e.g. `1,10,100`), one round each on the same server.
    #[arg(long, value_delimiter = ',')]
    pub fanout: Vec<usize>,
    /// Notifications each `--fanout` round aims at (orders = this / subscribers, at least 50).
    #[arg(long, default_value_t = 20_000)]
    pub fanout_notifications: usize,
}

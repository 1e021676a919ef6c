//! `serve`'s retention flags: how long history is kept before it is pruned.

use std::time::Duration;

use clap::Args;
use orderflow_embedded::RetentionConfig;
use orderflow_embedded::retention::parse_retention;

#[derive(Debug, Args)]
pub struct RetentionArgs {
    /// How long messages delivered to every subscription (with their delivery rows) and the
    /// store handler's receipts are kept: `7d`, `12h`, `30m`, `45s`, or `off`. Orders and dead
    /// letters are never pruned.
    #[arg(long, env = "ORDERFLOW_RETENTION", default_value = "7d", value_parser = parse_keep)]
    retention: Keep,
    /// How long published stream records are kept (DynamoDB Streams keeps 24 hours), or `off`.
    #[arg(long, env = "ORDERFLOW_STREAM_RETENTION", default_value = "24h", value_parser = parse_keep)]
    stream_retention: Keep,
    /// How often a pruning pass runs.
    #[arg(long, env = "ORDERFLOW_RETENTION_INTERVAL", default_value = "60s", value_parser = parse_interval)]
    retention_interval: Duration,
}

/// A retention, or `None` to keep forever (a newtype: clap reads a bare `Option` as "flag
/// may be absent").
#[derive(Debug, Clone, Copy)]
struct Keep(Option<Duration>);

fn parse_keep(text: &str) -> Result<Keep, String> {
    parse_retention(text).map(Keep)
}

fn parse_interval(text: &str) -> Result<Duration, String> {
    match parse_retention(text)? {
        Some(d) if !d.is_zero() => Ok(d),
        _ => Err("the interval must be a positive duration such as 60s".into()),
    }
}

impl RetentionArgs {
    pub fn config(&self) -> RetentionConfig {
        RetentionConfig {
            stream: self.stream_retention.0,
            history: self.retention.0,
            every: self.retention_interval,
            ..RetentionConfig::default()
        }
    }
}

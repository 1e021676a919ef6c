//! The `serve` flags that protect the server: API key, limits, back-pressure and how long a
//! graceful shutdown may take; and the owner-only API key file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use orderflow_embedded::fanout::admission::AdmissionLimits;
use orderflow_http::{ApiKey, Limits, RateLimit};

use crate::BoxError;

#[derive(Debug, Args)]
pub struct GuardArgs {
    /// Require this API key (header `x-api-key` or `Authorization: Bearer`) on every write
    /// and every subscription and dead-letter endpoint. Prefer the environment variable or
    /// --api-key-file: a command line is visible to other users in `ps`.
    #[arg(long, env = "ORDERFLOW_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Read the API key from this file; if it does not exist, generate a random key and
    /// write it there, readable by its owner only.
    #[arg(long, env = "ORDERFLOW_API_KEY_FILE", conflicts_with = "api_key")]
    api_key_file: Option<PathBuf>,
    /// A second, read-only key for dashboards and scrapers: it reads orders, traces, stats,
    /// metrics and subscriptions, and changes nothing. Needs --api-key (or its file).
    #[arg(long, env = "ORDERFLOW_READ_API_KEY", hide_env_values = true)]
    read_api_key: Option<String>,
    /// Read the read-only key from this file; if it does not exist, generate one and write it
    /// there, readable by its owner only.
    #[arg(
        long,
        env = "ORDERFLOW_READ_API_KEY_FILE",
        conflicts_with = "read_api_key"
    )]
    read_api_key_file: Option<PathBuf>,
    /// Serve `GET /metrics` without a key, for a scraper on a network you trust. Subscription
    /// labels then show only names (or a digest), never ids or ARNs.
    #[arg(long, env = "ORDERFLOW_METRICS_OPEN", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub metrics_open: bool,
    /// Most subscriptions the API accepts (`403` beyond); each multiplies the work per order.
    /// The --subscriptions file is the operator's and is not counted against it.
    #[arg(long, env = "ORDERFLOW_MAX_SUBSCRIPTIONS", default_value_t = orderflow_embedded::fanout::admission::DEFAULT_MAX_SUBSCRIPTIONS as u32, value_parser = clap::value_parser!(u32).range(1..))]
    max_subscriptions: u32,
    /// Confirmation requests (mails, webhook calls) one target may be sent per hour (`429`
    /// beyond), so the API cannot be used to flood someone's mailbox or web server. A target
    /// is a web server (scheme, host, port) or a mailbox (without its `+tag`).
    #[arg(long, env = "ORDERFLOW_MAX_CONFIRMATIONS_PER_ENDPOINT", default_value_t = orderflow_embedded::fanout::admission::DEFAULT_CONFIRMATIONS_PER_ENDPOINT as u32, value_parser = clap::value_parser!(u32).range(1..))]
    max_confirmations_per_endpoint: u32,
    /// Refuse new orders with `503` while this many messages are queued (visible or in flight).
    #[arg(long, env = "ORDERFLOW_MAX_QUEUE_DEPTH", value_parser = clap::value_parser!(u64).range(1..))]
    max_queue_depth: Option<u64>,
    /// Requests per second allowed per client address (`429` beyond); unlimited if unset.
    #[arg(long, env = "ORDERFLOW_RATE_LIMIT", value_parser = clap::value_parser!(u32).range(1..))]
    rate_limit: Option<u32>,
    /// Requests a client may send at once before the rate limit applies (default: one second's worth).
    #[arg(long, env = "ORDERFLOW_RATE_LIMIT_BURST", requires = "rate_limit", value_parser = clap::value_parser!(u32).range(1..))]
    rate_limit_burst: Option<u32>,
    /// Clients the rate limiter remembers; past it the least recently seen is forgotten
    /// (it starts again with a full burst). IPv6 clients count per /64.
    #[arg(long, env = "ORDERFLOW_RATE_LIMIT_CLIENTS", default_value_t = orderflow_http::rate_limit::MAX_TRACKED_CLIENTS as u32, value_parser = clap::value_parser!(u32).range(1..))]
    rate_limit_clients: u32,
    /// A proxy (CIDR, repeatable) whose X-Forwarded-For names the client, for the rate
    /// limit: the right-most address there that is not a trusted proxy. Without it the
    /// header is ignored, since any client can write it.
    #[arg(
        long = "trust-forwarded-for",
        value_name = "CIDR",
        env = "ORDERFLOW_TRUST_FORWARDED_FOR",
        value_delimiter = ','
    )]
    trust_forwarded_for: Vec<orderflow_http::rate_limit::IpNet>,
    /// Longest a request may take, body included (`408` beyond).
    #[arg(long, env = "ORDERFLOW_REQUEST_TIMEOUT_MS", default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(1..))]
    request_timeout_ms: u64,
    /// Largest total size of a request's headers in bytes (`431` beyond).
    #[arg(long, env = "ORDERFLOW_MAX_HEADER_BYTES", default_value_t = 16 * 1024)]
    max_header_bytes: usize,
    /// On SIGTERM/Ctrl-C, keep answering this long (writes get `503` with `Retry-After`)
    /// before closing the listener, so clients on open connections learn to retry elsewhere.
    #[arg(long, env = "ORDERFLOW_SHUTDOWN_GRACE_MS", default_value_t = 500)]
    pub shutdown_grace_ms: u64,
    /// Longest a graceful shutdown may take in all; past it the process exits anyway (what
    /// was in flight is redone at the next start).
    #[arg(long, env = "ORDERFLOW_SHUTDOWN_TIMEOUT_MS", default_value_t = 10_000)]
    pub shutdown_timeout_ms: u64,
}

impl GuardArgs {
    pub fn api_key(&self) -> Result<Option<ApiKey>, BoxError> {
        let Some(key) = self.api_key_secret()? else {
            return Ok(None);
        };
        Ok(Some(
            ApiKey::new(&key).map_err(|e| format!("--api-key: {e}"))?,
        ))
    }

    /// The API key itself: the secret access key that SigV4 signatures of AWS requests are
    /// checked with (an HMAC needs the secret, not a digest of it).
    pub fn api_key_secret(&self) -> Result<Option<String>, BoxError> {
        Ok(match (&self.api_key, &self.api_key_file) {
            (Some(key), _) => Some(key.trim().to_owned()),
            (None, Some(path)) => Some(read_or_create_key_file(path)?.trim().to_owned()),
            (None, None) => None,
        })
    }

    /// The read-only key, which only means something beside the API key.
    pub fn read_api_key(&self) -> Result<Option<ApiKey>, BoxError> {
        let key = match (&self.read_api_key, &self.read_api_key_file) {
            (Some(key), _) => key.trim().to_owned(),
            (None, Some(path)) => read_or_create_key_file(path)?,
            (None, None) => return Ok(None),
        };
        if self.api_key.is_none() && self.api_key_file.is_none() {
            return Err("--read-api-key needs --api-key (or --api-key-file): without the API key every read is open anyway".into());
        }
        let write = match (&self.api_key, &self.api_key_file) {
            (Some(k), _) => k.trim().to_owned(),
            (None, Some(path)) => read_or_create_key_file(path)?,
            (None, None) => String::new(),
        };
        if key == write {
            return Err("--read-api-key must differ from --api-key".into());
        }
        Ok(Some(
            ApiKey::new(&key).map_err(|e| format!("--read-api-key: {e}"))?,
        ))
    }

    pub fn admission(&self) -> AdmissionLimits {
        AdmissionLimits {
            max_subscriptions: self.max_subscriptions as usize,
            confirmations_per_endpoint: self.max_confirmations_per_endpoint as usize,
        }
    }

    pub fn max_queue_depth(&self) -> Option<u64> {
        self.max_queue_depth
    }

    pub fn limits(&self) -> Limits {
        Limits {
            max_header_bytes: self.max_header_bytes,
            request_timeout: Duration::from_millis(self.request_timeout_ms),
            max_queue_depth: self.max_queue_depth,
            rate_limit: self.rate_limit.map(|per_second| RateLimit {
                per_second,
                burst: self.rate_limit_burst.unwrap_or(per_second),
            }),
            rate_limit_clients: self.rate_limit_clients as usize,
            trusted_proxies: self.trust_forwarded_for.clone(),
        }
    }
}

/// A fresh random key: two v4 UUIDs (244 random bits from the OS) as 64 hex digits.
pub fn generate_key() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Reads the key, or creates the file with a new key, mode 0600, never replacing one.
pub fn read_or_create_key_file(path: &Path) -> Result<String, BoxError> {
    match std::fs::read_to_string(path) {
        Ok(key) => {
            warn_if_shared(path);
            Ok(key.trim().to_owned())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = generate_key();
            write_private(path, &key)?;
            eprintln!("generated a new API key in {}", path.display());
            Ok(key)
        }
        Err(e) => Err(format!("cannot read the API key file {}: {e}", path.display()).into()),
    }
}

fn write_private(path: &Path, key: &str) -> Result<(), BoxError> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(|e| format!("cannot create the API key file {}: {e}", path.display()))?;
    file.write_all(format!("{key}\n").as_bytes())?;
    file.sync_all()?;
    Ok(())
}

#[cfg(unix)]
fn warn_if_shared(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            file = %path.display(),
            "the API key file is readable by other users; chmod 600 it"
        );
    }
}

#[cfg(not(unix))]
fn warn_if_shared(_path: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_is_64_hex_digits_and_fresh() {
        let a = generate_key();
        assert_eq!(a.len(), 64, "{a}");
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, generate_key());
    }

    #[test]
    fn the_key_file_is_created_owner_only_and_then_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api-key");
        let key = read_or_create_key_file(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
        assert_eq!(read_or_create_key_file(&path).unwrap(), key);
    }
}

//! What both Lambda binaries share: JSON logs and their configuration, read once at init.

use tracing_subscriber::EnvFilter;

/// The table the store function writes to (set by the SAM template).
pub const ORDERS_TABLE: &str = "ORDERS_TABLE";
/// The topic the publish function announces on (set by the SAM template).
pub const ORDERS_TOPIC_ARN: &str = "ORDERS_TOPIC_ARN";
/// Where the publish function holds back what SNS did not take (set by the SAM template).
pub const HELD_BACK_QUEUE_URL: &str = "HELD_BACK_QUEUE_URL";

#[derive(thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {name} is not set: {meaning}")]
    Missing {
        name: &'static str,
        meaning: &'static str,
    },
}

/// `main` returns this error, and Rust prints a returned error with `Debug`: make that the
/// sentence, not the struct.
impl std::fmt::Debug for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// A required, non-empty environment variable; `meaning` says what it should hold.
pub fn required_env(name: &'static str, meaning: &'static str) -> Result<String, ConfigError> {
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => Ok(value),
        _ => Err(ConfigError::Missing { name, meaning }),
    }
}

/// JSON lines on stdout, which Lambda forwards to CloudWatch Logs. The level comes from
/// `RUST_LOG`, else Lambda's `AWS_LAMBDA_LOG_LEVEL`, else `info`.
pub fn init_logging() {
    let directives = std::env::var("RUST_LOG")
        .or_else(|_| std::env::var("AWS_LAMBDA_LOG_LEVEL"))
        .unwrap_or_default()
        .to_lowercase()
        .replace("fatal", "error");
    let filter = EnvFilter::try_new(&directives)
        .ok()
        .filter(|_| !directives.trim().is_empty())
        .unwrap_or_else(|| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_target(false)
        // Every line carries its spans: the invocation's request and X-Ray trace ids, and
        // the order's id and request id inside the handlers.
        .with_current_span(true)
        .with_span_list(true)
        .init();
}

/// The span one invocation runs in: Lambda's request id and the X-Ray trace header.
pub fn invocation_span(context: &lambda_runtime::Context) -> tracing::Span {
    let trace = context
        .xray_trace_id
        .clone()
        .or_else(orderflow_core::correlation::aws_trace_id_from_env);
    tracing::info_span!(
        "invocation",
        aws_request_id = %context.request_id,
        aws_trace = trace.as_deref().unwrap_or("")
    )
}

/// Logs an init failure where Lambda shows it, then hands it back for `main` to return.
pub fn init_failed<E: std::error::Error + 'static>(error: E) -> E {
    tracing::error!(error = %orderflow_core::error_chain(&error), "init failed");
    error
}

//! What the server refuses before doing any work: oversized headers and new messages while
//! the queue is deeper than configured (the request rate is `rate_limit`'s).

use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::{ApiError, AppState};

/// Largest total size of the request headers (names and values), like common proxies.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 16 * 1024;
/// How long a request may take, body included, before it is answered `408`.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// A depth reading this recent is reused: the limit is checked per request, not counted per
/// request, so it can be exceeded by what arrives within this window.
const DEPTH_MAX_AGE: Duration = Duration::from_millis(100);
pub use crate::rate_limit::RateLimit;

#[derive(Debug, Clone)]
pub struct Limits {
    pub max_header_bytes: usize,
    pub request_timeout: Duration,
    /// Messages (visible or in flight) above which new ones are refused with `503`.
    pub max_queue_depth: Option<u64>,
    /// Requests per second per client address; `None` is unlimited.
    pub rate_limit: Option<RateLimit>,
    /// Clients the rate limiter tracks; past it the least recently seen is forgotten.
    pub rate_limit_clients: usize,
    /// Proxies whose `X-Forwarded-For` names the client (`--trust-forwarded-for`).
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_queue_depth: None,
            rate_limit: None,
            rate_limit_clients: crate::rate_limit::MAX_TRACKED_CLIENTS,
            trusted_proxies: Vec::new(),
        }
    }
}

/// Live state behind [`Limits`], shared by every request.
#[derive(Debug, Default)]
pub struct Gauges {
    depth: tokio::sync::Mutex<Option<(Instant, u64)>>,
}

pub(crate) async fn limit_headers(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let size: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if size > state.limits.max_header_bytes {
        return ApiError::HeadersTooLarge(state.limits.max_header_bytes).into_response();
    }
    next.run(request).await
}

/// Refuses a new message while the queue holds more than `max_queue_depth` (back-pressure:
/// better a clear `503` now than an ever-growing backlog).
pub(crate) async fn check_queue_depth(state: &AppState) -> Result<(), ApiError> {
    let Some(max) = state.limits.max_queue_depth else {
        return Ok(());
    };
    let depth = {
        let mut cached = state.gauges.depth.lock().await;
        match *cached {
            Some((at, depth)) if at.elapsed() < DEPTH_MAX_AGE => depth,
            _ => {
                let stats = state.engine.queue().stats().await.map_err(|e| {
                    tracing::error!(error = %orderflow_core::error_chain(&e), "cannot read the queue depth");
                    ApiError::Unavailable("The queue cannot be read right now; retry shortly".into())
                })?;
                let depth = stats.visible + stats.in_flight;
                *cached = Some((Instant::now(), depth));
                depth
            }
        }
    };
    if depth >= max {
        return Err(ApiError::Unavailable(format!(
            "The order queue is full ({depth} messages waiting, limit {max}); nothing was accepted. Retry shortly"
        )));
    }
    Ok(())
}

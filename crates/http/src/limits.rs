//! What the server refuses before doing any work: oversized headers, clients over their
//! request rate, and new messages while the queue is deeper than configured.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
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
/// Clients tracked by the rate limiter before idle ones are forgotten.
const MAX_TRACKED_CLIENTS: usize = 10_000;

#[derive(Debug, Clone)]
pub struct Limits {
    pub max_header_bytes: usize,
    pub request_timeout: Duration,
    /// Messages (visible or in flight) above which new ones are refused with `503`.
    pub max_queue_depth: Option<u64>,
    /// Requests per second per client address; `None` is unlimited.
    pub rate_limit: Option<RateLimit>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_queue_depth: None,
            rate_limit: None,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct RateLimit {
    pub per_second: u32,
    pub burst: u32,
}

/// Live state behind [`Limits`], shared by every request.
#[derive(Debug, Default)]
pub struct Gauges {
    depth: tokio::sync::Mutex<Option<(Instant, u64)>>,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Gauges {
    /// Takes one token for `client`; on refusal, how long until one is there.
    fn take(&self, client: IpAddr, limit: RateLimit, now: Instant) -> Result<(), Duration> {
        let rate = f64::from(limit.per_second.max(1));
        let burst = f64::from(limit.burst.max(1));
        let mut buckets = self.buckets.lock().expect("rate buckets lock");
        if buckets.len() >= MAX_TRACKED_CLIENTS && !buckets.contains_key(&client) {
            // Full buckets carry no information: forgetting them changes nothing.
            buckets.retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * rate < burst);
            if buckets.len() >= MAX_TRACKED_CLIENTS {
                buckets.clear();
            }
        }
        let bucket = buckets.entry(client).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let refill = now.duration_since(bucket.at).as_secs_f64() * rate;
        bucket.tokens = (bucket.tokens + refill).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / rate))
        }
    }
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

pub(crate) async fn limit_rate(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(limit) = state.limits.rate_limit {
        // Health checks are never throttled: a load balancer must see the truth.
        let exempt = request.uri().path() == "/healthz";
        let client = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .unwrap_or(IpAddr::from([0, 0, 0, 0]));
        if !exempt && let Err(wait) = state.gauges.take(client, limit, Instant::now()) {
            return ApiError::RateLimited(wait).into_response();
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_gets_its_burst_then_the_steady_rate() {
        let gauges = Gauges::default();
        let limit = RateLimit {
            per_second: 10,
            burst: 3,
        };
        let client = IpAddr::from([127, 0, 0, 1]);
        let other = IpAddr::from([127, 0, 0, 2]);
        let t0 = Instant::now();
        for _ in 0..3 {
            gauges.take(client, limit, t0).unwrap();
        }
        let wait = gauges.take(client, limit, t0).unwrap_err();
        assert!(wait <= Duration::from_millis(100), "{wait:?}");
        gauges
            .take(other, limit, t0)
            .expect("clients are limited separately");
        gauges
            .take(client, limit, t0 + Duration::from_millis(101))
            .expect("a token refills after 1/rate seconds");
    }
}

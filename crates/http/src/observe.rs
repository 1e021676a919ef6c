//! Observability at the HTTP edge: request ids, Prometheus metrics at `GET /metrics`, and
//! one order's journey at `GET /orders/{orderID}/trace`.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Path, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use orderflow_core::correlation::{REQUEST_ID_HEADER, RequestId};
use tracing::Instrument;

use crate::{ApiError, AppState, parse_order_id};

/// Seconds: from a fast in-memory answer to a slow disk or subscriber.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The process-wide recorder. A second one (another server in the same process, a test)
/// cannot be installed globally; it then renders only the pipeline's gauges.
fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets(BUCKETS)
            .expect("buckets are not empty")
            .build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics shows only gauges");
        }
        handle
    })
}

pub(crate) fn routes() -> Router<AppState> {
    // Install the recorder before the first request is measured.
    prometheus();
    Router::new()
        .route("/metrics", get(render_metrics))
        .route("/orders/{order_id}/trace", get(order_trace))
}

/// Gives every request an id (the client's `x-request-id` when valid), puts it on the span
/// every log line of the request is inside, echoes it back, and measures the request.
pub(crate) async fn observe_request(mut request: Request, next: Next) -> Response {
    let id = RequestId::from_client(
        request
            .headers()
            .get(REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok()),
    );
    let value = HeaderValue::from_str(id.as_str()).expect("a request id is a header value");
    request
        .headers_mut()
        .insert(REQUEST_ID_HEADER, value.clone());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().clone();
    let method_label = method_label(&method);
    let started = Instant::now();
    let span = tracing::info_span!("http", request_id = %id);
    let mut response = next.run(request).instrument(span).await;
    let status = response.status();
    metrics::histogram!(
        "orderflow_http_request_duration_seconds",
        "method" => method_label,
        "route" => route.clone(),
        "status" => status.as_u16().to_string(),
    )
    .record(started.elapsed().as_secs_f64());
    if method == Method::POST && route == "/orders" && status == StatusCode::ACCEPTED {
        metrics::counter!("orderflow_orders_accepted_total").increment(1);
    }
    response.headers_mut().insert(REQUEST_ID_HEADER, value);
    response
}

/// A subscription as a metric label: its name, or its protocol and a digest of its id.
/// Never the id itself: `/metrics` may be open (`--metrics-open`), and an id names the
/// subscription in every API call.
fn subscription_label(name: Option<&str>, id: &str, protocol: &str) -> String {
    if let Some(name) = name {
        return name.to_owned();
    }
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, id.as_bytes());
    let hex: String = digest.as_ref()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{protocol}-{hex}")
}

/// The method as a metric label: a client can send any token as a method, and each new
/// label value is a new time series, so anything but the standard methods is `other`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

async fn render_metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let engine = &state.engine;
    let stats = engine.stats().await.map_err(ApiError::internal)?;
    let health = engine.topic().health().await.map_err(ApiError::internal)?;
    let queue = engine.config().queue.name.clone();
    let q = &stats.queue;
    let gauge = |name: &'static str, value: f64| {
        metrics::gauge!(name, "queue" => queue.clone()).set(value);
    };
    gauge("orderflow_queue_visible_messages", q.visible as f64);
    gauge("orderflow_queue_in_flight_messages", q.in_flight as f64);
    gauge("orderflow_queue_dead_letter_messages", q.dead_letter as f64);
    gauge(
        "orderflow_queue_oldest_message_age_seconds",
        q.oldest_age_ms.unwrap_or(0) as f64 / 1000.0,
    );
    metrics::counter!("orderflow_orders_stored_total").absolute(stats.orders.stored);
    metrics::gauge!("orderflow_stream_pending_records").set(stats.stream.pending as f64);
    metrics::gauge!("orderflow_stream_failed_records").set(stats.stream.failed as f64);
    metrics::gauge!("orderflow_subscriptions").set(stats.subscriptions as f64);
    metrics::gauge!("orderflow_burst_absorbing").set(f64::from(u8::from(engine.absorbing_burst())));
    for h in &health {
        let s = &h.subscription;
        let label = subscription_label(s.name.as_deref(), &s.id, s.protocol.as_str());
        let d = &h.deliveries;
        for (outcome, n) in [
            ("delivered", d.delivered),
            ("failed", d.failed),
            ("filtered", d.filtered),
        ] {
            metrics::counter!("orderflow_deliveries_total", "subscription" => label.clone(), "outcome" => outcome)
                .absolute(n);
        }
        metrics::gauge!("orderflow_deliveries_pending", "subscription" => label.clone())
            .set(d.pending as f64);
    }
    let handle = prometheus();
    handle.run_upkeep();
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        handle.render(),
    )
        .into_response())
}

async fn order_trace(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_order_id(&raw)?;
    match state
        .engine
        .trace(id.as_str())
        .await
        .map_err(ApiError::internal)?
    {
        Some(trace) => Ok(Json(trace).into_response()),
        None => Err(ApiError::NotFound(format!(
            "Order {id} is not known to this server"
        ))),
    }
}

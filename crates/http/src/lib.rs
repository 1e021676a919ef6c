//! The HTTP API of `orderflow serve`: the same routes and responses as the AWS deployment,
//! plus the administration endpoints of the embedded engine.

pub mod auth;
pub mod awsapi;
mod backup;
pub mod connections;
pub mod cross_site;
mod dlq;
mod error;
mod fanout;
pub mod limits;
mod observe;
pub mod openapi;
pub mod rate_limit;
pub mod tls;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use orderflow_core::correlation::{REQUEST_ID_ATTRIBUTE, REQUEST_ID_HEADER, RequestId};
use orderflow_core::{OrderId, OrderRequest, OrderTable};
use orderflow_embedded::Engine;
use orderflow_embedded::intake::IntakeError;
use serde::{Deserialize, Serialize};
use serde_json::json;

pub use auth::ApiKey;
pub use error::{ApiError, ErrorBody};
pub use limits::{Limits, RateLimit};

/// Largest request body accepted (the contract; API Gateway allows more, SQS 256 KiB).
pub const MAX_BODY_BYTES: usize = 256 * 1024;

#[derive(Debug, Clone)]
pub struct AppState {
    pub engine: Arc<Engine>,
    /// Cleared when shutdown starts: new writes get `503` with `Retry-After`.
    pub accepting: Arc<AtomicBool>,
    /// When set, writes require it and reads of data require it or `read_api_key`.
    pub api_key: Option<ApiKey>,
    /// A key that reads (orders, trace, stats, metrics, subscriptions) but never writes.
    pub read_api_key: Option<ApiKey>,
    /// `/metrics` answers without a key (for a scraper on a trusted network).
    pub metrics_open: bool,
    pub limits: Arc<Limits>,
    gauges: Arc<limits::Gauges>,
    /// The host names requests may address (DNS rebinding); see [`cross_site`].
    pub allowed_hosts: Arc<cross_site::AllowedHosts>,
    rate_limiter: Option<Arc<rate_limit::ClientLimiter>>,
    /// Region, account and credentials of the AWS protocols; see [`awsapi`].
    pub aws: Arc<awsapi::AwsSettings>,
}

impl AppState {
    pub fn new(engine: Arc<Engine>) -> Self {
        AppState {
            engine,
            accepting: Arc::new(AtomicBool::new(true)),
            api_key: None,
            read_api_key: None,
            metrics_open: false,
            limits: Arc::new(Limits::default()),
            gauges: Arc::default(),
            allowed_hosts: Arc::new(cross_site::AllowedHosts::any()),
            rate_limiter: None,
            aws: Arc::new(awsapi::AwsSettings::default()),
        }
    }

    pub fn with_allowed_hosts(mut self, hosts: cross_site::AllowedHosts) -> Self {
        self.allowed_hosts = Arc::new(hosts);
        self
    }

    pub fn with_aws(mut self, aws: awsapi::AwsSettings) -> Self {
        self.aws = Arc::new(aws);
        self
    }

    pub fn with_api_key(mut self, key: Option<ApiKey>) -> Self {
        self.api_key = key;
        self
    }

    /// The read-only key; it only counts when the API key is set too.
    pub fn with_read_api_key(mut self, key: Option<ApiKey>) -> Self {
        self.read_api_key = key;
        self
    }

    pub fn with_metrics_open(mut self, open: bool) -> Self {
        self.metrics_open = open;
        self
    }

    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.rate_limiter = limits.rate_limit.map(|rate| {
            Arc::new(rate_limit::ClientLimiter::new(
                rate,
                limits.rate_limit_clients,
            ))
        });
        self.limits = Arc::new(limits);
        self
    }

    pub(crate) fn rate_limiter(&self) -> Option<&rate_limit::ClientLimiter> {
        self.rate_limiter.as_deref()
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/orders", post(post_order).get(list_orders))
        .route("/orders/{order_id}", get(get_order))
        .merge(fanout::routes())
        .route("/queue/messages", post(send_raw_message))
        .route(
            "/queue/dlq",
            get(list_dead_letters).delete(purge_dead_letters),
        )
        .route("/queue/dlq/redrive", post(redrive_dead_letters))
        .route(
            "/stream/failures",
            get(list_stream_failures).delete(dlq::purge_stream_failures),
        )
        .merge(dlq::routes())
        .merge(openapi::routes())
        .merge(observe::routes())
        .merge(backup::routes())
        .route("/stats", get(stats))
        .route("/healthz", get(healthz))
        .route("/schema/order.json", get(order_schema))
        .route("/", post(awsapi::no_operation))
        .merge(orderflow_portal::router())
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            refuse_writes_when_draining,
        ))
        .layer(middleware::from_fn(error::json_errors))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(cross_site::require_json_writes))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_api_key,
        ))
        // AWS requests are answered here, before our key and content-type checks (they
        // carry SigV4 and the AWS JSON content type instead) and after the Host check.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            awsapi::serve_aws_protocols,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            cross_site::check_host,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            rate_limit::limit_rate,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            limits::limit_headers,
        ))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            state.limits.request_timeout,
        ))
        // The span names the path only: query strings carry confirmation tokens.
        .layer(
            tower_http::trace::TraceLayer::new_for_http().make_span_with(
                |request: &Request| tracing::debug_span!("request", method = %request.method(), path = request.uri().path()),
            ),
        )
        .layer(middleware::from_fn(observe::observe_request))
        .with_state(state)
}

async fn refuse_writes_when_draining(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let is_write = !matches!(
        *request.method(),
        axum::http::Method::GET | axum::http::Method::HEAD
    );
    if is_write && !state.accepting.load(Ordering::Relaxed) {
        return ApiError::Unavailable("The server is shutting down; retry shortly".into())
            .into_response();
    }
    next.run(request).await
}

async fn not_found() -> ApiError {
    ApiError::NotFound("No such route".into())
}

pub(crate) fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json")) {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType)
    }
}

pub(crate) fn body_bytes(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge(MAX_BODY_BYTES)
        } else {
            ApiError::BadRequest(format!("The request body could not be read: {rejection}"))
        }
    })
}

/// Parses a JSON body into `T`, rendering failures in our error format.
pub(crate) fn json_body<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    require_json(headers)?;
    let bytes = body_bytes(body)?;
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| ApiError::MalformedJson(e.to_string()))?;
    serde_json::from_value(value).map_err(|e| {
        let (field, message) = field_of_serde_error(&e.to_string());
        ApiError::Invalid {
            error: format!("The request body is invalid: {field} {message}"),
            details: vec![orderflow_core::FieldError { field, message }],
        }
    })
}

/// Names the field a serde error is about (`missing field `x``, `unknown field `x``).
fn field_of_serde_error(message: &str) -> (String, String) {
    let quoted = |prefix: &str| {
        message
            .strip_prefix(prefix)
            .and_then(|rest| rest.split('`').next())
            .map(str::to_owned)
    };
    if let Some(field) = quoted("missing field `") {
        (field, "is required".into())
    } else if let Some(field) = quoted("unknown field `") {
        (field, "is not a known field".into())
    } else {
        ("$".into(), message.to_owned())
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Accepted {
    #[serde(rename = "orderID")]
    order_id: String,
    status: &'static str,
    message: String,
}

#[tracing::instrument(skip_all, fields(order_id, request_id))]
async fn post_order(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    require_json(&headers)?;
    let bytes = body_bytes(body)?;
    let order = OrderRequest::parse(&bytes)?.into_order(OrderId::generate);
    limits::check_queue_depth(&state).await?;
    let id = order.order_id.to_string();
    // `observe_request` has made the header a valid id; without it, make one here.
    let request_id =
        RequestId::from_client(headers.get(REQUEST_ID_HEADER).and_then(|v| v.to_str().ok()));
    let span = tracing::Span::current();
    span.record("order_id", id.as_str());
    span.record("request_id", request_id.as_str());
    let attributes = BTreeMap::from([(REQUEST_ID_ATTRIBUTE.to_owned(), request_id.to_string())]);
    // The 202 is sent only after the message is committed and fsync'd.
    state
        .engine
        .queue()
        .send_order(&order, attributes)
        .await
        .map_err(|e| match e {
            IntakeError::Conflict(id) => ApiError::Conflict(format!(
                "Order {id} already exists with different content; the stored order is kept. Send a new orderID for a new order"
            )),
            IntakeError::Db(e) => {
                tracing::error!(error = %orderflow_core::error_chain(&e), "could not queue the order");
                ApiError::Unavailable(
                    "The order could not be queued durably; it was not accepted. Retry shortly"
                        .into(),
                )
            }
        })?;
    tracing::debug!("order accepted");
    let location = format!("/orders/{id}");
    let body = Accepted {
        message: format!("Order {id} received"),
        order_id: id,
        status: "ACCEPTED",
    };
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(body),
    )
        .into_response())
}

fn parse_order_id(raw: &str) -> Result<OrderId, ApiError> {
    OrderId::parse(raw).map_err(|e| ApiError::invalid_field("orderID", &e.to_string()))
}

async fn get_order(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_order_id(&raw)?;
    match state
        .engine
        .table()
        .get(&id)
        .await
        .map_err(ApiError::internal)?
    {
        Some(order) => Ok(Json(order).into_response()),
        None => Err(ApiError::NotFound(format!(
            "Order {id} is not stored (it may still be queued)"
        ))),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    limit: Option<usize>,
    cursor: Option<String>,
}

async fn list_orders(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) =
        query.map_err(|e| ApiError::BadRequest(format!("Invalid query: {}", e.body_text())))?;
    let limit = q.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::invalid_field(
            "limit",
            "must be between 1 and 100",
        ));
    }
    if let Some(c) = &q.cursor
        && c.parse::<u64>().is_err()
    {
        return Err(ApiError::invalid_field(
            "cursor",
            "is not a cursor this server issued",
        ));
    }
    let page = state
        .engine
        .table()
        .list(limit, q.cursor.as_deref())
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(json!({"orders": page.orders, "nextCursor": page.next_cursor})).into_response())
}

/// Puts a body straight onto the orders queue, as any SQS producer could on AWS.
async fn send_raw_message(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let bytes = body_bytes(body)?;
    let body = String::from_utf8(bytes.to_vec())
        .map_err(|_| ApiError::BadRequest("A queue message must be UTF-8 text".into()))?;
    if body.is_empty() {
        return Err(ApiError::BadRequest(
            "A queue message must not be empty".into(),
        ));
    }
    limits::check_queue_depth(&state).await?;
    let id = state
        .engine
        .queue()
        .send(body, BTreeMap::new())
        .await
        .map_err(|e| ApiError::Unavailable(format!("The message could not be queued: {e}")))?;
    Ok((StatusCode::CREATED, Json(json!({"messageId": id}))).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageIds {
    #[serde(default)]
    message_ids: Option<Vec<String>>,
}

async fn list_dead_letters(State(state): State<AppState>) -> Result<Response, ApiError> {
    let messages = state
        .engine
        .queue()
        .dead_letters(1000)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(json!({"messages": messages})).into_response())
}

fn optional_ids(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Option<Vec<String>>, ApiError> {
    let bytes = body_bytes(body)?;
    if bytes.is_empty() {
        return Ok(None);
    }
    let ids: MessageIds = json_body(headers, Ok(bytes))?;
    Ok(ids.message_ids)
}

async fn redrive_dead_letters(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let ids = optional_ids(&headers, body)?;
    let moved = state
        .engine
        .queue()
        .redrive(ids)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(json!({"redriven": moved})).into_response())
}

async fn purge_dead_letters(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let ids = optional_ids(&headers, body)?;
    let purged = state
        .engine
        .queue()
        .purge_dead_letters(ids)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(json!({"purged": purged})).into_response())
}

async fn list_stream_failures(State(state): State<AppState>) -> Result<Response, ApiError> {
    let failures = state
        .engine
        .stream()
        .failures(1000)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(json!({"records": failures})).into_response())
}

async fn stats(State(state): State<AppState>) -> Result<Response, ApiError> {
    let stats = state.engine.stats().await.map_err(ApiError::internal)?;
    Ok(Json(stats).into_response())
}

async fn healthz(State(state): State<AppState>) -> Response {
    let store_ok = state
        .engine
        .table()
        .get(&OrderId::parse("healthz").expect("valid id"))
        .await
        .is_ok();
    let running = state.engine.is_running();
    if store_ok && running && state.accepting.load(Ordering::Relaxed) {
        Json(json!({"status": "ok"})).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unavailable", "store": store_ok, "pollers": running})),
        )
            .into_response()
    }
}

async fn order_schema() -> Response {
    (
        [(header::CONTENT_TYPE, "application/schema+json")],
        orderflow_core::order::ORDER_SCHEMA,
    )
        .into_response()
}

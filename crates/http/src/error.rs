//! The one error type of the HTTP edge; every failure renders our JSON error body.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use orderflow_core::FieldError;
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct ErrorBody {
    pub error: String,
    /// Always present, empty when no single field is at fault, so clients parse one shape.
    pub details: Vec<FieldError>,
}

#[derive(Debug)]
pub enum ApiError {
    /// The body parsed but broke the contract; every offending field is listed.
    Invalid {
        error: String,
        details: Vec<FieldError>,
    },
    MalformedJson(String),
    UnsupportedMediaType,
    PayloadTooLarge(usize),
    NotFound(String),
    BadRequest(String),
    /// The request names something that is taken by something else (an `orderID`).
    Conflict(String),
    /// The server is shutting down or cannot write right now; the client should retry.
    Unavailable(String),
    /// An API key is configured and the request did not carry it.
    Unauthorized,
    /// The request carried a valid key that does not allow it (the read-only key on a write,
    /// a subscription that wants the API key to unsubscribe).
    Forbidden(String),
    /// The client is over its request rate; it may retry after the given time.
    RateLimited(std::time::Duration),
    /// The request headers are larger than the limit (bytes).
    HeadersTooLarge(usize),
    /// Something unexpected: logged with its cause chain, shown as an opaque message.
    Internal(Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    pub fn internal(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        ApiError::Internal(Box::new(e))
    }

    pub fn invalid_field(field: &str, message: &str) -> Self {
        ApiError::Invalid {
            error: format!("{field} {message}"),
            details: vec![FieldError {
                field: field.into(),
                message: message.into(),
            }],
        }
    }
}

impl From<orderflow_core::OrderRejection> for ApiError {
    fn from(r: orderflow_core::OrderRejection) -> Self {
        match r {
            orderflow_core::OrderRejection::MalformedJson(m) => ApiError::MalformedJson(m),
            orderflow_core::OrderRejection::Invalid(details) => ApiError::Invalid {
                error: format!(
                    "The order is invalid: {} field{} failed validation",
                    details.len(),
                    if details.len() == 1 { "" } else { "s" }
                ),
                details,
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, error, details) = match self {
            ApiError::Invalid { error, details } => (StatusCode::BAD_REQUEST, error, details),
            ApiError::MalformedJson(m) => (
                StatusCode::BAD_REQUEST,
                format!("The request body is not valid JSON: {m}"),
                vec![],
            ),
            ApiError::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Expected a request with Content-Type: application/json".into(),
                vec![],
            ),
            ApiError::PayloadTooLarge(limit) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("The request body is larger than {} KiB", limit / 1024),
                vec![],
            ),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, m, vec![]),
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, m, vec![]),
            ApiError::Conflict(m) => (StatusCode::CONFLICT, m, vec![]),
            ApiError::Unavailable(m) => {
                let mut response = (
                    StatusCode::SERVICE_UNAVAILABLE,
                    Json(ErrorBody {
                        error: m,
                        details: vec![],
                    }),
                )
                    .into_response();
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                return response;
            }
            ApiError::Unauthorized => {
                let mut response = (
                    StatusCode::UNAUTHORIZED,
                    Json(ErrorBody {
                        error: "A valid API key is required (header x-api-key, or Authorization: Bearer)".into(),
                        details: vec![],
                    }),
                )
                    .into_response();
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"orderflow\""),
                );
                return response;
            }
            ApiError::Forbidden(m) => (StatusCode::FORBIDDEN, m, vec![]),
            ApiError::RateLimited(wait) => {
                let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                let mut response = (
                    StatusCode::TOO_MANY_REQUESTS,
                    Json(ErrorBody {
                        error: "Too many requests from this client; slow down and retry".into(),
                        details: vec![],
                    }),
                )
                    .into_response();
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
                return response;
            }
            ApiError::HeadersTooLarge(limit) => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                format!("The request headers are larger than {} KiB", limit / 1024),
                vec![],
            ),
            ApiError::Internal(source) => {
                tracing::error!(error = %orderflow_core::error_chain(source.as_ref()), "request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Internal server error; the failure was logged".into(),
                    vec![],
                )
            }
        };
        (status, Json(ErrorBody { error, details })).into_response()
    }
}

/// Renders the framework's own plain-text rejections (a query string that does not
/// deserialize, a path that does not parse) in our error format, so every error a client
/// sees has the documented JSON body.
pub(crate) async fn json_errors(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let plain = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/plain"));
    if !(status.is_client_error() || status.is_server_error()) || !plain {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = match axum::body::to_bytes(body, 4096).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(_) => String::new(),
    };
    let error = if text.trim().is_empty() {
        status.canonical_reason().unwrap_or("Error").to_owned()
    } else {
        text
    };
    let mut rendered = (
        status,
        Json(ErrorBody {
            error,
            details: vec![],
        }),
    )
        .into_response();
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            rendered.headers_mut().insert(name, value.clone());
        }
    }
    rendered
}

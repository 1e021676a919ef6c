//! API-key access control: with a key configured, every write requires it and every read
//! of data requires it or the read-only key; health, the portal's files, the signing
//! certificate, the API documents and the token-bearing subscriber links stay open.

use std::fmt;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use crate::{ApiError, AppState};

/// Header an API key may be sent in (API Gateway's name); `Authorization: Bearer` works too.
pub const API_KEY_HEADER: &str = "x-api-key";

/// Shortest key accepted: a guessable key is no access control.
pub const MIN_KEY_LEN: usize = 16;

/// The configured key. Only its SHA-256 digest is kept, so the key itself can never end
/// up in a log line or a `Debug` print.
#[derive(Clone)]
pub struct ApiKey {
    digest: [u8; 32],
}

#[derive(Debug, thiserror::Error)]
pub enum ApiKeyError {
    #[error("the API key must be at least {MIN_KEY_LEN} characters")]
    TooShort,
    #[error("the API key must be printable ASCII without spaces (it travels in a header)")]
    NotPrintable,
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

impl ApiKey {
    pub fn new(key: &str) -> Result<Self, ApiKeyError> {
        if key.len() < MIN_KEY_LEN {
            return Err(ApiKeyError::TooShort);
        }
        if !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ApiKeyError::NotPrintable);
        }
        Ok(ApiKey {
            digest: sha256(key.as_bytes()),
        })
    }

    /// Compares digests in constant time: neither the key's content nor its length leaks
    /// through how long a wrong guess takes.
    pub fn matches(&self, presented: &[u8]) -> bool {
        sha256(presented).ct_eq(&self.digest).into()
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// The key a request carries: `x-api-key: KEY` or `Authorization: Bearer KEY`.
fn presented_key(headers: &HeaderMap) -> Option<&[u8]> {
    if let Some(v) = headers.get(API_KEY_HEADER) {
        return Some(v.as_bytes());
    }
    let auth = headers.get(header::AUTHORIZATION)?.as_bytes();
    let (scheme, rest) = auth.split_at(auth.iter().position(|b| *b == b' ')?);
    scheme
        .eq_ignore_ascii_case(b"bearer")
        .then(|| rest.trim_ascii())
}

/// What a request needs, with an API key configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Health, the portal's files, the signing certificate, the API documents, and the
    /// subscriber links, which carry their own unguessable token (checked by their handler).
    Open,
    /// Every other read: orders name customers, subscriptions name endpoints and ARNs. The
    /// read-only key or the API key.
    Read,
    /// Every write: the API key.
    Write,
}

/// The open pages and files: nothing in them names a customer, a subscriber or an ARN.
fn is_open_read(path: &str, metrics_open: bool) -> bool {
    matches!(
        path,
        "/healthz"
            | "/subscriptions/confirm"
            | "/subscriptions/unsubscribe"
            | "/schema/order.json"
            | "/openapi.json"
            | "/"
            | "/index.html"
            | "/orders.html"
            | "/pipeline.html"
            | "/portal-config.json"
    ) || path.starts_with("/assets/")
        || path.starts_with("/sns/")
        || (metrics_open && path == "/metrics")
}

/// What `method path` needs: a write needs the API key, a read of anything but the open
/// pages a key (the read-only key will do).
pub fn access(method: &Method, path: &str, metrics_open: bool) -> Access {
    match *method {
        Method::GET | Method::HEAD if is_open_read(path, metrics_open) => Access::Open,
        Method::GET | Method::HEAD => Access::Read,
        // Nothing answers OPTIONS with data; it stays open as before.
        Method::OPTIONS => Access::Open,
        _ => Access::Write,
    }
}

/// Whether the request carries the API key itself (not the read-only key).
pub(crate) fn has_api_key(state: &AppState, headers: &HeaderMap) -> bool {
    state
        .api_key
        .as_ref()
        .is_some_and(|key| presented_key(headers).is_some_and(|k| key.matches(k)))
}

pub(crate) async fn require_api_key(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(key) = &state.api_key else {
        return next.run(request).await;
    };
    let needed = access(request.method(), request.uri().path(), state.metrics_open);
    if needed != Access::Open {
        let presented = presented_key(request.headers());
        let full = presented.is_some_and(|k| key.matches(k));
        let read_only = !full
            && presented.is_some_and(|k| state.read_api_key.as_ref().is_some_and(|r| r.matches(k)));
        // Deliberately no detail on what was wrong, and nothing of the header logged.
        if needed == Access::Write && read_only {
            tracing::info!(method = %request.method(), path = request.uri().path(), "write with the read-only key refused");
            return ApiError::Forbidden(
                "The read-only API key cannot change anything; this needs the API key".into(),
            )
            .into_response();
        }
        if !(full || read_only) {
            tracing::info!(method = %request.method(), path = request.uri().path(), "request without a valid API key refused");
            return ApiError::Unauthorized.into_response();
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn a_key_matches_itself_only() {
        let key = ApiKey::new("correct-horse-battery-staple").unwrap();
        assert!(key.matches(b"correct-horse-battery-staple"));
        assert!(!key.matches(b"correct-horse-battery-stapl"));
        assert!(!key.matches(b"correct-horse-battery-staple "));
        assert!(!key.matches(b""));
    }

    #[test]
    fn short_or_unprintable_keys_are_refused() {
        assert!(matches!(ApiKey::new("short"), Err(ApiKeyError::TooShort)));
        assert!(matches!(
            ApiKey::new("has a space in the middle"),
            Err(ApiKeyError::NotPrintable)
        ));
    }

    #[test]
    fn debug_never_shows_the_key() {
        let key = ApiKey::new("super-secret-value-123").unwrap();
        assert!(!format!("{key:?}").contains("secret"));
    }

    #[test]
    fn the_key_is_read_from_x_api_key_or_a_bearer_token() {
        let mut h = HeaderMap::new();
        assert_eq!(presented_key(&h), None);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer  abc"),
        );
        assert_eq!(presented_key(&h), Some(&b"abc"[..]));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(presented_key(&h), None);
        h.insert(API_KEY_HEADER, HeaderValue::from_static("xyz"));
        assert_eq!(presented_key(&h), Some(&b"xyz"[..]));
    }

    #[test]
    fn writes_need_the_key_reads_of_data_need_a_key_and_only_the_public_pages_are_open() {
        for (method, path) in [
            (Method::POST, "/orders"),
            (Method::POST, "/queue/messages"),
            (Method::DELETE, "/subscriptions/abc"),
            (Method::POST, "/queues/audit/receive"),
            (Method::DELETE, "/queues/audit/messages/h"),
            (Method::PUT, "/healthz"),
            (Method::from_bytes(b"MADEUP").unwrap(), "/metrics"),
        ] {
            assert_eq!(
                access(&method, path, true),
                Access::Write,
                "{method} {path}"
            );
        }
        for path in [
            "/orders",
            "/orders/abc",
            "/orders/abc/trace",
            "/stats",
            "/metrics",
            "/subscriptions",
            "/subscriptions/abc",
            "/queue/dlq",
            "/stream/failures",
            "/dlq",
            "/queues/audit",
            "/subscriptionsx",
            "/no-such-route",
        ] {
            assert_eq!(
                access(&Method::GET, path, false),
                Access::Read,
                "GET {path}"
            );
            assert_eq!(
                access(&Method::HEAD, path, false),
                Access::Read,
                "HEAD {path}"
            );
        }
        for path in [
            "/healthz",
            "/subscriptions/confirm",
            "/subscriptions/unsubscribe",
            "/openapi.json",
            "/schema/order.json",
            "/",
            "/orders.html",
            "/pipeline.html",
            "/portal-config.json",
            "/assets/api.js",
            "/sns/SimpleNotificationService-abc.pem",
        ] {
            assert_eq!(
                access(&Method::GET, path, false),
                Access::Open,
                "GET {path}"
            );
        }
        assert_eq!(access(&Method::GET, "/metrics", true), Access::Open);
    }
}

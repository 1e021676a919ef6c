//! API-key access control: with a key configured, every write and every subscription and
//! dead-letter endpoint requires it; reads of orders, stats and health stay open.

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

/// Whether a request needs the key: every write, and every read of subscriptions and dead
/// letters (pull-queue subscriptions under `/queues` included). The confirmation and unsubscribe links stay open: subscribers follow them
/// without our key, and each carries its own unguessable token or ARN, as on SNS.
pub fn requires_key(method: &Method, path: &str) -> bool {
    if !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return true;
    }
    let under = |prefix: &str| {
        path == prefix
            || path
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('/'))
    };
    if path == "/subscriptions/confirm" || path == "/subscriptions/unsubscribe" {
        return false;
    }
    under("/subscriptions")
        || under("/queue/dlq")
        || under("/stream/failures")
        || under("/dlq")
        || under("/queues")
}

pub(crate) async fn require_api_key(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(key) = &state.api_key
        && requires_key(request.method(), request.uri().path())
    {
        let authorized = presented_key(request.headers()).is_some_and(|k| key.matches(k));
        if !authorized {
            // Deliberately no detail on what was wrong, and nothing of the header logged.
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
    fn writes_subscriptions_and_dead_letters_need_the_key_order_reads_do_not() {
        for (method, path) in [
            (Method::POST, "/orders"),
            (Method::POST, "/queue/messages"),
            (Method::DELETE, "/subscriptions/abc"),
            (Method::GET, "/subscriptions"),
            (Method::GET, "/subscriptions/abc"),
            (Method::GET, "/queue/dlq"),
            (Method::GET, "/queue/dlq/abc"),
            (Method::GET, "/stream/failures"),
            (Method::GET, "/dlq"),
            (Method::GET, "/queues/audit"),
            (Method::GET, "/queues/audit/dlq"),
        ] {
            assert!(requires_key(&method, path), "{method} {path}");
        }
        for (method, path) in [
            (Method::GET, "/orders"),
            (Method::GET, "/orders/abc"),
            (Method::GET, "/healthz"),
            (Method::GET, "/stats"),
            (Method::GET, "/subscriptions/confirm"),
            (Method::GET, "/subscriptions/unsubscribe"),
            (Method::GET, "/subscriptionsx"),
            (Method::GET, "/openapi.json"),
        ] {
            assert!(!requires_key(&method, path), "{method} {path}");
        }
    }
}

//! Refuses what a web page the operator visits could make the browser send: requests for
//! another host name (DNS rebinding) and state-changing requests a plain HTML form or a
//! no-cors `fetch` can send without a preflight (no JSON content type).

use std::net::{IpAddr, SocketAddr};

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::{ApiError, AppState, ErrorBody};

/// The names a request may address this server by.
#[derive(Debug, Clone, Default)]
pub struct AllowedHosts {
    /// `None`: every host (a router built without a listener, as in unit tests).
    bound: Option<IpAddr>,
    /// Lower-case names without a port: the public URL's host and `--allowed-host`.
    names: Vec<String>,
}

impl AllowedHosts {
    /// Any `Host`: for a router that is not served by `orderflow serve`'s listener.
    pub fn any() -> Self {
        AllowedHosts::default()
    }

    /// The bound address (any address literal when bound to all interfaces), `localhost`
    /// when bound to loopback or to all interfaces, the public URL's host, and `extra`.
    pub fn for_listener(bound: SocketAddr, public_url: Option<&str>, extra: &[String]) -> Self {
        let mut names: Vec<String> = extra.iter().map(|n| normalize(n)).collect();
        if let Some(host) = public_url
            .and_then(|u| url::Url::parse(u).ok())
            .and_then(|u| u.host_str().map(normalize))
        {
            names.push(host);
        }
        AllowedHosts {
            bound: Some(bound.ip()),
            names,
        }
    }

    /// Whether a request whose `Host` (or HTTP/2 authority) is `host` is for this server.
    pub fn allows(&self, host: &str) -> bool {
        let Some(bound) = self.bound else {
            return true;
        };
        let name = normalize(strip_port(host));
        if self.names.contains(&name) {
            return true;
        }
        let literal = name.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = literal.parse::<IpAddr>() {
            // A page can only send an address literal as Host if it was loaded from that
            // address, which is this server: rebinding needs a name.
            return bound.is_unspecified()
                || ip == bound
                || (bound.is_loopback() && ip.is_loopback());
        }
        let local_name = name == "localhost" || name.ends_with(".localhost");
        local_name && (bound.is_loopback() || bound.is_unspecified())
    }
}

fn normalize(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// `host`, `host:port`, `[v6]` or `[v6]:port` without the port.
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_inclusive(']').next().unwrap_or(host);
    }
    match host.rsplit_once(':') {
        // One colon: a port. More: a bare IPv6 literal (not valid in Host, but harmless).
        Some((name, port)) if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            name
        }
        _ => host,
    }
}

/// `421` for a request that names a host this server does not answer to. `/healthz` is
/// exempt: load balancers probe it by address or by names of their own, and it tells
/// nothing.
pub async fn check_host(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let host = request
        .uri()
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            request
                .headers()
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        });
    match host {
        Some(host) if request.uri().path() != "/healthz" && !state.allowed_hosts.allows(&host) => {
            tracing::info!(%host, "refused a request for another host name");
            (
                StatusCode::MISDIRECTED_REQUEST,
                Json(ErrorBody {
                    error: format!(
                        "This server does not answer to the host name {:?}; use the address it listens on or its public URL (--public-url, --allowed-host)",
                        strip_port(&host)
                    ),
                    details: vec![],
                }),
            )
                .into_response()
        }
        _ => next.run(request).await,
    }
}

/// `415` for a state-changing request that is not JSON: `POST` always (even without a
/// body), `PUT`, `PATCH`, and `DELETE` when it carries a body. A form or a no-cors fetch
/// can only send `text/plain`, `application/x-www-form-urlencoded`, `multipart/form-data`
/// or nothing; a JSON content type makes the browser ask first (CORS preflight), and this
/// server allows no cross-origin requests.
pub async fn require_json_writes(request: Request, next: Next) -> Response {
    let method = request.method();
    let has_body = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .is_some_and(|v| v.as_bytes() != b"0")
        || request.headers().contains_key(header::TRANSFER_ENCODING);
    let must_be_json = matches!(*method, Method::POST | Method::PUT | Method::PATCH)
        || (*method == Method::DELETE && has_body);
    if must_be_json && crate::require_json(request.headers()).is_err() {
        return ApiError::UnsupportedMediaType.into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on(addr: &str, public_url: Option<&str>) -> AllowedHosts {
        AllowedHosts::for_listener(addr.parse().unwrap(), public_url, &[])
    }

    #[test]
    fn a_loopback_server_answers_to_its_address_and_localhost_only() {
        let hosts = on("127.0.0.1:8080", None);
        for ok in [
            "127.0.0.1:8080",
            "127.0.0.1",
            "localhost:8080",
            "LOCALHOST.",
            "[::1]:8080",
        ] {
            assert!(hosts.allows(ok), "{ok}");
        }
        for refused in [
            "attacker.example:8080",
            "attacker.example",
            "10.0.0.1:8080",
            "localhost.attacker.example",
        ] {
            assert!(!hosts.allows(refused), "{refused}");
        }
    }

    #[test]
    fn the_public_url_s_host_is_allowed() {
        let hosts = on("10.0.0.5:8080", Some("https://orders.example.com/"));
        assert!(hosts.allows("orders.example.com"));
        assert!(hosts.allows("orders.example.com:443"));
        assert!(hosts.allows("10.0.0.5:8080"));
        assert!(!hosts.allows("localhost:8080"));
        assert!(!hosts.allows("rebind.attacker.example"));
    }

    #[test]
    fn a_server_on_every_interface_answers_to_any_address_literal_but_not_to_other_names() {
        let hosts = on("0.0.0.0:8080", None);
        assert!(hosts.allows("192.168.1.20:8080"));
        assert!(hosts.allows("localhost"));
        assert!(!hosts.allows("attacker.example"));
    }
}

//! The customer portal: the order form, recent orders and the pipeline at a glance, as
//! hand-written files compiled into the binary (no build step, no CDN, works offline).
//!
//! Every response carries a strict Content-Security-Policy: scripts and styles only from
//! this origin, no inline code, and network access only to this origin and the configured
//! API base (so the same pages can talk to the AWS deployment).

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::get;

/// Environment variable that points the portal at another API (for example the AWS
/// deployment's API Gateway URL); unset or empty means the portal's own origin.
pub const API_URL_ENV: &str = "ORDERFLOW_PORTAL_API_URL";

const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const SVG: &str = "image/svg+xml";
const JSON: &str = "application/json";

/// Revalidate every time: the files are small, the server is local, and a 304 keeps
/// pages and scripts from ever being out of step after an upgrade.
const CACHE_CONTROL: &str = "no-cache";

#[derive(Debug)]
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
    etag: u64,
}

impl Asset {
    const fn new(name: &'static str, content_type: &'static str, body: &'static [u8]) -> Self {
        Asset {
            name,
            content_type,
            body,
            etag: fnv1a(body),
        }
    }
}

/// FNV-1a, computed at compile time: a stable ETag per embedded file.
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    hash
}

static ORDER_PAGE: Asset = Asset::new("index.html", HTML, include_bytes!("../assets/index.html"));
static ORDERS_PAGE: Asset =
    Asset::new("orders.html", HTML, include_bytes!("../assets/orders.html"));
static PIPELINE_PAGE: Asset = Asset::new(
    "pipeline.html",
    HTML,
    include_bytes!("../assets/pipeline.html"),
);

/// Pages, by the path they are served at.
static PAGES: [(&str, &Asset); 4] = [
    ("/", &ORDER_PAGE),
    ("/index.html", &ORDER_PAGE),
    ("/orders.html", &ORDERS_PAGE),
    ("/pipeline.html", &PIPELINE_PAGE),
];

/// Files under `/assets/`.
static ASSETS: [Asset; 8] = [
    Asset::new("portal.css", CSS, include_bytes!("../assets/portal.css")),
    Asset::new("api.js", JS, include_bytes!("../assets/api.js")),
    Asset::new("money.js", JS, include_bytes!("../assets/money.js")),
    Asset::new("dom.js", JS, include_bytes!("../assets/dom.js")),
    Asset::new("order.js", JS, include_bytes!("../assets/order.js")),
    Asset::new("orders.js", JS, include_bytes!("../assets/orders.js")),
    Asset::new("pipeline.js", JS, include_bytes!("../assets/pipeline.js")),
    Asset::new("favicon.svg", SVG, include_bytes!("../assets/favicon.svg")),
];

/// Where the portal's pages send their API requests.
#[derive(Debug, Clone, Default)]
pub struct PortalConfig {
    api_base: Option<ApiBase>,
}

#[derive(Debug, Clone)]
struct ApiBase {
    /// The base URL without a trailing slash, e.g. `https://abc.execute-api.eu-west-1.amazonaws.com/prod`.
    url: String,
    /// Its origin, the CSP `connect-src` source, e.g. `https://abc.execute-api.eu-west-1.amazonaws.com`.
    origin: String,
}

#[derive(Debug, thiserror::Error)]
pub enum InvalidApiBase {
    #[error("the portal's API URL {url:?} is not a URL")]
    NotAUrl {
        url: String,
        #[source]
        source: url::ParseError,
    },
    #[error("the portal's API URL {0:?} must be an http:// or https:// URL with a plain host name")]
    Unsupported(String),
    #[error("the portal's API URL {0:?} must not carry credentials, a query or a fragment")]
    Extras(String),
}

impl PortalConfig {
    /// The pages talk to the origin that served them (`orderflow serve`).
    pub fn same_origin() -> Self {
        PortalConfig::default()
    }

    /// The pages talk to the API at `url` (scheme, host, optional port and path prefix).
    pub fn with_api_url(url: &str) -> Result<Self, InvalidApiBase> {
        let parsed = url::Url::parse(url).map_err(|source| InvalidApiBase::NotAUrl {
            url: url.to_owned(),
            source,
        })?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(InvalidApiBase::Unsupported(url.to_owned()));
        }
        if !parsed.username().is_empty()
            || parsed.password().is_some()
            || parsed.query().is_some()
            || parsed.fragment().is_some()
        {
            return Err(InvalidApiBase::Extras(url.to_owned()));
        }
        let origin = parsed.origin().ascii_serialization();
        // The origin goes into a header; allow only what a host name, IP literal and port use.
        if !origin
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '/' | '[' | ']'))
        {
            return Err(InvalidApiBase::Unsupported(url.to_owned()));
        }
        Ok(PortalConfig {
            api_base: Some(ApiBase {
                url: parsed.as_str().trim_end_matches('/').to_owned(),
                origin,
            }),
        })
    }

    /// Reads [`API_URL_ENV`]; unset or empty means [`PortalConfig::same_origin`].
    pub fn from_env() -> Result<Self, InvalidApiBase> {
        match std::env::var(API_URL_ENV) {
            Ok(url) if !url.trim().is_empty() => PortalConfig::with_api_url(url.trim()),
            _ => Ok(PortalConfig::same_origin()),
        }
    }

    fn content_security_policy(&self) -> String {
        let connect = match &self.api_base {
            Some(base) => format!("'self' {}", base.origin),
            None => "'self'".to_owned(),
        };
        format!(
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src {connect}; \
             img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
        )
    }

    fn client_json(&self) -> String {
        let base = self.api_base.as_ref().map_or("", |b| b.url.as_str());
        serde_json::json!({ "apiBase": base }).to_string()
    }
}

#[derive(Debug)]
struct Shared {
    csp: HeaderValue,
    config_json: Bytes,
    config_etag: u64,
}

/// The portal's routes, answering at the same origin as the API.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    router_with(PortalConfig::same_origin())
}

/// The portal's routes, with the pages pointed at the API that `config` names.
pub fn router_with<S: Clone + Send + Sync + 'static>(config: PortalConfig) -> Router<S> {
    let csp = HeaderValue::from_str(&config.content_security_policy())
        .expect("the policy is built from validated ASCII");
    let config_json = Bytes::from(config.client_json());
    let shared = Arc::new(Shared {
        csp,
        config_etag: fnv1a(&config_json),
        config_json,
    });

    let mut router = Router::new();
    for (path, page) in &PAGES {
        let shared = shared.clone();
        router = router.route(
            path,
            get(move |headers: HeaderMap| async move {
                respond(
                    &shared,
                    &headers,
                    page.content_type,
                    Bytes::from_static(page.body),
                    page.etag,
                )
            }),
        );
    }
    let config_shared = shared.clone();
    router
        .route(
            "/portal-config.json",
            get(move |headers: HeaderMap| async move {
                let s = &config_shared;
                respond(s, &headers, JSON, s.config_json.clone(), s.config_etag)
            }),
        )
        .route(
            "/assets/{*file}",
            get(
                move |Path(file): Path<String>, headers: HeaderMap| async move {
                    match ASSETS.iter().find(|a| a.name == file) {
                        Some(asset) => respond(
                            &shared,
                            &headers,
                            asset.content_type,
                            Bytes::from_static(asset.body),
                            asset.etag,
                        ),
                        None => not_found(&shared),
                    }
                },
            ),
        )
}

fn respond(
    shared: &Shared,
    request: &HeaderMap,
    content_type: &'static str,
    body: Bytes,
    etag: u64,
) -> Response {
    let etag = format!("\"{etag:016x}\"");
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .map(|t| t.trim().trim_start_matches("W/"))
                .any(|t| t == etag || t == "*")
        });
    let mut response = if fresh {
        with_status(StatusCode::NOT_MODIFIED, Body::empty())
    } else {
        let mut r = with_status(StatusCode::OK, Body::from(body));
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        r
    };
    let headers = response.headers_mut();
    headers.insert(
        header::ETAG,
        HeaderValue::from_str(&etag).expect("hex digits in quotes"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(CACHE_CONTROL),
    );
    secure(shared, response)
}

fn not_found(shared: &Shared) -> Response {
    let mut response = with_status(StatusCode::NOT_FOUND, Body::from("Not found\n"));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    secure(shared, response)
}

fn with_status(status: StatusCode, body: Body) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response
}

fn secure(shared: &Shared, mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, shared.csp.clone());
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

#[cfg(test)]
mod tests;

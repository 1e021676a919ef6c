use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode, header};
use tower::ServiceExt;

use super::*;

const STRICT_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
     img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

async fn get_with(
    router: Router,
    path: &str,
    if_none_match: Option<&str>,
) -> (StatusCode, HeaderMap, String) {
    let mut request = Request::get(path);
    if let Some(tag) = if_none_match {
        request = request.header(header::IF_NONE_MATCH, tag);
    }
    let response = router
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = to_bytes(response.into_body(), 1 << 20).await.unwrap();
    (status, headers, String::from_utf8(body.to_vec()).unwrap())
}

async fn get(path: &str) -> (StatusCode, HeaderMap, String) {
    get_with(router(), path, None).await
}

fn header_of(headers: &HeaderMap, name: header::HeaderName) -> &str {
    headers
        .get(&name)
        .unwrap_or_else(|| panic!("missing {name}"))
        .to_str()
        .unwrap()
}

fn assert_secured(path: &str, headers: &HeaderMap) {
    assert_eq!(
        header_of(headers, header::CONTENT_SECURITY_POLICY),
        STRICT_CSP,
        "{path}"
    );
    assert_eq!(
        header_of(headers, header::X_CONTENT_TYPE_OPTIONS),
        "nosniff",
        "{path}"
    );
    assert_eq!(
        header_of(headers, header::X_FRAME_OPTIONS),
        "DENY",
        "{path}"
    );
}

#[tokio::test]
async fn every_page_is_html_with_the_strict_policy_and_revalidation() {
    for path in ["/", "/index.html", "/orders.html", "/pipeline.html"] {
        let (status, headers, body) = get(path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(
            header_of(&headers, header::CONTENT_TYPE),
            "text/html; charset=utf-8",
            "{path}"
        );
        assert_secured(path, &headers);
        assert_eq!(header_of(&headers, header::CACHE_CONTROL), "no-cache");
        assert!(header_of(&headers, header::ETAG).starts_with('"'), "{path}");
        assert!(body.starts_with("<!doctype html>"), "{path}");
    }
}

#[tokio::test]
async fn the_order_form_names_its_fields_after_the_schema() {
    let (_, _, page) = get("/").await;
    for name in [
        "customerId",
        "customerEmail",
        "currency",
        "sku",
        "quantity",
        "unitPrice",
    ] {
        assert!(
            page.contains(&format!("name=\"{name}\"")),
            "no field named {name}"
        );
    }
    for test_id in ["order-success", "order-status", "order-error"] {
        assert!(
            page.contains(&format!("data-testid=\"{test_id}\"")),
            "{test_id}"
        );
    }
}

#[tokio::test]
async fn every_asset_is_served_with_its_content_type() {
    let expected = [
        ("portal.css", "text/css; charset=utf-8"),
        ("order.js", "text/javascript; charset=utf-8"),
        ("orders.js", "text/javascript; charset=utf-8"),
        ("pipeline.js", "text/javascript; charset=utf-8"),
        ("api.js", "text/javascript; charset=utf-8"),
        ("money.js", "text/javascript; charset=utf-8"),
        ("dom.js", "text/javascript; charset=utf-8"),
        ("favicon.svg", "image/svg+xml"),
    ];
    assert_eq!(expected.len(), ASSETS.len(), "a new asset needs a test row");
    for (name, content_type) in expected {
        let path = format!("/assets/{name}");
        let (status, headers, body) = get(&path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(header_of(&headers, header::CONTENT_TYPE), content_type);
        assert_secured(&path, &headers);
        assert!(!body.is_empty(), "{path}");
    }
}

#[tokio::test]
async fn an_unknown_asset_is_404_with_the_same_protection() {
    for path in [
        "/assets/nope.js",
        "/assets/../src/lib.rs",
        "/assets/sub/portal.css",
    ] {
        let (status, headers, _) = get(path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_secured(path, &headers);
        assert_eq!(header_of(&headers, header::CACHE_CONTROL), "no-store");
    }
}

#[tokio::test]
async fn a_matching_etag_is_answered_with_304_and_no_body() {
    let (_, headers, _) = get("/assets/portal.css").await;
    let etag = header_of(&headers, header::ETAG).to_owned();
    let (status, headers, body) = get_with(
        router(),
        "/assets/portal.css",
        Some(&format!("W/{etag}, \"x\"")),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert!(body.is_empty());
    assert_eq!(header_of(&headers, header::ETAG), etag);
    assert_secured("304", &headers);

    let (status, _, _) = get_with(router(), "/assets/portal.css", Some("\"other\"")).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn by_default_the_pages_talk_to_their_own_origin() {
    let (status, headers, body) = get("/portal-config.json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        header_of(&headers, header::CONTENT_TYPE),
        "application/json"
    );
    assert_secured("/portal-config.json", &headers);
    assert_eq!(body, r#"{"apiBase":""}"#);
}

#[tokio::test]
async fn a_configured_api_is_allowed_by_the_policy_and_told_to_the_pages() {
    let config =
        PortalConfig::with_api_url("https://abc123.execute-api.eu-west-1.amazonaws.com/prod/")
            .unwrap();
    let router: Router = router_with(config);
    let (_, headers, body) = get_with(router.clone(), "/portal-config.json", None).await;
    assert_eq!(
        body,
        r#"{"apiBase":"https://abc123.execute-api.eu-west-1.amazonaws.com/prod"}"#
    );
    let csp = header_of(&headers, header::CONTENT_SECURITY_POLICY);
    assert!(
        csp.contains("connect-src 'self' https://abc123.execute-api.eu-west-1.amazonaws.com;"),
        "{csp}"
    );
    let (_, page_headers, _) = get_with(router, "/", None).await;
    assert_eq!(
        header_of(&page_headers, header::CONTENT_SECURITY_POLICY),
        csp
    );
}

#[test]
fn an_api_url_that_could_widen_the_policy_is_refused() {
    for bad in [
        "javascript:alert(1)",
        "data:text/plain,x",
        "ftp://example.com",
        "https://user:pw@example.com",
        "https://example.com/?q=1",
        "https://example.com/#top",
        "https://exa;mple.com",
        "https://exa'mple.com",
        "not a url",
    ] {
        assert!(PortalConfig::with_api_url(bad).is_err(), "{bad} accepted");
    }
    assert!(PortalConfig::with_api_url("http://127.0.0.1:8080").is_ok());
    assert!(PortalConfig::with_api_url("http://[::1]:8080/api").is_ok());
}

#[test]
fn pages_reference_only_embedded_assets_and_carry_no_inline_code() {
    for (path, page) in &PAGES {
        let html = std::str::from_utf8(page.body).unwrap();
        for reference in html.split("assets/").skip(1) {
            let name = reference.split('"').next().unwrap();
            assert!(
                ASSETS.iter().any(|a| a.name == name),
                "{path} references missing asset {name}"
            );
        }
        // The policy would block these; keep them out rather than find out in a browser.
        assert!(!html.contains(" style="), "{path} has an inline style");
        assert!(!html.contains("<style"), "{path} has a style element");
        assert!(!html.contains(" onclick="), "{path} has an inline handler");
        assert_eq!(
            html.matches("<script").count(),
            html.matches("<script type=\"module\" src=\"assets/")
                .count(),
            "{path} has an inline script"
        );
    }
}

#[test]
fn scripts_never_parse_data_as_html() {
    for asset in ASSETS.iter().filter(|a| a.content_type == JS) {
        let js = std::str::from_utf8(asset.body).unwrap();
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
        ] {
            assert!(!js.contains(sink), "{} uses {sink}", asset.name);
        }
    }
}

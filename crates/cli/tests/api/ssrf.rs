//! Server-side request forgery through subscriptions: endpoints on the host's own networks
//! are refused when subscribing and on every connection, redirects are never followed,
//! confirmations are retried a bounded number of times, and a failure's text says what
//! kind of failure it was, not what the endpoint said.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode as AxumStatus, header};
use axum::response::{IntoResponse, Response};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::helpers::{
    AppOptions, SHORT, TestApp, http_client, json_of, order, spawn_app, spawn_app_with, unique_id,
    wait_for,
};
use crate::subscriber::TestSubscriber;

async fn subscribe_http(app: &TestApp, endpoint: &str, extra: Value) -> (StatusCode, Value) {
    let protocol = if endpoint.starts_with("https:") {
        "https"
    } else {
        "http"
    };
    let mut body = json!({"protocol": protocol, "endpoint": endpoint});
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    json_of(app.post_json("/subscriptions", &body).await).await
}

/// The subscription as `GET /subscriptions/{id}` shows it (with `deliveries`, `lastError`).
async fn subscription(app: &TestApp, id: &str) -> Value {
    let (status, body) = app.get_json(&format!("/subscriptions/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn wait_for_failed_delivery(app: &TestApp, id: &str) -> Value {
    wait_for(SHORT, "a delivery to fail for good", async || {
        let sub = subscription(app, id).await;
        if sub["deliveries"]["failed"].as_u64().unwrap_or(0) >= 1 {
            Ok(sub)
        } else {
            Err(sub.to_string())
        }
    })
    .await
}

/// Waits until a delivery (a confirmation request included) has failed at least once.
async fn wait_for_last_error(app: &TestApp, id: &str) -> String {
    wait_for(SHORT, "a delivery attempt to fail", async || {
        let sub = subscription(app, id).await;
        sub["lastError"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| sub.to_string())
    })
    .await
}

/// A free port on 127.0.0.1, for a server that must know its own address before it starts.
async fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn an_endpoint_on_a_private_link_local_or_mapped_address_is_refused_with_400() {
    let app = spawn_app().await;
    for (endpoint, class) in [
        ("http://10.0.0.1/hook", "private"),
        ("http://192.168.1.10:8080/hook", "private"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://100.64.0.1/hook", "CGNAT"),
        ("http://224.0.0.1/hook", "multicast"),
        ("http://0.0.0.0:9/hook", "unspecified"),
        ("http://[fd00::1]/hook", "unique local"),
        ("http://[fe80::1]/hook", "link-local"),
        ("http://[::ffff:10.0.0.1]/hook", "IPv6 form of a private"),
        (
            "http://[::ffff:169.254.169.254]/hook",
            "IPv6 form of a link-local",
        ),
        (
            "https://[::ffff:a9fe:a9fe]/hook",
            "IPv6 form of a link-local",
        ),
    ] {
        let (status, body) = subscribe_http(&app, endpoint, json!({})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{endpoint}: {body}");
        assert_eq!(
            body["details"][0]["field"], "endpoint",
            "{endpoint}: {body}"
        );
        let message = body["details"][0]["message"].as_str().unwrap();
        assert!(message.contains(class), "{endpoint}: {message}");
        assert!(
            message.contains("--allow-endpoint-network"),
            "{endpoint}: {message}"
        );
    }
    assert!(app.subscriptions().await.is_empty());
}

#[tokio::test]
async fn a_server_listening_beyond_loopback_refuses_loopback_endpoints_unless_the_operator_allows_them()
 {
    let app = spawn_app_with(AppOptions {
        addr: Some("0.0.0.0:0".into()),
        ..AppOptions::default()
    })
    .await;
    for endpoint in [
        "http://127.0.0.1:9/hook",
        "http://localhost:9/hook",
        "http://[::1]:9/hook",
    ] {
        let (status, body) = subscribe_http(&app, endpoint, json!({})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{endpoint}: {body}");
        assert!(
            body["details"][0]["message"]
                .as_str()
                .unwrap()
                .contains("loopback"),
            "{body}"
        );
    }

    let allowed = spawn_app_with(
        AppOptions {
            addr: Some("0.0.0.0:0".into()),
            ..AppOptions::default()
        }
        .with_args(&[
            "--allow-endpoint-network",
            "127.0.0.0/8",
            "--allow-endpoint-network",
            "::1/128",
        ]),
    )
    .await;
    for endpoint in ["http://127.0.0.1:9/hook", "http://localhost:9/hook"] {
        let (status, body) = subscribe_http(&allowed, endpoint, json!({})).await;
        assert_eq!(status, StatusCode::CREATED, "{endpoint}: {body}");
    }
}

#[tokio::test]
async fn a_loopback_server_published_under_a_public_url_refuses_loopback_endpoints() {
    // Behind a reverse proxy the server listens on 127.0.0.1 but anyone can subscribe.
    let app = spawn_app_with(
        AppOptions::default().with_args(&["--public-url", "https://orders.example.test"]),
    )
    .await;
    let (status, body) = subscribe_http(&app, "http://127.0.0.1:9/hook", json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let local =
        spawn_app_with(AppOptions::default().with_args(&["--public-url", "http://localhost:8080"]))
            .await;
    let (status, body) = subscribe_http(&local, "http://127.0.0.1:9/hook", json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn a_name_that_resolves_to_a_refused_address_is_refused_on_every_connection() {
    // The subscription is made while the operator allows loopback; then the server starts
    // without that permission, as if the name had been rebound to 127.0.0.1 since.
    let internal = TestSubscriber::start().await;
    let port = free_port().await;
    let addr = format!("0.0.0.0:{port}");
    let public_url = format!("http://127.0.0.1:{port}");
    let mut app = spawn_app_with(
        AppOptions {
            addr: Some(addr.clone()),
            ..AppOptions::fast_retries()
        }
        .with_args(&[
            "--public-url",
            &public_url,
            "--allow-endpoint-network",
            "127.0.0.0/8,::1/128",
        ]),
    )
    .await;
    let by_name = internal.url().replace("127.0.0.1", "localhost");
    let (status, body) = subscribe_http(
        &app,
        &by_name,
        json!({"deliveryPolicy": {"maxAttempts": 2, "minDelayMs": 10, "maxDelayMs": 20}}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    wait_for(SHORT, "the subscriber to confirm", async || {
        if internal.confirmed_count() == 1 {
            Ok(())
        } else {
            Err(format!("{:?}", internal.confirmations()))
        }
    })
    .await;

    app.options.extra_args = vec!["--public-url".into(), public_url.clone()];
    app.restart().await;
    app.submit(&order(&unique_id("rebind"))).await;
    let sub = wait_for_failed_delivery(&app, &id).await;
    assert!(
        internal.notification_attempts().is_empty(),
        "the internal listener was reached"
    );
    let reason = sub["lastError"].as_str().unwrap();
    assert!(
        reason.contains("loopback") && reason.contains("--allow-endpoint-network"),
        "{reason}"
    );
}

/// A proxy that counts the connections it is offered and answers each with a 502.
async fn start_counting_proxy() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let offered = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&offered);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                let _ = stream
                    .write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n")
                    .await;
            });
        }
    });
    (url, offered)
}

#[tokio::test]
async fn deliveries_ignore_proxy_variables_so_the_policy_checks_the_address_actually_reached() {
    // reqwest honours HTTP_PROXY / HTTPS_PROXY / ALL_PROXY by default
    // (https://docs.rs/reqwest/0.13/reqwest/#proxies). Through a proxy the policy would only
    // see the proxy's address while the proxy resolves and reaches the endpoint's name, so a
    // name rebound to an internal address, or one only the proxy's DNS knows, got through.
    let (proxy, offered) = start_counting_proxy().await;
    let subscriber = TestSubscriber::start().await;
    let app = spawn_app_with(AppOptions {
        env: ["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "ALL_PROXY"]
            .iter()
            .map(|k| ((*k).to_owned(), proxy.clone()))
            .collect(),
        ..AppOptions::fast_retries()
    })
    .await;
    app.subscribe(&subscriber).await;
    assert_eq!(
        offered.load(Ordering::SeqCst),
        0,
        "the delivery went through the proxy"
    );
}

/// Answers a confirmation request by confirming, and everything else with a redirect to
/// `location`, with `status`.
async fn start_redirector(status: u16, location: String) -> (String, Arc<AtomicUsize>) {
    let redirected = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&redirected);
    let app = Router::new().fallback(move |headers: HeaderMap, body: Bytes| {
        let (location, counter) = (location.clone(), Arc::clone(&counter));
        async move {
            let kind = headers
                .get("x-amz-sns-message-type")
                .and_then(|v| v.to_str().ok());
            if kind == Some("SubscriptionConfirmation") {
                let envelope: Value = serde_json::from_slice(&body).unwrap();
                let url = envelope["SubscribeURL"].as_str().unwrap().to_owned();
                tokio::spawn(async move { http_client().get(url).send().await });
                return AxumStatus::OK.into_response();
            }
            counter.fetch_add(1, Ordering::SeqCst);
            let response: Response = (
                AxumStatus::from_u16(status).unwrap(),
                [(header::LOCATION, location)],
            )
                .into_response();
            response
        }
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, redirected)
}

#[tokio::test]
async fn a_302_or_307_is_a_failed_delivery_and_the_redirect_target_receives_nothing() {
    let app = spawn_app_with(AppOptions::fast_retries()).await;
    let internal = TestSubscriber::start_without_confirming().await;
    let mut subscriptions = Vec::new();
    for status in [302, 307] {
        let (url, redirected) = start_redirector(status, internal.url()).await;
        let (created, body) = subscribe_http(
            &app,
            &url,
            json!({"deliveryPolicy": {"maxAttempts": 2, "minDelayMs": 10, "maxDelayMs": 20}}),
        )
        .await;
        assert_eq!(created, StatusCode::CREATED, "{body}");
        let id = body["id"].as_str().unwrap().to_owned();
        wait_for(SHORT, "the redirector to confirm", async || {
            let sub = subscription(&app, &id).await;
            if sub["status"] == "Confirmed" {
                Ok(())
            } else {
                Err(sub.to_string())
            }
        })
        .await;
        subscriptions.push((status, id, redirected));
    }
    app.submit(&order(&unique_id("redirect"))).await;
    for (status, id, redirected) in &subscriptions {
        let sub = wait_for_failed_delivery(&app, id).await;
        assert_eq!(
            sub["lastError"],
            json!(format!(
                "endpoint answered HTTP {status} (redirects are not followed)"
            )),
            "{sub}"
        );
        assert_eq!(redirected.load(Ordering::SeqCst), 2, "both attempts");
    }
    assert!(
        internal.requests().is_empty(),
        "the redirect target was reached: {:?}",
        internal.requests()
    );
}

#[tokio::test]
async fn an_unconfirmed_endpoint_gets_a_bounded_number_of_confirmation_requests_whatever_its_policy_says()
 {
    let app =
        spawn_app_with(AppOptions::fast_retries().with_args(&["--confirmation-max-attempts", "3"]))
            .await;
    let victim = TestSubscriber::start_without_confirming().await;
    victim.go_down();
    let (status, body) = subscribe_http(
        &app,
        &victim.url(),
        json!({"deliveryPolicy": {"maxAttempts": 10000, "minDelayMs": 1, "maxDelayMs": 1}}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    wait_for(SHORT, "three confirmation requests", async || match victim
        .confirmation_requests()
        .len()
    {
        n if n >= 3 => Ok(()),
        n => Err(format!("{n} so far")),
    })
    .await;
    // The subscriber's own policy would retry every millisecond, the server's within
    // 200 ms: after a second without another request, the retries have stopped.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(victim.confirmation_requests().len(), 3);
    assert_eq!(
        subscription(&app, &id).await["status"],
        "PendingConfirmation"
    );
}

/// A TCP service that is not HTTP: it writes a banner and closes, as SSH or SMTP would.
async fn start_banner_service(banner: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buffer = [0u8; 1024];
                let _ = socket.write_all(banner.as_bytes()).await;
                let _ = socket.read(&mut buffer).await;
            });
        }
    });
    url
}

#[tokio::test]
async fn last_error_names_the_kind_of_failure_not_what_the_endpoint_or_the_network_said() {
    let app = spawn_app_with(AppOptions::fast_retries()).await;
    let closed_port = free_port().await;
    let banner = start_banner_service("SSH-2.0-OpenSSH_9.6p1 internal-build-host\r\n").await;
    let policy = json!({});
    for (endpoint, expected) in [
        (
            format!("http://127.0.0.1:{closed_port}/hook"),
            "could not connect to the endpoint",
        ),
        (banner, "the request failed before an answer arrived"),
    ] {
        let (status, body) = subscribe_http(&app, &endpoint, policy.clone()).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let id = body["id"].as_str().unwrap();
        let reason = wait_for_last_error(&app, id).await;
        assert_eq!(reason, expected, "{endpoint}");
    }
}

#[tokio::test]
async fn a_subscriptions_file_with_a_refused_endpoint_stops_the_start_naming_entry_and_flag() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("subscriptions.toml");
    std::fs::write(
        &file,
        "[[subscriptions]]\nname = \"metadata\"\nprotocol = \"http\"\nendpoint = \"http://169.254.169.254/latest/\"\n",
    )
    .unwrap();
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_orderflow"));
    crate::helpers::hermetic(&mut cmd);
    cmd.arg("serve")
        .args(["--addr", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--subscriptions")
        .arg(&file)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(SHORT, cmd.output())
        .await
        .expect("serve stops at once")
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("metadata")
            && stderr.contains("link-local")
            && stderr.contains("--allow-endpoint-network"),
        "{stderr}"
    );
}

//! Request limits: header size (431), request time (408), per-client rate (429), all in our
//! error format; and the served OpenAPI document names only routes the server has.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{AppOptions, json_of, spawn_app, spawn_app_with};

#[tokio::test]
async fn headers_over_16_kib_get_431_in_our_error_format() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.endpoint("/orders"))
        .header("x-padding", "a".repeat(17 * 1024))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(response).await;
    assert_eq!(
        status,
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "{body}"
    );
    assert!(
        body["error"].as_str().unwrap().contains("headers"),
        "{body}"
    );
}

#[tokio::test]
async fn a_request_whose_body_never_arrives_gets_408_after_the_request_timeout() {
    let app =
        spawn_app_with(AppOptions::default().with_args(&["--request-timeout-ms", "500"])).await;
    let mut socket = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /orders HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"customerId\":",
        app.addr
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), socket.read(&mut answer))
        .await
        .expect("an answer before the test gives up")
        .unwrap();
    let text = String::from_utf8_lossy(&answer[..n]);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_client_over_its_rate_gets_429_with_retry_after_and_health_checks_are_exempt() {
    let app = spawn_app_with(AppOptions::default().with_args(&[
        "--rate-limit",
        "5",
        "--rate-limit-burst",
        "5",
    ]))
    .await;
    let mut limited = None;
    for _ in 0..30 {
        let response = app.get("/orders").await;
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(response);
            break;
        }
    }
    let response = limited.expect("30 requests at once exceed 5 per second");
    assert!(response.headers().contains_key("retry-after"));
    let (_, body) = json_of(response).await;
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("Too many requests"),
        "{body}"
    );
    for _ in 0..10 {
        assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        app.get("/orders").await.status(),
        StatusCode::OK,
        "tokens refill"
    );
}

#[tokio::test]
async fn every_operation_in_the_served_openapi_document_reaches_a_route() {
    let app = spawn_app().await;
    let (status, doc) = app.get_json("/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    for (path, item) in doc["paths"].as_object().unwrap() {
        let concrete = path.replace(['{', '}'], "");
        for method in item.as_object().unwrap().keys() {
            let method: reqwest::Method = method.to_uppercase().parse().unwrap();
            let response = app
                .client
                .request(method.clone(), app.endpoint(&concrete))
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .unwrap();
            let status = response.status();
            let text = response.text().await.unwrap();
            let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            assert!(
                !(status == StatusCode::NOT_FOUND && body["error"] == "No such route"),
                "{method} {path} is documented but not routed"
            );
        }
    }
}

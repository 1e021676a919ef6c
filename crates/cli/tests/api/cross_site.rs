//! A web page the operator visits cannot drive the API: a request for another host name
//! (DNS rebinding) gets `421`, and a state-changing request a form could send gets `415`.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{AppOptions, TestApp, json_of, spawn_app, spawn_app_with};

/// One HTTP/1.1 request with exactly these headers; the status and the body.
async fn raw_request(app: &TestApp, method: &str, path: &str, host: &str) -> (u16, String) {
    let mut socket = TcpStream::connect(app.addr).await.unwrap();
    let request = format!("{method} {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n");
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    socket.read_to_end(&mut answer).await.unwrap();
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text[9..12].parse().unwrap();
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    (status, body)
}

#[tokio::test]
async fn a_request_for_another_host_name_gets_421_as_a_dns_rebinding_page_would_send_it() {
    let app = spawn_app().await;
    let port = app.addr.port();
    for host in [
        format!("attacker.example:{port}"),
        "attacker.example".to_owned(),
        format!("localhost.attacker.example:{port}"),
    ] {
        for path in ["/orders", "/subscriptions", "/stats"] {
            let (status, body) = raw_request(&app, "GET", path, &host).await;
            assert_eq!(status, 421, "{host} {path}: {body}");
            let body: Value = serde_json::from_str(&body).unwrap();
            assert!(
                body["error"].as_str().unwrap().contains("host name"),
                "{body}"
            );
        }
    }
}

#[tokio::test]
async fn the_bound_address_localhost_and_the_public_url_s_host_are_answered() {
    let app = spawn_app_with(
        AppOptions::default().with_args(&["--public-url", "https://orders.example.test/"]),
    )
    .await;
    let port = app.addr.port();
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        "orders.example.test".to_owned(),
        "ORDERS.example.test:443".to_owned(),
    ] {
        let (status, body) = raw_request(&app, "GET", "/orders", &host).await;
        assert_eq!(status, 200, "{host}: {body}");
    }
}

#[tokio::test]
async fn healthz_answers_whatever_host_a_load_balancer_names() {
    let app = spawn_app().await;
    let (status, body) = raw_request(&app, "GET", "/healthz", "10.0.0.7:8080").await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_state_changing_request_without_a_json_content_type_gets_415_and_changes_nothing() {
    let app = spawn_app().await;
    let subscription = json!({"protocol": "log", "endpoint": "stdout"}).to_string();
    // What a cross-site form (or a no-cors fetch) can send without a CORS preflight.
    let cases: Vec<(Method, &str, Option<&str>, String)> = vec![
        (
            Method::POST,
            "/subscriptions",
            Some("text/plain"),
            subscription.clone(),
        ),
        (
            Method::POST,
            "/subscriptions",
            Some("application/x-www-form-urlencoded"),
            subscription.clone(),
        ),
        (
            Method::POST,
            "/subscriptions",
            Some("multipart/form-data; boundary=x"),
            subscription,
        ),
        (
            Method::POST,
            "/queue/messages",
            Some("text/plain"),
            r#"{"customerId":"c1"}"#.to_owned(),
        ),
        (Method::POST, "/queue/messages", None, "x".to_owned()),
        (Method::POST, "/queue/dlq/redrive", None, String::new()),
        (
            Method::POST,
            "/stream/failures/redrive",
            None,
            String::new(),
        ),
        (
            Method::POST,
            "/queue/dlq/redrive",
            Some("text/plain"),
            r#"{"messageIds":[]}"#.to_owned(),
        ),
        (
            Method::DELETE,
            "/queue/dlq",
            Some("text/plain"),
            r#"{"messageIds":["x"]}"#.to_owned(),
        ),
    ];
    for (method, path, content_type, body) in cases {
        let mut request = app.client.request(method.clone(), app.endpoint(path));
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let (status, answer) = json_of(request.body(body).send().await.unwrap()).await;
        assert_eq!(
            status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{method} {path} {content_type:?}: {answer}"
        );
        assert!(
            answer["error"]
                .as_str()
                .unwrap()
                .contains("application/json"),
            "{answer}"
        );
    }
    let stats = app.stats().await;
    assert_eq!(stats.0["queue"]["visible"], json!(0));
    assert_eq!(stats.0["subscriptions"], json!(0));
}

#[tokio::test]
async fn json_clients_and_bodiless_deletes_keep_working() {
    let app = spawn_app().await;
    let created = app
        .post_json(
            "/subscriptions",
            &json!({"protocol": "log", "endpoint": "stdout"}),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let id = json_of(created).await.1["id"].as_str().unwrap().to_owned();
    let redrive = app.post_json("/queue/dlq/redrive", &json!({})).await;
    assert_eq!(redrive.status(), StatusCode::OK);
    let deleted = app
        .client
        .delete(app.endpoint(&format!("/subscriptions/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let purged = app
        .client
        .delete(app.endpoint("/queue/dlq"))
        .send()
        .await
        .unwrap();
    assert_eq!(purged.status(), StatusCode::OK);
}

//! Control characters in order text: the API refuses them (newline and tab only in `notes`),
//! and the CLI never writes one to the terminal, whatever a server sends it.

use std::net::SocketAddr;

use axum::Router;
use axum::routing::get;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::fanout_support::{assert_success, orderflow};
use crate::helpers::{SHORT, json_of, order, spawn_app, unique_id};

#[tokio::test]
async fn an_order_with_escape_sequences_or_forged_lines_is_refused_with_the_field_named() {
    let app = spawn_app().await;
    for (field, value) in [
        ("customerId", "cust\u{1b}[2J"),
        ("customerId", "cust\nTotal: 0.01 EUR"),
        ("notes", "fine\r\u{1b}]0;title\u{7}"),
        ("customerEmail", "a\u{9b}b@example.com"),
    ] {
        let mut body = order(&unique_id("ctl"));
        body[field] = json!(value);
        let (status, answer) = json_of(app.post_order(&body).await).await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "{field} {value:?}: {answer}"
        );
        assert_eq!(answer["details"][0]["field"], json!(field), "{answer}");
    }
    let mut sku = order(&unique_id("ctl"));
    sku["items"][0]["sku"] = json!("SKU\u{1b}[31m");
    let (status, answer) = json_of(app.post_order(&sku).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(
        answer["details"][0]["field"],
        json!("items[0].sku"),
        "{answer}"
    );

    let mut fine = order(&unique_id("ctl"));
    fine["notes"] = json!("ring twice\n\tthen wait");
    let id = fine["orderID"].as_str().unwrap().to_owned();
    assert_eq!(app.post_order(&fine).await.status(), StatusCode::ACCEPTED);
    app.wait_until_stored(&id, SHORT).await;
}

/// What a hostile (or compromised) server could answer: every string a terminal attack.
fn hostile_order() -> Value {
    let evil = "x\u{1b}]0;pwned\u{7}\u{1b}[2J\r\u{9b}31mTotal: 0.01 EUR\u{7f}";
    json!({
        "orderID": "ord-1", "customerId": evil, "customerEmail": "a@example.com",
        "items": [{"sku": evil, "quantity": 1, "unitPrice": 1}], "currency": evil,
        "notes": evil, "total": 1, "status": "STORED",
        "receivedAt": evil, "storedAt": evil, "requestId": evil,
    })
}

#[tokio::test]
async fn a_webhook_endpoint_with_control_characters_is_refused() {
    // The URL parser drops tabs and newlines (WHATWG URL), so such an endpoint named the
    // same target as a clean one while its stored text carried them into listings and logs.
    let app = spawn_app().await;
    for endpoint in [
        "http://127.0.0.1:9/hook\r\nX-Injected: 1",
        "http://127.0.0.1:9/\thook",
        "http://127.0.0.1:9/hook\u{1b}[2J",
    ] {
        let (status, answer) = json_of(
            app.post_json(
                "/subscriptions",
                &json!({"protocol": "http", "endpoint": endpoint}),
            )
            .await,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{endpoint:?}: {answer}");
        assert_eq!(answer["details"][0]["field"], json!("endpoint"), "{answer}");
    }
    assert!(app.subscriptions().await.is_empty());
}

async fn hostile_server() -> SocketAddr {
    let evil = "e\u{1b}[31m\u{9b}2J\r";
    let app = Router::new()
        .route("/orders", get(|| async { axum::Json(json!({"orders": [hostile_order()], "nextCursor": null})) }))
        .route("/orders/{id}", get(|| async { axum::Json(hostile_order()) }))
        .route(
            "/orders/{id}/trace",
            get(move || async move {
                axum::Json(json!({
                    "orderID": evil, "requestId": evil, "stage": evil, "acceptedAt": evil,
                    "received": {"receiveCount": 1, "lastError": evil, "firstReceivedAt": evil},
                    "storedAt": evil,
                    "published": {"state": evil, "messageId": evil, "at": evil},
                    "deliveries": [{"name": evil, "protocol": evil, "endpoint": evil, "state": evil,
                                    "lastError": evil, "deliveredAt": evil}],
                }))
            }),
        )
        .route(
            "/subscriptions",
            get(move || async move {
                axum::Json(json!({"subscriptions": [{"id": evil, "name": evil, "protocol": "http",
                    "status": evil, "endpoint": evil, "lastError": evil,
                    "deliveries": {"pending": 0, "delivered": 0, "failed": 1, "filtered": 0}}]}))
            }),
        )
        .route(
            "/stats",
            get(|| async { axum::Json(json!({"queue": {}, "orders": {}, "stream": {}, "deliveries": {}, "subscriptions": 1})) }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

#[tokio::test]
async fn the_cli_never_writes_a_control_character_to_the_terminal() {
    let url = format!("http://{}", hostile_server().await);
    for args in [
        vec!["orders", "list"],
        vec!["orders", "list", "--json"],
        vec!["orders", "get", "ord-1"],
        vec!["trace", "ord-1"],
        vec!["trace", "ord-1", "--json"],
        vec!["subscriptions", "list"],
        vec!["subscriptions", "list", "--json"],
        vec!["status"],
        vec!["status", "--json"],
    ] {
        let mut full = args.clone();
        full.extend(["--url", url.as_str()]);
        let output = orderflow(&full).await;
        if !args.contains(&"trace") && !args.contains(&"status") {
            assert_success(&output, &format!("{args:?}"));
        }
        let text = String::from_utf8(output.stdout.clone()).expect("UTF-8 output");
        assert!(!text.is_empty(), "{args:?} printed nothing");
        let raw: Vec<char> = text
            .chars()
            .filter(|c| c.is_control() && *c != '\n')
            .collect();
        assert!(
            raw.is_empty(),
            "{args:?} wrote {raw:?} to the terminal:\n{text}"
        );
        assert!(
            text.contains("\\u{1b}") || text.contains("\\u001b"),
            "{args:?} shows the escape, escaped:\n{text}"
        );
    }
}

//! Every error status of the API, with its body.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{json_of, order, spawn_app, unique_id};

/// `{"error": "<non-empty>", ...}`.
fn assert_error_body(body: &Value) {
    let error = body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error string in {body}"));
    assert!(!error.trim().is_empty(), "empty error in {body}");
}

/// `{"error": "...", "details": [{"field", "message"}...]}`; returns the fields, sorted.
fn validation_fields(body: &Value) -> Vec<String> {
    assert_error_body(body);
    let details = body["details"]
        .as_array()
        .unwrap_or_else(|| panic!("no details array in {body}"));
    let mut fields: Vec<String> = details
        .iter()
        .map(|d| {
            let message = d["message"]
                .as_str()
                .unwrap_or_else(|| panic!("detail without a message: {d}"));
            assert!(!message.is_empty(), "detail with an empty message: {d}");
            d["field"]
                .as_str()
                .unwrap_or_else(|| panic!("detail without a field: {d}"))
                .to_owned()
        })
        .collect();
    fields.sort();
    fields.dedup();
    fields
}

#[tokio::test]
async fn post_order_returns_400_naming_every_offending_field() {
    let app = spawn_app().await;
    let body = json!({
        "orderID": "-bad",
        "customerEmail": "not-an-email",
        "items": [{"sku": "", "quantity": 0, "unitPrice": 1.001, "color": "red"}],
        "currency": "eur",
        "extra": true
    });

    let (status, answer) = json_of(app.post_order(&body).await).await;

    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(
        validation_fields(&answer),
        vec![
            "currency",
            "customerEmail",
            "customerId",
            "extra",
            "items[0].color",
            "items[0].quantity",
            "items[0].sku",
            "items[0].unitPrice",
            "orderID",
        ],
        "{answer}"
    );
    let stats = app.drain().await;
    assert_eq!(
        stats.stored(),
        0,
        "a rejected order was stored: {}",
        stats.0
    );
}

#[tokio::test]
async fn post_order_returns_400_when_items_are_empty() {
    let app = spawn_app().await;
    let mut body = order(&unique_id("ord"));
    body["items"] = json!([]);

    let (status, answer) = json_of(app.post_order(&body).await).await;

    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(validation_fields(&answer), vec!["items"], "{answer}");
}

#[tokio::test]
async fn post_order_returns_400_when_a_price_has_more_than_two_decimal_places() {
    let app = spawn_app().await;
    let mut body = order(&unique_id("ord"));
    body["items"][1]["unitPrice"] = json!(0.005);

    let (status, answer) = json_of(app.post_order(&body).await).await;

    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(
        validation_fields(&answer),
        vec!["items[1].unitPrice"],
        "{answer}"
    );
}

#[tokio::test]
async fn post_order_returns_400_in_the_same_format_for_malformed_json() {
    let app = spawn_app().await;

    for malformed in [r#"{"customerId": "#, "not json at all", ""] {
        let response = app
            .post_raw("/orders", Some("application/json"), malformed.to_owned())
            .await;
        let (status, answer) = json_of(response).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{malformed:?}: {answer}");
        assert_error_body(&answer);
        assert!(
            answer["details"].is_array(),
            "{malformed:?}: details is not an array: {answer}"
        );
    }
}

#[tokio::test]
async fn post_order_returns_415_for_a_wrong_content_type() {
    let app = spawn_app().await;
    let body = order(&unique_id("ord")).to_string();

    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let response = app.post_raw("/orders", content_type, body.clone()).await;
        let (status, answer) = json_of(response).await;
        assert_eq!(
            status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "content type {content_type:?}: {answer}"
        );
        assert_error_body(&answer);
    }
    assert_eq!(app.drain().await.stored(), 0);
}

#[tokio::test]
async fn post_order_accepts_a_json_content_type_with_a_charset() {
    let app = spawn_app().await;
    let id = unique_id("ord");
    let response = app
        .post_raw(
            "/orders",
            Some("application/json; charset=utf-8"),
            order(&id).to_string(),
        )
        .await;
    let (status, answer) = json_of(response).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer["orderID"], json!(id));
}

#[tokio::test]
async fn post_order_returns_413_for_a_body_over_256_kib() {
    let app = spawn_app().await;
    let mut body = order(&unique_id("ord"));
    body["notes"] = json!("x".repeat(300 * 1024));

    let (status, answer) = json_of(app.post_order(&body).await).await;

    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    assert_error_body(&answer);
}

#[tokio::test]
async fn a_body_just_under_256_kib_is_validated_not_refused_for_size() {
    let app = spawn_app().await;
    let mut body = order(&unique_id("ord"));
    body["notes"] = json!("x".repeat(250 * 1024));

    let (status, answer) = json_of(app.post_order(&body).await).await;

    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(validation_fields(&answer), vec!["notes"], "{answer}");
}

#[tokio::test]
async fn get_order_returns_404_for_an_unknown_order() {
    let app = spawn_app().await;

    let (status, answer) = json_of(app.get_order(&unique_id("missing")).await).await;

    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    assert_error_body(&answer);
}

#[tokio::test]
async fn get_order_returns_400_for_an_invalid_order_id() {
    let app = spawn_app().await;
    let too_long = "a".repeat(65);

    for bad in [
        "-starts-with-a-dash",
        "has%20space",
        "semi%3Bcolon",
        too_long.as_str(),
    ] {
        let (status, answer) = json_of(app.get_order(bad).await).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {answer}");
        assert_error_body(&answer);
    }
}

#[tokio::test]
async fn post_subscription_returns_400_naming_the_bad_fields() {
    let app = spawn_app().await;

    let (status, answer) = json_of(
        app.post_json(
            "/subscriptions",
            &json!({"protocol": "carrier-pigeon", "endpoint": "http://127.0.0.1:9/x"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(validation_fields(&answer), vec!["protocol"], "{answer}");

    let (status, answer) = json_of(
        app.post_json("/subscriptions", &json!({"protocol": "http"}))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(validation_fields(&answer), vec!["endpoint"], "{answer}");

    let (status, answer) = json_of(
        app.post_json(
            "/subscriptions",
            &json!({"protocol": "http", "endpoint": "not a url"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(validation_fields(&answer), vec!["endpoint"], "{answer}");

    assert!(
        app.subscriptions().await.is_empty(),
        "a bad subscription was kept"
    );
}

#[tokio::test]
async fn post_subscription_returns_400_for_malformed_json() {
    let app = spawn_app().await;
    let response = app
        .post_raw(
            "/subscriptions",
            Some("application/json"),
            "{\"protocol\":".to_owned(),
        )
        .await;
    let (status, answer) = json_of(response).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_error_body(&answer);
    assert!(answer["details"].is_array(), "{answer}");
}

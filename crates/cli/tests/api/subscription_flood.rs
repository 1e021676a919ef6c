//! Flooding through subscriptions: an identical subscribe is the existing subscription,
//! confirmation requests to one endpoint are rate-limited, and subscriptions are capped.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::fanout_support::add_subscription;
use crate::helpers::{AppOptions, SHORT, spawn_app, spawn_app_with, wait_until};
use crate::subscriber::TestSubscriber;

#[tokio::test]
async fn subscribing_the_same_endpoint_again_returns_it_and_sends_no_second_confirmation() {
    let app = spawn_app().await;
    let subscriber = TestSubscriber::start_without_confirming().await;
    let request =
        json!({"protocol": "http", "endpoint": subscriber.url(), "rawMessageDelivery": true});
    let (status, first) = add_subscription(&app, &request).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    for _ in 0..3 {
        let (status, again) = add_subscription(&app, &request).await;
        // SNS: a repeated Subscribe of the same endpoint with the same attributes returns the
        // existing subscription (https://docs.aws.amazon.com/sns/latest/api/API_Subscribe.html).
        assert_eq!(status, StatusCode::OK, "{again}");
        assert_eq!(again["subscriptionArn"], first["subscriptionArn"]);
    }
    // Other settings for the same endpoint: SNS answers "InvalidParameter: Attributes Reason:
    // Subscription already exists with different attributes".
    let (status, body) = add_subscription(
        &app,
        &json!({"protocol": "http", "endpoint": subscriber.url(), "filterPolicy": {"currency": ["EUR"]}}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["details"][0]["field"], json!("endpoint"), "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("already exists"),
        "{body}"
    );

    wait_until(SHORT, "the confirmation request", async || {
        !subscriber.confirmation_requests().is_empty()
    })
    .await;
    app.drain().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(subscriber.confirmation_requests().len(), 1);
    assert_eq!(app.subscriptions().await.len(), 1);
}

#[tokio::test]
async fn confirmation_requests_to_one_endpoint_are_rate_limited() {
    let app =
        spawn_app_with(AppOptions::default().with_args(&["--max-confirmations-per-endpoint", "2"]))
            .await;
    let victim = TestSubscriber::start_without_confirming().await;
    let request = json!({"protocol": "http", "endpoint": victim.url()});
    for round in 0..2 {
        let (status, body) = add_subscription(&app, &request).await;
        assert_eq!(status, StatusCode::CREATED, "round {round}: {body}");
        let response = app
            .client
            .delete(app.endpoint(&format!("/subscriptions/{}", body["id"].as_str().unwrap())))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
    }
    let (status, body) = add_subscription(&app, &request).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    let another = TestSubscriber::start_without_confirming().await;
    let (status, body) = add_subscription(
        &app,
        &json!({"protocol": "http", "endpoint": another.url()}),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "other endpoints are not held up: {body}"
    );
    app.drain().await;
    assert!(
        victim.confirmation_requests().len() <= 2,
        "{} confirmation requests",
        victim.confirmation_requests().len()
    );
}

#[tokio::test]
async fn the_api_refuses_subscriptions_past_the_maximum_with_a_clear_error() {
    let app = spawn_app_with(AppOptions::default().with_args(&["--max-subscriptions", "3"])).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let (status, body) = add_subscription(
            &app,
            &json!({"protocol": "queue", "endpoint": format!("q{i}")}),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        ids.push(body["id"].as_str().unwrap().to_owned());
    }
    let (status, body) =
        add_subscription(&app, &json!({"protocol": "queue", "endpoint": "q3"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("maximum of 3") && error.contains("--max-subscriptions"),
        "{body}"
    );
    let response = app
        .client
        .delete(app.endpoint(&format!("/subscriptions/{}", ids[0])))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let (status, body) =
        add_subscription(&app, &json!({"protocol": "queue", "endpoint": "q3"})).await;
    assert_eq!(status, StatusCode::CREATED, "room again: {body}");
}

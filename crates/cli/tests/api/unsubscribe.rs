//! Unsubscribing: only the token of a subscription's own `UnsubscribeURL` (or the API key)
//! removes it; `authenticateOnUnsubscribe` makes it need the key; confirmation tokens expire.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::fanout_support::{add_subscription, subscription};
use crate::helpers::{
    AppOptions, SHORT, TestApp, encode_path_segment, http_client, order, spawn_app_with, unique_id,
    wait_for, wait_until,
};
use crate::subscriber::TestSubscriber;

const KEY: &str = "unsubscribe-key-0123456789";

async fn protected_app() -> TestApp {
    spawn_app_with(AppOptions {
        api_key: Some(KEY.to_owned()),
        ..AppOptions::default()
    })
    .await
}

/// The `UnsubscribeURL` of the first notification `subscriber` gets.
async fn unsubscribe_url_of(app: &TestApp, subscriber: &TestSubscriber) -> String {
    let id = app.submit(&order(&unique_id("unsub"))).await;
    let notification = subscriber.notification_for(&id, SHORT).await;
    notification.envelope["UnsubscribeURL"]
        .as_str()
        .expect("an UnsubscribeURL")
        .to_owned()
}

async fn listed(app: &TestApp, arn: &str) -> bool {
    app.subscriptions()
        .await
        .iter()
        .any(|s| s["subscriptionArn"] == json!(arn))
}

#[tokio::test]
async fn only_the_token_of_the_unsubscribe_url_removes_a_subscription_not_its_id_or_arn() {
    let app = protected_app().await;
    let subscriber = TestSubscriber::start().await;
    let arn = app.subscribe(&subscriber).await;
    let id = arn.rsplit(':').next().unwrap().to_owned();
    let link = unsubscribe_url_of(&app, &subscriber).await;
    assert!(link.contains("&Token="), "{link}");
    let token = link.rsplit("Token=").next().unwrap();
    assert_eq!(token.len(), 64, "{link}");

    let anonymous = http_client();
    let base = app.endpoint("/subscriptions/unsubscribe?Action=Unsubscribe&SubscriptionArn=");
    let other = TestSubscriber::start().await;
    let other_arn = app.subscribe(&other).await;
    let other_link = unsubscribe_url_of(&app, &other).await;
    let other_token = other_link.rsplit("Token=").next().unwrap();
    for attempt in [
        format!("{base}{}", encode_path_segment(&arn)),
        format!("{base}{id}"),
        format!(
            "{base}{}&Token={}",
            encode_path_segment(&arn),
            "0".repeat(64)
        ),
        format!("{base}{}&Token=", encode_path_segment(&arn)),
        // Another subscription's token does not fit this one.
        format!("{base}{}&Token={other_token}", encode_path_segment(&arn)),
        // An unknown ARN is answered alike: the link tells nothing of what exists.
        format!("{base}{}x", encode_path_segment(&arn)),
    ] {
        let response = anonymous.get(&attempt).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{attempt}");
    }
    assert!(listed(&app, &arn).await, "still subscribed");

    let response = anonymous.get(&link).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{link}");
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("UnsubscribeResponse"),
        "SNS's answer"
    );
    assert!(!listed(&app, &arn).await, "unsubscribed by its link");
    assert!(listed(&app, &other_arn).await, "the other one stays");

    // With the API key a bare ARN still works, as it does on SNS for the topic owner.
    let response = app
        .client
        .get(format!("{base}{}", encode_path_segment(&other_arn)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(!listed(&app, &other_arn).await);
}

async fn confirmed(app: &TestApp, id: &str) -> Value {
    wait_for(SHORT, "the subscription to be confirmed", async || {
        let sub = subscription(app, id).await;
        if sub["status"] == json!("Confirmed") {
            Ok(sub)
        } else {
            Err(sub.to_string())
        }
    })
    .await
}

#[tokio::test]
async fn a_subscription_that_authenticates_unsubscribes_is_removed_only_with_the_key() {
    let app = protected_app().await;
    let subscriber = TestSubscriber::start().await;
    let (status, body) = add_subscription(
        &app,
        &json!({"protocol": "http", "endpoint": subscriber.url(), "authenticateOnUnsubscribe": true}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let sub = confirmed(&app, body["id"].as_str().unwrap()).await;
    assert_eq!(sub["authenticateOnUnsubscribe"], json!(true), "{sub}");
    let arn = sub["subscriptionArn"].as_str().unwrap().to_owned();
    let link = unsubscribe_url_of(&app, &subscriber).await;

    let response = http_client().get(&link).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(listed(&app, &arn).await);
    let response = app.client.get(&link).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(!listed(&app, &arn).await);
}

#[tokio::test]
async fn the_subscriber_can_ask_for_authenticated_unsubscribes_when_it_confirms() {
    let app = protected_app().await;
    let subscriber = TestSubscriber::start_without_confirming().await;
    let (status, body) = app.create_subscription(&subscriber.url()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    wait_until(SHORT, "the confirmation request", async || {
        !subscriber.confirmation_requests().is_empty()
    })
    .await;
    let envelope = subscriber.confirmation_requests()[0].json.clone().unwrap();
    let subscribe_url = envelope["SubscribeURL"].as_str().unwrap();
    // SNS ConfirmSubscription's AuthenticateOnUnsubscribe parameter
    // (https://docs.aws.amazon.com/sns/latest/api/API_ConfirmSubscription.html).
    let response = http_client()
        .get(format!("{subscribe_url}&AuthenticateOnUnsubscribe=true"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let sub = confirmed(&app, body["id"].as_str().unwrap()).await;
    assert_eq!(sub["authenticateOnUnsubscribe"], json!(true), "{sub}");
}

#[tokio::test]
async fn a_confirmation_token_older_than_three_days_confirms_nothing() {
    let mut app = protected_app().await;
    let subscriber = TestSubscriber::start_without_confirming().await;
    let (_, body) = app.create_subscription(&subscriber.url()).await;
    let id = body["id"].as_str().unwrap().to_owned();
    wait_until(SHORT, "the confirmation request", async || {
        !subscriber.confirmation_requests().is_empty()
    })
    .await;
    let envelope = subscriber.confirmation_requests()[0].json.clone().unwrap();
    app.stop().await;
    // Three days and a minute pass: SNS "Confirmation tokens are valid for three days"
    // (https://docs.aws.amazon.com/sns/latest/api/API_Subscribe.html).
    let db = rusqlite::Connection::open(app.data_dir().join("orderflow.db")).unwrap();
    let aged = Duration::from_secs(3 * 24 * 3600 + 60).as_millis() as i64;
    db.execute(
        "UPDATE subscriptions SET created_at = created_at - ?1 WHERE id = ?2",
        rusqlite::params![aged, id],
    )
    .unwrap();
    drop(db);
    app.restart().await;

    let token = envelope["Token"].as_str().unwrap();
    let response = http_client()
        .get(app.endpoint(&format!(
            "/subscriptions/confirm?Action=ConfirmSubscription&Token={token}"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        subscription(&app, &id).await["status"],
        json!("PendingConfirmation")
    );
}

//! Subscribing an HTTP endpoint: the SNS confirmation handshake, listing and deleting.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{SHORT, encode_path_segment, id_set, order, spawn_app, unique_id, wait_until};
use crate::subscriber::TestSubscriber;

fn listed<'a>(subscriptions: &'a [Value], arn: &str) -> Option<&'a Value> {
    subscriptions
        .iter()
        .find(|s| s["subscriptionArn"] == json!(arn))
}

#[tokio::test]
async fn creating_a_subscription_returns_201_pending_and_sends_an_sns_confirmation() {
    let app = spawn_app().await;
    let subscriber = TestSubscriber::start_without_confirming().await;

    let (status, body) = app.create_subscription(&subscriber.url()).await;

    assert_eq!(status, StatusCode::CREATED, "{body}");
    let arn = body["subscriptionArn"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        arn.starts_with("arn:"),
        "subscriptionArn is not an ARN: {body}"
    );
    assert_eq!(body["status"], json!("PendingConfirmation"), "{body}");

    wait_until(SHORT, "the SubscriptionConfirmation request", async || {
        !subscriber.confirmation_requests().is_empty()
    })
    .await;
    let request = subscriber.confirmation_requests().remove(0);
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/sns/orders");
    let content_type = request.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("text/plain"),
        "SNS sends JSON as text/plain, got {content_type:?}"
    );
    let envelope = request
        .json
        .clone()
        .unwrap_or_else(|| panic!("confirmation body is not JSON: {:?}", request.body));
    assert_eq!(
        envelope["Type"],
        json!("SubscriptionConfirmation"),
        "{envelope}"
    );
    for field in [
        "MessageId",
        "Token",
        "TopicArn",
        "SubscribeURL",
        "Timestamp",
        "Message",
    ] {
        let value = envelope[field].as_str().unwrap_or_default();
        assert!(!value.is_empty(), "{field} is missing or empty: {envelope}");
    }
    let topic_arn = envelope["TopicArn"].as_str().unwrap();
    assert!(
        arn.starts_with(topic_arn),
        "{arn} is not on topic {topic_arn}"
    );
    let subscribe_url = envelope["SubscribeURL"].as_str().unwrap();
    assert!(
        subscribe_url.starts_with(&app.url),
        "SubscribeURL {subscribe_url} does not point at the server {}",
        app.url
    );

    let subscription = app.subscriptions().await;
    let entry = listed(&subscription, &arn).unwrap_or_else(|| panic!("{arn} not listed"));
    assert_eq!(entry["status"], json!("PendingConfirmation"), "{entry}");
    assert_eq!(entry["protocol"], json!("http"), "{entry}");
    assert_eq!(entry["endpoint"], json!(subscriber.url()), "{entry}");
}

#[tokio::test]
async fn getting_the_subscribe_url_confirms_the_subscription() {
    let app = spawn_app().await;
    let subscriber = TestSubscriber::start().await;

    let arn = app.subscribe(&subscriber).await;

    let subscriptions = app.subscriptions().await;
    let entry = listed(&subscriptions, &arn).unwrap_or_else(|| panic!("{arn} not listed"));
    assert_ne!(entry["status"], json!("PendingConfirmation"), "{entry}");
    assert!(entry["status"].is_string(), "{entry}");
}

#[tokio::test]
async fn a_subscribe_url_with_a_wrong_token_confirms_nothing() {
    let app = spawn_app().await;
    let subscriber = TestSubscriber::start_without_confirming().await;
    let (_, body) = app.create_subscription(&subscriber.url()).await;
    let arn = body["subscriptionArn"].as_str().unwrap().to_owned();
    wait_until(SHORT, "the confirmation request", async || {
        !subscriber.confirmation_requests().is_empty()
    })
    .await;
    let envelope = subscriber.confirmation_requests()[0].json.clone().unwrap();
    let token = envelope["Token"].as_str().unwrap();
    let forged = envelope["SubscribeURL"]
        .as_str()
        .unwrap()
        .replace(token, "0000forged0000");
    assert_ne!(forged, envelope["SubscribeURL"].as_str().unwrap());

    let response = app
        .client
        .get(&forged)
        .send()
        .await
        .expect("GET forged SubscribeURL");

    assert!(
        response.status().is_client_error(),
        "a forged token was answered {}",
        response.status()
    );
    let subscriptions = app.subscriptions().await;
    let entry = listed(&subscriptions, &arn).unwrap();
    assert_eq!(entry["status"], json!("PendingConfirmation"), "{entry}");
}

#[tokio::test]
async fn a_subscription_deleted_by_its_url_encoded_arn_receives_nothing_more() {
    let app = spawn_app().await;
    let kept = TestSubscriber::start().await;
    let deleted = TestSubscriber::start().await;
    app.subscribe(&kept).await;
    let arn = app.subscribe(&deleted).await;

    let response = app
        .client
        .delete(app.endpoint(&format!("/subscriptions/{}", encode_path_segment(&arn))))
        .send()
        .await
        .expect("DELETE /subscriptions/{arn}");

    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(listed(&app.subscriptions().await, &arn).is_none());
    let id = app.submit(&order(&unique_id("after-delete"))).await;
    wait_until(SHORT, "the kept subscriber to get the order", async || {
        kept.order_ids_delivered().contains(&id)
    })
    .await;
    app.drain().await;
    assert!(
        deleted.notification_attempts().is_empty(),
        "a deleted subscription was sent {:?}",
        deleted.order_ids_delivered()
    );
    assert_eq!(kept.order_ids_delivered(), id_set([&id]));
}

#[tokio::test]
async fn a_subscription_can_be_deleted_by_its_id() {
    let app = spawn_app().await;
    let subscriber = TestSubscriber::start_without_confirming().await;
    let (status, body) = app.create_subscription(&subscriber.url()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let arn = body["subscriptionArn"].as_str().unwrap();
    // An SNS subscription ARN ends in its id: arn:aws:sns:REGION:ACCOUNT:TOPIC:ID.
    let id = body["id"]
        .as_str()
        .or_else(|| body["subscriptionId"].as_str())
        .unwrap_or_else(|| arn.rsplit(':').next().unwrap());

    let response = app
        .client
        .delete(app.endpoint(&format!("/subscriptions/{id}")))
        .send()
        .await
        .expect("DELETE /subscriptions/{id}");

    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(app.subscriptions().await.is_empty());
}

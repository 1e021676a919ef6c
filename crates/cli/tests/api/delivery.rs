//! Orders travel the whole pipeline: API, queue, table, stream, topic, HTTP subscriber.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{
    AppOptions, LONG, SHORT, id_set, order, orders, spawn_app, spawn_app_with, unique_id, wait_for,
    wait_until,
};
use crate::subscriber::TestSubscriber;

/// Waits until the subscriber has accepted a notification for every id in `ids`.
async fn wait_until_delivered(
    subscriber: &TestSubscriber,
    ids: &HashSet<String>,
    timeout: Duration,
) {
    wait_for(
        timeout,
        &format!("{} orders to be delivered", ids.len()),
        async || {
            let delivered = subscriber.order_ids_delivered();
            let missing = ids.difference(&delivered).count();
            if missing == 0 {
                Ok(())
            } else {
                Err(format!(
                    "{missing} of {} not delivered yet ({} notification attempts)",
                    ids.len(),
                    subscriber.notification_attempts().len()
                ))
            }
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_thousand_concurrent_orders_are_accepted_stored_and_delivered() {
    let app = spawn_app().await;
    let subscriber = TestSubscriber::start().await;
    app.subscribe(&subscriber).await;
    let started = Instant::now();

    let ids = app.submit_all(orders("bulk", 1000)).await;

    let expected = id_set(&ids);
    assert_eq!(expected.len(), 1000, "the 202s named duplicate ids");
    app.wait_until_stored_count(1000, LONG).await;
    app.assert_all_stored(&ids).await;
    wait_until_delivered(&subscriber, &expected, LONG).await;
    assert_eq!(subscriber.order_ids_delivered(), expected);
    let elapsed = started.elapsed();
    assert!(elapsed < LONG, "1,000 orders took {elapsed:?} end to end");
    let stats = app.drain().await;
    assert_eq!(stats.stored(), 1000, "{}", stats.0);
    assert_eq!(stats.dead_letter(), 0, "{}", stats.0);
    assert!(stats.delivered() >= 1000, "{}", stats.0);
}

#[tokio::test]
async fn posting_the_same_order_id_twice_stores_one_order_and_delivers_one_notification() {
    let app = spawn_app().await;
    let subscriber = TestSubscriber::start().await;
    app.subscribe(&subscriber).await;
    let id = unique_id("twice");

    let first = app.submit(&order(&id)).await;
    let second = app.submit(&order(&id)).await;
    let later = app.submit(&order(&unique_id("later"))).await;

    assert_eq!(
        (first.as_str(), second.as_str()),
        (id.as_str(), id.as_str())
    );
    wait_until_delivered(&subscriber, &id_set([&id, &later]), SHORT).await;
    let stats = app.drain().await;
    assert_eq!(stats.stored(), 2, "{}", stats.0);
    let per_order = subscriber.deliveries_per_order();
    assert_eq!(
        per_order.get(&id),
        Some(&1),
        "deliveries per order: {per_order:?}"
    );
    assert_eq!(
        per_order.get(&later),
        Some(&1),
        "deliveries per order: {per_order:?}"
    );
    let listed = app.list_orders(Some(10), None).await;
    assert_eq!(
        listed["orders"].as_array().map(Vec::len),
        Some(2),
        "{listed}"
    );
}

#[tokio::test]
async fn a_notification_follows_the_sns_envelope() {
    let app = spawn_app().await;
    let subscriber = TestSubscriber::start().await;
    let arn = app.subscribe(&subscriber).await;
    let id = app.submit(&order(&unique_id("sns"))).await;

    wait_until_delivered(&subscriber, &id_set([&id]), SHORT).await;
    let stored = app.wait_until_stored(&id, SHORT).await;
    let notification = subscriber.notifications().remove(0);
    let request = &notification.request;
    let envelope = &notification.envelope;

    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/sns/orders");
    assert_eq!(request.message_type(), Some("Notification"));
    let content_type = request.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("text/plain"),
        "SNS sends JSON as text/plain, got {content_type:?}"
    );
    assert_eq!(envelope["Type"], json!("Notification"), "{envelope}");
    assert_eq!(
        envelope["Subject"],
        json!(format!("Order {id} received: 60.07 EUR")),
        "the order mail's subject, as SNS puts the published Subject in every envelope: {envelope}"
    );
    for field in ["MessageId", "TopicArn", "Message", "Timestamp"] {
        let value = envelope[field].as_str().unwrap_or_default();
        assert!(!value.is_empty(), "{field} is missing or empty: {envelope}");
    }
    let topic_arn = envelope["TopicArn"].as_str().unwrap();
    assert!(
        topic_arn.starts_with("arn:"),
        "TopicArn is not an ARN: {topic_arn}"
    );
    assert!(
        arn.starts_with(topic_arn),
        "subscription {arn} is not on topic {topic_arn}"
    );
    if let Some(header) = request.header("x-amz-sns-topic-arn") {
        assert_eq!(header, topic_arn);
    }
    if let Some(header) = request.header("x-amz-sns-message-id") {
        assert_eq!(header, envelope["MessageId"].as_str().unwrap());
    }
    let timestamp = envelope["Timestamp"].as_str().unwrap();
    assert!(
        timestamp.contains('T') && (timestamp.ends_with('Z') || timestamp.ends_with("+00:00")),
        "Timestamp is not RFC 3339 UTC: {timestamp}"
    );

    assert_eq!(
        envelope["MessageAttributes"],
        json!({
            "eventType": {"Type": "String", "Value": "OrderCreated"},
            "currency": {"Type": "String", "Value": "EUR"},
            "customerId": {"Type": "String", "Value": "cust-42"},
            "total": {"Type": "Number", "Value": "60.07"},
            "requestId": {"Type": "String", "Value": stored["requestId"]},
        }),
        "{envelope}"
    );

    let message = &notification.message;
    assert_eq!(message["type"], json!("OrderCreated"), "{message}");
    assert_eq!(message["order"]["orderID"], json!(id), "{message}");
    assert_eq!(message["order"]["status"], json!("STORED"), "{message}");
    assert_eq!(message["order"]["total"].to_string(), "60.07", "{message}");
    assert_eq!(
        message["order"], stored,
        "the notification carries the stored order exactly"
    );
}

#[tokio::test]
async fn nothing_is_delivered_before_the_subscription_is_confirmed() {
    let app = spawn_app().await;
    let subscriber = TestSubscriber::start_without_confirming().await;
    let (status, body) = app.create_subscription(&subscriber.url()).await;
    assert_eq!(status.as_u16(), 201, "{body}");
    wait_until(SHORT, "the confirmation request", async || {
        !subscriber.confirmation_requests().is_empty()
    })
    .await;

    let early = app.submit_all(orders("early", 3)).await;
    app.wait_until_stored_count(3, SHORT).await;
    wait_until(SHORT, "the stream to be consumed", async || {
        app.stats().await.stream_pending() == 0
    })
    .await;
    // Absence can only be observed over time: give the pipeline a moment to misbehave.
    let quiet_until = Instant::now() + Duration::from_millis(500);
    while Instant::now() < quiet_until {
        assert!(
            subscriber.notification_attempts().is_empty(),
            "a notification was sent before confirmation"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let confirmed = subscriber.confirm_pending().await;
    assert!(
        confirmed.contains(&Some(200)),
        "confirmations: {confirmed:?}"
    );
    let late = app.submit(&order(&unique_id("late"))).await;

    wait_until_delivered(&subscriber, &id_set([&late]), SHORT).await;
    for attempt in subscriber.notification_attempts() {
        let delivered = attempt.order_id().unwrap_or_default().to_owned();
        assert!(
            delivered == late || early.contains(&delivered),
            "unexpected notification for {delivered}"
        );
    }
}

#[tokio::test]
async fn a_receiver_that_was_down_gets_its_notifications_when_it_comes_back() {
    let app = spawn_app_with(AppOptions::fast_retries()).await;
    let subscriber = TestSubscriber::start().await;
    app.subscribe(&subscriber).await;
    subscriber.go_down();

    let ids = app.submit_all(orders("down", 5)).await;
    app.wait_until_stored_count(5, SHORT).await;
    // Every order was tried and refused, and at least one was retried.
    wait_until(
        SHORT,
        "failed attempts for every order and a retry",
        async || {
            let attempts = subscriber.notification_attempts();
            let tried: HashSet<String> = attempts
                .iter()
                .filter_map(|n| n.order_id().map(str::to_owned))
                .collect();
            tried == id_set(&ids) && attempts.len() > ids.len()
        },
    )
    .await;
    assert!(subscriber.notifications().is_empty());
    let stats = app.stats().await;
    assert!(
        stats.deliveries_pending() > 0,
        "nothing pending while down: {}",
        stats.0
    );

    subscriber.come_back();

    wait_until_delivered(&subscriber, &id_set(&ids), SHORT).await;
    let stats = app.drain().await;
    assert_eq!(stats.deliveries_pending(), 0, "{}", stats.0);
}

/// A first attempt that fails is retried after its backoff (20 ms here), not when the
/// worker's 5 s safety poll comes round: the failed first attempt becomes a row the worker
/// must be told about (found by review of the delivery cursors).
#[tokio::test]
async fn a_failed_first_attempt_is_retried_after_its_backoff() {
    let app = spawn_app_with(AppOptions::fast_retries()).await;
    let subscriber = TestSubscriber::start().await;
    app.subscribe(&subscriber).await;
    subscriber.go_down();
    app.submit_all(orders("retry-soon", 1)).await;
    wait_until(SHORT, "a first attempt", async || {
        !subscriber.notification_attempts().is_empty()
    })
    .await;
    let first = Instant::now();
    wait_until(SHORT, "a second attempt", async || {
        subscriber.notification_attempts().len() >= 2
    })
    .await;
    assert!(
        first.elapsed() < Duration::from_secs(2),
        "retried after {:?}",
        first.elapsed()
    );
}

#[tokio::test]
async fn a_receiver_that_was_unreachable_gets_its_notifications_when_it_listens_again() {
    let app = spawn_app_with(AppOptions::fast_retries()).await;
    let mut subscriber = TestSubscriber::start().await;
    app.subscribe(&subscriber).await;
    subscriber.stop().await;

    let ids = app.submit_all(orders("gone", 5)).await;
    app.wait_until_stored_count(5, SHORT).await;
    wait_until(SHORT, "deliveries to be pending", async || {
        app.stats().await.deliveries_pending() >= 5
    })
    .await;
    // Let a few connection-refused retries happen before the receiver returns.
    tokio::time::sleep(Duration::from_millis(300)).await;
    subscriber.restart().await;

    wait_until_delivered(&subscriber, &id_set(&ids), SHORT).await;
    app.drain().await;
}

#[tokio::test]
async fn every_confirmed_subscriber_gets_every_order() {
    let app = spawn_app().await;
    let first = TestSubscriber::start().await;
    let second = TestSubscriber::start().await;
    app.subscribe(&first).await;
    app.subscribe(&second).await;

    let ids = id_set(&app.submit_all(orders("fan", 10)).await);

    wait_until_delivered(&first, &ids, SHORT).await;
    wait_until_delivered(&second, &ids, SHORT).await;
    app.drain().await;
    for subscriber in [&first, &second] {
        let counts = subscriber.deliveries_per_order();
        assert!(
            counts.values().all(|&n| n == 1),
            "repeated deliveries: {counts:?}"
        );
    }
}

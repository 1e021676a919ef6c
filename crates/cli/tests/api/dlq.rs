//! Per-subscription retry policies and dead-letter stores, and isolation between
//! subscribers: a failing or slow one never holds up the others.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::fanout_support::{assert_success, orderflow, stdout, subscribe_with, wait_for_count};
use crate::helpers::{
    AppOptions, LONG, SHORT, id_set, orders, spawn_app, spawn_app_with, wait_for, wait_until,
};
use crate::subscriber::TestSubscriber;

#[tokio::test]
async fn a_receiver_that_always_fails_ends_up_in_the_dead_letter_store_and_is_redriven() {
    let app = spawn_app_with(AppOptions::fast_retries()).await;
    let subscriber = TestSubscriber::start().await;
    let sub = subscribe_with(
        &app,
        json!({"protocol": "http", "endpoint": subscriber.url(),
               "deliveryPolicy": {"maxAttempts": 3, "minDelayMs": 10, "maxDelayMs": 50}}),
    )
    .await;
    let id = sub["id"].as_str().unwrap().to_owned();
    wait_until(SHORT, "the subscriber to confirm", async || {
        subscriber.confirmed_count() == 1
    })
    .await;
    subscriber.go_down();

    let ids = app.submit_all(orders("dead", 2)).await;
    app.wait_until_stored_count(2, SHORT).await;
    wait_for_count(&app, &id, "failed", 2).await;

    // The CLI lists the dead letters: each tried exactly maxAttempts times.
    let listed = orderflow(&[
        "subscriptions",
        "dlq",
        "list",
        &id,
        "--json",
        "--url",
        &app.url,
    ])
    .await;
    assert_success(&listed, "subscriptions dlq list");
    let dead: Vec<Value> = stdout(&listed)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(dead.len(), 2, "{dead:?}");
    for d in &dead {
        assert_eq!(d["attempts"], json!(3), "{d}");
        assert!(d["lastError"].as_str().unwrap().contains("500"), "{d}");
        assert_eq!(d["type"], json!("Notification"), "{d}");
    }
    let attempts = subscriber.notification_attempts();
    assert_eq!(attempts.len(), 6, "3 attempts per order, no more");
    let (_, http_view) = app.get_json(&format!("/subscriptions/{id}/dlq")).await;
    assert_eq!(
        http_view["deliveries"].as_array().map(Vec::len),
        Some(2),
        "{http_view}"
    );

    // Fixed receiver, redrive: everything arrives, the store is empty.
    subscriber.come_back();
    let redriven = orderflow(&["subscriptions", "dlq", "redrive", &id, "--url", &app.url]).await;
    assert_success(&redriven, "subscriptions dlq redrive");
    assert!(
        stdout(&redriven).contains("redriven 2"),
        "{}",
        stdout(&redriven)
    );
    wait_until(SHORT, "the redriven orders to arrive", async || {
        subscriber.order_ids_delivered() == id_set(&ids)
    })
    .await;
    let settled = wait_for_count(&app, &id, "delivered", 2).await;
    assert_eq!(settled["deliveries"]["failed"], json!(0), "{settled}");
    let (_, http_view) = app.get_json(&format!("/subscriptions/{id}/dlq")).await;
    assert_eq!(http_view["deliveries"], json!([]), "{http_view}");
}

#[tokio::test]
async fn one_subscriptions_retry_policy_does_not_apply_to_another() {
    let app = spawn_app_with(AppOptions::fast_retries()).await;
    let strict = TestSubscriber::start().await;
    let patient = TestSubscriber::start().await;
    let strict_sub = subscribe_with(
        &app,
        json!({"protocol": "http", "endpoint": strict.url(), "deliveryPolicy": {"maxAttempts": 1}}),
    )
    .await;
    let patient_sub =
        subscribe_with(&app, json!({"protocol": "http", "endpoint": patient.url()})).await;
    wait_until(SHORT, "both to confirm", async || {
        strict.confirmed_count() == 1 && patient.confirmed_count() == 1
    })
    .await;
    strict.go_down();
    patient.go_down();
    let ids = app.submit_all(orders("policy", 1)).await;
    let strict_id = strict_sub["id"].as_str().unwrap();
    wait_for_count(&app, strict_id, "failed", 1).await;
    wait_until(SHORT, "the patient subscription to retry", async || {
        patient.notification_attempts().len() >= 3
    })
    .await;
    let (_, patient_view) = app
        .get_json(&format!(
            "/subscriptions/{}",
            patient_sub["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(
        patient_view["deliveries"]["failed"],
        json!(0),
        "{patient_view}"
    );
    patient.come_back();
    wait_until(
        SHORT,
        "the patient subscriber to get the order",
        async || patient.order_ids_delivered() == id_set(&ids),
    )
    .await;
    assert_eq!(strict.notification_attempts().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_subscriber_never_delays_the_others() {
    let app = spawn_app().await;
    let slow = TestSubscriber::start().await;
    let fast = TestSubscriber::start().await;
    app.subscribe(&slow).await;
    app.subscribe(&fast).await;
    // Far slower than everything else the fast one's deliveries take together.
    slow.answer_after(Duration::from_secs(10));

    let started = Instant::now();
    let ids: HashSet<String> = id_set(&app.submit_all(orders("slow", 40)).await);
    wait_for(LONG, "the fast subscriber to get every order", async || {
        let got = fast.order_ids_delivered();
        if got == ids {
            Ok(())
        } else {
            Err(format!("{} of {}", got.len(), ids.len()))
        }
    })
    .await;
    let took = started.elapsed();
    assert!(
        slow.notifications().is_empty(),
        "the fast subscriber was done after {took:?}, before the slow one answered even once"
    );
    assert!(
        took < Duration::from_secs(10),
        "the fast subscriber waited {took:?}: it was held up by the slow one"
    );
}

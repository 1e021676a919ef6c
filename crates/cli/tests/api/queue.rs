//! The orders queue: messages put on it directly, and the dead-letter queue.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{
    AppOptions, SHORT, order, orders, spawn_app, spawn_app_with, unique_id, wait_for,
};

#[tokio::test]
async fn a_valid_order_put_straight_on_the_queue_is_stored() {
    let app = spawn_app().await;
    let id = unique_id("queued");

    app.put_on_queue(&order(&id).to_string()).await;

    let stored = app.wait_until_stored(&id, SHORT).await;
    assert_eq!(stored["status"], json!("STORED"), "{stored}");
    assert_eq!(stored["total"].to_string(), "60.07", "{stored}");
}

#[tokio::test]
async fn a_malformed_message_on_the_queue_ends_in_the_dead_letter_queue_without_delaying_other_orders()
 {
    const VISIBILITY: Duration = Duration::from_millis(1_000);
    let app = spawn_app_with(AppOptions {
        visibility_timeout_ms: Some(VISIBILITY.as_millis() as u64),
        max_receive_count: Some(3),
        ..AppOptions::default()
    })
    .await;
    let poison = r#"{"nope":1}"#;

    let message_id = app.put_on_queue(poison).await;
    // Let the poller take the bad message first, so the good ones come after it.
    wait_for(SHORT, "the malformed message to be received", async || {
        let stats = app.stats().await;
        if stats.in_flight() >= 1 {
            Ok(())
        } else {
            Err(format!("stats: {}", stats.0))
        }
    })
    .await;
    let posted_at = Instant::now();
    let ids = app.submit_all(orders("behind-poison", 5)).await;

    app.wait_until_stored_count(5, SHORT).await;
    let stored_after = posted_at.elapsed();
    assert!(
        stored_after < VISIBILITY,
        "valid orders waited {stored_after:?}, as long as the bad message's visibility timeout"
    );
    app.assert_all_stored(&ids).await;

    let dead = wait_for(SHORT, "the malformed message in the DLQ", async || {
        let dead = app.dead_letters().await;
        if dead.is_empty() {
            Err("DLQ empty".to_owned())
        } else {
            Ok(dead)
        }
    })
    .await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    let message = &dead[0];
    assert_eq!(message["messageId"], json!(message_id), "{message}");
    assert_eq!(message["body"], json!(poison), "{message}");
    assert_eq!(message["receiveCount"], json!(3), "{message}");
    let stats = app.drain().await;
    assert_eq!(stats.dead_letter(), 1, "{}", stats.0);
    assert_eq!(stats.stored(), 5, "{}", stats.0);
}

//! `serve --retention`: history is pruned on its own, orders are kept, the trace says so.

use serde_json::json;

use crate::helpers::{AppOptions, SHORT, order, spawn_app_with, unique_id, wait_for};

#[tokio::test]
async fn with_zero_retention_a_delivered_orders_history_is_pruned_and_its_trace_says_so() {
    let app = spawn_app_with(AppOptions::default().with_args(&[
        "--retention",
        "0s",
        "--stream-retention",
        "0s",
        "--retention-interval",
        "1s",
    ]))
    .await;
    let id = app.submit(&order(&unique_id("pruned"))).await;
    app.wait_until_stored(&id, SHORT).await;

    let trace = wait_for(SHORT, "the order's history to be pruned", async || {
        let (_, trace) = app.get_json(&format!("/orders/{id}/trace")).await;
        if trace["pruned"] == json!(["received", "published", "deliveries"]) {
            Ok(trace)
        } else {
            Err(trace.to_string())
        }
    })
    .await;

    assert_eq!(trace["stage"], json!("published"), "{trace}");
    assert!(trace["storedAt"].is_string(), "{trace}");
    assert!(
        app.stored_order(&id).await.is_some(),
        "the order itself is kept"
    );
    assert_eq!(app.stats().await.stored(), 1);
}

#[tokio::test]
async fn a_retention_without_a_unit_is_refused_at_start() {
    let output =
        crate::fanout_support::orderflow(&["serve", "--retention", "12", "--addr", "127.0.0.1:0"])
            .await;
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("needs a unit"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

//! Stops and crashes: nothing acknowledged is lost, nothing delivered is repeated.

use std::collections::HashSet;

use crate::helpers::{
    AppOptions, LONG, SHORT, id_set, order, orders, spawn_app, spawn_app_with, unique_id, wait_for,
};
use crate::subscriber::TestSubscriber;

async fn wait_until_delivered(subscriber: &TestSubscriber, ids: &HashSet<String>) {
    wait_for(
        LONG,
        "every acknowledged order to be delivered",
        async || {
            let missing = ids.difference(&subscriber.order_ids_delivered()).count();
            if missing == 0 {
                Ok(())
            } else {
                Err(format!("{missing} of {} not delivered", ids.len()))
            }
        },
    )
    .await
}

#[tokio::test]
async fn sigterm_shuts_the_server_down_cleanly() {
    let mut app = spawn_app().await;
    app.submit(&order(&unique_id("before-stop"))).await;

    let status = app.stop().await;

    assert!(status.success(), "exit status after SIGTERM: {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_acknowledged_before_a_crash_are_stored_and_delivered_after_restart() {
    // The default 30 s visibility timeout is kept on purpose: messages the crashed process
    // had received must be released at start, not after the timeout.
    let mut app = spawn_app_with(AppOptions::fast_retries()).await;
    let subscriber = TestSubscriber::start().await;
    app.subscribe(&subscriber).await;
    // A refusing receiver keeps every notification in the delivery log across the crash.
    subscriber.go_down();

    let ids = app.submit_all(orders("crash", 200)).await;
    app.kill().await;
    app.restart().await;
    subscriber.come_back();

    app.wait_until_stored_count(200, LONG).await;
    app.assert_all_stored(&ids).await;
    wait_until_delivered(&subscriber, &id_set(&ids)).await;
    assert_eq!(subscriber.order_ids_delivered(), id_set(&ids));
    app.drain().await;
}

#[tokio::test]
async fn orders_acknowledged_before_a_clean_stop_are_stored_and_delivered_after_restart() {
    let mut app = spawn_app_with(AppOptions::fast_retries()).await;
    let subscriber = TestSubscriber::start().await;
    app.subscribe(&subscriber).await;
    subscriber.go_down();

    let ids = app.submit_all(orders("stop", 50)).await;
    let status = app.stop().await;
    assert!(status.success(), "exit status after SIGTERM: {status}");
    app.restart().await;
    subscriber.come_back();

    app.wait_until_stored_count(50, LONG).await;
    wait_until_delivered(&subscriber, &id_set(&ids)).await;
    app.drain().await;
}

#[tokio::test]
async fn a_restart_neither_skips_nor_repeats_notifications() {
    let mut app = spawn_app().await;
    let subscriber = TestSubscriber::start().await;
    app.subscribe(&subscriber).await;
    let mut ids = app.submit_all(orders("before", 5)).await;
    wait_until_delivered(&subscriber, &id_set(&ids)).await;
    app.drain().await;

    app.restart().await;
    ids.push(app.submit(&order(&unique_id("after"))).await);

    wait_until_delivered(&subscriber, &id_set(&ids)).await;
    app.drain().await;
    let counts = subscriber.deliveries_per_order();
    assert_eq!(counts.len(), 6, "{counts:?}");
    assert!(
        counts.values().all(|&n| n == 1),
        "repeated after restart: {counts:?}"
    );
    assert_eq!(app.stats().await.stored(), 6);
    app.wait_until_stored(&ids[0], SHORT).await;
}

//! Graceful shutdown: on SIGTERM new writes get `503` with `Retry-After`, in-flight work is
//! finished, and the process exits within a few seconds, even with a hung subscriber.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{
    AppOptions, LONG, SHORT, http_client, id_set, json_of, order, orders, spawn_app_with,
    unique_id, wait_for,
};
use crate::subscriber::TestSubscriber;

/// "Within a few seconds": the exit must come this soon after SIGTERM.
const EXIT_WITHIN: Duration = Duration::from_secs(5);

#[tokio::test]
async fn after_sigterm_writes_get_503_with_retry_after_and_the_server_exits_within_seconds() {
    let mut app =
        spawn_app_with(AppOptions::default().with_args(&["--shutdown-grace-ms", "1500"])).await;
    let mut accepted = app.submit_all(orders("before-term", 20)).await;

    app.terminate();
    let signalled_at = Instant::now();
    // Until the signal is handled a write may still be accepted; those count as accepted.
    let (refused_id, body, retry_after) = wait_for(SHORT, "a write to be refused", async || {
        let id = unique_id("during-drain");
        let response = app.post_order(&order(&id)).await;
        let retry_after = response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        let (status, body) = json_of(response).await;
        match status {
            StatusCode::SERVICE_UNAVAILABLE => Ok((id, body, retry_after)),
            StatusCode::ACCEPTED => {
                accepted.push(id);
                Err("still accepting (the signal is not handled yet)".into())
            }
            other => panic!("POST /orders while draining: {other} {body}"),
        }
    })
    .await;
    assert!(
        body["error"].as_str().unwrap().contains("shutting down"),
        "{body}"
    );
    assert!(retry_after.is_some(), "503 without Retry-After");
    let (health, _) = app.get_json("/healthz").await;
    assert_eq!(
        health,
        StatusCode::SERVICE_UNAVAILABLE,
        "health while draining"
    );
    let (read, _) = app.get_json(&format!("/orders/{}", accepted[0])).await;
    assert_ne!(
        read,
        StatusCode::SERVICE_UNAVAILABLE,
        "reads are still served"
    );

    let status = app
        .wait_for_exit(EXIT_WITHIN)
        .await
        .unwrap_or_else(|| panic!("still running {EXIT_WITHIN:?} after SIGTERM"));
    assert!(status.success(), "exit status {status}\n{}", app.logs());
    let took = signalled_at.elapsed();
    assert!(took < EXIT_WITHIN, "exit took {took:?}");

    app.restart().await;
    app.wait_until_stored_count(accepted.len() as u64, LONG)
        .await;
    app.assert_all_stored(&accepted).await;
    assert_eq!(
        app.stored_order(&refused_id).await,
        None,
        "an order answered 503 was not accepted"
    );
}

#[tokio::test]
async fn sigterm_under_load_finishes_in_flight_batches_and_loses_nothing() {
    let mut app = spawn_app_with(AppOptions {
        // The start-up line about released messages is logged at info.
        log_filter: Some("info".to_owned()),
        ..AppOptions::fast_retries()
    })
    .await;
    let subscriber = TestSubscriber::start().await;
    app.subscribe(&subscriber).await;
    let ids = app.submit_all(orders("under-load", 300)).await;

    // The pipeline is busy with the backlog when the signal arrives.
    app.terminate();
    let status = app
        .wait_for_exit(EXIT_WITHIN)
        .await
        .unwrap_or_else(|| panic!("still running {EXIT_WITHIN:?} after SIGTERM"));
    assert!(status.success(), "exit status {status}\n{}", app.logs());

    app.restart().await;
    app.wait_until_stored_count(300, LONG).await;
    wait_for(LONG, "every order to be delivered", async || {
        let missing = id_set(&ids)
            .difference(&subscriber.order_ids_delivered())
            .count();
        if missing == 0 {
            Ok(())
        } else {
            Err(format!("{missing} not delivered"))
        }
    })
    .await;
    app.drain().await;
    let logs = app.logs();
    assert!(logs.contains("stopped cleanly"), "{logs}");
    assert!(
        !logs.contains("in flight before the last stop"),
        "a graceful stop left received messages in flight:\n{logs}"
    );
}

#[tokio::test]
async fn a_hung_subscriber_does_not_hold_up_the_shutdown() {
    // Accepts connections and never answers: every delivery to it hangs.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hung = format!("http://{}/hook", listener.local_addr().unwrap());
    let hold = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            open.push(socket);
        }
    });
    let mut app = spawn_app_with(AppOptions::default()).await;
    let (status, body) = app.create_subscription(&hung).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    app.submit_all(orders("hung", 10)).await;
    // Let the confirmation request reach the hung endpoint.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let started = Instant::now();
    app.terminate();
    let status = app
        .wait_for_exit(EXIT_WITHIN)
        .await
        .unwrap_or_else(|| panic!("still running {EXIT_WITHIN:?} after SIGTERM"));
    assert!(status.success(), "exit status {status}\n{}", app.logs());
    assert!(started.elapsed() < EXIT_WITHIN);
    hold.abort();

    // The delivery that was cut off is still owed, not lost.
    app.restart().await;
    let subs = app.subscriptions().await;
    assert_eq!(subs.len(), 1, "{subs:?}");
    assert_eq!(subs[0]["endpoint"], json!(hung));
    let anonymous = http_client();
    let response = anonymous
        .get(app.endpoint("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

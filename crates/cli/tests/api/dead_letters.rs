//! `orderflow dlq` and its HTTP endpoints: the orders queue's dead letters and the stream's
//! on-failure destination, with reasons and receive counts; show, redrive, purge.

use std::process::{Output, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::process::Command;

use crate::helpers::{
    AppOptions, SHORT, TestApp, append_unpublishable_stream_record, hermetic, order,
    spawn_app_with, unique_id, wait_for,
};
use crate::subscriber::TestSubscriber;

const KEY: &str = "dlq-test-key-0123456789";

async fn dlq(app: &TestApp, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_orderflow"));
    cmd.arg("dlq")
        .args(args)
        .args(["--url", &app.url])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    hermetic(&mut cmd);
    cmd.env("ORDERFLOW_API_KEY", KEY);
    tokio::time::timeout(Duration::from_secs(30), cmd.output())
        .await
        .expect("orderflow dlq finished")
        .expect("run orderflow dlq")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn ok(o: &Output, what: &str) -> String {
    assert!(
        o.status.success(),
        "{what}: {}\nstdout: {}\nstderr: {}",
        o.status,
        stdout(o),
        String::from_utf8_lossy(&o.stderr)
    );
    stdout(o)
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

async fn app() -> TestApp {
    spawn_app_with(AppOptions {
        visibility_timeout_ms: Some(200),
        max_receive_count: Some(2),
        api_key: Some(KEY.to_owned()),
        ..AppOptions::fast_retries()
    })
    .await
}

#[tokio::test]
async fn orders_dead_letters_are_listed_with_reason_and_receive_count_shown_redriven_and_purged() {
    let app = app().await;
    let missing_field = app.put_on_queue(r#"{"customerId":"c1"}"#).await;
    let not_json = app.put_on_queue("this is not JSON").await;
    wait_for(SHORT, "two dead letters", async || {
        let n = app.stats().await.dead_letter();
        if n == 2 { Ok(()) } else { Err(format!("{n}")) }
    })
    .await;

    let listed = json_lines(&ok(
        &dlq(&app, &["list", "--source", "orders", "--json"]).await,
        "dlq list",
    ));
    assert_eq!(listed.len(), 2, "{listed:?}");
    for entry in &listed {
        assert_eq!(entry["source"], json!("orders"));
        assert_eq!(entry["receiveCount"], json!(2), "{entry}");
        let reason = entry["reason"].as_str().unwrap();
        assert!(reason.contains("not an order"), "{entry}");
        assert!(reason.contains("receive 2"), "{entry}");
    }
    let table = ok(&dlq(&app, &["list"]).await, "dlq list (table)");
    assert!(table.contains("REASON"), "{table}");
    assert!(table.contains(&missing_field), "{table}");
    assert!(
        table.contains("items"),
        "the reason names the missing field: {table}"
    );

    let shown: Value =
        serde_json::from_str(&ok(&dlq(&app, &["show", &not_json]).await, "dlq show")).unwrap();
    assert_eq!(shown["messageId"], json!(not_json));
    assert_eq!(shown["body"], json!("this is not JSON"));

    // Redriven, it is received again (twice) and comes back with a fresh count.
    let redriven = ok(&dlq(&app, &["redrive", &not_json]).await, "dlq redrive");
    assert!(redriven.contains("1 redriven"), "{redriven}");
    wait_for(SHORT, "the redriven message back in the DLQ", async || {
        let (status, body) = app.get_json(&format!("/queue/dlq/{not_json}")).await;
        if status == 200 && body["receiveCount"] == json!(2) {
            Ok(())
        } else {
            Err(format!("{status} {body}"))
        }
    })
    .await;

    let purged = ok(
        &dlq(&app, &["purge", "--all", "--source", "orders"]).await,
        "dlq purge",
    );
    assert!(purged.contains("2 purged"), "{purged}");
    let (status, _) = app.get_json(&format!("/queue/dlq/{missing_field}")).await;
    assert_eq!(status, 404);
    assert!(app.dead_letters().await.is_empty());
}

#[tokio::test]
async fn stream_failures_are_listed_with_reason_shown_purged_and_redriven_once_fixed() {
    let mut app = app().await;
    let subscriber = TestSubscriber::start().await;
    app.subscribe(&subscriber).await;
    let good = app.submit(&order(&unique_id("good"))).await;
    app.wait_until_stored(&good, SHORT).await;
    app.drain().await;
    app.stop().await;
    append_unpublishable_stream_record(&app, "broken-1");
    append_unpublishable_stream_record(&app, "broken-2");
    app.restart().await;

    let failures = wait_for(SHORT, "two stream failures", async || {
        let (_, body) = app.get_json("/stream/failures").await;
        let records = body["records"].as_array().cloned().unwrap_or_default();
        if records.len() == 2 {
            Ok(records)
        } else {
            Err(body.to_string())
        }
    })
    .await;
    for f in &failures {
        assert_eq!(f["attempts"], json!(3), "{f}");
        let reason = f["lastError"].as_str().unwrap();
        assert!(reason.contains("NewImage is not a stored order"), "{f}");
    }
    let first = failures[0]["sequenceNumber"].as_str().unwrap().to_owned();
    let second = failures[1]["sequenceNumber"].as_str().unwrap().to_owned();

    let listed = json_lines(&ok(
        &dlq(&app, &["list", "--source", "stream", "--json"]).await,
        "dlq list",
    ));
    assert_eq!(listed.len(), 2);
    assert!(listed[0]["reason"].as_str().unwrap().contains("NewImage"));
    let shown: Value =
        serde_json::from_str(&ok(&dlq(&app, &["show", &first]).await, "dlq show")).unwrap();
    assert_eq!(shown["sequenceNumber"], json!(first));

    // Still broken: the redrive fails, says why, and keeps the record with one more attempt.
    let again = dlq(&app, &["redrive", &first]).await;
    assert!(!again.status.success());
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(
        stderr.contains("failed again") && stderr.contains("NewImage"),
        "{stderr}"
    );
    let (_, kept) = app.get_json(&format!("/stream/failures/{first}")).await;
    assert_eq!(kept["attempts"], json!(4), "{kept}");

    let purged = ok(&dlq(&app, &["purge", &second]).await, "dlq purge");
    assert!(purged.contains("stream: 1 purged"), "{purged}");

    // Fixed by hand (the image now holds a real order), the redrive publishes it.
    let db = rusqlite::Connection::open(app.data_dir().join("orderflow.db")).unwrap();
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    let good_image: String = db
        .query_row(
            "SELECT new_image FROM stream_records WHERE keys LIKE ?1",
            [format!("%{good}%")],
            |r| r.get(0),
        )
        .unwrap();
    let fixed_image: Value = serde_json::from_str(&good_image.replace(&good, "fixed-1")).unwrap();
    let mut record = kept["record"].clone();
    record["dynamodb"]["NewImage"] = fixed_image;
    db.execute(
        "UPDATE stream_failures SET record = ?1 WHERE seq = ?2",
        rusqlite::params![record.to_string(), first.parse::<i64>().unwrap()],
    )
    .unwrap();
    drop(db);

    let redriven = ok(
        &dlq(&app, &["redrive", "--all", "--source", "stream"]).await,
        "dlq redrive --all",
    );
    assert!(redriven.contains("stream: 1 republished"), "{redriven}");
    wait_for(SHORT, "the fixed order to be delivered", async || {
        if subscriber.order_ids_delivered().contains("fixed-1") {
            Ok(())
        } else {
            Err("not yet".to_owned())
        }
    })
    .await;
    let (_, body) = app.get_json("/stream/failures").await;
    assert_eq!(body["records"], json!([]), "{body}");
}

//! `orderflow backup` from a running server under full load, and `orderflow restore` into a
//! fresh data directory that a new server then serves.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::fanout_support::{assert_success, orderflow, subscribe_with};
use crate::helpers::{
    AppOptions, LONG, SHORT, TestApp, http_client_with_key, order, spawn_app_with, unique_id,
    wait_for,
};

const KEY: &str = "backup-test-key-0123456789";

async fn keyed_app() -> TestApp {
    spawn_app_with(AppOptions {
        api_key: Some(KEY.to_owned()),
        ..AppOptions::default()
    })
    .await
}

/// Posts orders from `clients` tasks as fast as they are answered, until `stop`; returns
/// each acknowledged id with the moment its 202 arrived.
fn post_at_full_speed(
    app: &TestApp,
    clients: usize,
    until: Instant,
) -> Vec<tokio::task::JoinHandle<Vec<(String, Instant)>>> {
    (0..clients)
        .map(|_| {
            let client = http_client_with_key(KEY);
            let url = app.endpoint("/orders");
            tokio::spawn(async move {
                let mut acked = Vec::new();
                while Instant::now() < until {
                    let id = unique_id("bk");
                    let response = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(order(&id).to_string())
                        .send()
                        .await;
                    if let Ok(r) = response
                        && r.status() == StatusCode::ACCEPTED
                    {
                        acked.push((id, Instant::now()));
                    }
                }
                acked
            })
        })
        .collect()
}

/// Receives and deletes every message of the pull queue `name`; returns their order ids
/// and SNS message ids.
async fn drain_pull_queue(app: &TestApp, name: &str) -> Vec<(String, String)> {
    let mut ids = Vec::new();
    loop {
        let messages =
            crate::fanout_support::receive(app, name, &json!({"maxNumberOfMessages": 10})).await;
        if messages.is_empty() {
            return ids;
        }
        let handles: Vec<&str> = messages
            .iter()
            .map(|m| m["receiptHandle"].as_str().unwrap())
            .collect();
        let deleted = app
            .post_json(
                &format!("/queues/{name}/delete"),
                &json!({"receiptHandles": handles}),
            )
            .await;
        assert_eq!(deleted.status(), StatusCode::OK);
        ids.extend(messages.iter().map(|m| {
            let body = m["body"].as_str().unwrap();
            let envelope: serde_json::Value = serde_json::from_str(body).unwrap();
            (
                crate::fanout_support::order_id_of(body),
                envelope["MessageId"].as_str().unwrap().to_owned(),
            )
        }));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_under_full_load_restores_into_a_server_that_resumes_where_it_left_off() {
    let app = keyed_app().await;
    subscribe_with(&app, json!({"protocol": "queue", "endpoint": "warehouse"})).await;
    let unauthorized = crate::helpers::http_client()
        .post(app.endpoint("/backup"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        unauthorized.status(),
        StatusCode::UNAUTHORIZED,
        "a backup holds customer data"
    );

    let until = Instant::now() + Duration::from_secs(3);
    let posters = post_at_full_speed(&app, 8, until);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let began = Instant::now();
    let file = app.data_dir().parent().unwrap().join("orderflow-backup.db");
    let file_arg = file.to_str().unwrap().to_owned();
    let backup = orderflow(&["backup", &file_arg, "--url", &app.url, "--api-key", KEY]).await;
    assert_success(&backup, "orderflow backup --url");
    let backup_took = began.elapsed();
    let mut acked = Vec::new();
    for p in posters {
        acked.extend(p.await.unwrap());
    }
    let before: HashSet<String> = acked
        .iter()
        .filter(|(_, at)| *at < began)
        .map(|(id, _)| id.clone())
        .collect();
    assert!(
        before.len() >= 50 && acked.len() > before.len(),
        "{} acknowledged before the backup, {} in all; it took {backup_took:?}",
        before.len(),
        acked.len()
    );

    // A fresh data directory: a live one is refused, a stopped one restored.
    let mut restored = keyed_app().await;
    let data = restored.data_dir();
    let data_arg = data.to_str().unwrap().to_owned();
    let refused = orderflow(&["restore", &file_arg, "--data-dir", &data_arg]).await;
    assert!(!refused.status.success(), "restored over a running server");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("in use by a running orderflow server"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    restored.stop().await;
    assert_success(
        &orderflow(&["restore", &file_arg, "--data-dir", &data_arg]).await,
        "orderflow restore",
    );
    restored.restart().await;

    // Every order acknowledged before the backup began is there, stored and announced once.
    let stats = wait_for(LONG, "the restored pipeline to drain", async || {
        let stats = restored.stats().await;
        if stats.is_idle() && stats.stored() >= before.len() as u64 {
            Ok(stats)
        } else {
            Err(stats.0.to_string())
        }
    })
    .await;
    for id in &before {
        assert!(
            restored.stored_order(id).await.is_some(),
            "{id} acknowledged before the backup is missing"
        );
    }
    // A delivery in flight when the backup was taken is made again (at least once, with the
    // same MessageId), but no order is published a second time.
    let announced = drain_pull_queue(&restored, "warehouse").await;
    let mut messages: HashMap<&str, HashSet<&str>> = HashMap::new();
    for (order_id, message_id) in &announced {
        messages.entry(order_id).or_default().insert(message_id);
    }
    for (order_id, ids) in &messages {
        assert_eq!(
            ids.len(),
            1,
            "order {order_id} was announced again: {ids:?}"
        );
    }
    assert_eq!(
        messages.len() as u64,
        stats.stored(),
        "every stored order announced"
    );

    // The restored server takes new orders through the whole pipeline.
    let id = restored.submit(&order(&unique_id("after"))).await;
    restored.wait_until_stored(&id, SHORT).await;
    let next = wait_for(SHORT, "the new order announced", async || {
        let ids = drain_pull_queue(&restored, "warehouse").await;
        if ids.is_empty() {
            Err("nothing yet".into())
        } else {
            Ok(ids)
        }
    })
    .await;
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].0, id);
}

#[tokio::test]
async fn a_stopped_data_directory_is_backed_up_offline_and_a_missing_one_is_an_error() {
    let mut app = keyed_app().await;
    let id = app.submit(&order(&unique_id("offline"))).await;
    app.wait_until_stored(&id, SHORT).await;
    let data = app.data_dir();
    let data_arg = data.to_str().unwrap().to_owned();
    let file = data.parent().unwrap().join("offline.db");
    let file_arg = file.to_str().unwrap().to_owned();
    let live = orderflow(&["backup", &file_arg, "--data-dir", &data_arg]).await;
    assert!(
        !live.status.success(),
        "a running server's directory is backed up with --url"
    );
    app.stop().await;

    let done = orderflow(&["backup", &file_arg, "--data-dir", &data_arg]).await;

    assert_success(&done, "orderflow backup --data-dir");
    assert!(
        String::from_utf8_lossy(&done.stderr).contains("100%"),
        "progress is shown"
    );
    assert!(crate::fanout_support::stdout(&done).contains("integrity ok"));
    let again = orderflow(&["backup", &file_arg, "--data-dir", &data_arg]).await;
    assert!(
        !again.status.success(),
        "an existing file is never overwritten"
    );
    let missing = orderflow(&["restore", "/nonexistent/backup.db", "--data-dir", &data_arg]).await;
    assert!(!missing.status.success());
}

/// `orderflow args...` run under umask 022, the usual default, which leaves new files
/// readable by every user of the machine unless the program says otherwise.
async fn orderflow_under_umask_022(args: &[&str]) -> std::process::Output {
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c")
        .arg("umask 022 && exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_orderflow"))
        .args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    crate::helpers::hermetic(&mut cmd);
    tokio::time::timeout(LONG, cmd.output())
        .await
        .expect("orderflow finished in time")
        .expect("run orderflow")
}

#[tokio::test]
async fn backup_files_are_readable_by_their_owner_only_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let mut app = keyed_app().await;
    let id = app.submit(&order(&unique_id("private"))).await;
    app.wait_until_stored(&id, SHORT).await;
    let dir = app.data_dir().parent().unwrap().to_owned();
    let online = dir.join("online.db");
    let done = orderflow_under_umask_022(&[
        "backup",
        online.to_str().unwrap(),
        "--url",
        &app.url,
        "--api-key",
        KEY,
    ])
    .await;
    assert_success(&done, "orderflow backup --url");
    app.stop().await;
    let offline = dir.join("offline.db");
    let data = app.data_dir();
    let done = orderflow_under_umask_022(&[
        "backup",
        offline.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ])
    .await;
    assert_success(&done, "orderflow backup --data-dir");
    for file in [online, offline] {
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{} has mode {mode:o}", file.display());
    }
}

//! Back-pressure, never a false `202`: a queue over its configured depth and a full disk
//! both answer `503` with `Retry-After`, and every `202` given is kept.

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;
use tokio::sync::Semaphore;

use crate::helpers::{
    AppOptions, LONG, SHORT, http_client, json_of, order, spawn_app_with, unique_id, wait_for,
};

#[tokio::test]
async fn orders_over_the_queue_depth_limit_get_503_until_the_queue_drains() {
    let app = spawn_app_with(
        AppOptions {
            visibility_timeout_ms: Some(4_000),
            max_receive_count: Some(1),
            ..AppOptions::default()
        }
        .with_args(&["--max-queue-depth", "5"]),
    )
    .await;
    // Five messages the store handler cannot take: each stays in flight for the visibility
    // timeout, then moves to the dead-letter queue.
    for _ in 0..5 {
        app.put_on_queue(r#"{"not":"an order"}"#).await;
    }
    wait_for(SHORT, "five messages in the queue", async || {
        let stats = app.stats().await;
        if stats.visible() + stats.in_flight() == 5 {
            Ok(())
        } else {
            Err(format!("{}", stats.0))
        }
    })
    .await;
    // The depth reading is at most 100 ms old.
    tokio::time::sleep(Duration::from_millis(150)).await;

    let refused = unique_id("too-deep");
    let response = app.post_order(&order(&refused)).await;
    let retry_after = response.headers().get("retry-after").cloned();
    let (status, body) = json_of(response).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(error.contains("queue is full"), "{body}");
    assert!(error.contains("limit 5"), "{body}");
    assert!(retry_after.is_some(), "503 without Retry-After");
    let raw = app
        .post_raw("/queue/messages", Some("application/json"), "{}")
        .await;
    assert_eq!(raw.status(), StatusCode::SERVICE_UNAVAILABLE);

    // Once the bad messages are dead letters the queue is empty and orders are taken again.
    wait_for(SHORT, "the bad messages in the DLQ", async || {
        let stats = app.stats().await;
        if stats.dead_letter() == 5 {
            Ok(())
        } else {
            Err(format!("{}", stats.0))
        }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    let accepted = app.submit(&order(&unique_id("after-drain"))).await;
    app.wait_until_stored(&accepted, SHORT).await;
    assert_eq!(app.stored_order(&refused).await, None);
}

/// `orderflow serve` with its data directory on a 4 MiB tmpfs mounted in a private mount
/// namespace (`unshare`), most of it taken by a ballast file that is removed when the test
/// writes a line to the wrapper's stdin.
struct FullDiskServer {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    url: String,
    log: std::path::PathBuf,
    _root: tempfile::TempDir,
}

const WRAPPER: &str = r#"
set -eu
mount -t tmpfs -o size=4m orderflow-test "$1"
head -c 2500000 /dev/zero > "$1/ballast"
"$2" serve --addr 127.0.0.1:0 --data-dir "$1/data" --max-receive-count 1000 --visibility-timeout-ms 1000 \
    --delivery-min-backoff-ms 20 --delivery-max-backoff-ms 200 2>"$3" &
server=$!
read -r _ || true
rm -f "$1/ballast"
echo "ballast removed" >&2
read -r _ || true
kill -TERM "$server"
wait "$server"
"#;

impl FullDiskServer {
    async fn start() -> Self {
        let root = tempfile::tempdir().unwrap();
        let mount_point = root.path().join("mnt");
        std::fs::create_dir(&mount_point).unwrap();
        let log = root.path().join("server.log");
        let mut cmd = Command::new("unshare");
        // A user, mount and PID namespace: the tmpfs is private to the server, and killing
        // `unshare` kills everything inside.
        cmd.args(["--user", "--map-root-user", "--mount", "--pid", "--fork"])
            .arg("--kill-child")
            .args(["sh", "-c", WRAPPER, "sh"])
            .arg(&mount_point)
            .arg(env!("CARGO_BIN_EXE_orderflow"))
            .arg(&log)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        crate::helpers::hermetic(&mut cmd);
        let mut child = cmd.spawn().expect(
            "run `unshare` (util-linux) to give the server a small tmpfs; this test needs \
             user and mount namespaces",
        );
        let stdin = child.stdin.take().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let url = tokio::time::timeout(Duration::from_secs(30), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    return rest.split_whitespace().next().map(str::to_owned);
                }
            }
            None
        })
        .await
        .ok()
        .flatten();
        let Some(url) = url else {
            let mut stderr = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = tokio::time::timeout(
                    Duration::from_secs(2),
                    tokio::io::AsyncReadExt::read_to_string(&mut e, &mut stderr),
                )
                .await;
            }
            panic!(
                "the server on a tmpfs did not start. This test needs `unshare --user --mount` \
                 (util-linux, unprivileged user namespaces). stderr: {stderr}\nserver log: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        };
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        FullDiskServer {
            child,
            stdin,
            url,
            log,
            _root: root,
        }
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn free_space(&mut self) {
        self.stdin.write_all(b"\n").await.unwrap();
        self.stdin.flush().await.unwrap();
    }
}

#[derive(Debug)]
enum Outcome {
    Accepted,
    Refused { retry_after: bool, error: String },
}

async fn post(client: &reqwest::Client, url: &str, id: &str) -> Outcome {
    let response = client
        .post(format!("{url}/orders"))
        .header("content-type", "application/json")
        .body(order(id).to_string())
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST /orders: {e}"));
    let retry_after = response.headers().contains_key("retry-after");
    let (status, body) = json_of(response).await;
    match status {
        StatusCode::ACCEPTED => Outcome::Accepted,
        StatusCode::SERVICE_UNAVAILABLE => Outcome::Refused {
            retry_after,
            error: body["error"].as_str().unwrap_or_default().to_owned(),
        },
        other => panic!("POST /orders on a full disk: {other} {body}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_answers_503_and_every_202_given_is_stored_once_space_is_back() {
    let mut server = FullDiskServer::start().await;
    let client = http_client();
    let url = server.url.clone();
    let limit = Arc::new(Semaphore::new(8));
    let mut accepted = Vec::new();
    let mut refused = Vec::new();
    let started = Instant::now();

    // Fill the disk: post in rounds until orders are refused (bounded in count and time).
    'fill: for round in 0..100 {
        let mut tasks = Vec::new();
        for i in 0..50 {
            let (client, url, limit) = (client.clone(), url.clone(), Arc::clone(&limit));
            let id = unique_id(&format!("full{round}-{i}"));
            tasks.push(tokio::spawn(async move {
                let _permit = limit.acquire_owned().await.unwrap();
                let outcome = post(&client, &url, &id).await;
                (id, outcome)
            }));
        }
        for task in tasks {
            let (id, outcome) = task.await.unwrap();
            match outcome {
                Outcome::Accepted => accepted.push(id),
                Outcome::Refused { retry_after, error } => {
                    assert!(retry_after, "a 503 without Retry-After");
                    assert!(error.contains("not accepted"), "{error}");
                    refused.push(id);
                }
            }
        }
        if refused.len() >= 20 || started.elapsed() > Duration::from_secs(120) {
            break 'fill;
        }
    }
    assert!(
        !refused.is_empty(),
        "the 4 MiB disk never filled ({} orders accepted)\n{}",
        accepted.len(),
        server.logs()
    );
    assert!(
        !accepted.is_empty(),
        "nothing was accepted before the disk filled"
    );
    eprintln!(
        "disk full after {} accepted orders; {} refused with 503",
        accepted.len(),
        refused.len()
    );

    server.free_space().await;
    let get = async |id: &str| -> StatusCode {
        client
            .get(format!("{url}/orders/{id}"))
            .send()
            .await
            .unwrap()
            .status()
    };
    wait_for(LONG, "every accepted order to be stored", async || {
        let mut missing = 0;
        for id in &accepted {
            if get(id).await != StatusCode::OK {
                missing += 1;
            }
        }
        if missing == 0 {
            Ok(())
        } else {
            Err(format!("{missing} of {} not stored", accepted.len()))
        }
    })
    .await;
    let stats: Value = client
        .get(format!("{url}/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        stats["orders"]["stored"].as_u64(),
        Some(accepted.len() as u64),
        "exactly the accepted orders are stored: {stats}\n{}",
        server.logs()
    );
    for id in &refused {
        assert_eq!(
            get(id).await,
            StatusCode::NOT_FOUND,
            "refused {id} was stored"
        );
    }
    // Space is back: orders are accepted again.
    assert!(matches!(
        post(&client, &url, &unique_id("after-space")).await,
        Outcome::Accepted
    ));

    drop(server.stdin);
    let _ = tokio::time::timeout(SHORT, server.child.wait()).await;
}

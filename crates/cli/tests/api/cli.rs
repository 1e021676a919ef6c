//! The client commands (`submit`, `orders get`, `orders list`) against a running server.

use std::process::{Output, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::helpers::{SHORT, hermetic, order, order_without_id, spawn_app, unique_id};

const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs `orderflow ARGS...`, feeding `stdin`; fails the test if it does not finish in time.
async fn orderflow(args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_orderflow"));
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    hermetic(&mut cmd);
    let mut child = cmd.spawn().expect("start orderflow");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin is piped");
        pipe.write_all(input.as_bytes()).await.expect("write stdin");
        drop(pipe);
    }
    tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("orderflow {args:?} did not finish within {COMMAND_TIMEOUT:?}"))
        .expect("wait for orderflow")
}

fn stdout_lines(output: &Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

fn assert_success(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} exited {}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn the_cli_submit_and_orders_commands_talk_to_a_running_server() {
    let app = spawn_app().await;
    let files = tempfile::tempdir().expect("a directory for order files");

    let array_ids: Vec<String> = (0..3)
        .map(|i| unique_id(&format!("cli-array{i}")))
        .collect();
    let array = Value::Array(array_ids.iter().map(|id| order(id)).collect());
    let array_file = files.path().join("orders.json");
    std::fs::write(&array_file, serde_json::to_string_pretty(&array).unwrap()).unwrap();

    let lines_ids: Vec<String> = (0..2).map(|i| unique_id(&format!("cli-line{i}"))).collect();
    let json_lines: String = lines_ids
        .iter()
        .map(|id| format!("{}\n", order(id)))
        .collect();
    let lines_file = files.path().join("orders.jsonl");
    std::fs::write(&lines_file, json_lines).unwrap();

    let output = orderflow(
        &["submit", array_file.to_str().unwrap(), "--url", &app.url],
        None,
    )
    .await;
    assert_success(&output, "submit orders.json");
    assert_eq!(stdout_lines(&output), array_ids, "submit of a JSON array");

    let output = orderflow(
        &["submit", lines_file.to_str().unwrap(), "--url", &app.url],
        None,
    )
    .await;
    assert_success(&output, "submit orders.jsonl");
    assert_eq!(stdout_lines(&output), lines_ids, "submit of JSON lines");

    let output = orderflow(
        &["submit", "-", "--url", &app.url],
        Some(&order_without_id().to_string()),
    )
    .await;
    assert_success(&output, "submit -");
    let assigned = stdout_lines(&output);
    assert_eq!(
        assigned.len(),
        1,
        "submit of one order on stdin: {assigned:?}"
    );
    let assigned = assigned[0].clone();
    assert!(
        uuid::Uuid::parse_str(&assigned).is_ok(),
        "the printed id is not the server-assigned UUID: {assigned:?}"
    );

    let every_id: Vec<String> = array_ids
        .iter()
        .chain(&lines_ids)
        .chain([&assigned])
        .cloned()
        .collect();
    app.wait_until_stored_count(every_id.len() as u64, SHORT)
        .await;

    let output = orderflow(&["orders", "get", &array_ids[1], "--url", &app.url], None).await;
    assert_success(&output, "orders get");
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "orders get did not print JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    });
    assert_eq!(printed["orderID"], json!(array_ids[1]), "{printed}");
    assert_eq!(printed["status"], json!("STORED"), "{printed}");
    assert_eq!(printed["total"].to_string(), "60.07", "{printed}");

    let output = orderflow(&["orders", "list", "--url", &app.url], None).await;
    assert_success(&output, "orders list");
    let listing = String::from_utf8_lossy(&output.stdout);
    for id in &every_id {
        assert!(
            listing.contains(id.as_str()),
            "orders list does not show {id}:\n{listing}"
        );
    }
}

#[tokio::test]
async fn orders_get_of_an_unknown_order_fails_with_a_message() {
    let app = spawn_app().await;

    let output = orderflow(
        &["orders", "get", &unique_id("missing"), "--url", &app.url],
        None,
    )
    .await;

    assert!(
        !output.status.success(),
        "orders get of an unknown id succeeded"
    );
    assert!(
        !output.stderr.is_empty(),
        "orders get of an unknown id explained nothing on stderr"
    );
}

#[tokio::test]
async fn submit_of_an_invalid_order_fails_and_names_the_field() {
    let app = spawn_app().await;
    let mut bad = order(&unique_id("bad"));
    bad["items"][0]["quantity"] = json!(0);

    let output = orderflow(&["submit", "-", "--url", &app.url], Some(&bad.to_string())).await;

    assert!(
        !output.status.success(),
        "submit of an invalid order succeeded"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("items[0].quantity"),
        "stderr does not name the field:\n{stderr}"
    );
}

//! Helpers for the fan-out tests: subscriptions of every protocol, pull-queue reads, the CLI.

use std::process::{Output, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::process::Command;

use crate::helpers::{SHORT, TestApp, encode_path_segment, hermetic, json_of, wait_for};

const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// `POST /subscriptions` with any body.
pub async fn add_subscription(app: &TestApp, body: &Value) -> (StatusCode, Value) {
    json_of(app.post_json("/subscriptions", body).await).await
}

/// `POST /subscriptions` that must succeed; returns the subscription.
pub async fn subscribe_with(app: &TestApp, body: Value) -> Value {
    let (status, answer) = add_subscription(app, &body).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "POST /subscriptions {body}: {answer}"
    );
    answer
}

/// One `ReceiveMessage` on a pull queue.
pub async fn receive(app: &TestApp, queue: &str, request: &Value) -> Vec<Value> {
    let (status, body) = json_of(
        app.post_json(&format!("/queues/{queue}/receive"), request)
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "receive from {queue}: {body}");
    body["messages"]
        .as_array()
        .unwrap_or_else(|| panic!("no messages array: {body}"))
        .clone()
}

/// Receives and deletes everything visible on `queue`; returns the bodies.
pub async fn read_all(app: &TestApp, queue: &str) -> Vec<String> {
    let mut bodies = Vec::new();
    for _ in 0..100 {
        let messages = receive(app, queue, &json!({"maxNumberOfMessages": 10})).await;
        if messages.is_empty() {
            return bodies;
        }
        let handles: Vec<&str> = messages
            .iter()
            .map(|m| m["receiptHandle"].as_str().expect("receiptHandle"))
            .collect();
        let (status, answer) = json_of(
            app.post_json(
                &format!("/queues/{queue}/delete"),
                &json!({"receiptHandles": handles}),
            )
            .await,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["deleted"], json!(messages.len()), "{answer}");
        bodies.extend(
            messages
                .iter()
                .map(|m| m["body"].as_str().expect("body").to_owned()),
        );
    }
    panic!("{queue} never ran empty");
}

/// The order id in a raw `OrderCreated` message or in the `Message` of an SNS envelope.
pub fn order_id_of(body: &str) -> String {
    let value: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    let message: Value = match value["Message"].as_str() {
        Some(inner) => serde_json::from_str(inner).expect("Message is JSON"),
        None => value,
    };
    message["order"]["orderID"]
        .as_str()
        .unwrap_or_else(|| panic!("no order id in {message}"))
        .to_owned()
}

/// The subscription as `GET /subscriptions/{id}` shows it.
pub async fn subscription(app: &TestApp, id: &str) -> Value {
    let (status, body) = app
        .get_json(&format!("/subscriptions/{}", encode_path_segment(id)))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// Runs `orderflow ARGS...` (a client command); fails the test if it hangs.
pub async fn orderflow(args: &[&str]) -> Output {
    orderflow_with_env(args, &[]).await
}

/// Runs `orderflow` with `args` and, on top of the hermetic environment, `env`.
pub async fn orderflow_with_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_orderflow"));
    hermetic(&mut cmd);
    cmd.args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    tokio::time::timeout(COMMAND_TIMEOUT, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("orderflow {args:?} did not finish in time"))
        .expect("run orderflow")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn assert_success(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} exited {}\nstdout: {}\nstderr: {}",
        output.status,
        stdout(output),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Waits until the subscription's `deliveries.<counter>` reaches `n` with nothing pending.
pub async fn wait_for_count(app: &TestApp, id: &str, counter: &str, n: u64) -> Value {
    wait_for(SHORT, &format!("{n} {counter} deliveries"), async || {
        let sub = subscription(app, id).await;
        let d = &sub["deliveries"];
        if d[counter] == json!(n) && d["pending"] == json!(0) {
            Ok(sub)
        } else {
            Err(sub.to_string())
        }
    })
    .await
}

//! `log` subscriptions, the `orderflow subscriptions` commands, and the declarative
//! `--subscriptions` file applied at start.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::fanout_support::{
    add_subscription, assert_success, order_id_of, orderflow, read_all, stdout, subscribe_with,
};
use crate::helpers::{
    AppOptions, SHORT, id_set, order, spawn_app, spawn_app_with, unique_id, wait_until,
};
use crate::subscriber::TestSubscriber;

#[tokio::test]
async fn a_log_subscription_writes_one_json_line_per_order_to_its_file() {
    let app = spawn_app().await;
    let sub = subscribe_with(&app, json!({"protocol": "log", "endpoint": "orders.jsonl"})).await;
    assert_eq!(sub["status"], json!("Confirmed"), "{sub}");
    let raw = subscribe_with(
        &app,
        json!({"protocol": "log", "endpoint": "raw.jsonl", "rawMessageDelivery": true}),
    )
    .await;
    assert_eq!(raw["rawMessageDelivery"], json!(true));
    let ids = app.submit_all(crate::helpers::orders("log", 3)).await;
    app.wait_until_stored_count(3, SHORT).await;
    app.drain().await;

    let dir = app.data_dir().join("subscription-logs");
    let lines = |file: &str| -> Vec<Value> {
        std::fs::read_to_string(dir.join(file))
            .unwrap_or_else(|e| panic!("{file}: {e}"))
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    };
    let envelopes = lines("orders.jsonl");
    assert_eq!(envelopes.len(), 3);
    for e in &envelopes {
        assert_eq!(e["Type"], json!("Notification"), "{e}");
        assert_eq!(e["SignatureVersion"], json!("2"), "{e}");
    }
    let got: Vec<String> = envelopes
        .iter()
        .map(|e| order_id_of(&e.to_string()))
        .collect();
    assert_eq!(id_set(&got), id_set(&ids));
    let messages = lines("raw.jsonl");
    assert_eq!(messages.len(), 3);
    assert!(
        messages.iter().all(|m| m["type"] == json!("OrderCreated")),
        "{messages:?}"
    );
}

#[tokio::test]
async fn over_http_a_log_file_must_stay_inside_the_data_directory() {
    let app = spawn_app().await;
    for endpoint in ["/tmp/evil.jsonl", "../escape.jsonl", ".hidden"] {
        let (status, body) =
            add_subscription(&app, &json!({"protocol": "log", "endpoint": endpoint})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{endpoint}: {body}");
        assert_eq!(body["details"][0]["field"], json!("endpoint"), "{body}");
    }
    let (status, body) = add_subscription(
        &app,
        &json!({"protocol": "email", "endpoint": "ops@example.com"}),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "no relay configured: {body}"
    );
    assert_eq!(body["details"][0]["field"], json!("protocol"), "{body}");
}

#[tokio::test]
async fn the_subscriptions_commands_add_list_check_and_remove() {
    let app = spawn_app().await;
    let webhook = TestSubscriber::start_without_confirming().await;
    let added = orderflow(&[
        "subscriptions",
        "add",
        "--protocol",
        "queue",
        "--endpoint",
        "cli-queue",
        "--name",
        "cli-queue",
        "--filter-policy",
        r#"{"currency": ["EUR"]}"#,
        "--max-receive-count",
        "3",
        "--json",
        "--url",
        &app.url,
    ])
    .await;
    assert_success(&added, "subscriptions add");
    let queue: Value = serde_json::from_str(stdout(&added).trim()).unwrap();
    assert_eq!(queue["filterPolicy"], json!({"currency": ["EUR"]}));
    assert_eq!(queue["maxReceiveCount"], json!(3));

    let added = orderflow(&[
        "subscriptions",
        "add",
        "--protocol",
        "http",
        "--endpoint",
        &webhook.url(),
        "--url",
        &app.url,
    ])
    .await;
    assert_success(&added, "subscriptions add http");
    let arn = stdout(&added).split('\t').next().unwrap().trim().to_owned();
    assert!(
        stdout(&added).contains("PendingConfirmation"),
        "{}",
        stdout(&added)
    );

    let pending = orderflow(&["subscriptions", "confirm-status", &arn, "--url", &app.url]).await;
    assert_eq!(stdout(&pending).trim(), "PendingConfirmation");
    assert_eq!(pending.status.code(), Some(1), "pending exits 1");
    wait_until(SHORT, "the confirmation request", async || {
        !webhook.confirmation_requests().is_empty()
    })
    .await;
    webhook.confirm_pending().await;
    let confirmed = orderflow(&["subscriptions", "confirm-status", &arn, "--url", &app.url]).await;
    assert_success(&confirmed, "confirm-status");
    assert_eq!(stdout(&confirmed).trim(), "Confirmed");

    let listed = orderflow(&["subscriptions", "list", "--url", &app.url]).await;
    assert_success(&listed, "subscriptions list");
    assert!(
        stdout(&listed).contains("cli-queue") && stdout(&listed).contains(&webhook.url()),
        "{}",
        stdout(&listed)
    );

    let rejected = orderflow(&[
        "subscriptions",
        "add",
        "--protocol",
        "queue",
        "--endpoint",
        "q2",
        "--filter-policy",
        r#"{"a":["1"],"b":["1"],"c":["1"],"d":["1"],"e":["1"],"f":["1"]}"#,
        "--url",
        &app.url,
    ])
    .await;
    assert!(!rejected.status.success());
    assert!(
        String::from_utf8_lossy(&rejected.stderr).contains("filterPolicy"),
        "{rejected:?}"
    );

    let removed = orderflow(&[
        "subscriptions",
        "remove",
        queue["id"].as_str().unwrap(),
        "--url",
        &app.url,
    ])
    .await;
    assert_success(&removed, "subscriptions remove");
    assert_eq!(app.subscriptions().await.len(), 1);
    let (status, _) = app.get_json("/queues/cli-queue").await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "the queue goes with its subscription"
    );
}

#[tokio::test]
async fn the_subscriptions_file_is_applied_at_start_and_again_after_a_change() {
    let webhook = TestSubscriber::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("subscriptions.toml");
    std::fs::write(
        &file,
        format!(
            r#"
[[subscriptions]]
name = "warehouse"
protocol = "queue"
endpoint = "warehouse"
filterPolicy = {{ currency = ["EUR"] }}

[[subscriptions]]
name = "audit"
protocol = "log"
endpoint = "audit.jsonl"

[[subscriptions]]
name = "billing"
protocol = "http"
endpoint = "{}"
deliveryPolicy = {{ maxAttempts = 5 }}
"#,
            webhook.url()
        ),
    )
    .unwrap();
    let path = file.to_str().unwrap().to_owned();
    let mut app =
        spawn_app_with(AppOptions::default().with_args(&["--subscriptions", &path])).await;
    let subs = app.subscriptions().await;
    assert_eq!(subs.len(), 3, "{subs:?}");
    assert!(
        subs.iter().all(|s| s["managedBy"] == json!("file")),
        "{subs:?}"
    );
    wait_until(SHORT, "billing to confirm", async || {
        webhook.confirmed_count() == 1
    })
    .await;
    subscribe_with(&app, json!({"protocol": "queue", "endpoint": "by-hand"})).await;

    let eur = app.submit(&order(&unique_id("file"))).await;
    app.wait_until_stored(&eur, SHORT).await;
    app.drain().await;
    assert_eq!(read_all(&app, "warehouse").await.len(), 1);
    assert_eq!(webhook.order_ids_delivered(), id_set([&eur]));

    // The same deployment, a new file: audit gone, the warehouse filter changed.
    std::fs::write(
        &file,
        format!(
            "subscriptions:\n  - name: warehouse\n    protocol: queue\n    endpoint: warehouse\n    filterPolicy: {{currency: [USD]}}\n  - name: billing\n    protocol: http\n    endpoint: \"{}\"\n    deliveryPolicy: {{maxAttempts: 5}}\n",
            webhook.url()
        ),
    )
    .unwrap();
    let yaml = dir.path().join("subscriptions.yaml");
    std::fs::rename(&file, &yaml).unwrap();
    app.options.extra_args = vec!["--subscriptions".into(), yaml.to_str().unwrap().into()];
    app.restart().await;
    let subs = app.subscriptions().await;
    let names: Vec<&str> = subs.iter().filter_map(|s| s["name"].as_str()).collect();
    assert_eq!(names.len(), 2, "{subs:?}");
    assert!(
        names.contains(&"warehouse") && names.contains(&"billing"),
        "{names:?}"
    );
    assert_eq!(
        subs.len(),
        3,
        "the subscription made by hand stays: {subs:?}"
    );
    let billing = subs.iter().find(|s| s["name"] == json!("billing")).unwrap();
    assert_eq!(
        billing["status"],
        json!("Confirmed"),
        "unchanged entries keep their confirmation"
    );
    let warehouse = subs
        .iter()
        .find(|s| s["name"] == json!("warehouse"))
        .unwrap();
    assert_eq!(
        warehouse["filterPolicy"],
        json!({"currency": ["USD"]}),
        "{warehouse}"
    );
}

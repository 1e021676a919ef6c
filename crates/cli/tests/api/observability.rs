//! Observability: one order's request id from the API to the subscriber, Prometheus metrics,
//! `orderflow status` and `orderflow trace` against a running server.

use std::collections::HashMap;

use reqwest::StatusCode;
use serde_json::Value;

use crate::fanout_support::{orderflow, stdout};
use crate::helpers::{
    AppOptions, SHORT, TestApp, order, spawn_app, spawn_app_with, unique_id, wait_for,
};
use crate::subscriber::TestSubscriber;

async fn post_with_request_id(app: &TestApp, body: &Value, request_id: &str) -> reqwest::Response {
    app.client
        .post(app.endpoint("/orders"))
        .header("content-type", "application/json")
        .header("x-request-id", request_id)
        .body(body.to_string())
        .send()
        .await
        .expect("POST /orders")
}

async fn trace_json(app: &TestApp, id: &str) -> Value {
    let (status, body) = app.get_json(&format!("/orders/{id}/trace")).await;
    assert_eq!(status, StatusCode::OK, "GET trace: {body}");
    body
}

#[tokio::test]
async fn one_request_id_follows_an_order_from_the_api_to_the_subscriber() {
    let app = spawn_app_with(AppOptions {
        log_filter: Some("warn,orderflow_core=debug,orderflow_http=debug".into()),
        ..AppOptions::default()
    })
    .await;
    let subscriber = TestSubscriber::start().await;
    app.subscribe(&subscriber).await;
    let id = unique_id("ord");
    let request_id = format!("req-{}", unique_id("e2e"));

    let response = post_with_request_id(&app, &order(&id), &request_id).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(
        response.headers()["x-request-id"].to_str().unwrap(),
        request_id
    );

    let stored = app.wait_until_stored(&id, SHORT).await;
    assert_eq!(stored["requestId"], request_id.as_str(), "{stored}");

    let notification = subscriber.notification_for(&id, SHORT).await;
    let attributes = &notification.envelope["MessageAttributes"];
    assert_eq!(
        attributes["requestId"],
        serde_json::json!({"Type": "String", "Value": request_id}),
        "{}",
        notification.envelope
    );
    assert_eq!(
        notification.message["order"]["requestId"],
        request_id.as_str()
    );

    // Every log line about the order, at the API, the store and the publish handler.
    let logs = app.logs();
    for what in ["order accepted", "order stored", "order published"] {
        assert!(
            logs.lines()
                .any(|l| l.contains(what) && l.contains(&request_id) && l.contains(&id)),
            "no {what:?} line with the request id:\n{logs}"
        );
    }
}

#[tokio::test]
async fn an_invalid_or_missing_request_id_is_replaced_by_a_new_one() {
    let app = spawn_app().await;
    let response = post_with_request_id(&app, &order(&unique_id("ord")), "no spaces allowed").await;
    let given = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(uuid::Uuid::parse_str(&given).is_ok(), "{given}");

    let id = unique_id("ord");
    let response = app.post_order(&order(&id)).await;
    let made = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(uuid::Uuid::parse_str(&made).is_ok(), "{made}");
    assert_ne!(given, made);
    let stored = app.wait_until_stored(&id, SHORT).await;
    assert_eq!(stored["requestId"], made.as_str());
}

/// A Prometheus text exposition (format 0.0.4): every line a `# HELP`/`# TYPE` comment or a
/// sample `name{label="value",...} number`; every sample's family has a declared type.
fn parse_prometheus(text: &str) -> HashMap<String, f64> {
    let mut types: HashMap<String, String> = HashMap::new();
    let mut samples = HashMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (kind, name, value) = (parts.next(), parts.next(), parts.next());
            if kind == Some("TYPE") {
                let value = value.expect("a TYPE line names a type");
                assert!(
                    ["counter", "gauge", "histogram", "summary", "untyped"].contains(&value),
                    "{line}"
                );
                types.insert(name.unwrap().to_owned(), value.to_owned());
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("not a number: {line}"));
        let name = series.split('{').next().unwrap();
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name: {line}"
        );
        if let Some(labels) = series.strip_prefix(name)
            && !labels.is_empty()
        {
            let inner = labels
                .strip_prefix('{')
                .and_then(|l| l.strip_suffix('}'))
                .unwrap_or_else(|| panic!("bad labels: {line}"));
            for pair in inner.split("\",").filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once("=\"").unwrap_or_else(|| panic!("{line}"));
                assert!(
                    k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                    "{line}"
                );
                assert!(!v.trim_end_matches('"').contains('"'), "{line}");
            }
        }
        let family = ["_bucket", "_sum", "_count", "_total"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| types.contains_key(*f)))
            .unwrap_or(name);
        assert!(
            types.contains_key(family) || types.contains_key(name),
            "sample without a TYPE: {line}"
        );
        assert!(name.starts_with("orderflow_"), "{line}");
        samples.insert(series.to_owned(), value);
    }
    samples
}

async fn scrape(app: &TestApp) -> HashMap<String, f64> {
    let response = app.get("/metrics").await;
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    parse_prometheus(&response.text().await.unwrap())
}

fn sum_matching(samples: &HashMap<String, f64>, prefix: &str, contains: &[&str]) -> f64 {
    samples
        .iter()
        .filter(|(k, _)| k.starts_with(prefix) && contains.iter().all(|c| k.contains(c)))
        .map(|(_, v)| v)
        .sum()
}

#[tokio::test]
async fn made_up_methods_and_paths_add_no_new_metric_labels() {
    let app = spawn_app().await;
    for i in 0..5 {
        let method = reqwest::Method::from_bytes(format!("MADEUP{i}").as_bytes()).unwrap();
        for path in ["/orders", &format!("/made-up-path-{i}")] {
            let response = app
                .client
                .request(method.clone(), app.endpoint(path))
                .send()
                .await
                .unwrap();
            assert!(response.status().is_client_error(), "{method} {path}");
        }
    }
    let samples = scrape(&app).await;
    let http: Vec<&String> = samples
        .keys()
        .filter(|k| k.starts_with("orderflow_http_request_duration_seconds_count"))
        .collect();
    assert!(
        http.iter()
            .all(|k| !k.contains("MADEUP") && !k.contains("made-up-path")),
        "{http:?}"
    );
    assert!(
        sum_matching(
            &samples,
            "orderflow_http_request_duration_seconds_count",
            &["method=\"other\"", "route=\"/orders\""]
        ) >= 5.0,
        "{http:?}"
    );
}

#[tokio::test]
async fn metrics_parse_as_prometheus_text_and_move_when_orders_flow() {
    let app = spawn_app().await;
    let subscriber = TestSubscriber::start().await;
    app.subscribe(&subscriber).await;
    let before = scrape(&app).await;
    for name in [
        "orderflow_queue_visible_messages{queue=\"orders\"}",
        "orderflow_queue_in_flight_messages{queue=\"orders\"}",
        "orderflow_queue_dead_letter_messages{queue=\"orders\"}",
        "orderflow_queue_oldest_message_age_seconds{queue=\"orders\"}",
        "orderflow_stream_pending_records",
        "orderflow_orders_stored_total",
        "orderflow_burst_absorbing",
    ] {
        assert!(before.contains_key(name), "{name} missing: {before:?}");
    }
    assert_eq!(before["orderflow_burst_absorbing"], 0.0, "no burst yet");

    for _ in 0..3 {
        let response = app.post_order(&order(&unique_id("ord"))).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
    }
    app.drain().await;
    let after = scrape(&app).await;

    let stored = |m: &HashMap<String, f64>| m["orderflow_orders_stored_total"];
    assert_eq!(stored(&after) - stored(&before), 3.0);
    // What each order cost the writer and the signer: three acknowledged orders took at
    // least one fsync'd commit, the pipeline's steps relaxed ones, and each message one
    // RSA signature.
    let count =
        |m: &HashMap<String, f64>, name: &str, labels: &[&str]| sum_matching(m, name, labels);
    for durability in ["durability=\"synced\"", "durability=\"relaxed\""] {
        assert!(
            count(&after, "orderflow_db_commits_total", &[durability])
                > count(&before, "orderflow_db_commits_total", &[durability]),
            "{durability}: {after:?}"
        );
        assert!(
            count(&after, "orderflow_db_jobs_total", &[durability])
                >= count(&after, "orderflow_db_commits_total", &[durability]),
            "{durability}: {after:?}"
        );
    }
    assert_eq!(
        count(&after, "orderflow_signatures_total", &[])
            - count(&before, "orderflow_signatures_total", &[]),
        3.0,
        "{after:?}"
    );
    assert_eq!(after["orderflow_orders_accepted_total"], 3.0);
    assert_eq!(
        sum_matching(
            &after,
            "orderflow_deliveries_total",
            &["outcome=\"delivered\""]
        ),
        3.0,
        "{after:?}"
    );
    assert_eq!(
        sum_matching(
            &after,
            "orderflow_http_request_duration_seconds_count",
            &["route=\"/orders\"", "status=\"202\"", "method=\"POST\""]
        ),
        3.0
    );
    for handler in ["store-orders", "publish-orders"] {
        let label = format!("handler=\"{handler}\"");
        assert!(
            sum_matching(
                &after,
                "orderflow_handler_batch_duration_seconds_count",
                &[&label]
            ) >= 1.0,
            "{handler}: {after:?}"
        );
        assert!(
            sum_matching(
                &after,
                "orderflow_handler_batch_duration_seconds_bucket",
                &[&label, "le=\"+Inf\""]
            ) >= 1.0
        );
    }
    assert_eq!(after["orderflow_stream_pending_records"], 0.0);
}

#[tokio::test]
async fn trace_shows_every_stage_of_a_delivered_order() {
    let app = spawn_app().await;
    let subscriber = TestSubscriber::start().await;
    app.subscribe(&subscriber).await;
    let id = unique_id("ord");
    let response = post_with_request_id(&app, &order(&id), "req-trace-1").await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    app.wait_until_stored(&id, SHORT).await;
    app.drain().await;

    let t = trace_json(&app, &id).await;
    assert_eq!(t["stage"], "delivered", "{t}");
    assert_eq!(t["requestId"], "req-trace-1");
    assert_eq!(t["received"]["receiveCount"], 1, "{t}");
    assert_eq!(t["published"]["state"], "published");
    assert_eq!(t["deliveries"][0]["state"], "delivered");
    assert_eq!(t["deliveries"][0]["attempts"], 1);

    let output = orderflow(&["trace", &id, "--url", &app.url]).await;
    let text = stdout(&output);
    assert!(
        output.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for expected in [
        "stage delivered",
        "request req-trace-1",
        "accepted ",
        "receives: 1",
        "stored ",
        "published ",
        "delivered ",
        "attempts: 1",
    ] {
        assert!(
            text.contains(expected),
            "{expected:?} missing from:\n{text}"
        );
    }
    // Every stage has a timestamp.
    for stage in ["accepted", "received", "stored", "published", "delivered"] {
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with(stage))
            .unwrap_or_else(|| panic!("no {stage} line:\n{text}"));
        assert!(line.contains('T') && line.contains('Z'), "{line}");
    }

    let unknown = orderflow(&["trace", "never-posted", "--url", &app.url]).await;
    assert_eq!(unknown.status.code(), Some(2));
}

#[tokio::test]
async fn trace_and_status_show_the_failing_stage_when_the_subscriber_is_down() {
    let app = spawn_app_with(AppOptions::fast_retries()).await;
    let subscriber = TestSubscriber::start().await;
    app.subscribe(&subscriber).await;
    subscriber.go_down();
    let id = unique_id("ord");
    assert_eq!(
        app.post_order(&order(&id)).await.status(),
        StatusCode::ACCEPTED
    );

    wait_for(SHORT, "a failed delivery attempt", async || {
        let t = trace_json(&app, &id).await;
        if t["deliveries"][0]["lastError"].is_string()
            && t["deliveries"][0]["attempts"].as_u64() >= Some(2)
        {
            Ok(())
        } else {
            Err(t.to_string())
        }
    })
    .await;

    let output = orderflow(&["trace", &id, "--url", &app.url]).await;
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    let delivered = text
        .lines()
        .find(|l| l.trim_start().starts_with("delivered"))
        .unwrap_or_else(|| panic!("no delivery line:\n{text}"));
    assert!(delivered.contains("pending"), "{delivered}");
    assert!(delivered.contains("last error"), "{delivered}");
    assert!(delivered.contains("500"), "{delivered}");
    assert!(text.contains("stored "), "{text}");
    assert!(text.contains("published "), "{text}");

    let status = orderflow(&["status", "--url", &app.url]).await;
    let summary = stdout(&status);
    assert_eq!(status.status.code(), Some(1), "{summary}");
    assert!(summary.contains("orders         1 stored"), "{summary}");
    assert!(summary.contains("(1 failing)"), "{summary}");
    assert!(summary.contains("FAILING"), "{summary}");
    assert!(summary.contains(&subscriber.url()), "{summary}");

    subscriber.come_back();
    app.drain().await;
    let healthy = orderflow(&["status", "--url", &app.url]).await;
    assert!(
        stdout(&healthy).contains("1 delivered, 0 pending, 0 failed"),
        "{}",
        stdout(&healthy)
    );
}

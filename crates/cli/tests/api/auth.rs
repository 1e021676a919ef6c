//! Access control: with an API key, writes and the subscription and dead-letter endpoints
//! need it; secrets stay out of the logs; files are private to their owner.

use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio::io::AsyncWriteExt;

use crate::helpers::{
    AppOptions, SHORT, TestApp, hermetic, http_client, json_of, order, spawn_app_with, unique_id,
};
use crate::subscriber::TestSubscriber;

const KEY: &str = "test-key-0123456789abcdef";

async fn protected_app() -> TestApp {
    spawn_app_with(AppOptions {
        api_key: Some(KEY.to_owned()),
        ..AppOptions::default()
    })
    .await
}

/// Every endpoint that must refuse a request without the key.
fn protected_requests() -> Vec<(Method, &'static str, Option<String>)> {
    vec![
        (
            Method::POST,
            "/orders",
            Some(order(&unique_id("auth")).to_string()),
        ),
        (Method::POST, "/queue/messages", Some("{}".to_owned())),
        (
            Method::POST,
            "/subscriptions",
            Some(json!({"protocol": "http", "endpoint": "http://127.0.0.1:9/x"}).to_string()),
        ),
        (Method::GET, "/subscriptions", None),
        (Method::GET, "/subscriptions/some-id", None),
        (Method::DELETE, "/subscriptions/some-id", None),
        (Method::GET, "/queue/dlq", None),
        (Method::DELETE, "/queue/dlq", None),
        (Method::POST, "/queue/dlq/redrive", None),
        (Method::GET, "/stream/failures", None),
    ]
}

async fn send(
    client: &reqwest::Client,
    app: &TestApp,
    method: &Method,
    path: &str,
    body: &Option<String>,
    headers: &[(&str, &str)],
) -> (StatusCode, serde_json::Value, reqwest::header::HeaderMap) {
    let mut request = client.request(method.clone(), app.endpoint(path));
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.clone());
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("request");
    let headers = response.headers().clone();
    let (status, body) = json_of(response).await;
    (status, body, headers)
}

#[tokio::test]
async fn writes_and_subscription_and_dead_letter_endpoints_answer_401_without_the_key() {
    let app = protected_app().await;
    let anonymous = http_client();
    let wrong = "test-key-0123456789abcdeX";

    for (method, path, body) in protected_requests() {
        for headers in [
            vec![],
            vec![("x-api-key", wrong)],
            vec![("authorization", "Bearer test-key-0123456789abcdeX")],
            vec![("authorization", "Basic dGVzdDp0ZXN0")],
        ] {
            let (status, answer, response_headers) =
                send(&anonymous, &app, &method, path, &body, &headers).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} {headers:?}: {answer}"
            );
            assert!(
                answer["error"].as_str().unwrap().contains("API key"),
                "{answer}"
            );
            assert_eq!(answer["details"], json!([]), "{answer}");
            assert!(response_headers.contains_key("www-authenticate"));
        }
    }
    assert_eq!(app.stats().await.0["queue"]["visible"], json!(0));
    assert_eq!(
        app.stats().await.0["subscriptions"],
        json!(0),
        "nothing was written"
    );
}

#[tokio::test]
async fn the_key_is_accepted_as_x_api_key_or_as_a_bearer_token() {
    let app = protected_app().await;
    let anonymous = http_client();
    let bearer = format!("Bearer {KEY}");
    for headers in [
        vec![("x-api-key", KEY)],
        vec![("authorization", bearer.as_str())],
    ] {
        for (method, path, body) in protected_requests() {
            let (status, answer, _) = send(&anonymous, &app, &method, path, &body, &headers).await;
            assert_ne!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} {headers:?}: {answer}"
            );
            assert!(
                !status.is_server_error(),
                "{method} {path} {headers:?}: {status} {answer}"
            );
        }
    }
}

#[tokio::test]
async fn order_reads_health_and_the_subscriber_links_stay_open_with_a_key() {
    let app = protected_app().await;
    let id = app.submit(&order(&unique_id("open"))).await;
    app.wait_until_stored(&id, SHORT).await;
    let anonymous = http_client();
    for path in [
        format!("/orders/{id}"),
        "/orders".to_owned(),
        "/healthz".to_owned(),
        "/stats".to_owned(),
        "/schema/order.json".to_owned(),
    ] {
        let response = anonymous.get(app.endpoint(&path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
    }
    // A subscriber confirms without our key: the link's token is its credential.
    let subscriber = TestSubscriber::start().await;
    app.subscribe(&subscriber).await;
}

#[tokio::test]
async fn secrets_never_appear_in_the_logs_even_at_trace_level() {
    let mut app = spawn_app_with(AppOptions {
        api_key: Some(KEY.to_owned()),
        log_filter: Some("trace".to_owned()),
        ..AppOptions::default()
    })
    .await;
    let wrong_key = "wrong-key-that-must-not-be-logged";
    let anonymous = http_client();
    let response = anonymous
        .post(app.endpoint("/orders"))
        .header("content-type", "application/json")
        .header("x-api-key", wrong_key)
        .body(order(&unique_id("log")).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    app.submit(&order(&unique_id("log"))).await;
    let subscriber = TestSubscriber::start().await;
    app.subscribe(&subscriber).await;
    let token = subscriber
        .confirmation_requests()
        .first()
        .and_then(|r| r.json.as_ref()?["Token"].as_str().map(str::to_owned))
        .expect("the confirmation carried a token");
    app.stop().await;

    let logs = app.logs();
    assert!(logs.len() > 1000, "trace logging produced output:\n{logs}");
    for secret in [KEY, wrong_key, token.as_str()] {
        assert!(
            !logs.contains(secret),
            "a secret ({}...) appears in the logs",
            &secret[..6]
        );
    }
}

#[tokio::test]
async fn the_data_directory_database_and_key_file_are_private_to_their_owner() {
    let root = tempfile::tempdir().unwrap();
    let key_file = root.path().join("api-key");
    let mut app = spawn_app_with(AppOptions {
        extra_args: vec!["--api-key-file".to_owned(), key_file.display().to_string()],
        ..AppOptions::default()
    })
    .await;
    let key = std::fs::read_to_string(&key_file).expect("the key file was generated");
    let key = key.trim();
    assert_eq!(key.len(), 64, "{key}");
    let (status, _) = json_of(app.post_order(&order(&unique_id("private"))).await).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the generated key is required"
    );
    let response = http_client()
        .post(app.endpoint("/orders"))
        .header("content-type", "application/json")
        .header("x-api-key", key)
        .body(order(&unique_id("private")).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);

    let mode = |p: &std::path::Path| {
        std::fs::metadata(p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(&key_file), 0o600, "key file");
    let data = app.data_dir();
    assert_eq!(mode(&data) & 0o077, 0, "data directory {:o}", mode(&data));
    for file in [
        "orderflow.db",
        "orderflow.db-wal",
        "orderflow.db-shm",
        "orderflow.lock",
    ] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file}");
    }

    // The same file serves the server across restarts: the key is not regenerated.
    app.restart().await;
    assert_eq!(std::fs::read_to_string(&key_file).unwrap().trim(), key);
}

#[tokio::test]
async fn the_cli_sends_the_api_key_from_its_flag_or_environment() {
    let app = protected_app().await;
    let submit = async |extra: &[&str], env_key: Option<&str>| {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_orderflow"));
        cmd.arg("submit")
            .arg("--url")
            .arg(&app.url)
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        hermetic(&mut cmd);
        if let Some(key) = env_key {
            cmd.env("ORDERFLOW_API_KEY", key);
        }
        let mut child = cmd.spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(order(&unique_id("cli-auth")).to_string().as_bytes())
            .await
            .unwrap();
        drop(stdin);
        tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
            .await
            .expect("the CLI finished")
            .unwrap()
    };

    let refused = submit(&[], None).await;
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("401"), "{stderr}");

    assert!(submit(&["--api-key", KEY], None).await.status.success());
    assert!(submit(&[], Some(KEY)).await.status.success());
}

#[tokio::test]
async fn a_key_too_short_to_be_safe_is_refused_at_start() {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_orderflow"));
    let dir = tempfile::tempdir().unwrap();
    cmd.args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    hermetic(&mut cmd);
    cmd.env("ORDERFLOW_API_KEY", "short");
    let output = tokio::time::timeout(Duration::from_secs(30), cmd.output())
        .await
        .expect("serve exits")
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("at least 16"), "{stderr}");
}

#[tokio::test]
async fn webhook_endpoints_must_be_plain_http_or_https_urls() {
    let app = protected_app().await;
    for endpoint in [
        "not a url",
        "ftp://127.0.0.1/x",
        "file:///etc/passwd",
        "http://user:pass@127.0.0.1/x",
        "http://",
        "javascript:alert(1)",
    ] {
        let (status, body) = app.create_subscription(endpoint).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{endpoint}: {body}");
        assert_eq!(body["details"][0]["field"], json!("endpoint"), "{body}");
    }
}

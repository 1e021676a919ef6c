//! Access control: with an API key, writes need it and every read of data needs it or the
//! read-only key; secrets stay out of the logs; files are private to their owner.

use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio::io::AsyncWriteExt;

use crate::fanout_support::orderflow_with_env;
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
        // Reads of customer data, subscriber endpoints and ARNs.
        (Method::GET, "/orders", None),
        (Method::GET, "/orders/some-id", None),
        (Method::GET, "/orders/some-id/trace", None),
        (Method::GET, "/stats", None),
        (Method::GET, "/queues/some-queue", None),
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
async fn writes_and_every_read_of_data_answer_401_without_the_key() {
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
async fn health_the_portal_the_documents_and_the_subscriber_links_stay_open_with_a_key() {
    let app = protected_app().await;
    let id = app.submit(&order(&unique_id("open"))).await;
    app.wait_until_stored(&id, SHORT).await;
    let anonymous = http_client();
    for path in [
        "/healthz",
        "/schema/order.json",
        "/openapi.json",
        "/",
        "/orders.html",
        "/pipeline.html",
        "/portal-config.json",
        "/assets/api.js",
    ] {
        let response = anonymous.get(app.endpoint(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
    }
    for path in [format!("/orders/{id}"), format!("/orders/{id}/trace")] {
        let response = anonymous.get(app.endpoint(&path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "GET {path}");
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
    let output = serve_in_a_new_directory(&[("ORDERFLOW_API_KEY", "short")]).await;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("at least 16"), "{stderr}");
}

/// Starts `orderflow serve` on a fresh data directory with `env`, for a start that fails.
async fn serve_in_a_new_directory(env: &[(&str, &str)]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    orderflow_with_env(
        &["serve", "--addr", "127.0.0.1:0", "--data-dir", data_dir],
        env,
    )
    .await
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

#[tokio::test]
async fn a_reused_data_directory_that_others_could_read_is_made_owner_only_again() {
    let mut app = spawn_app_with(AppOptions::default()).await;
    let id = app.submit(&order(&unique_id("reuse"))).await;
    app.wait_until_stored(&id, SHORT).await;
    app.stop().await;
    let data = app.data_dir();
    let set = |p: &std::path::Path, mode: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    set(&data, 0o755);
    set(&data.join("orderflow.db"), 0o644);
    std::fs::write(data.join("notes.txt"), "left here by hand").unwrap();
    set(&data.join("notes.txt"), 0o666);

    app.restart().await;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700, "data directory");
    for file in ["orderflow.db", "notes.txt"] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file}");
    }
    app.wait_until_stored(&id, SHORT).await;
}

const READ_KEY: &str = "read-key-0123456789abcdef";

async fn app_with_read_key(extra: &[&str]) -> TestApp {
    let mut args = vec!["--read-api-key", READ_KEY];
    args.extend_from_slice(extra);
    spawn_app_with(
        AppOptions {
            api_key: Some(KEY.to_owned()),
            ..AppOptions::default()
        }
        .with_args(&args),
    )
    .await
}

#[tokio::test]
async fn the_read_only_key_reads_everything_and_changes_nothing() {
    let app = app_with_read_key(&[]).await;
    let id = app.submit(&order(&unique_id("read"))).await;
    app.wait_until_stored(&id, SHORT).await;
    let reader = crate::helpers::http_client_with_key(READ_KEY);
    for path in [
        format!("/orders/{id}"),
        format!("/orders/{id}/trace"),
        "/orders".to_owned(),
        "/stats".to_owned(),
        "/metrics".to_owned(),
        "/subscriptions".to_owned(),
        "/queue/dlq".to_owned(),
    ] {
        let response = reader.get(app.endpoint(&path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
    }
    for (method, path, body) in protected_requests()
        .into_iter()
        .filter(|(m, _, _)| *m != Method::GET)
    {
        let (status, answer, _) = send(&reader, &app, &method, path, &body, &[]).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains("read-only"),
            "{answer}"
        );
    }
    let (_, stats) = app.get_json("/stats").await;
    assert_eq!(
        stats["subscriptions"],
        json!(0),
        "nothing was written: {stats}"
    );
    assert_eq!(stats["orders"]["stored"], json!(1), "{stats}");
}

#[tokio::test]
async fn metrics_open_without_a_key_only_when_the_operator_says_so() {
    let closed = app_with_read_key(&[]).await;
    let anonymous = http_client();
    let response = anonymous
        .get(closed.endpoint("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    let open = app_with_read_key(&["--metrics-open"]).await;
    let subscriber = TestSubscriber::start().await;
    let arn = open.subscribe(&subscriber).await;
    let response = anonymous
        .get(open.endpoint("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.unwrap();
    assert!(text.contains("orderflow_subscriptions"), "{text}");
    let id = arn.rsplit(':').next().unwrap();
    assert!(
        !text.contains(id),
        "an open /metrics names no subscription id or ARN:\n{text}"
    );
    for path in ["/orders", "/stats", "/subscriptions"] {
        let response = anonymous.get(open.endpoint(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "GET {path}");
    }
}

#[tokio::test]
async fn a_read_only_key_without_the_api_key_or_equal_to_it_is_refused_at_start() {
    for (env, expected) in [
        (
            vec![("ORDERFLOW_READ_API_KEY", READ_KEY)],
            "needs --api-key",
        ),
        (
            vec![("ORDERFLOW_API_KEY", KEY), ("ORDERFLOW_READ_API_KEY", KEY)],
            "must differ",
        ),
    ] {
        let output = serve_in_a_new_directory(&env).await;
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{stderr}");
    }
}

#[tokio::test]
async fn a_backup_needs_the_api_key_not_the_read_only_key() {
    // A backup is the whole database, every customer's data: the read-only key given to
    // dashboards must not fetch it, though backup writes nothing.
    let app = app_with_read_key(&[]).await;
    let backup = |client: reqwest::Client| {
        let url = app.endpoint("/backup");
        async move {
            client
                .post(url)
                .header("content-type", "application/json")
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(backup(http_client()).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        backup(crate::helpers::http_client_with_key(READ_KEY)).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        backup(crate::helpers::http_client_with_key(KEY)).await,
        StatusCode::OK
    );
}

//! Starts the real `orderflow serve` on a fresh data directory and talks to it over HTTP.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::Semaphore;

use crate::subscriber::{ConfirmAttempt, TestSubscriber};

/// How often a `wait_*` helper looks again: short, so tests wait for events, not for timers.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Upper bound for anything that should happen "at once" (debug build, shared 2-core machine).
pub const SHORT: Duration = Duration::from_secs(15);
/// Upper bound for bulk work (1,000 orders through the whole pipeline in a debug build).
pub const LONG: Duration = Duration::from_secs(90);

const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// How many requests a bulk helper keeps in flight at once.
pub const CONCURRENCY: usize = 50;

/// Flags passed to `orderflow serve`; `None` leaves the binary's default.
#[derive(Debug, Clone, Default)]
pub struct AppOptions {
    pub visibility_timeout_ms: Option<u64>,
    pub max_receive_count: Option<u32>,
    pub delivery_min_backoff_ms: Option<u64>,
    pub delivery_max_backoff_ms: Option<u64>,
    /// `ORDERFLOW_API_KEY` for the server; the app's own `client` then sends it too.
    pub api_key: Option<String>,
    /// `RUST_LOG` for the server (default: `ORDERFLOW_TEST_LOG` or `warn`).
    pub log_filter: Option<String>,
    /// Any other `serve` flags, as written on the command line.
    pub extra_args: Vec<String>,
    /// `--addr` (default `127.0.0.1:0`). On `0.0.0.0:0` the tests still talk to 127.0.0.1.
    pub addr: Option<String>,
    /// Environment variables for the server, set after the hermetic clean-up (which
    /// removes every `*_proxy` variable), e.g. a proxy the server must ignore.
    pub env: Vec<(String, String)>,
}

impl AppOptions {
    /// Short delivery backoff, for tests where a subscriber fails on purpose.
    pub fn fast_retries() -> Self {
        AppOptions {
            delivery_min_backoff_ms: Some(20),
            delivery_max_backoff_ms: Some(200),
            ..AppOptions::default()
        }
    }

    fn args(&self) -> Vec<String> {
        let mut args = Vec::new();
        let mut flag = |name: &str, value: Option<String>| {
            if let Some(value) = value {
                args.push(name.to_owned());
                args.push(value);
            }
        };
        flag(
            "--visibility-timeout-ms",
            self.visibility_timeout_ms.map(|v| v.to_string()),
        );
        flag(
            "--max-receive-count",
            self.max_receive_count.map(|v| v.to_string()),
        );
        flag(
            "--delivery-min-backoff-ms",
            self.delivery_min_backoff_ms.map(|v| v.to_string()),
        );
        flag(
            "--delivery-max-backoff-ms",
            self.delivery_max_backoff_ms.map(|v| v.to_string()),
        );
        args.extend(self.extra_args.iter().cloned());
        args
    }

    /// Extra `serve` flags, e.g. `["--max-queue-depth", "5"]`.
    pub fn with_args(mut self, args: &[&str]) -> Self {
        self.extra_args.extend(args.iter().map(|a| (*a).to_owned()));
        self
    }
}

/// A running `orderflow serve`, its data directory and an HTTP client for it.
#[derive(Debug)]
pub struct TestApp {
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub url: String,
    pub client: reqwest::Client,
    pub options: AppOptions,
    /// Holds `data/` (the server's data directory) and one log file per start.
    root: TempDir,
    child: Option<Child>,
    starts: u32,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(AppOptions::default()).await
}

pub async fn spawn_app_with(options: AppOptions) -> TestApp {
    let root = tempfile::Builder::new()
        .prefix("orderflow-api-test-")
        .tempdir()
        .expect("create a temporary directory");
    // The server creates `data/` itself (owner-only), as it would on a first start.
    let mut app = TestApp {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        url: String::new(),
        client: match &options.api_key {
            Some(key) => http_client_with_key(key),
            None => http_client(),
        },
        options,
        root,
        child: None,
        starts: 0,
    };
    app.start().await;
    app
}

/// A client that never goes through a proxy: every test address is on 127.0.0.1.
pub fn http_client() -> reqwest::Client {
    // reqwest is built with `rustls-no-provider` (for the binary); a client needs one anyway.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .expect("build an HTTP client")
}

/// Like [`http_client`], sending `x-api-key: key` with every request.
pub fn http_client_with_key(key: &str) -> reqwest::Client {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        "x-api-key",
        reqwest::header::HeaderValue::from_str(key).expect("printable key"),
    );
    reqwest::Client::builder()
        .no_proxy()
        .timeout(REQUEST_TIMEOUT)
        .default_headers(headers)
        .build()
        .expect("build an HTTP client")
}

/// Removes everything from the environment that could send the child's traffic elsewhere
/// or change its configuration behind the test's back.
pub fn hermetic(cmd: &mut Command) {
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        let lower = key.to_ascii_lowercase();
        if key.starts_with("ORDERFLOW_") || lower.ends_with("_proxy") {
            cmd.env_remove(key);
        }
    }
    cmd.env(
        "RUST_LOG",
        std::env::var("ORDERFLOW_TEST_LOG").unwrap_or_else(|_| "warn".to_owned()),
    );
}

impl TestApp {
    pub fn data_dir(&self) -> PathBuf {
        self.root.path().join("data")
    }

    fn log_path(&self, start: u32) -> PathBuf {
        self.root.path().join(format!("server-{start}.log"))
    }

    /// Everything the server wrote to stderr, over all its starts.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for start in 1..=self.starts {
            let text = std::fs::read_to_string(self.log_path(start)).unwrap_or_default();
            out.push_str(&format!("--- server start {start} ---\n{text}"));
        }
        out
    }

    async fn start(&mut self) {
        assert!(self.child.is_none(), "the server is already running");
        self.starts += 1;
        let log = std::fs::File::create(self.log_path(self.starts)).expect("create the log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_orderflow"));
        cmd.arg("serve")
            .arg("--addr")
            .arg(self.options.addr.as_deref().unwrap_or("127.0.0.1:0"))
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(self.options.args())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        hermetic(&mut cmd);
        if let Some(key) = &self.options.api_key {
            cmd.env("ORDERFLOW_API_KEY", key);
        }
        if let Some(filter) = &self.options.log_filter {
            cmd.env("RUST_LOG", filter);
        }
        cmd.envs(self.options.env.iter().map(|(k, v)| (k, v)));
        let mut child = cmd.spawn().expect("start orderflow serve");
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut lines = BufReader::new(stdout).lines();
        let mut seen = Vec::new();
        let found = tokio::time::timeout(STARTUP_TIMEOUT, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(addr) = parse_listening_line(&line) {
                    return Some(addr);
                }
                seen.push(line);
            }
            None
        })
        .await;
        let (scheme, addr) = match found {
            Ok(Some(found)) => found,
            Ok(None) => {
                let status = child.wait().await;
                panic!(
                    "orderflow serve exited ({status:?}) without printing `listening on`; \
                     stdout: {seen:?}\n{}",
                    self.logs()
                );
            }
            Err(_) => {
                let _ = child.kill().await;
                panic!(
                    "orderflow serve printed no `listening on` line within {STARTUP_TIMEOUT:?}; \
                     stdout: {seen:?}\n{}",
                    self.logs()
                );
            }
        };
        // Keep reading stdout so a chatty server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        self.addr = addr;
        self.url = format!("{scheme}://{addr}");
        self.child = Some(child);
    }

    /// SIGTERM, then waits for the process to exit; returns its exit status.
    pub async fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("the server is running");
        let pid = child.id().expect("a running child has a pid");
        let sent = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM {pid} failed");
        match tokio::time::timeout(STOP_TIMEOUT, child.wait()).await {
            Ok(status) => status.expect("wait for orderflow serve"),
            Err(_) => {
                let _ = child.kill().await;
                panic!(
                    "orderflow serve did not exit within {STOP_TIMEOUT:?} of SIGTERM\n{}",
                    self.logs()
                );
            }
        }
    }

    /// The running server's process id.
    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .and_then(Child::id)
            .expect("the server is running")
    }

    /// Sends SIGTERM and returns at once; see [`TestApp::wait_for_exit`].
    pub fn terminate(&self) {
        let pid = self.pid();
        let sent = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM {pid} failed");
    }

    /// Waits up to `timeout` for the server to exit; `None` if it is still running then.
    pub async fn wait_for_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut().expect("the server is running");
        match tokio::time::timeout(timeout, child.wait()).await {
            Ok(status) => {
                self.child = None;
                Some(status.expect("wait for orderflow serve"))
            }
            Err(_) => None,
        }
    }

    /// SIGKILL: the process gets no chance to flush or clean up.
    pub async fn kill(&mut self) {
        let mut child = self.child.take().expect("the server is running");
        child.kill().await.expect("SIGKILL orderflow serve");
    }

    /// Starts the binary again on the same data directory (on a new port).
    pub async fn restart(&mut self) {
        if self.child.is_some() {
            let status = self.stop().await;
            assert!(
                status.success(),
                "SIGTERM exit status {status}\n{}",
                self.logs()
            );
        }
        self.start().await;
    }

    // ---- raw HTTP ----

    pub fn endpoint(&self, path: &str) -> String {
        format!("{}{}", self.url, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.endpoint(path))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// GET that expects a JSON body, returning the status with it.
    pub async fn get_json(&self, path: &str) -> (StatusCode, Value) {
        json_of(self.get(path).await).await
    }

    pub async fn post_raw(
        &self,
        path: &str,
        content_type: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        let mut request = self.client.post(self.endpoint(path)).body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        request
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.post_raw(path, Some("application/json"), body.to_string())
            .await
    }

    // ---- orders ----

    pub async fn post_order(&self, order: &Value) -> reqwest::Response {
        self.post_json("/orders", order).await
    }

    /// Posts an order that must be accepted; returns its `orderID`.
    pub async fn submit(&self, order: &Value) -> String {
        let (status, body) = json_of(self.post_order(order).await).await;
        assert_eq!(status, StatusCode::ACCEPTED, "POST /orders: {body}");
        body["orderID"]
            .as_str()
            .unwrap_or_else(|| panic!("202 without orderID: {body}"))
            .to_owned()
    }

    /// Posts every order with at most `CONCURRENCY` in flight; returns the 202 ids in input order.
    pub async fn submit_all(&self, orders: Vec<Value>) -> Vec<String> {
        let limit = Arc::new(Semaphore::new(CONCURRENCY));
        let mut tasks = Vec::with_capacity(orders.len());
        for order in orders {
            let limit = Arc::clone(&limit);
            let client = self.client.clone();
            let url = self.endpoint("/orders");
            tasks.push(tokio::spawn(async move {
                let _permit = limit.acquire_owned().await.expect("semaphore is open");
                let response = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(order.to_string())
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("POST /orders: {e}"));
                json_of(response).await
            }));
        }
        let mut ids = Vec::with_capacity(tasks.len());
        for task in tasks {
            let (status, body) = task.await.expect("POST task panicked");
            assert_eq!(status, StatusCode::ACCEPTED, "POST /orders: {body}");
            ids.push(body["orderID"].as_str().expect("orderID").to_owned());
        }
        ids
    }

    pub async fn get_order(&self, id: &str) -> reqwest::Response {
        self.get(&format!("/orders/{id}")).await
    }

    /// The stored order, or `None` while the API answers 404.
    pub async fn stored_order(&self, id: &str) -> Option<Value> {
        let (status, body) = json_of(self.get_order(id).await).await;
        match status {
            StatusCode::OK => Some(body),
            StatusCode::NOT_FOUND => None,
            other => panic!("GET /orders/{id}: {other} {body}"),
        }
    }

    pub async fn wait_until_stored(&self, id: &str, timeout: Duration) -> Value {
        wait_for(timeout, &format!("order {id} to be stored"), async || {
            self.stored_order(id)
                .await
                .ok_or_else(|| "GET answered 404".to_owned())
        })
        .await
    }

    /// Waits until `orders.stored` reaches `count`.
    pub async fn wait_until_stored_count(&self, count: u64, timeout: Duration) {
        wait_for(timeout, &format!("{count} stored orders"), async || {
            let stats = self.stats().await;
            if stats.stored() >= count {
                Ok(())
            } else {
                Err(format!("stats: {}", stats.0))
            }
        })
        .await;
        assert_eq!(
            self.stats().await.stored(),
            count,
            "more orders stored than posted"
        );
    }

    /// GETs every id (bounded concurrency) and asserts each one is `STORED`.
    pub async fn assert_all_stored(&self, ids: &[String]) {
        let limit = Arc::new(Semaphore::new(CONCURRENCY));
        let mut tasks = Vec::with_capacity(ids.len());
        for id in ids {
            let limit = Arc::clone(&limit);
            let client = self.client.clone();
            let url = self.endpoint(&format!("/orders/{id}"));
            let id = id.clone();
            tasks.push(tokio::spawn(async move {
                let _permit = limit.acquire_owned().await.expect("semaphore is open");
                let response = client.get(&url).send().await.expect("GET /orders/{id}");
                let (status, body) = json_of(response).await;
                assert_eq!(status, StatusCode::OK, "GET /orders/{id}: {body}");
                assert_eq!(body["orderID"], json!(id), "{body}");
                assert_eq!(body["status"], json!("STORED"), "{body}");
            }));
        }
        for task in tasks {
            task.await.expect("GET task panicked");
        }
    }

    pub async fn list_orders(&self, limit: Option<u32>, cursor: Option<&str>) -> Value {
        let mut query = Vec::new();
        if let Some(limit) = limit {
            query.push(format!("limit={limit}"));
        }
        if let Some(cursor) = cursor {
            query.push(format!("cursor={}", encode_path_segment(cursor)));
        }
        let path = if query.is_empty() {
            "/orders".to_owned()
        } else {
            format!("/orders?{}", query.join("&"))
        };
        let (status, body) = self.get_json(&path).await;
        assert_eq!(status, StatusCode::OK, "GET /orders: {body}");
        body
    }

    // ---- subscriptions ----

    /// `POST /subscriptions` for an HTTP endpoint; returns the status and body.
    pub async fn create_subscription(&self, endpoint: &str) -> (StatusCode, Value) {
        json_of(
            self.post_json(
                "/subscriptions",
                &json!({"protocol": "http", "endpoint": endpoint}),
            )
            .await,
        )
        .await
    }

    /// Subscribes `subscriber` and waits until it has confirmed; returns the subscription ARN.
    pub async fn subscribe(&self, subscriber: &TestSubscriber) -> String {
        let confirmed_before = subscriber.confirmed_count();
        let (status, body) = self.create_subscription(&subscriber.url()).await;
        assert_eq!(status, StatusCode::CREATED, "POST /subscriptions: {body}");
        let arn = body["subscriptionArn"]
            .as_str()
            .unwrap_or_else(|| panic!("201 without subscriptionArn: {body}"))
            .to_owned();
        wait_for(
            SHORT,
            "the subscriber to confirm its subscription",
            async || {
                if subscriber.confirmed_count() > confirmed_before {
                    Ok(())
                } else {
                    Err(format!(
                        "{} confirmation requests received, confirmations: [{}]",
                        subscriber.confirmation_requests().len(),
                        subscriber
                            .confirmations()
                            .iter()
                            .map(ConfirmAttempt::describe)
                            .collect::<Vec<_>>()
                            .join("; ")
                    ))
                }
            },
        )
        .await;
        arn
    }

    pub async fn subscriptions(&self) -> Vec<Value> {
        let (status, body) = self.get_json("/subscriptions").await;
        assert_eq!(status, StatusCode::OK, "GET /subscriptions: {body}");
        body["subscriptions"]
            .as_array()
            .unwrap_or_else(|| panic!("no subscriptions array: {body}"))
            .clone()
    }

    // ---- queue and stats ----

    /// Puts a raw body straight onto the orders queue; returns its message id.
    pub async fn put_on_queue(&self, body: &str) -> String {
        let (status, answer) = json_of(
            self.post_raw("/queue/messages", Some("application/json"), body.to_owned())
                .await,
        )
        .await;
        assert_eq!(
            status,
            StatusCode::CREATED,
            "POST /queue/messages: {answer}"
        );
        answer["messageId"]
            .as_str()
            .unwrap_or_else(|| panic!("201 without messageId: {answer}"))
            .to_owned()
    }

    pub async fn dead_letters(&self) -> Vec<Value> {
        let (status, body) = self.get_json("/queue/dlq").await;
        assert_eq!(status, StatusCode::OK, "GET /queue/dlq: {body}");
        body["messages"]
            .as_array()
            .unwrap_or_else(|| panic!("no messages array: {body}"))
            .clone()
    }

    pub async fn stats(&self) -> Stats {
        let (status, body) = self.get_json("/stats").await;
        assert_eq!(status, StatusCode::OK, "GET /stats: {body}");
        Stats(body)
    }

    /// Waits until the queue, the stream and the delivery log have nothing left to do:
    /// after it, whatever was going to be stored and delivered has been.
    pub async fn drain(&self) -> Stats {
        wait_for(SHORT, "the pipeline to drain", async || {
            let stats = self.stats().await;
            if stats.is_idle() {
                Ok(stats)
            } else {
                Err(format!("stats: {}", stats.0))
            }
        })
        .await
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        if std::thread::panicking() {
            eprintln!(
                "server at {} (data {:?})\n{}",
                self.url,
                self.data_dir(),
                self.logs()
            );
        }
    }
}

/// `GET /stats`, with accessors that fail loudly when a counter is missing.
#[derive(Debug, Clone)]
pub struct Stats(pub Value);

impl Stats {
    pub fn number(&self, pointer: &str) -> u64 {
        self.0
            .pointer(pointer)
            .and_then(Value::as_u64)
            .unwrap_or_else(|| panic!("stats has no count at {pointer}: {}", self.0))
    }
    pub fn stored(&self) -> u64 {
        self.number("/orders/stored")
    }
    pub fn visible(&self) -> u64 {
        self.number("/queue/visible")
    }
    pub fn in_flight(&self) -> u64 {
        self.number("/queue/inFlight")
    }
    pub fn dead_letter(&self) -> u64 {
        self.number("/queue/deadLetter")
    }
    pub fn stream_pending(&self) -> u64 {
        self.number("/stream/pending")
    }
    pub fn deliveries_pending(&self) -> u64 {
        self.number("/deliveries/pending")
    }
    pub fn delivered(&self) -> u64 {
        self.number("/deliveries/delivered")
    }
    pub fn is_idle(&self) -> bool {
        self.visible() == 0
            && self.in_flight() == 0
            && self.stream_pending() == 0
            && self.deliveries_pending() == 0
    }
}

/// Reads a response as JSON; a body that is not JSON fails the test with its text.
pub async fn json_of(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.expect("read the response body");
    if text.is_empty() {
        return (status, Value::Null);
    }
    let value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{status}: body is not JSON ({e}): {text:?}"));
    (status, value)
}

/// Polls `probe` every `POLL_INTERVAL` until it returns `Ok`; fails the test after `timeout`
/// with the last `Err`, which should describe what was seen instead.
pub async fn wait_for<T>(
    timeout: Duration,
    what: &str,
    mut probe: impl AsyncFnMut() -> Result<T, String>,
) -> T {
    let mut last = String::from("the first check did not finish");
    let outcome = tokio::time::timeout(timeout, async {
        loop {
            match probe().await {
                Ok(value) => return value,
                Err(seen) => last = seen,
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    })
    .await;
    match outcome {
        Ok(value) => value,
        Err(_) => panic!("timed out after {timeout:?} waiting for {what}; last seen: {last}"),
    }
}

pub async fn wait_until(timeout: Duration, what: &str, mut condition: impl AsyncFnMut() -> bool) {
    wait_for(timeout, what, async || {
        if condition().await {
            Ok(())
        } else {
            Err("condition false".to_owned())
        }
    })
    .await
}

/// A fresh id, unique across tests and runs.
pub fn unique_id(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// A valid order whose total is exactly 60.07 EUR (3 x 19.99 + 1 x 0.10).
pub fn order(id: &str) -> Value {
    let mut order = order_without_id();
    order["orderID"] = json!(id);
    order
}

pub fn order_without_id() -> Value {
    json!({
        "customerId": "cust-42",
        "customerEmail": "ada@example.com",
        "items": [
            {"sku": "BOOK-1", "quantity": 3, "unitPrice": 19.99},
            {"sku": "PEN", "quantity": 1, "unitPrice": 0.1}
        ],
        "currency": "EUR",
        "shippingAddress": {"line1": "1 Main St", "city": "Berlin", "postalCode": "10115", "country": "DE"},
        "notes": "leave at the door"
    })
}

/// `n` valid orders with fresh ids.
pub fn orders(prefix: &str, n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| order(&unique_id(&format!("{prefix}{i}"))))
        .collect()
}

pub fn id_set(ids: impl IntoIterator<Item = impl AsRef<str>>) -> HashSet<String> {
    ids.into_iter().map(|id| id.as_ref().to_owned()).collect()
}

/// Percent-encodes everything but RFC 3986 unreserved characters (for ARNs in a path).
pub fn encode_path_segment(raw: &str) -> String {
    let mut out = String::new();
    for byte in raw.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// `listening on http://127.0.0.1:PORT` (or `https://`) anywhere in the line, possibly
/// followed by a path: the scheme and the address to connect to (127.0.0.1 for a server
/// listening on every interface).
fn parse_listening_line(line: &str) -> Option<(&'static str, SocketAddr)> {
    let (scheme, rest) = match line.split("listening on http://").nth(1) {
        Some(rest) => ("http", rest),
        None => ("https", line.split("listening on https://").nth(1)?),
    };
    let authority: String = rest
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != '/')
        .collect();
    let mut addr: SocketAddr = authority.parse().ok()?;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    Some((scheme, addr))
}

/// Appends a stream record whose NewImage is not a stored order (as a corrupted or
/// hand-written record would be): the publisher can never publish it.
pub fn append_unpublishable_stream_record(app: &TestApp, id: &str) {
    let db = rusqlite::Connection::open(app.data_dir().join("orderflow.db")).unwrap();
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    db.execute(
        "INSERT INTO stream_records (event_id, event_name, keys, new_image, created_at, size_bytes)
         VALUES (?1, 'INSERT', ?2, ?2, 0, 10)",
        rusqlite::params![
            format!("event-{id}"),
            json!({"orderID": {"S": id}}).to_string()
        ],
    )
    .unwrap();
}

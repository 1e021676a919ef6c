//! A fresh `orderflow serve` per test, SDK clients pointed at it, and its own JSON API for
//! what AWS has no call for (a queue subscription of its own, the stored order as served).

// This target drives fewer of the harness's knobs than tests/moto does.
#[allow(dead_code)]
#[path = "../../shared/mod.rs"]
mod shared;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use aws_config::SdkConfig;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub use shared::{Endpoint, REGION, runtime, sqs_event_fixture};

/// The account `orderflow serve` answers as by default (`--aws-account-id`).
pub const ACCOUNT: &str = "000000000000";
/// The access key id serve expects with an API key (`--aws-access-key-id`'s default).
pub const ACCESS_KEY_ID: &str = "orderflow";
/// The seed's names, which serve's resources carry.
pub const TABLE: &str = "orders";
pub const TOPIC: &str = "POC-Topic";

/// Yields a running [`Serve`], or returns from the test after saying loudly that it was
/// skipped.
macro_rules! serve_or_skip {
    () => {
        serve_or_skip!(None)
    };
    ($api_key:expr) => {
        match crate::support::Serve::start($api_key).await {
            Some(serve) => serve,
            None => return,
        }
    };
}
pub(crate) use serve_or_skip;

/// One `orderflow serve` on 127.0.0.1:0 with a data directory of its own; stopped (and the
/// directory removed) when dropped.
pub struct Serve {
    endpoint: Endpoint,
    api_key: Option<String>,
    http: reqwest::Client,
    dir: PathBuf,
    _child: Child,
}

impl Serve {
    /// Starts serve; with `api_key` it requires SigV4 signatures made with that key as the
    /// secret of access key id `orderflow` (its default), and `config` signs so.
    pub async fn start(api_key: Option<&str>) -> Option<Serve> {
        let binary = match std::env::var("ORDERFLOW_BIN") {
            Ok(path) if !path.trim().is_empty() => path,
            _ => {
                shared::say_skipped(&[
                    "SKIPPED: ORDERFLOW_BIN is not set, so the AWS adapters were",
                    "NOT run against orderflow serve. ./scripts/test-awsapi sets",
                    "it (./scripts/test runs that script).",
                ]);
                return None;
            }
        };
        let dir = std::env::temp_dir().join(shared::unique("orderflow-aws-serve"));
        std::fs::create_dir_all(&dir).expect("create the test directory");
        let log = std::fs::File::create(dir.join("serve.log")).expect("create the log file");
        let mut command = Command::new(&binary);
        command
            .args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
            .arg(dir.join("data"))
            // Deliveries are read back from queues here; their signatures are tested elsewhere.
            .args(["--sign-deliveries", "false"])
            .env_remove("ORDERFLOW_API_KEY")
            .env("RUST_LOG", "warn")
            .envs(api_key.map(|key| ("ORDERFLOW_API_KEY", key)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("start {binary}: {e}"));
        let mut lines = BufReader::new(child.stdout.take().expect("stdout is piped")).lines();
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
        .flatten()
        .unwrap_or_else(|| {
            panic!(
                "orderflow serve did not start: {}",
                std::fs::read_to_string(dir.join("serve.log")).unwrap_or_default()
            )
        });
        // Keep reading stdout so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        // Without an API key serve takes any SigV4 credentials, as local emulators do.
        let endpoint =
            Endpoint::new("serve", &url, ACCESS_KEY_ID, api_key.unwrap_or("serve")).await;
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("an HTTP client");
        Some(Serve {
            endpoint,
            api_key: api_key.map(str::to_owned),
            http,
            dir,
            _child: child,
        })
    }

    /// SDK configuration for this server signed with other credentials.
    pub async fn config_with(&self, access_key_id: &str, secret: &str) -> SdkConfig {
        shared::sdk_config("serve", &self.url, access_key_id, secret).await
    }

    pub fn topic_arn(&self) -> String {
        format!("arn:aws:sns:{REGION}:{ACCOUNT}:{TOPIC}")
    }

    /// A `queue` subscription of serve's own (POST /subscriptions) with `filter_policy`;
    /// returns its queue's URL, as SQS's GetQueueUrl gives it.
    pub async fn subscribe_queue(&self, name: &str, filter_policy: Option<Value>) -> String {
        let mut body = json!({ "protocol": "queue", "endpoint": name });
        if let Some(policy) = filter_policy {
            body["filterPolicy"] = policy;
        }
        let response = self
            .http
            .post(format!("{}/subscriptions", self.url))
            .header("x-api-key", self.api_key.as_deref().unwrap_or_default())
            .json(&body)
            .send()
            .await
            .expect("POST /subscriptions");
        assert_eq!(response.status(), 201, "{:?}", response.text().await);
        self.sqs()
            .get_queue_url()
            .queue_name(name)
            .send()
            .await
            .expect("the subscription's queue has a URL")
            .queue_url
            .expect("a queue URL")
    }

    /// The order as serve's own API shows it (GET /orders/{id}), once stored.
    pub async fn order(&self, id: &str) -> Option<Value> {
        let response = self
            .http
            .get(format!("{}/orders/{id}", self.url))
            .header("x-api-key", self.api_key.as_deref().unwrap_or_default())
            .send()
            .await
            .expect("GET /orders/{id}");
        match response.status().as_u16() {
            200 => Some(response.json().await.expect("an order is JSON")),
            404 => None,
            other => panic!("GET /orders/{id}: {other}"),
        }
    }

    /// Receives (and deletes) until `expected` messages arrived or ten seconds passed.
    pub async fn receive(&self, queue_url: &str, expected: usize) -> Vec<Value> {
        shared::receive(&self.sqs(), queue_url, expected).await
    }

    /// The `orders` table's stream, read through DynamoDB Streams, as a Lambda event.
    pub async fn stream_event(&self) -> Value {
        let stream_arn = self
            .dynamodb()
            .describe_table()
            .table_name(TABLE)
            .send()
            .await
            .expect("describe the orders table")
            .table
            .and_then(|t| t.latest_stream_arn)
            .expect("the table names its stream");
        shared::stream_event(&self.streams(), &stream_arn).await
    }

    /// What the server logged so far (for a failing test's message).
    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.dir.join("serve.log")).unwrap_or_default()
    }
}

/// Serve's clients and Lambda environment are those of any endpoint.
impl std::ops::Deref for Serve {
    type Target = Endpoint;

    fn deref(&self) -> &Endpoint {
        &self.endpoint
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

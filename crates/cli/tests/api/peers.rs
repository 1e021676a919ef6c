//! Python peers for the fan-out tests: a real SMTP server (aiosmtpd) and an independent SNS
//! signature verifier (`cryptography`). `scripts/test-fanout` makes their virtual
//! environment and runs the tests that use them with `ORDERFLOW_TEST_PYTHON` set; those
//! tests are `#[ignore]`d in a plain `cargo test` and fail loudly without the variable.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// The Python with the peers' packages, from `ORDERFLOW_TEST_PYTHON`.
pub fn python() -> PathBuf {
    let path = std::env::var_os("ORDERFLOW_TEST_PYTHON").unwrap_or_else(|| {
        panic!("ORDERFLOW_TEST_PYTHON is not set: run ./scripts/test-fanout, which makes the Python peers' environment")
    });
    PathBuf::from(path)
}

pub fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/peers")
        .join(name)
}

/// A running aiosmtpd server and the mails it received (as JSON objects).
#[derive(Debug)]
pub struct SmtpSink {
    pub port: u16,
    /// The CA certificate (PEM) to trust for its STARTTLS, when it offers it.
    pub ca_file: Option<PathBuf>,
    mails: Arc<Mutex<Vec<Value>>>,
    child: Child,
    _dir: tempfile::TempDir,
}

impl SmtpSink {
    /// Starts the server; with `auth`, STARTTLS is offered (and required) and AUTH needed.
    pub async fn start(auth: Option<(&str, &str)>) -> SmtpSink {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut cmd = Command::new(python());
        cmd.arg(script("smtp_sink.py"));
        if let Some((user, password)) = auth {
            cmd.arg("--starttls")
                .arg(dir.path())
                .arg("--auth")
                .arg(format!("{user}:{password}"));
        }
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("start the SMTP sink");
        let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        let (port, ca_file) = tokio::time::timeout(STARTUP_TIMEOUT, async {
            let mut port = None;
            let mut ca = None;
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(p) = line.strip_prefix("listening ") {
                    port = Some(p.trim().parse::<u16>().expect("a port"));
                    if auth.is_none() {
                        break;
                    }
                } else if let Some(path) = line.strip_prefix("ca ") {
                    ca = Some(PathBuf::from(path.trim()));
                    break;
                }
            }
            (port.expect("the SMTP sink printed its port"), ca)
        })
        .await
        .expect("the SMTP sink started in time");
        let mails = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&mails);
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Ok(mail) = serde_json::from_str::<Value>(&line) {
                    sink.lock().unwrap().push(mail);
                }
            }
        });
        SmtpSink {
            port,
            ca_file,
            mails,
            child,
            _dir: dir,
        }
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    pub fn mails(&self) -> Vec<Value> {
        self.mails.lock().unwrap().clone()
    }

    pub async fn stop(mut self) {
        if let Some(mut stdin) = self.child.stdin.take() {
            let _ = stdin.shutdown().await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}

/// Runs the independent verifier on SNS messages; returns `valid` for each, in order.
pub async fn verify_signatures(messages: &[Value]) -> Vec<(bool, Option<String>)> {
    let mut child = Command::new(python())
        .arg(script("verify_sns.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the verifier");
    let mut stdin = child.stdin.take().expect("piped");
    stdin
        .write_all(Value::Array(messages.to_vec()).to_string().as_bytes())
        .await
        .expect("write messages");
    drop(stdin);
    let output = tokio::time::timeout(STARTUP_TIMEOUT, child.wait_with_output())
        .await
        .expect("the verifier finished in time")
        .expect("run the verifier");
    assert!(
        output.status.success(),
        "verifier failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let results: Vec<Value> = serde_json::from_slice(&output.stdout).expect("verifier output");
    results
        .iter()
        .map(|r| {
            (
                r["valid"].as_bool().unwrap_or(false),
                r["error"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

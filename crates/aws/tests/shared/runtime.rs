//! A small Lambda Runtime API (the contract Lambda speaks to a `provided.al2023` bootstrap),
//! so the tests run the real binaries exactly as Lambda does: the binary long-polls
//! `invocation/next`, answers on `invocation/{id}/response` or `/error`, and reports a
//! failed start on `init/error`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;
use tokio::sync::{Notify, mpsc, oneshot};

/// What the function answered for one invocation.
#[derive(Debug)]
pub enum Outcome {
    Response(Value),
    Error(Value),
}

type Pending = (Bytes, oneshot::Sender<Outcome>);

struct Api {
    invocations: tokio::sync::Mutex<mpsc::Receiver<Pending>>,
    waiting: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    next_calls: AtomicUsize,
    polled: Notify,
    init_errors: Mutex<Vec<Value>>,
    function_name: String,
}

/// One running Lambda binary and the Runtime API it talks to.
pub struct Function {
    api: Arc<Api>,
    sender: mpsc::Sender<Pending>,
    child: Child,
    output: Arc<Mutex<Vec<String>>>,
}

impl Function {
    /// Starts `binary` with `env` (and nothing inherited) against a fresh Runtime API.
    pub async fn start(binary: &str, function_name: &str, env: &[(String, String)]) -> Function {
        let (sender, receiver) = mpsc::channel(8);
        let api = Arc::new(Api {
            invocations: tokio::sync::Mutex::new(receiver),
            waiting: Mutex::new(HashMap::new()),
            next_calls: AtomicUsize::new(0),
            polled: Notify::new(),
            init_errors: Mutex::new(Vec::new()),
            function_name: function_name.to_owned(),
        });
        let router = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(api.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });

        let mut command = super::sandbox::bootstrap_command(binary, function_name, addr, "test");
        command.envs(env.iter().map(|(k, v)| (k, v)));
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("start {binary}: {e}"));
        let output = Arc::new(Mutex::new(Vec::new()));
        for stream in super::sandbox::output_streams(&mut child) {
            let output = output.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stream).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    output.lock().unwrap().push(line);
                }
            });
        }
        Function {
            api,
            sender,
            child,
            output,
        }
    }

    /// Sends one event and waits (30 s at most) for the function's answer.
    pub async fn invoke(&self, event: &Value) -> Outcome {
        let (tx, rx) = oneshot::channel();
        self.sender
            .send((Bytes::from(event.to_string()), tx))
            .await
            .expect("the runtime API is up");
        match tokio::time::timeout(Duration::from_secs(30), rx).await {
            Ok(Ok(outcome)) => outcome,
            _ => panic!(
                "{} gave no answer within 30 s; its output:\n{}",
                self.api.function_name,
                self.output()
            ),
        }
    }

    /// Waits (20 s at most) until the function asked for its first event: init is done.
    pub async fn wait_until_polling(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while self.api.next_calls.load(Ordering::SeqCst) == 0 {
            let notified = self.api.polled.notified();
            if self.api.next_calls.load(Ordering::SeqCst) > 0 {
                break;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!(
                    "{} never polled for an event; its output:\n{}",
                    self.api.function_name,
                    self.output()
                );
            }
        }
    }

    /// Waits (20 s at most) for the process to end, as it must when init fails.
    pub async fn wait_for_exit(&mut self) -> ExitStatus {
        match tokio::time::timeout(Duration::from_secs(20), self.child.wait()).await {
            Ok(status) => {
                // Let the readers drain what the process wrote last.
                tokio::time::sleep(Duration::from_millis(200)).await;
                status.expect("wait for the function")
            }
            Err(_) => panic!(
                "{} did not exit; its output:\n{}",
                self.api.function_name,
                self.output()
            ),
        }
    }

    pub fn next_calls(&self) -> usize {
        self.api.next_calls.load(Ordering::SeqCst)
    }

    pub fn init_errors(&self) -> Vec<Value> {
        self.api.init_errors.lock().unwrap().clone()
    }

    /// Everything the function wrote to stdout and stderr so far.
    pub fn output(&self) -> String {
        self.output.lock().unwrap().join("\n")
    }
}

async fn next(State(api): State<Arc<Api>>) -> impl IntoResponse {
    api.next_calls.fetch_add(1, Ordering::SeqCst);
    api.polled.notify_waiters();
    let Some((event, reply)) = api.invocations.lock().await.recv().await else {
        return (StatusCode::GONE, HeaderMap::new(), Bytes::new());
    };
    let request_id = uuid::Uuid::new_v4().to_string();
    api.waiting
        .lock()
        .unwrap()
        .insert(request_id.clone(), reply);
    let headers = super::sandbox::invocation_headers(
        &request_id,
        &format!(
            "arn:aws:lambda:{}:123456789012:function:{}",
            super::REGION,
            api.function_name
        ),
    );
    (StatusCode::OK, headers, event)
}

async fn response(State(api): State<Arc<Api>>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    answer(&api, &id, Outcome::Response(json_of(&body)))
}

async fn error(State(api): State<Arc<Api>>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    answer(&api, &id, Outcome::Error(json_of(&body)))
}

async fn init_error(State(api): State<Arc<Api>>, body: Bytes) -> StatusCode {
    api.init_errors.lock().unwrap().push(json_of(&body));
    StatusCode::ACCEPTED
}

fn answer(api: &Api, id: &str, outcome: Outcome) -> StatusCode {
    match api.waiting.lock().unwrap().remove(id) {
        Some(reply) => {
            let _ = reply.send(outcome);
            StatusCode::ACCEPTED
        }
        None => StatusCode::BAD_REQUEST,
    }
}

fn json_of(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

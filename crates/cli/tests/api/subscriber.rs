//! A webhook receiver that behaves like an SNS HTTP subscriber and records what it is sent.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::helpers::{http_client, wait_for};

const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
const REBIND_ATTEMPTS: u32 = 100;

/// One request as the subscriber saw it, and what it answered.
#[derive(Debug, Clone)]
pub struct ReceivedRequest {
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
    pub body: String,
    /// The body parsed as JSON (SNS sends JSON with `content-type: text/plain`).
    pub json: Option<Value>,
    pub answered: u16,
}

impl ReceivedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `x-amz-sns-message-type`.
    pub fn message_type(&self) -> Option<&str> {
        self.header("x-amz-sns-message-type")
    }

    pub fn accepted(&self) -> bool {
        (200..300).contains(&self.answered)
    }
}

/// A `Notification` request with its envelope and its `Message` parsed.
#[derive(Debug, Clone)]
pub struct Notification {
    pub request: ReceivedRequest,
    pub envelope: Value,
    /// `Message`, parsed: `{"type": "OrderCreated", "order": {...}}`.
    pub message: Value,
}

impl Notification {
    pub fn order_id(&self) -> Option<&str> {
        self.message
            .pointer("/order/orderID")
            .and_then(Value::as_str)
    }
}

/// The outcome of one GET of a `SubscribeURL`.
#[derive(Debug, Clone)]
pub struct ConfirmAttempt {
    pub url: String,
    pub status: Option<u16>,
    pub error: Option<String>,
}

impl ConfirmAttempt {
    pub fn describe(&self) -> String {
        match (&self.status, &self.error) {
            (Some(status), _) => format!("GET {} -> {status}", self.url),
            (None, Some(error)) => format!("GET {} failed: {error}", self.url),
            (None, None) => format!("GET {}: no outcome", self.url),
        }
    }
}

#[derive(Debug)]
struct Shared {
    requests: Mutex<Vec<ReceivedRequest>>,
    confirmations: Mutex<Vec<ConfirmAttempt>>,
    /// The status every request is answered with: 200 normally, 500 while "down".
    answer: AtomicU16,
    /// How long to take before answering, in milliseconds: a slow receiver.
    delay_ms: AtomicU64,
    auto_confirm: AtomicBool,
    client: reqwest::Client,
}

#[derive(Debug)]
struct Running {
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

#[derive(Debug)]
pub struct TestSubscriber {
    shared: Arc<Shared>,
    addr: SocketAddr,
    running: Option<Running>,
}

impl TestSubscriber {
    /// A subscriber that confirms its subscription as soon as it is asked to.
    pub async fn start() -> Self {
        Self::start_with(true).await
    }

    /// A subscriber that records the confirmation request but does not confirm it.
    pub async fn start_without_confirming() -> Self {
        Self::start_with(false).await
    }

    async fn start_with(auto_confirm: bool) -> Self {
        let shared = Arc::new(Shared {
            requests: Mutex::new(Vec::new()),
            confirmations: Mutex::new(Vec::new()),
            answer: AtomicU16::new(200),
            delay_ms: AtomicU64::new(0),
            auto_confirm: AtomicBool::new(auto_confirm),
            client: http_client(),
        });
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the subscriber");
        let addr = listener.local_addr().expect("subscriber address");
        let mut subscriber = TestSubscriber {
            shared,
            addr,
            running: None,
        };
        subscriber.serve(listener);
        subscriber
    }

    fn serve(&mut self, listener: TcpListener) {
        let (shutdown, signal) = oneshot::channel::<()>();
        let app = Router::new()
            .fallback(receive)
            .with_state(Arc::clone(&self.shared));
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = signal.await;
                })
                .await
                .expect("subscriber server");
        });
        self.running = Some(Running { shutdown, task });
    }

    /// The endpoint to subscribe.
    pub fn url(&self) -> String {
        format!("http://{}/sns/orders", self.addr)
    }

    /// Answer every request with `status` from now on.
    pub fn answer_with(&self, status: u16) {
        self.shared.answer.store(status, Ordering::SeqCst);
    }

    /// Take `delay` before answering each request, like an overloaded receiver.
    pub fn answer_after(&self, delay: Duration) {
        self.shared
            .delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// Answer 500 to everything, like a receiver whose backend is down.
    pub fn go_down(&self) {
        self.answer_with(500);
    }

    pub fn come_back(&self) {
        self.answer_with(200);
    }

    /// Closes the listener and every connection: the server then gets "connection refused".
    pub async fn stop(&mut self) {
        let Some(Running { shutdown, mut task }) = self.running.take() else {
            return;
        };
        let _ = shutdown.send(());
        if tokio::time::timeout(SHUTDOWN_TIMEOUT, &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
    }

    /// Listens again on the same port.
    pub async fn restart(&mut self) {
        assert!(self.running.is_none(), "the subscriber is running");
        let mut attempts = 0;
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(listener) => break listener,
                Err(e) if attempts < REBIND_ATTEMPTS => {
                    attempts += 1;
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("rebind the subscriber on {}: {e}", self.addr),
            }
        };
        self.serve(listener);
    }

    pub fn requests(&self) -> Vec<ReceivedRequest> {
        self.shared.requests.lock().unwrap().clone()
    }

    pub fn confirmation_requests(&self) -> Vec<ReceivedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.message_type() == Some("SubscriptionConfirmation"))
            .collect()
    }

    /// Every `Notification` request, including those answered with an error.
    pub fn notification_attempts(&self) -> Vec<Notification> {
        self.requests()
            .into_iter()
            .filter(|r| r.message_type() == Some("Notification"))
            .map(|request| {
                let envelope = request.json.clone().unwrap_or_else(|| {
                    panic!("a notification body is not JSON: {:?}", request.body)
                });
                let message = envelope["Message"]
                    .as_str()
                    .and_then(|m| serde_json::from_str(m).ok())
                    .unwrap_or_else(|| panic!("Message is not a JSON string: {envelope}"));
                Notification {
                    request,
                    envelope,
                    message,
                }
            })
            .collect()
    }

    /// Notifications the subscriber accepted (answered 2xx): the ones delivered.
    pub fn notifications(&self) -> Vec<Notification> {
        self.notification_attempts()
            .into_iter()
            .filter(|n| n.request.accepted())
            .collect()
    }

    /// Waits up to `timeout` for the notification of order `id` to be delivered here.
    pub async fn notification_for(&self, id: &str, timeout: Duration) -> Notification {
        wait_for(timeout, &format!("the notification of {id}"), async || {
            self.notifications()
                .into_iter()
                .find(|n| n.order_id() == Some(id))
                .ok_or_else(|| format!("{} other notifications", self.notifications().len()))
        })
        .await
    }

    pub fn order_ids_delivered(&self) -> HashSet<String> {
        self.notifications()
            .iter()
            .filter_map(|n| n.order_id().map(str::to_owned))
            .collect()
    }

    /// How many times each order was delivered (accepted).
    pub fn deliveries_per_order(&self) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for n in self.notifications() {
            if let Some(id) = n.order_id() {
                *counts.entry(id.to_owned()).or_insert(0) += 1;
            }
        }
        counts
    }

    pub fn confirmations(&self) -> Vec<ConfirmAttempt> {
        self.shared.confirmations.lock().unwrap().clone()
    }

    /// GETs of a `SubscribeURL` that were answered 200.
    pub fn confirmed_count(&self) -> usize {
        self.confirmations()
            .iter()
            .filter(|c| c.status == Some(200))
            .count()
    }

    /// Confirms, by hand, every confirmation request received so far; returns the statuses.
    pub async fn confirm_pending(&self) -> Vec<Option<u16>> {
        let mut statuses = Vec::new();
        for request in self.confirmation_requests() {
            let url = subscribe_url(&request)
                .unwrap_or_else(|| panic!("no SubscribeURL in {:?}", request.body));
            statuses.push(confirm(&self.shared, url).await.status);
        }
        statuses
    }
}

impl Drop for TestSubscriber {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            let _ = running.shutdown.send(());
            running.task.abort();
        }
    }
}

async fn receive(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let delay = shared.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let answered = shared.answer.load(Ordering::SeqCst);
    let body = String::from_utf8_lossy(&body).into_owned();
    let request = ReceivedRequest {
        method: method.to_string(),
        path: uri.path().to_owned(),
        headers,
        json: serde_json::from_str(&body).ok(),
        body,
        answered,
    };
    let confirm_at = (request.accepted()
        && shared.auto_confirm.load(Ordering::SeqCst)
        && request.message_type() == Some("SubscriptionConfirmation"))
    .then(|| subscribe_url(&request))
    .flatten();
    shared.requests.lock().unwrap().push(request);
    if let Some(url) = confirm_at {
        // Like a real subscriber: answer the POST, then confirm on the side.
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            confirm(&shared, url).await;
        });
    }
    StatusCode::from_u16(answered).expect("a valid status code")
}

fn subscribe_url(request: &ReceivedRequest) -> Option<String> {
    request
        .json
        .as_ref()?
        .get("SubscribeURL")?
        .as_str()
        .map(str::to_owned)
}

async fn confirm(shared: &Shared, url: String) -> ConfirmAttempt {
    // Only ever follow links back to this machine.
    let local = url.starts_with("http://127.0.0.1:") || url.starts_with("http://localhost:");
    let attempt = if !local {
        ConfirmAttempt {
            url,
            status: None,
            error: Some("SubscribeURL is not on 127.0.0.1; not followed".to_owned()),
        }
    } else {
        match shared.client.get(&url).send().await {
            Ok(response) => ConfirmAttempt {
                url,
                status: Some(response.status().as_u16()),
                error: None,
            },
            Err(e) => ConfirmAttempt {
                url,
                status: None,
                error: Some(e.to_string()),
            },
        }
    };
    shared.confirmations.lock().unwrap().push(attempt.clone());
    attempt
}

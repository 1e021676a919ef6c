//! Serves the router on a TCP listener (plain or TLS) under connection limits: a deadline
//! for each request's headers, an idle keep-alive timeout and a cap on open connections,
//! so slow or idle clients cannot hold the server's sockets (slowloris).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tower::ServiceExt;

/// Time for a request's headers (from the connection's start, or from the end of the
/// previous response); a client that sends them slower, or nothing, is disconnected.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a kept-alive connection may sit idle between requests.
pub const DEFAULT_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// Open connections served at once; past it, a new connection gets `503` and is closed.
/// Below the usual 1,024 open-file limit, leaving room for the database and deliveries.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;
/// How long a refused connection is given to take its `503`.
const REFUSAL_LINGER: Duration = Duration::from_millis(500);
/// Refusals answered at once; a flood beyond it is closed without an answer, so refusing
/// cannot cost more sockets than serving.
const MAX_REFUSALS: usize = 64;

#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    pub header_read_timeout: Duration,
    pub keep_alive_timeout: Duration,
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            keep_alive_timeout: DEFAULT_KEEP_ALIVE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// Serves `app` until `shutdown` completes, then closes idle connections, lets requests in
/// flight finish, and returns when every connection is closed.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: impl Future<Output = ()> + Send,
) {
    let max = limits.max_connections.clamp(1, Semaphore::MAX_PERMITS);
    let slots = Arc::new(Semaphore::new(max));
    let refusals = Arc::new(Semaphore::new(MAX_REFUSALS));
    // A flood must not become a flood of log lines: one warning a second at most.
    let mut last_warning: Option<Instant> = None;
    let mut refused_since_warning = 0u64;
    let (stop, stopping) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before it was
                    // accepted: wait a moment rather than spin.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        match Arc::clone(&slots).try_acquire_owned() {
            Ok(slot) => {
                tokio::spawn(serve_connection(
                    stream,
                    remote,
                    app.clone(),
                    limits.clone(),
                    tls.clone(),
                    stopping.clone(),
                    slot,
                ));
            }
            Err(_) => {
                refused_since_warning += 1;
                if last_warning.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
                    tracing::warn!(%remote, max, refused = refused_since_warning, "refusing connections: too many open connections");
                    last_warning = Some(Instant::now());
                    refused_since_warning = 0;
                }
                if let Ok(refusal) = Arc::clone(&refusals).try_acquire_owned() {
                    let tls = tls.is_some();
                    tokio::spawn(async move {
                        refuse(stream, tls, max).await;
                        drop(refusal);
                    });
                }
            }
        }
    }
    drop(listener);
    let _ = stop.send(true);
    // Every connection holds a slot until it is closed.
    let _ = slots.acquire_many(max as u32).await;
}

/// Over the cap: a plain `503` in our error format, then the connection is closed. A TLS
/// client is closed without one (answering would cost a handshake).
async fn refuse(mut stream: TcpStream, tls: bool, max: usize) {
    if !tls {
        let body = format!(
            "{{\"error\":\"Too many open connections (the limit is {max}, --max-connections); retry shortly\",\"details\":[]}}"
        );
        let response = format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        let _ = tokio::time::timeout(REFUSAL_LINGER, async {
            stream.write_all(response.as_bytes()).await?;
            stream.shutdown().await?;
            // Read what the client sent, so closing does not reset the connection before
            // the client has read the answer.
            let mut sink = [0u8; 4096];
            while stream.read(&mut sink).await? > 0 {}
            Ok::<_, std::io::Error>(())
        })
        .await;
    }
}

async fn serve_connection(
    stream: TcpStream,
    remote: SocketAddr,
    app: Router,
    limits: ConnectionLimits,
    tls: Option<tokio_rustls::TlsAcceptor>,
    stopping: watch::Receiver<bool>,
    slot: OwnedSemaphorePermit,
) {
    match tls {
        None => drive(stream, remote, app, &limits, stopping).await,
        Some(acceptor) => {
            // The handshake counts against the header deadline: a client that opens a
            // TLS connection and stalls is a slowloris too.
            match tokio::time::timeout(limits.header_read_timeout, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => drive(stream, remote, app, &limits, stopping).await,
                Ok(Err(e)) => tracing::debug!(%remote, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%remote, "TLS handshake timed out"),
            }
        }
    }
    drop(slot);
}

async fn drive<IO>(
    io: IO,
    remote: SocketAddr,
    app: Router,
    limits: &ConnectionLimits,
    mut stopping: watch::Receiver<bool>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity::new());
    let service = {
        let activity = Arc::clone(&activity);
        hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(remote));
            activity.begin();
            let (app, activity) = (app.clone(), Arc::clone(&activity));
            async move {
                let response = app.oneshot(request).await;
                activity.end();
                response
            }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let connection = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    let mut closing = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%remote, error = %e, "connection closed with an error");
                }
                break;
            }
            _ = stopping.wait_for(|stop| *stop), if !closing => {
                connection.as_mut().graceful_shutdown();
                closing = true;
            }
            () = activity.idle_for(limits.keep_alive_timeout), if !closing => {
                connection.as_mut().graceful_shutdown();
                closing = true;
            }
        }
    }
}

/// Requests in flight on one connection and when the last one ended.
#[derive(Debug)]
struct Activity {
    started: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds after `started` at which the last response was ready; 0: none yet.
    last_end_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Activity {
            started: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_end_ms: AtomicU64::new(0),
        }
    }

    fn begin(&self) {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
    }

    fn end(&self) {
        let now = self.started.elapsed().as_millis().max(1) as u64;
        self.last_end_ms.store(now, Ordering::SeqCst);
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
    }

    /// Completes once the connection has been idle between requests for `timeout`. Before
    /// the first request, the header deadline applies instead.
    async fn idle_for(&self, timeout: Duration) {
        loop {
            let last_end = self.last_end_ms.load(Ordering::SeqCst);
            let wait = if last_end == 0 || self.in_flight.load(Ordering::SeqCst) > 0 {
                timeout
            } else {
                let deadline = Duration::from_millis(last_end) + timeout;
                match deadline.checked_sub(self.started.elapsed()) {
                    None => return,
                    Some(left) if left.is_zero() => return,
                    Some(left) => left,
                }
            };
            tokio::time::sleep(wait).await;
        }
    }
}

//! Slow and idle clients cannot hold connections: a header deadline, an idle keep-alive
//! timeout, and a cap on open connections with a clear answer beyond it.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{AppOptions, TestApp, spawn_app_with};

/// Longest a test waits for the server to act; well past every configured timeout.
const PATIENCE: Duration = Duration::from_secs(8);

/// Reads until the server closes the connection; what it sent, and when it closed.
async fn read_until_closed(socket: &mut TcpStream) -> (String, Duration) {
    let started = Instant::now();
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    let closed = tokio::time::timeout(PATIENCE, async {
        loop {
            match socket.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the server kept the connection open for {PATIENCE:?}; it sent {:?}",
        String::from_utf8_lossy(&received)
    );
    (
        String::from_utf8_lossy(&received).into_owned(),
        started.elapsed(),
    )
}

async fn app_with(args: &[&str]) -> TestApp {
    spawn_app_with(AppOptions::default().with_args(args)).await
}

#[tokio::test]
async fn a_client_that_sends_nothing_is_disconnected_after_the_header_read_timeout() {
    let app = app_with(&["--header-read-timeout-ms", "500"]).await;
    let mut socket = TcpStream::connect(app.addr).await.unwrap();
    let (_, after) = read_until_closed(&mut socket).await;
    assert!(after >= Duration::from_millis(400), "{after:?}");
}

#[tokio::test]
async fn a_client_that_trickles_half_its_headers_is_disconnected_after_the_header_read_timeout() {
    let app = app_with(&["--header-read-timeout-ms", "700"]).await;
    let mut socket = TcpStream::connect(app.addr).await.unwrap();
    let head = format!("GET /orders HTTP/1.1\r\nhost: {}\r\nx-slow: ", app.addr);
    socket.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    // One byte every 100 ms keeps the connection busy but never finishes the headers.
    let mut writes = 0;
    while started.elapsed() < PATIENCE {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if socket.write_all(b"a").await.is_err() {
            break;
        }
        writes += 1;
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(4),
        "still connected after {elapsed:?} ({writes} bytes trickled)"
    );
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed_after_the_keep_alive_timeout() {
    let app = app_with(&[
        "--keep-alive-timeout-ms",
        "300",
        "--header-read-timeout-ms",
        "6000",
    ])
    .await;
    let mut socket = TcpStream::connect(app.addr).await.unwrap();
    let request = format!("GET /healthz HTTP/1.1\r\nhost: {}\r\n\r\n", app.addr);
    socket.write_all(request.as_bytes()).await.unwrap();
    let (answer, after) = read_until_closed(&mut socket).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        after < Duration::from_secs(3),
        "closed after {after:?}: the keep-alive timeout, not the header deadline"
    );
}

#[tokio::test]
async fn a_connection_beyond_the_cap_gets_503_naming_the_limit_and_is_closed() {
    let app = app_with(&["--max-connections", "2"]).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(TcpStream::connect(app.addr).await.unwrap());
    }
    // The server counts a connection once it has accepted it; give it a moment.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut third = TcpStream::connect(app.addr).await.unwrap();
    let request = format!("GET /healthz HTTP/1.1\r\nhost: {}\r\n\r\n", app.addr);
    third.write_all(request.as_bytes()).await.unwrap();
    let (answer, _) = read_until_closed(&mut third).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("retry-after: 1"), "{answer}");
    assert!(
        answer.contains("Too many open connections (the limit is 2, --max-connections)"),
        "{answer}"
    );

    drop(held);
    let mut served = None;
    for _ in 0..50 {
        let response = app.get("/healthz").await;
        if response.status().is_success() {
            served = Some(response.status());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(served.is_some(), "closing connections frees their slots");
}

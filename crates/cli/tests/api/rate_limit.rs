//! The rate limiter against the real server: a flood of new addresses does not reset anyone's
//! limit, behind a trusted proxy each client has its own bucket (named by X-Forwarded-For),
//! an untrusted client cannot pick its bucket, and IPv6 clients share their /64.

use reqwest::StatusCode;

use crate::helpers::{AppOptions, TestApp, spawn_app_with};

/// The server behind a "proxy" at 127.0.0.1 (the test itself), 2 requests of burst, 1/s.
async fn behind_proxy(extra: &[&str]) -> TestApp {
    let mut args = vec!["--rate-limit", "1", "--rate-limit-burst", "2"];
    args.extend_from_slice(extra);
    spawn_app_with(AppOptions::default().with_args(&args)).await
}

async fn get_as(app: &TestApp, forwarded_for: &str) -> StatusCode {
    app.client
        .get(app.endpoint("/stats"))
        .header("x-forwarded-for", forwarded_for)
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_client_gets_its_own_limit() {
    let app = behind_proxy(&["--trust-forwarded-for", "127.0.0.0/8"]).await;
    // The proxy appends the address it saw; what the client wrote stays on the left.
    for _ in 0..2 {
        assert_eq!(get_as(&app, "203.0.113.1").await, StatusCode::OK);
    }
    assert_eq!(
        get_as(&app, "203.0.113.1").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        get_as(&app, "203.0.113.2").await,
        StatusCode::OK,
        "another client behind the same proxy is not held up"
    );
    assert_eq!(
        get_as(&app, "198.51.100.9, 203.0.113.1").await,
        StatusCode::TOO_MANY_REQUESTS,
        "a forged left-most entry does not pick a fresh bucket"
    );
    // IPv6 clients are keyed by their /64: rotating inside it buys nothing.
    for _ in 0..2 {
        assert_eq!(get_as(&app, "2001:db8:1:2::1").await, StatusCode::OK);
    }
    assert_eq!(
        get_as(&app, "2001:db8:1:2:ffff::77").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(get_as(&app, "2001:db8:1:3::1").await, StatusCode::OK);
}

#[tokio::test]
async fn an_untrusted_client_cannot_choose_its_bucket_with_x_forwarded_for() {
    let app = behind_proxy(&[]).await;
    assert_eq!(get_as(&app, "203.0.113.1").await, StatusCode::OK);
    assert_eq!(get_as(&app, "203.0.113.2").await, StatusCode::OK);
    assert_eq!(
        get_as(&app, "203.0.113.3").await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn a_flood_of_new_addresses_does_not_reset_the_attackers_limit() {
    let app = behind_proxy(&[
        "--trust-forwarded-for",
        "127.0.0.1/32",
        "--rate-limit-clients",
        "8",
    ])
    .await;
    let attacker = "198.51.100.7";
    for _ in 0..2 {
        assert_eq!(get_as(&app, attacker).await, StatusCode::OK);
    }
    assert_eq!(get_as(&app, attacker).await, StatusCode::TOO_MANY_REQUESTS);
    // Before, the limiter cleared every bucket once it tracked its maximum of clients.
    for i in 0..12 {
        let _ = get_as(&app, &format!("203.0.113.{i}")).await;
        assert_eq!(
            get_as(&app, attacker).await,
            StatusCode::TOO_MANY_REQUESTS,
            "after {} new addresses",
            i + 1
        );
    }
}

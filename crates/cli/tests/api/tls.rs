//! The HTTPS listener: with `--tls-cert` and `--tls-key` the server speaks TLS only, and the
//! links it sends subscribers (`SubscribeURL`, `SigningCertURL`) are `https` URLs.

use std::path::Path;
use std::process::Stdio;

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{AppOptions, SHORT, TestApp, json_of, spawn_app_with, wait_for};
use crate::subscriber::TestSubscriber;

/// A self-signed certificate for 127.0.0.1 and localhost, written as PEM files into `dir`;
/// returns the certificate's PEM.
fn write_test_certificate(dir: &Path) -> String {
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("generate a test certificate");
    let pem = certified.cert.pem();
    std::fs::write(dir.join("cert.pem"), &pem).unwrap();
    std::fs::write(dir.join("key.pem"), certified.key_pair.serialize_pem()).unwrap();
    pem
}

fn client_trusting(pem: &str) -> reqwest::Client {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .tls_certs_only([reqwest::Certificate::from_pem(pem.as_bytes()).unwrap()])
        .build()
        .unwrap()
}

async fn spawn_https_app(dir: &Path) -> (TestApp, String) {
    let pem = write_test_certificate(dir);
    let cert = dir.join("cert.pem").display().to_string();
    let key = dir.join("key.pem").display().to_string();
    let mut app =
        spawn_app_with(AppOptions::default().with_args(&["--tls-cert", &cert, "--tls-key", &key]))
            .await;
    app.client = client_trusting(&pem);
    (app, pem)
}

#[tokio::test]
async fn with_a_certificate_the_server_answers_https_and_refuses_plain_http() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _) = spawn_https_app(dir.path()).await;
    assert!(app.url.starts_with("https://"), "{}", app.url);
    let (status, body) = app.get_json("/healthz").await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // curl, a client we did not write, trusting only the test certificate.
    let output = tokio::process::Command::new("curl")
        .args(["--silent", "--show-error", "--noproxy", "*", "--cacert"])
        .arg(dir.path().join("cert.pem"))
        .arg(app.endpoint("/healthz"))
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run curl");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&output.stdout).unwrap(),
        json!({"status": "ok"})
    );

    let plain = crate::helpers::http_client()
        .get(format!("http://{}/healthz", app.addr))
        .send()
        .await;
    assert!(
        plain.is_err() || !plain.unwrap().status().is_success(),
        "plain HTTP must not be served"
    );
}

#[tokio::test]
async fn with_tls_on_subscribers_get_https_subscribe_and_signing_certificate_urls() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _) = spawn_https_app(dir.path()).await;
    let subscriber = TestSubscriber::start_without_confirming().await;
    let (status, body) = json_of(
        app.post_json(
            "/subscriptions",
            &json!({"protocol": "http", "endpoint": subscriber.url()}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let request = wait_for(SHORT, "the confirmation request", async || {
        subscriber
            .confirmation_requests()
            .into_iter()
            .next()
            .ok_or_else(|| "none yet".to_owned())
    })
    .await;
    let envelope = request.json.expect("a JSON envelope");
    let prefix = format!("https://{}/", app.addr);
    for link in ["SubscribeURL", "SigningCertURL"] {
        let url = envelope[link].as_str().unwrap_or_default();
        assert!(url.starts_with(&prefix), "{link}: {envelope}");
    }
    let confirmed = app
        .client
        .get(envelope["SubscribeURL"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(confirmed.status(), StatusCode::OK);
    let certificate = app
        .client
        .get(envelope["SigningCertURL"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(certificate.status(), StatusCode::OK);
}

//! `email` subscriptions against a real SMTP server (aiosmtpd): the SNS-style confirmation
//! mail, then one readable mail per order, over STARTTLS with AUTH.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::fanout_support::{add_subscription, subscription};
use crate::helpers::{AppOptions, SHORT, order, spawn_app_with, unique_id, wait_for};
use crate::peers::SmtpSink;

async fn mails_to(sink: &SmtpSink, to: &str, n: usize) -> Vec<Value> {
    wait_for(SHORT, &format!("{n} mails to {to}"), async || {
        let mails: Vec<Value> = sink
            .mails()
            .into_iter()
            .filter(|m| m["to"] == json!([to]))
            .collect();
        if mails.len() >= n {
            Ok(mails)
        } else {
            Err(format!("{mails:?}"))
        }
    })
    .await
}

fn link_in(body: &str) -> String {
    body.split_whitespace()
        .find(|w| w.starts_with("http://127.0.0.1:") && w.contains("/subscriptions/confirm?"))
        .unwrap_or_else(|| panic!("no confirmation link in:\n{body}"))
        .to_owned()
}

#[tokio::test]
#[ignore = "needs the Python peers: run ./scripts/test-fanout"]
async fn an_order_mail_arrives_at_a_real_smtp_server_after_confirmation() {
    let sink = SmtpSink::start(Some(("relay-user", "relay-secret"))).await;
    let ca = sink.ca_file.clone().expect("the sink offers STARTTLS");
    let app = spawn_app_with(AppOptions::default().with_args(&[
        "--smtp-url",
        &sink.url(),
        "--smtp-username",
        "relay-user",
        "--smtp-password",
        "relay-secret",
        "--smtp-from",
        "orderflow <orders@shop.test>",
        "--smtp-ca-file",
        ca.to_str().unwrap(),
    ]))
    .await;
    let (status, sub) = add_subscription(
        &app,
        &json!({"protocol": "email", "endpoint": "warehouse@shop.test"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{sub}");
    assert_eq!(sub["status"], json!("PendingConfirmation"));

    let confirmation = mails_to(&sink, "warehouse@shop.test", 1).await.remove(0);
    assert_eq!(
        confirmation["from"],
        json!("orders@shop.test"),
        "{confirmation}"
    );
    assert_eq!(
        confirmation["tls"],
        json!(true),
        "STARTTLS was offered, so it was used: {confirmation}"
    );
    assert_eq!(confirmation["login"], json!("relay-user"), "{confirmation}");
    assert!(
        confirmation["subject"]
            .as_str()
            .unwrap()
            .contains("confirmation"),
        "{confirmation}"
    );

    // Nothing is mailed before the address confirms.
    let early = app.submit(&order(&unique_id("early"))).await;
    app.wait_until_stored(&early, SHORT).await;
    app.drain().await;
    let quiet = Instant::now() + Duration::from_millis(300);
    while Instant::now() < quiet {
        assert_eq!(sink.mails().len(), 1, "a mail went out before confirmation");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let link = link_in(confirmation["body"].as_str().unwrap());
    let response = app.client.get(&link).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{link}");
    let sub = subscription(&app, sub["id"].as_str().unwrap()).await;
    assert_eq!(sub["status"], json!("Confirmed"), "{sub}");

    let id = app.submit(&order(&unique_id("mail"))).await;
    let mails = mails_to(&sink, "warehouse@shop.test", 2).await;
    assert_eq!(mails.len(), 2, "{mails:?}");
    let mail = &mails[1];
    assert_eq!(
        mail["subject"],
        json!(format!("Order {id} received: 60.07 EUR")),
        "{mail}"
    );
    let body = mail["body"].as_str().unwrap();
    for expected in [
        id.as_str(),
        "cust-42",
        "BOOK-1",
        "59.97",
        "PEN",
        "0.10",
        "60.07 EUR",
        "/subscriptions/unsubscribe?",
    ] {
        assert!(body.contains(expected), "{expected} missing from:\n{body}");
    }
    assert!(
        !body.contains(&early),
        "the order before confirmation is not mailed"
    );
    sink.stop().await;
}

#[tokio::test]
#[ignore = "needs the Python peers: run ./scripts/test-fanout"]
async fn a_relay_without_starttls_is_used_in_clear_when_it_is_on_this_machine() {
    let sink = SmtpSink::start(None).await;
    let app = spawn_app_with(AppOptions::default().with_args(&["--smtp-url", &sink.url()])).await;
    let (status, sub) = add_subscription(
        &app,
        &json!({"protocol": "email", "endpoint": "ops@shop.test"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{sub}");
    let confirmation = mails_to(&sink, "ops@shop.test", 1).await.remove(0);
    assert_eq!(confirmation["tls"], json!(false));
    sink.stop().await;
}

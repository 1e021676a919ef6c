//! Signed deliveries: SNS `SignatureVersion` 2 with a key pair made in the data directory
//! and a certificate served at `SigningCertURL`, checked by an independent verifier.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{
    AppOptions, SHORT, TestApp, order, spawn_app, spawn_app_with, unique_id, wait_until,
};
use crate::peers::verify_signatures;
use crate::subscriber::TestSubscriber;

/// Subscribes a webhook, stores one order; returns the confirmation and notification bodies.
async fn signed_messages(app: &TestApp) -> (Value, Value) {
    let subscriber = TestSubscriber::start().await;
    app.subscribe(&subscriber).await;
    let id = app.submit(&order(&unique_id("signed"))).await;
    wait_until(SHORT, "the notification", async || {
        subscriber.order_ids_delivered().contains(&id)
    })
    .await;
    let confirmation = subscriber.confirmation_requests()[0].json.clone().unwrap();
    let notification = subscriber.notifications()[0].envelope.clone();
    (confirmation, notification)
}

#[tokio::test]
async fn with_signing_turned_off_envelopes_carry_no_signature() {
    let app = spawn_app_with(AppOptions {
        extra_args: vec!["--sign-deliveries".into(), "false".into()],
        ..AppOptions::default()
    })
    .await;
    let (confirmation, notification) = signed_messages(&app).await;
    for message in [&confirmation, &notification] {
        assert!(message.get("Signature").is_none(), "{message}");
        assert!(message.get("SignatureVersion").is_none(), "{message}");
    }
    assert!(
        !app.data_dir().join("signing-key.pem").exists(),
        "no key is made when nothing is signed"
    );
}

#[tokio::test]
async fn every_envelope_is_signed_and_the_certificate_is_served() {
    let app = spawn_app().await;
    let (confirmation, notification) = signed_messages(&app).await;
    for message in [&confirmation, &notification] {
        assert_eq!(message["SignatureVersion"], json!("2"), "{message}");
        assert!(
            !message["Signature"].as_str().unwrap_or_default().is_empty(),
            "{message}"
        );
        let url = message["SigningCertURL"].as_str().unwrap();
        assert!(
            url.starts_with(&format!("{}/sns/SimpleNotificationService-", app.url)),
            "{url}"
        );
        let response = app.client.get(url).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let pem = response.text().await.unwrap();
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
    }
    let (status, _) = app
        .get_json("/sns/SimpleNotificationService-other.pem")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let key = app.data_dir().join("signing-key.pem");
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the signing key is owner-only: {mode:o}");
    }
}

#[tokio::test]
#[ignore = "needs the Python peers: run ./scripts/test-fanout"]
async fn signatures_verify_with_an_independent_implementation_of_the_sns_steps() {
    let app = spawn_app().await;
    let (confirmation, notification) = signed_messages(&app).await;
    let mut tampered_message = notification.clone();
    tampered_message["Message"] = json!(
        notification["Message"]
            .as_str()
            .unwrap()
            .replace("60.07", "0.07")
    );
    let mut other_signature = notification.clone();
    other_signature["Signature"] = confirmation["Signature"].clone();
    let mut no_subject = notification.clone();
    no_subject["Subject"] = json!("Something else");

    let results = verify_signatures(&[
        confirmation,
        notification,
        tampered_message,
        other_signature,
        no_subject,
    ])
    .await;
    assert_eq!(results.len(), 5);
    assert!(
        results[0].0,
        "the SubscriptionConfirmation verifies: {:?}",
        results[0]
    );
    assert!(results[1].0, "the Notification verifies: {:?}", results[1]);
    for (i, what) in [
        (2, "a changed Message"),
        (3, "another message's Signature"),
        (4, "a changed Subject"),
    ] {
        assert!(!results[i].0, "{what} must not verify: {:?}", results[i]);
        assert_eq!(results[i].1.as_deref(), Some("InvalidSignature"), "{what}");
    }
}

/// The same check after a restart: the key survives, the signatures still verify.
#[tokio::test]
#[ignore = "needs the Python peers: run ./scripts/test-fanout"]
async fn the_signing_key_survives_a_restart() {
    let mut app = spawn_app().await;
    let (_, before) = signed_messages(&app).await;
    app.restart().await;
    let (_, after) = signed_messages(&app).await;
    let name = |m: &Value| {
        m["SigningCertURL"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .to_owned()
    };
    assert_eq!(name(&before), name(&after), "the same certificate");
    let results = verify_signatures(&[after]).await;
    assert!(results[0].0, "{:?}", results[0]);
}

//! SNS's Query protocol on `POST /` is reachable by what a cross-site HTML form can send (a
//! form-encoded body needs no CORS preflight:
//! <https://developer.mozilla.org/en-US/docs/Web/HTTP/CORS#simple_requests>), so without an
//! API key it still demands the SigV4 `Authorization` header that such a form cannot set.

use reqwest::StatusCode;

use crate::helpers::spawn_app;

const FORM: &str = "application/x-www-form-urlencoded";

#[tokio::test]
async fn a_form_post_without_authorization_is_refused_in_sns_xml_and_subscribes_nothing() {
    let app = spawn_app().await;
    let body = "Action=Subscribe&Version=2010-03-31&TopicArn=arn%3Aaws%3Asns%3Aus-east-1%3A000000000000%3APOC-Topic&Protocol=sqs&Endpoint=arn%3Aaws%3Asqs%3Aus-east-1%3A000000000000%3Aplanted";
    let response = app
        .client
        .post(app.endpoint("/"))
        .header("content-type", FORM)
        .header("origin", "https://attacker.example")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let text = response.text().await.unwrap();
    assert!(
        text.starts_with("<ErrorResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\">"),
        "{text}"
    );
    assert!(
        text.contains("<Code>MissingAuthenticationToken</Code>"),
        "{text}"
    );
    let (_, subscriptions) = app.get_json("/subscriptions").await;
    assert_eq!(subscriptions["subscriptions"], serde_json::json!([]));

    // Any SigV4 header will do without a key (as local emulators accept any credentials).
    let response = app
        .client
        .post(app.endpoint("/"))
        .header("content-type", FORM)
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/sns/aws4_request, SignedHeaders=host, Signature=00",
        )
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(
        text.contains("<SubscriptionArn>arn:aws:sns:us-east-1:000000000000:POC-Topic:"),
        "{text}"
    );
}

#[tokio::test]
async fn a_form_post_to_any_other_path_is_still_refused_as_a_cross_site_write() {
    let app = spawn_app().await;
    let response = app
        .post_raw("/subscriptions", Some(FORM), "protocol=log&endpoint=stdout")
        .await;
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

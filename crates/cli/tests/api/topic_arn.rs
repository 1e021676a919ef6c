//! The topic has one ARN: the one the AWS protocols answer with (`--aws-region`,
//! `--aws-account-id`, topic `POC-Topic`). Envelopes, SNS headers, subscription ARNs and our
//! own API say the same, as SNS's do: a subscriber that checks `TopicArn` sees what
//! `ListTopics` and `Subscribe` told its team.
//! <https://docs.aws.amazon.com/sns/latest/dg/http-notification-json.html>
//! <https://docs.aws.amazon.com/sns/latest/dg/http-header.html>

use reqwest::StatusCode;

use crate::helpers::{AppOptions, SHORT, order, spawn_app_with, unique_id};
use crate::subscriber::TestSubscriber;

const TOPIC_IN_EU: &str = "arn:aws:sns:eu-west-1:123456789012:POC-Topic";
const TOPIC_IN_US: &str = "arn:aws:sns:us-east-1:000000000000:POC-Topic";

#[tokio::test]
async fn envelopes_headers_and_subscriptions_name_the_topic_as_the_aws_protocols_do() {
    let app = spawn_app_with(AppOptions::default().with_args(&[
        "--aws-region",
        "eu-west-1",
        "--aws-account-id",
        "123456789012",
    ]))
    .await;
    let subscriber = TestSubscriber::start().await;
    let arn = app.subscribe(&subscriber).await;
    assert!(arn.starts_with(&format!("{TOPIC_IN_EU}:")), "{arn}");

    let confirmation = &subscriber.confirmation_requests()[0];
    assert_eq!(
        confirmation.header("x-amz-sns-topic-arn"),
        Some(TOPIC_IN_EU)
    );
    let json = confirmation.json.as_ref().unwrap();
    assert_eq!(json["TopicArn"], TOPIC_IN_EU);
    assert!(
        json["SubscribeURL"]
            .as_str()
            .unwrap()
            .contains("TopicArn=arn%3Aaws%3Asns%3Aeu-west-1%3A123456789012%3APOC-Topic"),
        "{json}"
    );

    let id = app.submit(&order(&unique_id("arn"))).await;
    let notification = subscriber.notification_for(&id, SHORT).await;
    assert_eq!(notification.envelope["TopicArn"], TOPIC_IN_EU);
    assert_eq!(
        notification.request.header("x-amz-sns-topic-arn"),
        Some(TOPIC_IN_EU)
    );
    assert_eq!(
        notification.request.header("x-amz-sns-subscription-arn"),
        Some(arn.as_str())
    );
    let listed = app.subscriptions().await;
    assert_eq!(listed[0]["topicArn"], TOPIC_IN_EU);
    assert_eq!(listed[0]["subscriptionArn"], arn.as_str());
}

#[tokio::test]
async fn another_account_renames_the_subscriptions_and_links_sent_before_still_work() {
    let mut app = spawn_app_with(AppOptions::default()).await;
    let subscriber = TestSubscriber::start().await;
    let before = app.subscribe(&subscriber).await;
    assert!(before.starts_with(&format!("{TOPIC_IN_US}:")), "{before}");
    let id = app.submit(&order(&unique_id("arn"))).await;
    let link = subscriber.notification_for(&id, SHORT).await.envelope["UnsubscribeURL"]
        .as_str()
        .unwrap()
        .to_owned();

    app.options.extra_args.extend(
        [
            "--aws-region",
            "eu-west-1",
            "--aws-account-id",
            "123456789012",
        ]
        .map(String::from),
    );
    app.restart().await;
    let after = app.subscriptions().await[0]["subscriptionArn"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        after,
        format!("{TOPIC_IN_EU}:{}", before.rsplit(':').next().unwrap()),
        "the same subscription, named after the topic's new ARN"
    );
    let id = app.submit(&order(&unique_id("arn"))).await;
    let notification = subscriber.notification_for(&id, SHORT).await;
    assert_eq!(notification.envelope["TopicArn"], TOPIC_IN_EU);

    // The link names the old ARN and the server's old port: its path and query still
    // remove the subscription (the token is what authorises it).
    let path = &link[link.find("/subscriptions/unsubscribe").unwrap()..];
    let response = app.get(path).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(app.subscriptions().await.is_empty());
}

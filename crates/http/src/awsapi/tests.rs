//! Checks across the AWS protocols: the headers of their answers through the whole router,
//! and the names the embedded pollers' Lambda events give the queue and the stream.

use std::collections::BTreeMap;

use axum::body::Body;
use tower::ServiceExt;

use orderflow_core::OrderTable;
use orderflow_core::conformance::sample_order;
use orderflow_embedded::pollers::sqs_message;
use orderflow_embedded::{Engine, EngineConfig};
use serde_json::json;

use super::*;

/// An engine wired as `orderflow serve` wires it, answering as eu-west-2 and account
/// 123456789012 (neither is a default).
fn state_in_another_region(dir: &tempfile::TempDir) -> AppState {
    let aws = AwsSettings::new("eu-west-2", "123456789012", "orderflow");
    let mut config = EngineConfig::new(dir.path());
    config.event_sources = aws.event_sources();
    AppState::new(Engine::open(config).unwrap()).with_aws(aws)
}

/// A Lambda SQS event names its queue in `eventSourceARN` and its region in `awsRegion`
/// (the event example in <https://docs.aws.amazon.com/lambda/latest/dg/with-sqs.html>):
/// the store poller's events say what `GetQueueAttributes` answers as `QueueArn`.
#[tokio::test]
async fn the_store_handlers_event_names_the_queue_as_get_queue_attributes_does() {
    let dir = tempfile::tempdir().unwrap();
    let state = state_in_another_region(&dir);
    let sqs = sqs::Sqs::new(&state, "127.0.0.1:9");
    let url = sqs
        .call("GetQueueUrl", json!({"QueueName": sqs::ORDERS_QUEUE}))
        .await
        .unwrap()["QueueUrl"]
        .clone();
    let answered = sqs
        .call(
            "GetQueueAttributes",
            json!({"QueueUrl": url, "AttributeNames": ["QueueArn"]}),
        )
        .await
        .unwrap();

    let queue = state.engine.queue();
    queue.send("{}".into(), BTreeMap::new()).await.unwrap();
    let received = queue.receive_batch(1).await.unwrap().messages.remove(0);
    let record = sqs_message(&received, &state.engine.config().event_sources);

    assert_eq!(
        answered["Attributes"]["QueueArn"],
        "arn:aws:sqs:eu-west-2:123456789012:POC-Queue"
    );
    assert_eq!(
        record.event_source_arn.as_deref(),
        answered["Attributes"]["QueueArn"].as_str()
    );
    assert_eq!(record.aws_region.as_deref(), Some("eu-west-2"));
}

/// A Lambda DynamoDB Streams event names its stream in `eventSourceARN` and its region in
/// `awsRegion` (the event example in
/// <https://docs.aws.amazon.com/lambda/latest/dg/with-ddb.html>): the stream poller's
/// records say what `ListStreams` and `DescribeStream` answer as `StreamArn`.
#[tokio::test]
async fn the_publish_handlers_event_names_the_stream_as_describe_stream_does() {
    let dir = tempfile::tempdir().unwrap();
    let state = state_in_another_region(&dir);
    let streams = streams::Streams::new(&state);
    let listed = streams.call("ListStreams", json!({})).await.unwrap();
    let arn = listed["Streams"][0]["StreamArn"].clone();
    let described = streams
        .call("DescribeStream", json!({"StreamArn": arn}))
        .await
        .unwrap();

    state.engine.table().put_new(&sample_order()).await.unwrap();
    let (_, record) = state
        .engine
        .stream()
        .read(1)
        .await
        .unwrap()
        .records
        .remove(0);

    assert!(
        arn.as_str()
            .unwrap()
            .starts_with("arn:aws:dynamodb:eu-west-2:123456789012:table/orders/stream/"),
        "{arn}"
    );
    assert_eq!(
        record.event_source_arn.as_deref(),
        described["StreamDescription"]["StreamArn"].as_str()
    );
    assert_eq!(record.event_source_arn.as_deref(), arn.as_str());
    assert_eq!(record.aws_region, "eu-west-2");
}

/// An AWS JSON 1.0 request through the router `orderflow serve` runs (no key: unsigned).
async fn post_aws(
    state: &AppState,
    target: &str,
    input: serde_json::Value,
) -> (HeaderMap, Vec<u8>) {
    let request = Request::post("/")
        .header(header::CONTENT_TYPE, AMZ_JSON_1_0)
        .header("x-amz-target", target)
        .body(Body::from(input.to_string()))
        .unwrap();
    let response = crate::router(state.clone()).oneshot(request).await.unwrap();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (headers, body.to_vec())
}

/// DynamoDB sends `x-amz-crc32`, the CRC32 of the body in decimal, on every answer, and the
/// SDKs retry an answer whose body does not match it (botocore `retryhandler.CRC32Checker`).
#[tokio::test]
async fn dynamodb_answers_and_errors_carry_the_crc32_of_their_body() {
    let dir = tempfile::tempdir().unwrap();
    let state = AppState::new(Engine::open(EngineConfig::new(dir.path())).unwrap());
    for (target, input) in [
        (
            "DynamoDB_20120810.DescribeTable",
            json!({"TableName": "orders"}),
        ),
        (
            "DynamoDB_20120810.DescribeTable",
            json!({"TableName": "other"}),
        ),
        ("DynamoDB_20120810.NoSuchOperation", json!({})),
    ] {
        let (headers, body) = post_aws(&state, target, input).await;
        assert!(!body.is_empty());
        assert_eq!(
            headers
                .get(crc32::HEADER)
                .map(|v| v.to_str().unwrap().to_owned()),
            Some(crc32::of(&body).to_string()),
            "{target}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    let (sqs, _) = post_aws(&state, "AmazonSQS.ListQueues", json!({})).await;
    assert!(sqs.get(crc32::HEADER).is_none(), "only DynamoDB sends it");
}

/// An AWS answer carries the service's headers, not the `Allow: GET,HEAD` axum gives to
/// what a route's method fallback answers (the portal's `/` takes only GET).
#[tokio::test]
async fn aws_answers_carry_no_allow_header() {
    let dir = tempfile::tempdir().unwrap();
    let state = AppState::new(Engine::open(EngineConfig::new(dir.path())).unwrap());
    for target in [
        "AmazonSQS.ListQueues",
        "DynamoDB_20120810.ListTables",
        "DynamoDBStreams_20120810.ListStreams",
        "AmazonSQS.NoSuchOperation",
    ] {
        let (headers, _) = post_aws(&state, target, json!({})).await;
        assert!(headers.get("x-amzn-requestid").is_some(), "{target}");
        assert!(
            headers.get(header::ALLOW).is_none(),
            "{target}: {headers:?}"
        );
    }
}

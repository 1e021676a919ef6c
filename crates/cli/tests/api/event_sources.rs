//! The Lambda events the embedded pollers hand the handlers name the queue and the stream
//! as the AWS protocols do (`--aws-region`, `--aws-account-id`), as a Lambda event names
//! the resources its event source mapping reads: `eventSourceARN` and `awsRegion` in
//! <https://docs.aws.amazon.com/lambda/latest/dg/with-ddb.html> and
//! <https://docs.aws.amazon.com/lambda/latest/dg/with-sqs.html>.

use serde_json::{Value, json};

use crate::helpers::{
    AppOptions, SHORT, TestApp, append_unpublishable_stream_record, json_of, spawn_app_with,
    wait_for,
};

/// An unsigned AWS JSON 1.0 request (no API key is set, so none is needed).
async fn aws(app: &TestApp, target: &str, input: Value) -> Value {
    let response = app
        .client
        .post(app.endpoint("/"))
        .header("content-type", "application/x-amz-json-1.0")
        .header("x-amz-target", target)
        .body(input.to_string())
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(response).await;
    assert_eq!(status, 200, "{target}: {body}");
    body
}

/// The publish handler's event is observable: a record it fails on is kept, as the handler
/// received it, in the stream's on-failure destination (`GET /stream/failures`).
#[tokio::test]
async fn the_publish_handlers_event_names_the_stream_and_region_that_describe_stream_answers() {
    let mut app = spawn_app_with(AppOptions::fast_retries().with_args(&[
        "--aws-region",
        "ap-southeast-2",
        "--aws-account-id",
        "210987654321",
    ]))
    .await;
    app.stop().await;
    append_unpublishable_stream_record(&app, "no-such-order");
    app.restart().await;

    let listed = aws(&app, "DynamoDBStreams_20120810.ListStreams", json!({})).await;
    let arn = listed["Streams"][0]["StreamArn"].clone();
    let described = aws(
        &app,
        "DynamoDBStreams_20120810.DescribeStream",
        json!({"StreamArn": arn}),
    )
    .await;
    let record = wait_for(
        SHORT,
        "the record in the on-failure destination",
        async || {
            let (_, body) = app.get_json("/stream/failures").await;
            match body["records"].as_array().and_then(|r| r.first()) {
                Some(failure) => Ok(failure["record"].clone()),
                None => Err(body.to_string()),
            }
        },
    )
    .await;

    assert!(
        arn.as_str()
            .unwrap()
            .starts_with("arn:aws:dynamodb:ap-southeast-2:210987654321:table/orders/stream/"),
        "{arn}"
    );
    assert_eq!(
        record["eventSourceARN"], described["StreamDescription"]["StreamArn"],
        "{record}"
    );
    assert_eq!(record["awsRegion"], "ap-southeast-2", "{record}");
}

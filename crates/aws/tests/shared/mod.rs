//! What the moto and the serve test targets share: SDK clients for an endpoint, the Lambda
//! Runtime API harness, reading a queue and a table's stream through the SDKs, and the
//! fixture the store function is fed.

pub mod runtime;
// The sandbox's environment and invocation headers, as the Lambda start-up bench has them.
#[path = "../../../lambda-bench/src/sandbox.rs"]
mod sandbox;

use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_dynamodb::config::{Credentials, Region};
use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use serde_json::{Value, json};

pub const REGION: &str = "us-east-1";

/// An AWS endpoint of our tests' (moto, or `orderflow serve`): its URL and the SDK
/// configuration that reaches it.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub url: String,
    pub config: SdkConfig,
    /// The endpoint's name, which the Lambda binaries get as dummy credentials.
    name: &'static str,
}

impl Endpoint {
    /// `name` (`moto`, `serve`) at `url`, its SDK clients signing with `access_key_id` and
    /// `secret`.
    pub async fn new(name: &'static str, url: &str, access_key_id: &str, secret: &str) -> Endpoint {
        Endpoint {
            url: url.to_owned(),
            config: sdk_config(name, url, access_key_id, secret).await,
            name,
        }
    }

    pub fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&self.config)
    }

    pub fn streams(&self) -> aws_sdk_dynamodbstreams::Client {
        aws_sdk_dynamodbstreams::Client::new(&self.config)
    }

    pub fn sns(&self) -> aws_sdk_sns::Client {
        aws_sdk_sns::Client::new(&self.config)
    }

    pub fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.config)
    }

    /// The environment a Lambda binary gets: this endpoint, dummy credentials, `extra`, and
    /// nothing inherited that could reach a real account.
    pub fn lambda_env(&self, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.url.as_str()),
            ("AWS_REGION", REGION),
            ("AWS_ACCESS_KEY_ID", self.name),
            ("AWS_SECRET_ACCESS_KEY", self.name),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ]
        .into_iter()
        .chain(extra.iter().copied())
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }
}

/// SDK configuration for the endpoint `name` at `url` in [`REGION`], signing with
/// `access_key_id` and `secret`.
pub async fn sdk_config(
    name: &'static str,
    url: &str,
    access_key_id: &str,
    secret: &str,
) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(url)
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new(access_key_id, secret, None, None, name))
        .load()
        .await
}

/// Says loudly that the tests were skipped and why, in a box of `lines`; straight to stderr,
/// as libtest captures `eprintln!` of passing tests.
pub fn say_skipped(lines: &[&str]) {
    let rule = "#".repeat(64);
    let mut text = format!("\n{rule}\n");
    for line in lines {
        text.push_str(&format!("# {line:<60} #\n"));
    }
    text.push_str(&rule);
    text.push('\n');
    let _ = std::io::stderr().write_all(text.as_bytes());
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// The SQS event fixture (two good orders, one bad record) the store function is fed.
pub fn sqs_event_fixture() -> Value {
    serde_json::from_str(include_str!("../../fixtures/sqs-event.json")).expect("fixture JSON")
}

/// Receives (and deletes) until `expected` messages arrived or ten seconds passed; returns
/// the bodies, which must be JSON.
pub async fn receive(sqs: &aws_sdk_sqs::Client, queue_url: &str, expected: usize) -> Vec<Value> {
    let mut bodies = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while bodies.len() < expected && tokio::time::Instant::now() < deadline {
        let output = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive a message");
        for message in output.messages.unwrap_or_default() {
            let body = message.body.expect("a body");
            bodies.push(serde_json::from_str(&body).expect("the body is JSON"));
            sqs.delete_message()
                .queue_url(queue_url)
                .receipt_handle(message.receipt_handle.expect("a receipt handle"))
                .send()
                .await
                .expect("delete a message");
        }
    }
    bodies
}

/// Everything on a table's stream so far, as the Lambda event the stream's event source
/// mapping would deliver (`aws_lambda_events::dynamodb::Event` JSON).
pub async fn stream_event(streams: &aws_sdk_dynamodbstreams::Client, stream_arn: &str) -> Value {
    let shards = streams
        .describe_stream()
        .stream_arn(stream_arn)
        .send()
        .await
        .expect("describe the stream")
        .stream_description
        .and_then(|d| d.shards)
        .unwrap_or_default();
    let mut records = Vec::new();
    for shard in shards {
        let mut iterator = streams
            .get_shard_iterator()
            .stream_arn(stream_arn)
            .shard_id(shard.shard_id.expect("a shard id"))
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .expect("a shard iterator")
            .shard_iterator;
        // An open shard always hands back a next iterator: stop at the first empty page.
        for _ in 0..100 {
            let Some(it) = iterator else { break };
            let page = streams
                .get_records()
                .shard_iterator(it)
                .send()
                .await
                .expect("stream records");
            let batch = page.records.unwrap_or_default();
            if batch.is_empty() {
                break;
            }
            records.extend(batch.into_iter().map(|r| lambda_record(r, stream_arn)));
            iterator = page.next_shard_iterator;
        }
    }
    json!({ "Records": records })
}

fn lambda_record(record: aws_sdk_dynamodbstreams::types::Record, stream_arn: &str) -> Value {
    let change = record.dynamodb.expect("a stream record");
    let item = |image: Option<HashMap<String, aws_sdk_dynamodbstreams::types::AttributeValue>>| {
        serde_json::to_value(serde_dynamo::Item::from(image.unwrap_or_default()))
            .expect("an item is JSON")
    };
    json!({
        "eventID": record.event_id,
        "eventName": record.event_name.map(|n| n.as_str().to_owned()),
        "eventVersion": record.event_version,
        "eventSource": record.event_source,
        "awsRegion": record.aws_region,
        "eventSourceARN": stream_arn,
        "dynamodb": {
            "ApproximateCreationDateTime": change.approximate_creation_date_time.map(|t| t.secs()),
            "Keys": item(change.keys),
            "NewImage": item(change.new_image),
            "SequenceNumber": change.sequence_number,
            "SizeBytes": change.size_bytes,
            "StreamViewType": change.stream_view_type.map(|v| v.as_str().to_owned()),
        }
    })
}

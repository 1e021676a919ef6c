//! DynamoDB Streams' JSON protocol (`X-Amz-Target: DynamoDBStreams_20120810.<Operation>`) on
//! the `orders` table's change log, read without consuming it: no consumer's checkpoint moves.
//! Operations, parameters and errors follow the DynamoDB Streams API reference:
//! <https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_Operations_Amazon_DynamoDB_Streams.html>

mod describe;
mod iterator;
mod records;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::AwsError;
use crate::AppState;

/// The table's one shard. DynamoDB rolls shards over every few hours; the local change log
/// is one sequence that never closes, so it is one open shard whose id never changes.
pub(super) const SHARD_ID: &str = "shardId-00000000000000000001-00000000";

pub(super) struct Streams<'a> {
    state: &'a AppState,
}

impl<'a> Streams<'a> {
    pub(super) fn new(state: &'a AppState) -> Self {
        Streams { state }
    }

    pub(super) async fn call(&self, operation: &str, input: Value) -> Result<Value, AwsError> {
        match operation {
            "ListStreams" => self.list_streams(parse(input)?),
            "DescribeStream" => self.describe_stream(parse(input)?).await,
            "GetShardIterator" => self.get_shard_iterator(parse(input)?).await,
            "GetRecords" => self.get_records(parse(input)?).await,
            _ => Err(coral(
                "UnknownOperationException",
                format!("orderflow serve does not serve DynamoDB Streams' {operation:?}."),
            )),
        }
    }

    /// Checks that `arn` names the table's stream (DynamoDB's message for another one).
    fn check_stream(&self, arn: Option<&str>) -> Result<(), AwsError> {
        let arn = required(arn, "streamArn")?;
        if arn == self.state.aws.stream_arn() {
            Ok(())
        } else {
            Err(resource_not_found(format!(
                "Requested resource not found: Stream: {arn} not found"
            )))
        }
    }
}

fn parse<T: DeserializeOwned>(input: Value) -> Result<T, AwsError> {
    serde_json::from_value(input).map_err(|e| {
        coral(
            "SerializationException",
            format!("The request does not match the operation's input: {e}"),
        )
    })
}

/// An error DynamoDB's front end (Coral) raises before an operation runs.
fn coral(shape: &str, message: impl Into<String>) -> AwsError {
    AwsError {
        type_name: format!("com.amazon.coral.service#{shape}"),
        ..AwsError::streams(shape, message)
    }
}

/// A required member, named as DynamoDB's validation messages name it (camelCase).
fn required<'v>(value: Option<&'v str>, member: &str) -> Result<&'v str, AwsError> {
    value.ok_or_else(|| {
        validation(format!(
            "1 validation error detected: Value null at '{member}' failed to satisfy constraint: Member must not be null"
        ))
    })
}

/// `Limit` within `1..=max`, or DynamoDB's validation message for it.
fn limit(value: Option<i64>, max: usize, default: usize) -> Result<usize, AwsError> {
    match value {
        None => Ok(default),
        Some(n) if n >= 1 && n as usize <= max => Ok(n as usize),
        Some(n) => Err(validation(format!(
            "1 validation error detected: Value '{n}' at 'limit' failed to satisfy constraint: Member must have value {}",
            if n < 1 {
                "greater than or equal to 1".to_owned()
            } else {
                format!("less than or equal to {max}")
            }
        ))),
    }
}

fn resource_not_found(message: impl Into<String>) -> AwsError {
    AwsError::streams("ResourceNotFoundException", message)
}

fn validation(message: impl Into<String>) -> AwsError {
    AwsError::streams("ValidationException", message)
}

fn trimmed(message: impl Into<String>) -> AwsError {
    AwsError::streams("TrimmedDataAccessException", message)
}

fn expired_iterator() -> AwsError {
    AwsError::streams(
        "ExpiredIteratorException",
        "Iterator expired. The iterator was created more than 15 minutes ago.",
    )
}

fn internal(e: orderflow_embedded::DbError) -> AwsError {
    tracing::error!(error = %orderflow_core::error_chain(&e), "a DynamoDB Streams request failed");
    AwsError {
        status: axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        sender_fault: false,
        ..AwsError::streams(
            "InternalServerError",
            "An error occurred on the server side.",
        )
    }
}

#[cfg(test)]
mod tests {
    use axum::response::IntoResponse;
    use orderflow_embedded::{Engine, EngineConfig};
    use serde_json::json;

    use super::iterator::{LIFETIME_MS, ShardIterator};
    use super::*;

    /// "A shard iterator expires 15 minutes after it is returned to the requester", and
    /// GetRecords then raises ExpiredIteratorException (API_streams_GetRecords.html), in
    /// DynamoDB's JSON error shape, which is not query-compatible (no `x-amzn-query-error`).
    #[tokio::test]
    async fn get_records_with_an_iterator_older_than_fifteen_minutes_is_expired() {
        let dir = tempfile::tempdir().unwrap();
        let state = AppState::new(Engine::open(EngineConfig::new(dir.path())).unwrap());
        let streams = Streams::new(&state);
        let issued = chrono::Utc::now().timestamp_millis() - LIFETIME_MS - 1000;
        let old = ShardIterator {
            after: 0,
            issued_ms: issued,
        }
        .encode(&state.aws.stream_arn());
        let e = streams
            .call("GetRecords", json!({"ShardIterator": old}))
            .await
            .unwrap_err();
        let response = e.into_response();
        assert_eq!(response.status(), 400);
        assert!(response.headers().get("x-amzn-query-error").is_none());
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            body["__type"],
            "com.amazonaws.dynamodb.v20120810#ExpiredIteratorException"
        );
        let fresh = ShardIterator {
            after: 0,
            issued_ms: issued + 2000,
        }
        .encode(&state.aws.stream_arn());
        let page = streams
            .call("GetRecords", json!({"ShardIterator": fresh}))
            .await
            .unwrap();
        assert_eq!(page["Records"], json!([]));
    }
}

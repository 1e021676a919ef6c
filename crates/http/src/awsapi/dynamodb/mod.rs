//! DynamoDB's JSON protocol (`X-Amz-Target: DynamoDB_20120810.<Operation>`) on the one
//! table, `orders`. Operations, parameters and errors follow the DynamoDB API reference:
//! <https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_Operations_Amazon_DynamoDB.html>

mod capacity;
mod expressions;
mod grammar;
/// Also SNS's: its Number message attributes read the same way.
pub(in crate::awsapi) mod numbers;
mod paths;
mod put;
mod reads;
mod values;

use std::collections::HashMap;

use axum::http::StatusCode;
use orderflow_core::item::to_item;
use orderflow_core::{ContentHash, StoredOrder};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_dynamo::{AttributeValue, Item};
use serde_json::{Value, json};

use super::error::Shape;
use super::{AwsError, STREAM_LABEL, TABLE_NAME};
use crate::AppState;

/// The table's partition key (a string), as on AWS.
pub const KEY: &str = "orderID";

/// The order's content hash, which `DynamoDbOrderTable` writes beside the order's attributes
/// (crates/aws/src/table.rs) and reads back to tell a resend from a conflict.
pub const CONTENT_HASH: &str = "contentHash";

const ERROR_PREFIX: &str = "com.amazonaws.dynamodb.v20120810#";

/// A modeled DynamoDB error (all are 400 but the server's own):
/// <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Programming.Errors.html>
fn error(code: &str, message: impl Into<String>) -> AwsError {
    AwsError::json(
        StatusCode::BAD_REQUEST,
        format!("{ERROR_PREFIX}{code}"),
        message,
    )
}

pub(super) fn validation(message: impl Into<String>) -> AwsError {
    error("ValidationException", message)
}

fn resource_not_found() -> AwsError {
    error("ResourceNotFoundException", "Requested resource not found")
}

/// `e`, raised before dispatch in SQS's shape, in DynamoDB's: its authentication errors
/// are `UnrecognizedClientException`, `InvalidSignatureException`, ... (400), malformed
/// input is a `SerializationException` or `ValidationException`, an unknown target an
/// `UnknownOperationException` (Programming.Errors.html above).
pub(in crate::awsapi) fn error_shape(e: AwsError) -> AwsError {
    if matches!(e.shape, Shape::Json(_)) {
        return e;
    }
    const CORAL: &str = "com.amazon.coral.service#";
    let (status, type_name) = match e.query_code.as_str() {
        "InvalidClientTokenId" => (
            StatusCode::BAD_REQUEST,
            format!("{CORAL}UnrecognizedClientException"),
        ),
        "SignatureDoesNotMatch" => (
            StatusCode::BAD_REQUEST,
            format!("{CORAL}InvalidSignatureException"),
        ),
        "MissingAuthenticationToken" | "IncompleteSignature" => (
            StatusCode::BAD_REQUEST,
            format!("{CORAL}{}Exception", e.query_code),
        ),
        "SerializationException" => (
            StatusCode::BAD_REQUEST,
            format!("{CORAL}SerializationException"),
        ),
        "AWS.SimpleQueueService.UnsupportedOperation" => (
            StatusCode::BAD_REQUEST,
            format!("{CORAL}UnknownOperationException"),
        ),
        "ServiceUnavailable" => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{ERROR_PREFIX}ServiceUnavailable"),
        ),
        "InternalError" => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{ERROR_PREFIX}InternalServerError"),
        ),
        _ => (
            StatusCode::BAD_REQUEST,
            format!("{ERROR_PREFIX}ValidationException"),
        ),
    };
    AwsError::json(status, type_name, e.message)
}

fn input<T: DeserializeOwned>(value: Value) -> Result<T, AwsError> {
    serde_json::from_value(value).map_err(|e| {
        AwsError::json(
            StatusCode::BAD_REQUEST,
            "com.amazon.coral.service#SerializationException".into(),
            format!("The request does not match the operation's input: {e}"),
        )
    })
}

pub(super) struct DynamoDb<'a> {
    state: &'a AppState,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TableInput {
    table_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListTablesInput {
    exclusive_start_table_name: Option<String>,
    limit: Option<i64>,
}

impl<'a> DynamoDb<'a> {
    pub fn new(state: &'a AppState) -> Self {
        DynamoDb { state }
    }

    pub async fn call(&self, operation: &str, body: Value) -> Result<Value, AwsError> {
        match operation {
            "DescribeTable" => self.describe_table(input(body)?).await,
            "ListTables" => self.list_tables(input(body)?),
            "GetItem" => self.get_item(input(body)?).await,
            "BatchGetItem" => self.batch_get_item(input(body)?).await,
            "Query" => self.query(input(body)?).await,
            "Scan" => self.scan(input(body)?).await,
            "PutItem" => self.put_item(input(body)?).await,
            _ => Err(AwsError::json(
                StatusCode::BAD_REQUEST,
                "com.amazon.coral.service#UnknownOperationException".into(),
                format!(
                    "orderflow serve does not serve the DynamoDB operation {operation:?}; it serves DescribeTable, ListTables, GetItem, BatchGetItem, Query, Scan and PutItem on the table {TABLE_NAME}."
                ),
            )),
        }
    }

    /// Checks that a request names the `orders` table, by name or ARN.
    fn table(&self, name: Option<&str>) -> Result<(), AwsError> {
        match name {
            None | Some("") => Err(validation(
                "1 validation error detected: Value null at 'tableName' failed to satisfy constraint: Member must not be null",
            )),
            Some(TABLE_NAME) => Ok(()),
            Some(arn) if arn == self.state.aws.table_arn() => Ok(()),
            Some(_) => Err(resource_not_found()),
        }
    }

    /// <https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_DescribeTable.html>
    async fn describe_table(&self, input: TableInput) -> Result<Value, AwsError> {
        self.table(input.table_name.as_deref())?;
        let count = self
            .state
            .engine
            .table()
            .count()
            .await
            .map_err(AwsError::internal)?;
        let aws = &self.state.aws;
        // The table and its stream exist as long as the data directory does; their creation
        // time is the stream label's (see STREAM_LABEL).
        Ok(json!({"Table": {
            "TableName": TABLE_NAME,
            "TableArn": aws.table_arn(),
            "TableStatus": "ACTIVE",
            "CreationDateTime": 0,
            "AttributeDefinitions": [{"AttributeName": KEY, "AttributeType": "S"}],
            "KeySchema": [{"AttributeName": KEY, "KeyType": "HASH"}],
            "ItemCount": count,
            "BillingModeSummary": {
                "BillingMode": "PAY_PER_REQUEST",
                "LastUpdateToPayPerRequestDateTime": 0,
            },
            // An on-demand table reports zero provisioned capacity.
            "ProvisionedThroughput": {
                "NumberOfDecreasesToday": 0,
                "ReadCapacityUnits": 0,
                "WriteCapacityUnits": 0,
            },
            "StreamSpecification": {"StreamEnabled": true, "StreamViewType": "NEW_IMAGE"},
            "LatestStreamLabel": STREAM_LABEL,
            "LatestStreamArn": aws.stream_arn(),
            "DeletionProtectionEnabled": false,
        }}))
    }

    /// <https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_ListTables.html>
    fn list_tables(&self, input: ListTablesInput) -> Result<Value, AwsError> {
        if let Some(limit) = input.limit
            && !(1..=100).contains(&limit)
        {
            return Err(validation(format!(
                "1 validation error detected: Value '{limit}' at 'limit' failed to satisfy constraint: Member must have value between 1 and 100"
            )));
        }
        let names: Vec<&str> = match input.exclusive_start_table_name.as_deref() {
            Some(start) if start >= TABLE_NAME => vec![],
            _ => vec![TABLE_NAME],
        };
        Ok(json!({"TableNames": names}))
    }
}

/// The item DynamoDB holds for a stored order: what `DynamoDbOrderTable` writes, the
/// order's attributes and its content hash.
fn item_of(order: &StoredOrder) -> Item {
    let mut item = to_item(order);
    item.insert(
        CONTENT_HASH.to_owned(),
        AttributeValue::S(ContentHash::of(&order.order).to_hex()),
    );
    item
}

/// An item on the wire (`{"orderID": {"S": ...}, ...}`).
fn wire(item: &Item) -> Value {
    serde_json::to_value(item).expect("items serialize")
}

/// "The maximum length of a partition key value is 2048 bytes"
/// (<https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Constraints.html#limits-partition-sort-keys>).
const MAX_KEY_BYTES: usize = 2048;

/// DynamoDB's refusal of a partition key past 2048 bytes; its message has no space before
/// the number (moto copies it so: moto/dynamodb/exceptions.py, `HashKeyTooLong`).
fn key_too_long() -> AwsError {
    validation(format!(
        "One or more parameter values were invalid: Size of hashkey has exceeded the maximum size limit of{MAX_KEY_BYTES} bytes"
    ))
}

/// The order id a `Key` names: exactly the partition key, a string.
fn key_id(key: &HashMap<String, AttributeValue>) -> Result<String, AwsError> {
    match (key.len(), key.get(KEY)) {
        (1, Some(AttributeValue::S(id))) if id.is_empty() => Err(validation(format!(
            "One or more parameter values are not valid. The AttributeValue for a key attribute cannot contain an empty string value. Key: {KEY}"
        ))),
        (1, Some(AttributeValue::S(id))) if id.len() > MAX_KEY_BYTES => Err(key_too_long()),
        (1, Some(AttributeValue::S(id))) => Ok(id.clone()),
        _ => Err(validation(
            "The provided key element does not match the schema",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_exactly_the_partition_key_as_a_string() {
        let key = |pairs: &[(&str, AttributeValue)]| -> HashMap<String, AttributeValue> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect()
        };
        assert_eq!(
            key_id(&key(&[(KEY, AttributeValue::S("o-1".into()))])).unwrap(),
            "o-1"
        );
        let long = key(&[(KEY, AttributeValue::S("x".repeat(2049)))]);
        assert!(
            key_id(&long)
                .unwrap_err()
                .message
                .ends_with("maximum size limit of2048 bytes")
        );
        assert!(key_id(&key(&[(KEY, AttributeValue::S("x".repeat(2048)))])).is_ok());
        for bad in [
            key(&[(KEY, AttributeValue::N("1".into()))]),
            key(&[("id", AttributeValue::S("o-1".into()))]),
            key(&[
                (KEY, AttributeValue::S("o-1".into())),
                ("x", AttributeValue::S("y".into())),
            ]),
            key(&[]),
        ] {
            let e = key_id(&bad).unwrap_err();
            assert_eq!(
                e.message,
                "The provided key element does not match the schema"
            );
        }
    }

    #[test]
    fn errors_raised_before_dispatch_take_dynamodbs_shape() {
        let e = error_shape(AwsError::auth("InvalidClientTokenId", "bad key"));
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(
            e.type_name,
            "com.amazon.coral.service#UnrecognizedClientException"
        );
        let e = error_shape(AwsError::invalid_parameter("too large"));
        assert_eq!(
            e.type_name,
            "com.amazonaws.dynamodb.v20120810#ValidationException"
        );
        assert!(matches!(e.shape, Shape::Json(_)));
    }
}

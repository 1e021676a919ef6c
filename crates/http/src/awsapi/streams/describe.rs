//! `ListStreams` and `DescribeStream`: the `orders` table's one stream and its one shard.

use orderflow_embedded::stream::sequence_number;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AwsError, SHARD_ID, Streams, internal, limit, resource_not_found, validation};
use crate::awsapi::{STREAM_LABEL, TABLE_NAME};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ListStreamsInput {
    table_name: Option<String>,
    limit: Option<i64>,
    exclusive_start_stream_arn: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct DescribeStreamInput {
    stream_arn: Option<String>,
    limit: Option<i64>,
    exclusive_start_shard_id: Option<String>,
    shard_filter: Option<ShardFilter>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ShardFilter {
    r#type: Option<String>,
    shard_id: Option<String>,
}

/// ListStreams and DescribeStream page with a `Limit` whose model sets only a minimum (1);
/// the one stream and its one shard always fit a page.
fn check_limit(value: Option<i64>) -> Result<(), AwsError> {
    limit(value, usize::MAX, 1).map(|_| ())
}

impl Streams<'_> {
    /// <https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_streams_ListStreams.html>
    pub(super) fn list_streams(&self, input: ListStreamsInput) -> Result<Value, AwsError> {
        check_limit(input.limit)?;
        if let Some(table) = input.table_name.as_deref()
            && table != TABLE_NAME
        {
            return Err(resource_not_found(format!(
                "Requested resource not found: Table: {table} not found"
            )));
        }
        let arn = self.state.aws.stream_arn();
        // The one stream is the whole list: a page that starts after it is empty.
        let streams = if input.exclusive_start_stream_arn.as_deref() == Some(arn.as_str()) {
            vec![]
        } else {
            vec![json!({"StreamArn": arn, "TableName": TABLE_NAME, "StreamLabel": STREAM_LABEL})]
        };
        Ok(json!({ "Streams": streams }))
    }

    /// <https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_streams_DescribeStream.html>
    pub(super) async fn describe_stream(
        &self,
        input: DescribeStreamInput,
    ) -> Result<Value, AwsError> {
        self.check_stream(input.stream_arn.as_deref())?;
        check_limit(input.limit)?;
        let (bounds, _) = self
            .state
            .engine
            .stream()
            .bounds(None)
            .await
            .map_err(internal)?;
        // The shard starts at its oldest record still kept (retention trims older ones),
        // or, while it holds none, at the next one it will hold. It never closes, so it
        // has no EndingSequenceNumber.
        let starting = bounds.oldest.unwrap_or(bounds.latest + 1);
        let shards = if input.exclusive_start_shard_id.as_deref() == Some(SHARD_ID) {
            vec![]
        } else if let Some(filter) = input.shard_filter {
            // `CHILD_SHARDS` of a shard: the one shard never splits, so it has none.
            match filter.r#type.as_deref() {
                Some("CHILD_SHARDS") if filter.shard_id.is_some() => vec![],
                _ => {
                    return Err(validation(
                        "ShardFilter must have Type CHILD_SHARDS and a ShardId",
                    ));
                }
            }
        } else {
            vec![json!({
                "ShardId": SHARD_ID,
                "SequenceNumberRange": {"StartingSequenceNumber": sequence_number(starting)},
            })]
        };
        Ok(json!({"StreamDescription": {
            "StreamArn": self.state.aws.stream_arn(),
            "StreamLabel": STREAM_LABEL,
            "StreamStatus": "ENABLED",
            "StreamViewType": "NEW_IMAGE",
            // When the stream was enabled: the moment its label names.
            "CreationRequestDateTime": 0,
            "TableName": TABLE_NAME,
            "KeySchema": [{"AttributeName": "orderID", "KeyType": "HASH"}],
            "Shards": shards,
        }}))
    }
}

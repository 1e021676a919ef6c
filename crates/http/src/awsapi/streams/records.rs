//! `GetShardIterator` and `GetRecords`: positions in the change log and the records after
//! them, shaped as DynamoDB Streams returns them.

use orderflow_embedded::stream::{LogBounds, LoggedChange, sequence_number};
use serde::Deserialize;
use serde_json::{Value, json};

use super::iterator::{IteratorError, ShardIterator};
use super::{
    AwsError, SHARD_ID, Streams, expired_iterator, internal, limit, required, resource_not_found,
    trimmed, validation,
};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct GetShardIteratorInput {
    stream_arn: Option<String>,
    shard_id: Option<String>,
    shard_iterator_type: Option<String>,
    sequence_number: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct GetRecordsInput {
    shard_iterator: Option<String>,
    limit: Option<i64>,
}

/// "GetRecords can retrieve a maximum of 1 MB of data or 1000 stream records, whichever
/// comes first." (API_streams_GetRecords.html)
const MAX_RECORDS: usize = 1000;
const MAX_BYTES: i64 = 1024 * 1024;

/// Everything after this sequence number is still kept; a position before it would skip
/// records retention trimmed.
fn horizon(bounds: LogBounds) -> i64 {
    bounds.oldest.map_or(bounds.latest, |oldest| oldest - 1)
}

/// Where a new iterator starts (`ShardIteratorType`, with its `SequenceNumber`).
enum Start<'a> {
    TrimHorizon,
    Latest,
    At(&'a str),
    After(&'a str),
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn trimmed_before(after: i64) -> AwsError {
    trimmed(format!(
        "The records after sequence number {} are beyond the trim horizon: retention removed them.",
        sequence_number(after)
    ))
}

/// A sequence number of this shard: DynamoDB's are decimal strings of 21 to 40 digits.
fn parse_sequence(text: &str, latest: i64) -> Result<i64, AwsError> {
    let invalid = || validation(format!("Invalid SequenceNumber: {text}"));
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let n: i64 = text.parse().map_err(|_| invalid())?;
    if n < 1 || n > latest {
        return Err(validation(format!(
            "Invalid SequenceNumber: {text} is not a sequence number of shard {SHARD_ID}"
        )));
    }
    Ok(n)
}

impl Streams<'_> {
    /// <https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_streams_GetShardIterator.html>
    pub(super) async fn get_shard_iterator(
        &self,
        input: GetShardIteratorInput,
    ) -> Result<Value, AwsError> {
        self.check_stream(input.stream_arn.as_deref())?;
        let shard = required(input.shard_id.as_deref(), "shardId")?;
        if shard != SHARD_ID {
            return Err(resource_not_found(format!(
                "Requested resource not found: Shard does not exist: {shard}"
            )));
        }
        let kind = required(input.shard_iterator_type.as_deref(), "shardIteratorType")?;
        let sequence = || required(input.sequence_number.as_deref(), "sequenceNumber");
        let start = match kind {
            "TRIM_HORIZON" => Start::TrimHorizon,
            "LATEST" => Start::Latest,
            "AT_SEQUENCE_NUMBER" => Start::At(sequence()?),
            "AFTER_SEQUENCE_NUMBER" => Start::After(sequence()?),
            other => {
                return Err(validation(format!(
                    "1 validation error detected: Value '{other}' at 'shardIteratorType' failed to satisfy constraint: Member must satisfy enum value set: [AFTER_SEQUENCE_NUMBER, LATEST, AT_SEQUENCE_NUMBER, TRIM_HORIZON]"
                )));
            }
        };
        let stream = self.state.engine.stream();
        let (bounds, _) = stream.bounds(None).await.map_err(internal)?;
        let after = match start {
            Start::TrimHorizon => horizon(bounds),
            Start::Latest => bounds.latest,
            Start::At(text) => {
                let n = parse_sequence(text, bounds.latest)?;
                if !stream.bounds(Some(n)).await.map_err(internal)?.1 {
                    return Err(trimmed(format!(
                        "The record with sequence number {text} was trimmed: retention removed it."
                    )));
                }
                n - 1
            }
            Start::After(text) => {
                let n = parse_sequence(text, bounds.latest)?;
                if n < horizon(bounds) {
                    return Err(trimmed_before(n));
                }
                n
            }
        };
        let iterator = ShardIterator {
            after,
            issued_ms: now_ms(),
        };
        Ok(json!({"ShardIterator": iterator.encode(&self.state.aws.stream_arn())}))
    }

    /// <https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_streams_GetRecords.html>
    pub(super) async fn get_records(&self, input: GetRecordsInput) -> Result<Value, AwsError> {
        let text = required(input.shard_iterator.as_deref(), "shardIterator")?;
        let arn = self.state.aws.stream_arn();
        let iterator = ShardIterator::decode(text, &arn, now_ms()).map_err(|e| match e {
            IteratorError::Expired => expired_iterator(),
            IteratorError::Invalid => validation("Invalid ShardIterator"),
        })?;
        let limit = limit(input.limit, MAX_RECORDS, MAX_RECORDS)?;
        let (bounds, changes) = self
            .state
            .engine
            .stream()
            .changes_after(iterator.after, limit)
            .await
            .map_err(internal)?;
        if iterator.after < horizon(bounds) {
            return Err(trimmed_before(iterator.after));
        }
        let mut after = iterator.after;
        let mut bytes = 0;
        let mut records = Vec::with_capacity(changes.len());
        for change in changes {
            bytes += change.size_bytes;
            if bytes > MAX_BYTES && !records.is_empty() {
                break;
            }
            after = change.seq;
            records.push(record(change, &self.state.aws.region)?);
        }
        let next = ShardIterator {
            after,
            issued_ms: now_ms(),
        };
        // The shard never closes, so there is always a next iterator.
        Ok(json!({"Records": records, "NextShardIterator": next.encode(&arn)}))
    }
}

/// One record as DynamoDB Streams' `Record` shape has it (API_streams_Record.html):
/// unlike a Lambda event's record it names no `eventSourceARN`.
fn record(change: LoggedChange, region: &str) -> Result<Value, AwsError> {
    let document = |text: &str| -> Result<Value, AwsError> {
        serde_json::from_str(text)
            .map_err(|e| internal(orderflow_embedded::DbError::Corrupt(e.into())))
    };
    Ok(json!({
        "eventID": change.event_id,
        "eventName": change.event_name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": region,
        "dynamodb": {
            // "in UNIX epoch time format and rounded down to the closest second"
            // (API_streams_StreamRecord.html).
            "ApproximateCreationDateTime": change.created_ms.div_euclid(1000),
            "Keys": document(&change.keys)?,
            "NewImage": document(&change.new_image)?,
            "SequenceNumber": sequence_number(change.seq),
            "SizeBytes": change.size_bytes,
            "StreamViewType": "NEW_IMAGE",
        },
    }))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use aws_lambda_events::event::dynamodb::EventRecord;
    use orderflow_core::OrderTable;
    use orderflow_core::conformance::sample_order;
    use orderflow_embedded::{Db, SqliteOrderTable, Stream};

    use super::*;

    /// A record read through DynamoDB Streams' API is what `aws_lambda_events` reads as a
    /// stream record, and the same record the embedded publisher hands `publish-orders`,
    /// but for what only a Lambda event carries (`eventSourceARN`, millisecond time).
    #[tokio::test]
    async fn a_record_reads_as_the_lambda_stream_record_the_publisher_delivers() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(
            &dir.path().join("s.db"),
            orderflow_embedded::schema::migrate,
        )
        .unwrap();
        SqliteOrderTable::new(Arc::clone(&db))
            .put_new(&sample_order())
            .await
            .unwrap();
        let stream = Stream::new(db, "publish-orders");
        let (_, changes) = stream.changes_after(0, 1).await.unwrap();
        let ours = record(changes[0].clone(), "eu-west-1").unwrap();
        assert_eq!(ours["dynamodb"]["SequenceNumber"], "000000000000000000001");
        assert!(ours["dynamodb"]["ApproximateCreationDateTime"].is_i64());
        let ours: EventRecord = serde_json::from_value(ours).unwrap();

        let mut published = stream.read(1).await.unwrap().records.remove(0).1;
        published.event_source_arn = None;
        published.aws_region = "eu-west-1".into();
        let time = &mut published.change.approximate_creation_date_time;
        *time = chrono::DateTime::from_timestamp(time.timestamp(), 0).unwrap();
        assert_eq!(ours, published);
        assert!(!ours.change.new_image.is_empty());
    }
}

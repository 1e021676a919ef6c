//! Redrive of the stream's on-failure destination: each kept record is handed to the
//! publish handler again, exactly as the stream poller would; what succeeds leaves the
//! destination, what fails again stays with its new reason.

use std::sync::Arc;

use aws_lambda_events::event::dynamodb::{Event as StreamEvent, EventRecord};
use orderflow_core::Topic;
use orderflow_core::handlers::publish_orders_explained;
use serde::Serialize;

use crate::db::DbError;
use crate::stream::{Stream, StreamFailure};

/// Most failures handled by one redrive of "all".
const MAX_REDRIVE: usize = 1000;

#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RedriveReport {
    /// Sequence numbers published this time, now gone from the destination.
    pub redriven: Vec<String>,
    /// Those that failed again, with why; they stay.
    pub still_failing: Vec<StillFailing>,
    /// Requested sequence numbers that were not in the destination.
    pub not_found: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StillFailing {
    pub sequence_number: String,
    pub reason: String,
}

/// Republishes the given failures (all when `seqs` is `None`).
pub async fn redrive_stream_failures(
    stream: &Stream,
    topic: Arc<dyn Topic>,
    seqs: Option<Vec<i64>>,
) -> Result<RedriveReport, DbError> {
    let mut report = RedriveReport::default();
    let failures: Vec<(i64, StreamFailure)> = match seqs {
        None => stream
            .failures(MAX_REDRIVE)
            .await?
            .into_iter()
            .filter_map(|f| Some((f.sequence_number.parse().ok()?, f)))
            .collect(),
        Some(seqs) => {
            let mut found = Vec::new();
            for seq in seqs {
                match stream.failure(seq).await? {
                    Some(f) => found.push((seq, f)),
                    None => report.not_found.push(crate::stream::sequence_number(seq)),
                }
            }
            found
        }
    };
    for (seq, failure) in failures {
        let outcome = match serde_json::from_value::<EventRecord>(failure.record.clone()) {
            Ok(record) => {
                let mut event = StreamEvent::default();
                event.records = vec![record];
                let (response, reason) = publish_orders_explained(topic.as_ref(), event).await;
                if response.batch_item_failures.is_empty() {
                    Ok(())
                } else {
                    Err(reason.unwrap_or_else(|| "the publish handler reported a failure".into()))
                }
            }
            Err(e) => Err(format!("the kept record is not a stream record: {e}")),
        };
        match outcome {
            Ok(()) => {
                stream.purge_failures(Some(vec![seq])).await?;
                report.redriven.push(failure.sequence_number);
            }
            Err(reason) => {
                stream.note_failure(seq, reason.clone()).await?;
                report.still_failing.push(StillFailing {
                    sequence_number: failure.sequence_number,
                    reason,
                });
            }
        }
    }
    Ok(report)
}

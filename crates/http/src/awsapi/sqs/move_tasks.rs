//! Dead-letter queue redrive over SQS: `ListDeadLetterSourceQueues`, and
//! `StartMessageMoveTask` / `ListMessageMoveTasks` moving a DLQ's messages back to its source
//! queue (the only destination SQS allows besides another queue; we move to the source only).
//! <https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_StartMessageMoveTask.html>

use serde::Deserialize;
use serde_json::{Value, json};

use super::queues::{self, Target};
use super::{Sqs, required};
use crate::awsapi::AwsError;

/// SQS keeps the most recent move tasks of a queue; `ListMessageMoveTasks` returns up to 10.
const MAX_TASKS: usize = 10;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct StartInput {
    source_arn: Option<String>,
    destination_arn: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ListInput {
    source_arn: Option<String>,
    max_results: Option<usize>,
}

fn not_found(arn: &str) -> AwsError {
    let mut e = AwsError::sqs(
        "ResourceNotFoundException",
        "ResourceNotFoundException",
        format!("The resource {arn} does not exist."),
    );
    e.type_name = "com.amazonaws.sqs#ResourceNotFoundException".into();
    e
}

impl Sqs<'_> {
    async fn by_arn(&self, arn: &str) -> Result<Target, AwsError> {
        let prefix = format!(
            "arn:aws:sqs:{}:{}:",
            self.addressing.region, self.addressing.account_id
        );
        let name = arn.strip_prefix(&prefix).ok_or_else(|| not_found(arn))?;
        queues::by_name(self.state, name)
            .await
            .map_err(|_| not_found(arn))
    }

    pub(super) async fn list_dead_letter_source_queues(
        &self,
        url: Option<String>,
    ) -> Result<Value, AwsError> {
        let target = self.target(url).await?;
        let sources: Vec<String> = queues::all(self.state)
            .await?
            .into_iter()
            .filter(|t| {
                t.dead_letter_queue()
                    .is_some_and(|d| d.name() == target.name())
            })
            .map(|t| self.addressing.url(&t.name()))
            .collect();
        Ok(json!({"queueUrls": sources}))
    }

    pub(super) async fn start_message_move_task(
        &self,
        input: StartInput,
    ) -> Result<Value, AwsError> {
        let source_arn = required(input.source_arn, "SourceArn")?;
        let dlq = self.by_arn(&source_arn).await?;
        let origin = dlq.dead_letter_source().ok_or_else(|| {
            AwsError::invalid_parameter(format!(
                "Source queue must be configured as a Dead Letter Queue: {source_arn}"
            ))
        })?;
        let origin_arn = self.addressing.arn(&origin.name());
        if input
            .destination_arn
            .as_ref()
            .is_some_and(|d| *d != origin_arn)
        {
            return Err(AwsError::invalid_parameter(
                "orderflow serve moves dead letters back to their source queue only; omit DestinationArn or name the source queue.",
            ));
        }
        let to_move = dlq.stats(self.state).await.map_err(AwsError::internal)?;
        let moved = match &origin {
            Target::Subscription(s) => self.state.engine.pull_queues().redrive(s, None).await,
            _ => self.state.engine.queue().redrive(None).await,
        }
        .map_err(AwsError::internal)?;
        let handle = uuid::Uuid::new_v4().to_string();
        let task = json!({
            "TaskHandle": handle,
            "Status": "COMPLETED",
            "SourceArn": source_arn,
            "DestinationArn": origin_arn,
            "ApproximateNumberOfMessagesMoved": moved,
            "ApproximateNumberOfMessagesToMove": to_move.visible + to_move.in_flight,
            "StartedTimestamp": chrono::Utc::now().timestamp_millis(),
        });
        let mut tasks = self.state.aws.move_tasks.lock().expect("move tasks lock");
        tasks.insert(0, task);
        tasks.truncate(MAX_TASKS * 16);
        Ok(json!({"TaskHandle": handle}))
    }

    pub(super) async fn list_message_move_tasks(
        &self,
        input: ListInput,
    ) -> Result<Value, AwsError> {
        let source_arn = required(input.source_arn, "SourceArn")?;
        self.by_arn(&source_arn).await?;
        let max = input.max_results.unwrap_or(1).clamp(1, MAX_TASKS);
        let tasks = self.state.aws.move_tasks.lock().expect("move tasks lock");
        let results: Vec<Value> = tasks
            .iter()
            .filter(|t| t["SourceArn"] == source_arn.as_str())
            .take(max)
            .cloned()
            .collect();
        Ok(json!({"Results": results}))
    }
}

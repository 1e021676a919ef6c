//! SQS's JSON protocol (`X-Amz-Target: AmazonSQS.<Operation>`) on the engine's queues.
//! Operation names, parameters and errors follow the SQS API reference:
//! <https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_Operations.html>

mod messages;
mod move_tasks;
pub(super) mod purges;
mod queues;
mod receipts;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use orderflow_embedded::fanout::pull::MAX_WAIT;
use orderflow_embedded::fanout::spec::MAX_VISIBILITY_TIMEOUT_SECONDS;
use orderflow_embedded::queue::{MAX_RECEIVE_BATCH, VisibilityChange};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

pub(super) use self::queues::{ORDERS_DLQ, ORDERS_QUEUE};

use self::messages::AttributeInput;
use self::queues::{Addressing, Target};
use self::receipts::Receipt;
use super::AwsError;
use super::md5;
use crate::AppState;

/// SQS: a batch holds 1 to 10 entries.
const MAX_BATCH: usize = 10;
/// SQS: "DelaySeconds ... Valid values: 0 to 900" (API_SendMessage.html).
const MAX_DELAY_SECONDS: i64 = 900;

pub(super) struct Sqs<'a> {
    state: &'a AppState,
    addressing: Addressing,
}

fn input<T: DeserializeOwned>(value: Value) -> Result<T, AwsError> {
    serde_json::from_value(value).map_err(|e| {
        AwsError::serialization(format!(
            "The request does not match the operation's input: {e}"
        ))
    })
}

fn required<T>(value: Option<T>, name: &str) -> Result<T, AwsError> {
    value.ok_or_else(|| AwsError::missing_parameter(name))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct QueueUrlInput {
    queue_url: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListQueuesInput {
    queue_name_prefix: Option<String>,
    max_results: Option<usize>,
    next_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GetQueueUrlInput {
    queue_name: Option<String>,
    #[serde(rename = "QueueOwnerAWSAccountId")]
    queue_owner_aws_account_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GetQueueAttributesInput {
    queue_url: Option<String>,
    #[serde(default)]
    attribute_names: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SendMessageInput {
    queue_url: Option<String>,
    #[serde(flatten)]
    message: MessageInput,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct MessageInput {
    message_body: Option<String>,
    delay_seconds: Option<i64>,
    #[serde(default)]
    message_attributes: BTreeMap<String, AttributeInput>,
    #[serde(default)]
    message_system_attributes: BTreeMap<String, AttributeInput>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SendBatchEntry {
    id: Option<String>,
    #[serde(flatten)]
    message: MessageInput,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct BatchInput<E> {
    queue_url: Option<String>,
    #[serde(default = "Vec::new")]
    entries: Vec<E>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ReceiveInput {
    queue_url: Option<String>,
    max_number_of_messages: Option<i64>,
    visibility_timeout: Option<i64>,
    wait_time_seconds: Option<i64>,
    #[serde(default)]
    attribute_names: Vec<String>,
    #[serde(default)]
    message_system_attribute_names: Vec<String>,
    #[serde(default)]
    message_attribute_names: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ReceiptInput {
    queue_url: Option<String>,
    receipt_handle: Option<String>,
    visibility_timeout: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ReceiptEntry {
    id: Option<String>,
    receipt_handle: Option<String>,
    visibility_timeout: Option<i64>,
}

/// What a batch entry failed with, as `BatchResultErrorEntry`.
fn failed_entry(id: &str, e: &AwsError) -> Value {
    json!({"Id": id, "SenderFault": e.sender_fault, "Code": e.query_code, "Message": e.message})
}

fn visibility_seconds(v: i64, name: &str) -> Result<Duration, AwsError> {
    if (0..=i64::from(MAX_VISIBILITY_TIMEOUT_SECONDS)).contains(&v) {
        Ok(Duration::from_secs(v as u64))
    } else {
        Err(AwsError::invalid_parameter(format!(
            "Value {v} for parameter {name} is invalid. Reason: must be between 0 and {MAX_VISIBILITY_TIMEOUT_SECONDS}."
        )))
    }
}

/// The entries' ids: 1 to 10 entries, each id 1-80 alphanumerics, hyphens or underscores,
/// all distinct.
fn check_batch_ids<'a>(
    ids: impl ExactSizeIterator<Item = Option<&'a str>>,
) -> Result<Vec<String>, AwsError> {
    if ids.len() == 0 {
        return Err(AwsError::sqs(
            "EmptyBatchRequest",
            "AWS.SimpleQueueService.EmptyBatchRequest",
            "There should be at least one SendMessageBatchRequestEntry in the request.",
        ));
    }
    if ids.len() > MAX_BATCH {
        return Err(AwsError::sqs(
            "TooManyEntriesInBatchRequest",
            "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
            format!(
                "Maximum number of entries per request are {MAX_BATCH}. You have sent {}.",
                ids.len()
            ),
        ));
    }
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for id in ids {
        let id = id.unwrap_or("");
        let valid = !id.is_empty()
            && id.len() <= 80
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            return Err(AwsError::sqs(
                "InvalidBatchEntryId",
                "AWS.SimpleQueueService.InvalidBatchEntryId",
                "A batch entry id can only contain alphanumeric characters, hyphens and underscores. It can be at most 80 letters long.",
            ));
        }
        if !seen.insert(id) {
            return Err(AwsError::sqs(
                "BatchEntryIdsNotDistinct",
                "AWS.SimpleQueueService.BatchEntryIdsNotDistinct",
                format!("Id {id} repeated."),
            ));
        }
        out.push(id.to_owned());
    }
    Ok(out)
}

/// The queue attributes `GetQueueAttributes` answers.
const QUEUE_ATTRIBUTES: [&str; 9] = [
    "QueueArn",
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
    "VisibilityTimeout",
    "MaximumMessageSize",
    "DelaySeconds",
    "ReceiveMessageWaitTimeSeconds",
    "RedrivePolicy",
];

/// Every `QueueAttributeName` SQS defines besides those answered: a request may name them
/// (only other names are `InvalidAttributeName`), and they are left out of the answer, as
/// SQS leaves out `FifoQueue` for a standard queue and `Policy` for a queue without one.
/// Our queues have no creation time, retention period, policy, encryption or FIFO settings
/// to report. <https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_GetQueueAttributes.html>
const UNANSWERED_QUEUE_ATTRIBUTES: [&str; 12] = [
    "Policy",
    "MessageRetentionPeriod",
    "CreatedTimestamp",
    "LastModifiedTimestamp",
    "FifoQueue",
    "ContentBasedDeduplication",
    "KmsMasterKeyId",
    "KmsDataKeyReusePeriodSeconds",
    "DeduplicationScope",
    "FifoThroughputLimit",
    "RedriveAllowPolicy",
    "SqsManagedSseEnabled",
];

impl<'a> Sqs<'a> {
    pub fn new(state: &'a AppState, host: &str) -> Self {
        let scheme = if state.aws.tls { "https" } else { "http" };
        Sqs {
            state,
            addressing: Addressing {
                base_url: format!("{scheme}://{host}"),
                region: state.aws.region.clone(),
                account_id: state.aws.account_id.clone(),
            },
        }
    }

    pub async fn call(&self, operation: &str, body: Value) -> Result<Value, AwsError> {
        match operation {
            "ListQueues" => self.list_queues(input(body)?).await,
            "GetQueueUrl" => self.get_queue_url(input(body)?).await,
            "GetQueueAttributes" => self.get_queue_attributes(input(body)?).await,
            "SendMessage" => self.send_message(input(body)?).await,
            "SendMessageBatch" => self.send_message_batch(input(body)?).await,
            "ReceiveMessage" => self.receive_message(input(body)?).await,
            "DeleteMessage" => self.delete_message(input(body)?).await,
            "DeleteMessageBatch" => self.delete_message_batch(input(body)?).await,
            "ChangeMessageVisibility" => self.change_visibility(input(body)?).await,
            "ChangeMessageVisibilityBatch" => self.change_visibility_batch(input(body)?).await,
            "PurgeQueue" => self.purge_queue(input(body)?).await,
            "ListDeadLetterSourceQueues" => {
                let q: QueueUrlInput = input(body)?;
                self.list_dead_letter_source_queues(q.queue_url).await
            }
            "StartMessageMoveTask" => self.start_message_move_task(input(body)?).await,
            "ListMessageMoveTasks" => self.list_message_move_tasks(input(body)?).await,
            other => Err(AwsError::unknown_operation(&format!("AmazonSQS.{other}"))),
        }
    }

    async fn target(&self, url: Option<String>) -> Result<Target, AwsError> {
        let url = required(url, "QueueUrl")?;
        let name = self.addressing.name_in_url(&url)?;
        queues::by_name(self.state, name).await
    }

    async fn list_queues(&self, input: ListQueuesInput) -> Result<Value, AwsError> {
        let prefix = input.queue_name_prefix.unwrap_or_default();
        let names: Vec<String> = queues::all(self.state)
            .await?
            .iter()
            .map(Target::name)
            .filter(|n| n.starts_with(&prefix))
            .collect();
        let start = match &input.next_token {
            Some(t) => t
                .parse::<usize>()
                .ok()
                .filter(|s| *s <= names.len())
                .ok_or_else(|| AwsError::invalid_parameter("Invalid NextToken value."))?,
            None => 0,
        };
        let max = match input.max_results {
            Some(m) if (1..=1000).contains(&m) => m,
            Some(m) => {
                return Err(AwsError::invalid_parameter(format!(
                    "Value {m} for parameter MaxResults is invalid. Reason: must be between 1 and 1000."
                )));
            }
            None => 1000,
        };
        let page: Vec<String> = names[start..]
            .iter()
            .take(max)
            .map(|n| self.addressing.url(n))
            .collect();
        let mut out = Map::new();
        if !page.is_empty() {
            out.insert("QueueUrls".into(), json!(page));
        }
        if input.max_results.is_some() && start + page.len() < names.len() {
            out.insert("NextToken".into(), json!((start + page.len()).to_string()));
        }
        Ok(Value::Object(out))
    }

    async fn get_queue_url(&self, input: GetQueueUrlInput) -> Result<Value, AwsError> {
        let name = required(input.queue_name, "QueueName")?;
        if input
            .queue_owner_aws_account_id
            .is_some_and(|a| a != self.addressing.account_id)
        {
            return Err(AwsError::queue_does_not_exist());
        }
        let target = queues::by_name(self.state, &name).await?;
        Ok(json!({"QueueUrl": self.addressing.url(&target.name())}))
    }

    async fn get_queue_attributes(
        &self,
        input: GetQueueAttributesInput,
    ) -> Result<Value, AwsError> {
        let target = self.target(input.queue_url).await?;
        for name in &input.attribute_names {
            let name_str = name.as_str();
            if name != "All"
                && !QUEUE_ATTRIBUTES.contains(&name_str)
                && !UNANSWERED_QUEUE_ATTRIBUTES.contains(&name_str)
            {
                return Err(AwsError::sqs(
                    "InvalidAttributeName",
                    "InvalidAttributeName",
                    format!("Unknown Attribute {name}."),
                ));
            }
        }
        let wanted = |n: &str| input.attribute_names.iter().any(|a| a == "All" || a == n);
        let stats = target.stats(self.state).await.map_err(AwsError::internal)?;
        let mut out = Map::new();
        for name in QUEUE_ATTRIBUTES.into_iter().filter(|n| wanted(n)) {
            let value = match name {
                "QueueArn" => self.addressing.arn(&target.name()),
                "ApproximateNumberOfMessages" => stats.visible.to_string(),
                "ApproximateNumberOfMessagesNotVisible" => stats.in_flight.to_string(),
                "ApproximateNumberOfMessagesDelayed"
                | "DelaySeconds"
                | "ReceiveMessageWaitTimeSeconds" => "0".into(),
                "VisibilityTimeout" => target.visibility_timeout(self.state).as_secs().to_string(),
                "MaximumMessageSize" => messages::MAX_MESSAGE_BYTES.to_string(),
                _ => match (
                    target.dead_letter_queue(),
                    target.max_receive_count(self.state),
                ) {
                    (Some(dlq), Some(max)) => json!({
                        "deadLetterTargetArn": self.addressing.arn(&dlq.name()),
                        "maxReceiveCount": max,
                    })
                    .to_string(),
                    _ => continue,
                },
            };
            out.insert(name.into(), json!(value));
        }
        Ok(json!({"Attributes": out}))
    }

    /// Checks and stores one message; returns `SendMessage`'s result fields.
    async fn send_one(
        &self,
        target: &Target,
        message: MessageInput,
    ) -> Result<Map<String, Value>, AwsError> {
        match message.delay_seconds {
            None | Some(0) => {}
            Some(d @ 1..=MAX_DELAY_SECONDS) => {
                return Err(AwsError::invalid_parameter(format!(
                    "DelaySeconds {d} is not supported by orderflow serve yet; send with 0."
                )));
            }
            Some(d) => {
                return Err(AwsError::invalid_parameter(format!(
                    "Value {d} for parameter DelaySeconds is invalid. Reason: DelaySeconds must be >= 0 and <= {MAX_DELAY_SECONDS}."
                )));
            }
        }
        let body = required(message.message_body, "MessageBody")?;
        let (attributes, size) = messages::parse_attributes(message.message_attributes)?;
        let system = messages::parse_system_attributes(message.message_system_attributes)?;
        messages::check_body(&body, size)?;
        let stored = messages::encode_attributes(&attributes, target.typed_attributes())?;
        if matches!(target, Target::Orders) {
            crate::limits::check_queue_depth(self.state)
                .await
                .map_err(|e| {
                    let message = match e {
                        crate::ApiError::Unavailable(m) => m,
                        _ => {
                            "The order queue cannot take messages right now; retry shortly.".into()
                        }
                    };
                    AwsError::sqs("RequestThrottled", "RequestThrottled", message)
                })?;
        }
        let md5_body = md5::of_body(&body);
        let id = target
            .send(self.state, body, stored)
            .await
            .map_err(AwsError::internal)?;
        let mut out = Map::new();
        out.insert("MessageId".into(), json!(id));
        out.insert("MD5OfMessageBody".into(), json!(md5_body));
        if let Some(digest) = md5::of_attributes(&attributes) {
            out.insert("MD5OfMessageAttributes".into(), json!(digest));
        }
        if let Some(digest) = md5::of_attributes(&system) {
            out.insert("MD5OfMessageSystemAttributes".into(), json!(digest));
        }
        Ok(out)
    }

    async fn send_message(&self, input: SendMessageInput) -> Result<Value, AwsError> {
        let target = self.target(input.queue_url).await?;
        Ok(Value::Object(self.send_one(&target, input.message).await?))
    }

    async fn send_message_batch(
        &self,
        input: BatchInput<SendBatchEntry>,
    ) -> Result<Value, AwsError> {
        let target = self.target(input.queue_url).await?;
        let ids = check_batch_ids(input.entries.iter().map(|e| e.id.as_deref()))?;
        let total: usize = input
            .entries
            .iter()
            .map(|e| {
                e.message.message_body.as_ref().map_or(0, String::len)
                    + e.message
                        .message_attributes
                        .iter()
                        .map(|(k, a)| k.len() + a.size_bytes())
                        .sum::<usize>()
            })
            .sum();
        if total > messages::MAX_MESSAGE_BYTES {
            return Err(AwsError::sqs(
                "BatchRequestTooLong",
                "AWS.SimpleQueueService.BatchRequestTooLong",
                format!(
                    "Batch requests cannot be longer than {} bytes.",
                    messages::MAX_MESSAGE_BYTES
                ),
            ));
        }
        let (mut successful, mut failed) = (Vec::new(), Vec::new());
        for (id, entry) in ids.into_iter().zip(input.entries) {
            match self.send_one(&target, entry.message).await {
                Ok(mut fields) => {
                    fields.insert("Id".into(), json!(id));
                    successful.push(Value::Object(fields));
                }
                Err(e) => failed.push(failed_entry(&id, &e)),
            }
        }
        Ok(json!({"Successful": successful, "Failed": failed}))
    }

    async fn receive_message(&self, input: ReceiveInput) -> Result<Value, AwsError> {
        let target = self.target(input.queue_url).await?;
        let max = input.max_number_of_messages.unwrap_or(1);
        if !(1..=MAX_RECEIVE_BATCH as i64).contains(&max) {
            return Err(AwsError::invalid_parameter(format!(
                "Value {max} for parameter MaxNumberOfMessages is invalid. Reason: Must be between 1 and {MAX_RECEIVE_BATCH}, if provided."
            )));
        }
        let visibility = input
            .visibility_timeout
            .map(|v| visibility_seconds(v, "VisibilityTimeout"))
            .transpose()?;
        let wait = input.wait_time_seconds.unwrap_or(0);
        if !(0..=MAX_WAIT.as_secs() as i64).contains(&wait) {
            return Err(AwsError::invalid_parameter(format!(
                "Value {wait} for parameter WaitTimeSeconds is invalid. Reason: Must be >= 0 and <= {}, if provided.",
                MAX_WAIT.as_secs()
            )));
        }
        let received = target
            .receive(
                self.state,
                max as usize,
                visibility,
                Duration::from_secs(wait as u64),
            )
            .await
            .map_err(AwsError::internal)?;
        let system: Vec<String> = input
            .attribute_names
            .into_iter()
            .chain(input.message_system_attribute_names)
            .collect();
        let typed = target.typed_attributes();
        let sender = &self.addressing.account_id;
        let queue = target.name();
        // A dead letter came from this DLQ's one source queue, named by its ARN as
        // `GetQueueAttributes` gives it.
        let source_arn = target
            .dead_letter_source()
            .map(|t| self.addressing.arn(&t.name()));
        let received_ms = chrono::Utc::now().timestamp_millis();
        let messages: Vec<Value> = received
            .into_iter()
            .map(|mut m| {
                m.receipt_handle = Receipt {
                    handle: m.receipt_handle,
                    received_ms,
                }
                .issue(&queue);
                let source = m.dead_letter_source.as_ref().and(source_arn.as_deref());
                messages::received_json(
                    &m,
                    typed,
                    &system,
                    &input.message_attribute_names,
                    sender,
                    source,
                )
            })
            .collect();
        if messages.is_empty() {
            return Ok(json!({}));
        }
        Ok(json!({"Messages": messages}))
    }

    async fn delete_message(&self, input: ReceiptInput) -> Result<Value, AwsError> {
        let target = self.target(input.queue_url).await?;
        let handle = required(input.receipt_handle, "ReceiptHandle")?;
        let handle = Receipt::open(&target.name(), &handle)?.handle;
        target
            .queue(self.state)
            .delete(vec![handle])
            .await
            .map_err(AwsError::internal)?;
        Ok(json!({}))
    }

    async fn delete_message_batch(
        &self,
        input: BatchInput<ReceiptEntry>,
    ) -> Result<Value, AwsError> {
        let target = self.target(input.queue_url).await?;
        let ids = check_batch_ids(input.entries.iter().map(|e| e.id.as_deref()))?;
        let queue = target.queue(self.state);
        let name = target.name();
        let (mut successful, mut failed) = (Vec::new(), Vec::new());
        for (id, entry) in ids.into_iter().zip(input.entries) {
            let handle = entry.receipt_handle.unwrap_or_default();
            match Receipt::open(&name, &handle) {
                Ok(Receipt { handle, .. }) => {
                    queue
                        .delete(vec![handle])
                        .await
                        .map_err(AwsError::internal)?;
                    successful.push(json!({"Id": id}));
                }
                Err(e) => failed.push(failed_entry(&id, &e)),
            }
        }
        Ok(json!({"Successful": successful, "Failed": failed}))
    }

    async fn change_one(
        &self,
        target: &Target,
        handle: Option<String>,
        timeout: Option<i64>,
    ) -> Result<(), AwsError> {
        let handle = required(handle, "ReceiptHandle")?;
        let timeout =
            visibility_seconds(required(timeout, "VisibilityTimeout")?, "VisibilityTimeout")?;
        let receipt = Receipt::open(&target.name(), &handle)?;
        // "If you try to extend the visibility timeout beyond the maximum [12 hours], your
        // request is rejected" (API_ChangeMessageVisibility.html): counted from the receive.
        let until_ms = chrono::Utc::now().timestamp_millis() + timeout.as_millis() as i64;
        if until_ms - receipt.received_ms > i64::from(MAX_VISIBILITY_TIMEOUT_SECONDS) * 1000 {
            return Err(AwsError::invalid_parameter(format!(
                "Value {} for parameter VisibilityTimeout is invalid. Reason: Total VisibilityTimeout for the message is beyond the limit [{MAX_VISIBILITY_TIMEOUT_SECONDS} seconds]",
                timeout.as_secs()
            )));
        }
        match target
            .queue(self.state)
            .change_visibility(receipt.handle, timeout)
            .await
            .map_err(AwsError::internal)?
        {
            VisibilityChange::Changed => Ok(()),
            VisibilityChange::UnknownReceipt => Err(AwsError::receipt_handle_is_invalid(&handle)),
            VisibilityChange::NotInFlight => Err(AwsError::sqs(
                "MessageNotInflight",
                "AWS.SimpleQueueService.MessageNotInflight",
                "The message referred to isn't in flight.",
            )),
        }
    }

    async fn change_visibility(&self, input: ReceiptInput) -> Result<Value, AwsError> {
        let target = self.target(input.queue_url).await?;
        self.change_one(&target, input.receipt_handle, input.visibility_timeout)
            .await?;
        Ok(json!({}))
    }

    async fn change_visibility_batch(
        &self,
        input: BatchInput<ReceiptEntry>,
    ) -> Result<Value, AwsError> {
        let target = self.target(input.queue_url).await?;
        let ids = check_batch_ids(input.entries.iter().map(|e| e.id.as_deref()))?;
        let (mut successful, mut failed) = (Vec::new(), Vec::new());
        for (id, entry) in ids.into_iter().zip(input.entries) {
            match self
                .change_one(&target, entry.receipt_handle, entry.visibility_timeout)
                .await
            {
                Ok(()) => successful.push(json!({"Id": id})),
                Err(e) if e.status.is_server_error() => return Err(e),
                Err(e) => failed.push(failed_entry(&id, &e)),
            }
        }
        Ok(json!({"Successful": successful, "Failed": failed}))
    }

    async fn purge_queue(&self, input: QueueUrlInput) -> Result<Value, AwsError> {
        let target = self.target(input.queue_url).await?;
        let name = target.name();
        let purges = &self.state.aws.purges;
        purges.begin(&name, std::time::Instant::now())?;
        let purged = match target.queue(self.state).purge().await {
            Ok(purged) => purged,
            Err(e) => {
                purges.forget(&name);
                return Err(AwsError::internal(e));
            }
        };
        tracing::info!(queue = %name, purged, "queue purged over the SQS protocol");
        Ok(json!({}))
    }
}

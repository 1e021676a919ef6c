//! The event source mappings: an SQS-style poller feeding the store handler, and a stream
//! poller feeding the publish handler, each building the exact Lambda event payloads.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::dynamodb::Event as StreamEvent;
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage, SqsMessageAttribute};
use orderflow_core::handlers::{publish_orders_explained, store_orders_explained};
use orderflow_core::{OrderTable, Topic};
use tokio::sync::{Notify, watch};

use crate::burst::Burst;
use crate::db::now_ms;
use crate::event_source::EventSources;
use crate::queue::{Queue, ReceivedMessage};
use crate::stream::Stream;

/// How a poller waits when idle: until new work is signalled, a deadline passes, or shutdown.
async fn idle(
    notified: std::pin::Pin<&mut tokio::sync::futures::Notified<'_>>,
    until: Option<i64>,
    shutdown: &mut watch::Receiver<bool>,
) {
    // A safety net only: every write that creates work wakes the poller directly.
    let max_idle = Duration::from_secs(5);
    let wait = until
        .map(|t| Duration::from_millis((t - now_ms()).clamp(0, 5_000) as u64))
        .unwrap_or(max_idle)
        .min(max_idle);
    tokio::select! {
        _ = notified => {}
        _ = tokio::time::sleep(wait) => {}
        _ = shutdown.changed() => {}
    }
}

fn message_attribute(value: &str) -> SqsMessageAttribute {
    let mut a = SqsMessageAttribute::default();
    a.string_value = Some(value.to_owned());
    a.data_type = Some("String".into());
    a
}

/// The Lambda SQS record for a message received from the orders queue.
pub fn sqs_message(m: &ReceivedMessage, sources: &EventSources) -> SqsMessage {
    let mut msg = SqsMessage::default();
    msg.message_id = Some(m.message_id.clone());
    msg.receipt_handle = Some(m.receipt_handle.clone());
    msg.body = Some(m.body.clone());
    msg.attributes = HashMap::from([
        (
            "ApproximateReceiveCount".to_owned(),
            m.receive_count.to_string(),
        ),
        ("SentTimestamp".to_owned(), m.sent_at.to_string()),
        ("SenderId".to_owned(), "orderflow".to_owned()),
        (
            "ApproximateFirstReceiveTimestamp".to_owned(),
            m.first_received_at.to_string(),
        ),
    ]);
    msg.message_attributes = m
        .attributes
        .iter()
        .map(|(k, v)| (k.clone(), message_attribute(v)))
        .collect();
    msg.event_source = Some("aws:sqs".into());
    msg.event_source_arn = Some(sources.queue_arn.clone());
    msg.aws_region = Some(sources.region.clone());
    msg
}

/// Receives batches and hands them to the store handler, like Lambda's SQS event source
/// mapping: successes are deleted, failures stay and reappear after the visibility timeout.
///
/// While a burst is being absorbed (see [`crate::burst`]) it steps aside before each batch.
pub async fn run_store_poller(
    queue: Arc<Queue>,
    table: Arc<dyn OrderTable>,
    batch_size: usize,
    sources: Arc<EventSources>,
    burst: Arc<Burst>,
    mut shutdown: watch::Receiver<bool>,
) {
    let notify: Arc<Notify> = Arc::clone(queue.notify());
    while !*shutdown.borrow() {
        burst.wait_turn(&mut shutdown).await;
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let received = match queue.receive_batch(batch_size).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %orderflow_core::error_chain(&e), "receive failed; retrying");
                idle(notified, Some(now_ms() + 500), &mut shutdown).await;
                continue;
            }
        };
        if received.messages.is_empty() {
            idle(notified, received.next_visible_at, &mut shutdown).await;
            continue;
        }
        process_batch(&queue, table.as_ref(), &sources, received.messages).await;
    }
}

#[tracing::instrument(name = "store_batch", skip_all, fields(size = messages.len()))]
async fn process_batch(
    queue: &Queue,
    table: &dyn OrderTable,
    sources: &EventSources,
    messages: Vec<ReceivedMessage>,
) {
    let mut event = SqsEvent::default();
    event.records = messages.iter().map(|m| sqs_message(m, sources)).collect();
    let started = std::time::Instant::now();
    let (response, reasons) = store_orders_explained(table, event).await;
    metrics::histogram!("orderflow_handler_batch_duration_seconds", "handler" => "store-orders")
        .record(started.elapsed().as_secs_f64());
    let reasons: std::collections::HashMap<String, String> = reasons.into_iter().collect();
    // Noting the receipts and settling the messages are sent together, so the writer can
    // commit them in one transaction rather than one after the other.
    let note = async {
        if let Err(e) = crate::trace::note_receipts(queue.db(), &messages, &reasons).await {
            tracing::warn!(error = %orderflow_core::error_chain(&e), "could not note the receipts");
        }
    };
    tokio::join!(note, settle(queue, &messages, &response, &reasons));
}

/// Deletes the stored messages; the failed ones stay, with why, until they are visible again.
async fn settle(
    queue: &Queue,
    messages: &[ReceivedMessage],
    response: &aws_lambda_events::event::sqs::SqsBatchResponse,
    reasons: &HashMap<String, String>,
) {
    let failed: std::collections::HashSet<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    let mut done = Vec::with_capacity(messages.len());
    for m in messages {
        if failed.contains(m.message_id.as_str()) {
            let reason = reasons
                .get(&m.message_id)
                .map_or("the store handler reported a failure", String::as_str);
            let error = format!("{reason} (receive {})", m.receive_count);
            if let Err(e) = queue.record_failure(m.receipt_handle.clone(), error).await {
                tracing::warn!(error = %orderflow_core::error_chain(&e), "could not note the failure");
            }
        } else {
            done.push(m.receipt_handle.clone());
        }
    }
    if let Err(e) = queue.delete(done).await {
        // The messages reappear and are stored again, which the conditional put makes harmless.
        tracing::error!(error = %orderflow_core::error_chain(&e), "delete failed");
    }
}

#[derive(Debug, Clone)]
pub struct StreamPollerConfig {
    pub batch_size: usize,
    /// Attempts per record before it goes to the on-failure destination.
    pub max_attempts: u32,
    pub retry_delay: Duration,
}

impl Default for StreamPollerConfig {
    fn default() -> Self {
        StreamPollerConfig {
            batch_size: 100,
            max_attempts: 3,
            retry_delay: Duration::from_millis(200),
        }
    }
}

/// Reads the change stream from its checkpoint and hands batches to the publish handler,
/// like Lambda's DynamoDB event source mapping with `ReportBatchItemFailures`, bisecting
/// on a whole-batch failure and bounded retries with an on-failure destination. Steps aside
/// while a burst is being absorbed, as the store poller does.
pub async fn run_stream_poller(
    stream: Arc<Stream>,
    notify: Arc<Notify>,
    topic: Arc<dyn Topic>,
    config: StreamPollerConfig,
    burst: Arc<Burst>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut batch_size = config.batch_size;
    while !*shutdown.borrow() {
        burst.wait_turn(&mut shutdown).await;
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let pending = match stream.read(batch_size).await {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %orderflow_core::error_chain(&e), "stream read failed; retrying");
                idle(notified, Some(now_ms() + 500), &mut shutdown).await;
                continue;
            }
        };
        if pending.records.is_empty() {
            batch_size = config.batch_size;
            idle(notified, None, &mut shutdown).await;
            continue;
        }
        let seqs: Vec<i64> = pending.records.iter().map(|(s, _)| *s).collect();
        let mut event = StreamEvent::default();
        event.records = pending.records.iter().map(|(_, r)| r.clone()).collect();
        let started = std::time::Instant::now();
        let (response, reason) = publish_orders_explained(topic.as_ref(), event).await;
        metrics::histogram!("orderflow_handler_batch_duration_seconds", "handler" => "publish-orders")
            .record(started.elapsed().as_secs_f64());
        let first_failure = response.batch_item_failures.first().map(|f| {
            f.item_identifier
                .as_deref()
                .and_then(|id| {
                    pending
                        .records
                        .iter()
                        .find(|(_, r)| r.change.sequence_number.as_deref() == Some(id))
                })
                .map(|(s, _)| *s)
        });
        let result = match first_failure {
            None => {
                batch_size = config.batch_size;
                stream.checkpoint(*seqs.last().expect("non-empty")).await
            }
            // An unidentifiable failure fails the whole batch: bisect until one record remains.
            Some(None) if seqs.len() > 1 => {
                batch_size = (seqs.len() / 2).max(1);
                tracing::warn!(batch_size, "stream batch failed as a whole; bisecting");
                Ok(())
            }
            Some(failed) => {
                let failed_seq = failed.unwrap_or(seqs[0]);
                let (_, record) = pending
                    .records
                    .iter()
                    .find(|(s, _)| *s == failed_seq)
                    .expect("known record");
                match stream.record_failed_attempt(failed_seq).await {
                    Ok(attempts) if attempts >= config.max_attempts => {
                        tracing::error!(event_id = %record.event_id, attempts, "stream record sent to the on-failure destination");
                        batch_size = config.batch_size;
                        stream.give_up(failed_seq, record, attempts, reason).await
                    }
                    Ok(attempts) => {
                        let delay = config.retry_delay
                            * 2u32.saturating_pow(attempts.saturating_sub(1).min(10));
                        tokio::select! {
                            _ = tokio::time::sleep(delay) => {}
                            _ = shutdown.changed() => {}
                        }
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            }
        };
        if let Err(e) = result {
            tracing::error!(error = %orderflow_core::error_chain(&e), "stream checkpoint failed; retrying");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

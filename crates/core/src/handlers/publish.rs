//! "Lambda 2": turns each INSERT on the orders stream into an `OrderCreated` publication.

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};

use crate::event::OrderCreated;
use crate::item::{ItemError, from_item};
use crate::ports::{Topic, TopicError};

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("the stream record's NewImage is not a stored order")]
    BadImage(#[source] ItemError),
    #[error("the event could not be published")]
    Topic(#[source] TopicError),
}

impl TryFrom<&EventRecord> for OrderCreated {
    type Error = ItemError;
    fn try_from(record: &EventRecord) -> Result<Self, Self::Error> {
        from_item(&record.change.new_image).map(OrderCreated::new)
    }
}

/// Publishes records in stream order and stops at the first failure: the stream retries
/// from that record, so publishing past it would only announce later orders twice.
pub async fn publish_orders(topic: &dyn Topic, event: Event) -> DynamoDbEventResponse {
    publish_orders_explained(topic, event).await.0
}

/// [`publish_orders`], also returning why the first failed record failed (its error
/// chain), for an on-failure destination that says what went wrong.
///
/// The INSERTs before the first unreadable record go to the topic as one batch.
pub async fn publish_orders_explained(
    topic: &dyn Topic,
    event: Event,
) -> (DynamoDbEventResponse, Option<String>) {
    let mut batch: Vec<(&EventRecord, OrderCreated)> = Vec::new();
    let mut unreadable: Option<(&EventRecord, PublishError)> = None;
    for record in event.records.iter().filter(|r| r.event_name == "INSERT") {
        match OrderCreated::try_from(record) {
            Ok(created) => batch.push((record, created)),
            Err(e) => {
                unreadable = Some((record, PublishError::BadImage(e)));
                break;
            }
        }
    }
    let publications: Vec<_> = batch
        .iter()
        .map(|(record, created)| created.to_publication(record.event_id.clone()))
        .collect();
    let mut results = topic.publish_batch(&publications).await.into_iter();
    let mut failed = None;
    for (record, created) in &batch {
        match results.next() {
            Some(Ok(message_id)) => tracing::debug!(
                event_id = %record.event_id,
                order_id = %created.order.id(),
                request_id = created.order.request_id.as_ref().map_or("", |r| r.as_str()),
                %message_id,
                "order published"
            ),
            Some(Err(e)) => {
                failed = Some((*record, PublishError::Topic(e)));
                break;
            }
            None => {
                failed = Some((
                    *record,
                    PublishError::Topic(TopicError::Rejected(
                        "not attempted after an earlier failure".into(),
                    )),
                ));
                break;
            }
        }
    }
    let mut response = DynamoDbEventResponse::default();
    let reason = failed.or(unreadable).map(|(record, error)| {
        let chain = crate::error_chain(&error);
        tracing::warn!(event_id = %record.event_id, error = %chain, "order not published");
        let mut failure = DynamoDbBatchItemFailure::default();
        failure.item_identifier = record.change.sequence_number.clone();
        response.batch_item_failures.push(failure);
        chain
    });
    (response, reason)
}

/// Publishes one record; anything but an INSERT (a MODIFY or REMOVE) is not an order event.
#[tracing::instrument(skip_all, fields(event_id = %record.event_id, order_id, request_id))]
pub async fn publish_record(
    topic: &dyn Topic,
    record: &EventRecord,
) -> Result<Option<String>, PublishError> {
    if record.event_name != "INSERT" {
        return Ok(None);
    }
    let event = OrderCreated::try_from(record).map_err(PublishError::BadImage)?;
    let span = tracing::Span::current();
    span.record("order_id", event.order.id().as_str());
    if let Some(id) = &event.order.request_id {
        span.record("request_id", id.as_str());
    }
    let message_id = topic
        .publish(&event.to_publication(record.event_id.clone()))
        .await
        .map_err(PublishError::Topic)?;
    tracing::debug!(%message_id, "order published");
    Ok(Some(message_id))
}

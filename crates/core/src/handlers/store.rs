//! "Lambda 1": takes an SQS batch of orders and stores each one in the `orders` table.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use chrono::{DateTime, Utc};
use futures_util::future::join_all;

use crate::correlation::{AWS_TRACE_HEADER_ATTRIBUTE, REQUEST_ID_ATTRIBUTE, RequestId};
use crate::money::MoneyError;
use crate::order::{Order, OrderRejection, StoredOrder};
use crate::ports::{OrderTable, TableError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    New,
    /// SQS delivers at least once, so an order that is already stored is success.
    AlreadyThere,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the message has no body")]
    NoBody,
    #[error("the message body is not an order")]
    NotAnOrder(#[source] OrderRejection),
    #[error("the order total cannot be computed")]
    Total(#[source] MoneyError),
    #[error("the order could not be stored")]
    Table(#[source] TableError),
}

/// Stores every record of the batch on its own; the failures are reported so SQS redelivers
/// only those (`ReportBatchItemFailures`).
pub async fn store_orders(table: &dyn OrderTable, event: SqsEvent) -> SqsBatchResponse {
    store_orders_explained(table, event).await.0
}

/// [`store_orders`], also returning why each failed record failed (message id, error
/// chain), for a dead-letter queue that says what went wrong.
pub async fn store_orders_explained(
    table: &dyn OrderTable,
    event: SqsEvent,
) -> (SqsBatchResponse, Vec<(String, String)>) {
    let outcomes = join_all(event.records.iter().map(|m| store_record(table, m))).await;
    let mut response = SqsBatchResponse::default();
    let mut reasons = Vec::new();
    for (message, outcome) in event.records.iter().zip(outcomes) {
        if let Err(error) = outcome {
            let id = message.message_id.clone().unwrap_or_default();
            let reason = crate::error_chain(&error);
            tracing::warn!(message_id = %id, error = %reason, "order not stored");
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id.clone();
            response.batch_item_failures.push(failure);
            reasons.push((id, reason));
        }
    }
    (response, reasons)
}

#[tracing::instrument(skip_all, fields(
    message_id = message.message_id.as_deref().unwrap_or(""),
    order_id,
    request_id = request_id(message).as_ref().map(RequestId::as_str),
    aws_trace = message.attributes.get(AWS_TRACE_HEADER_ATTRIBUTE),
    receive_count = message.attributes.get("ApproximateReceiveCount"),
))]
pub async fn store_record(
    table: &dyn OrderTable,
    message: &SqsMessage,
) -> Result<Stored, StoreError> {
    let body = message.body.as_deref().ok_or(StoreError::NoBody)?;
    let order = Order::parse(body.as_bytes()).map_err(StoreError::NotAnOrder)?;
    tracing::Span::current().record("order_id", order.order_id.as_str());
    let now = Utc::now();
    let received_at = sent_timestamp(message).unwrap_or(now);
    let stored = StoredOrder::new(order, received_at, now)
        .map_err(StoreError::Total)?
        .with_request_id(request_id(message));
    match table.put_new(&stored).await {
        Ok(()) => {
            tracing::debug!("order stored");
            Ok(Stored::New)
        }
        Err(TableError::AlreadyExists(_)) => {
            tracing::debug!("order was already stored");
            Ok(Stored::AlreadyThere)
        }
        // Never success: the message fails until the queue moves it to its DLQ, with the
        // reason ("conflicts with the stored order") in the error chain.
        Err(e @ TableError::Conflict(_)) => Err(StoreError::Table(e)),
        Err(e) => Err(StoreError::Table(e)),
    }
}

/// The request id the API put on the message; another producer's message may have none.
fn request_id(message: &SqsMessage) -> Option<RequestId> {
    let attribute = message.message_attributes.get(REQUEST_ID_ATTRIBUTE)?;
    RequestId::parse(attribute.string_value.as_deref()?)
}

/// When SQS accepted the message: the moment the order was acknowledged to the client.
fn sent_timestamp(message: &SqsMessage) -> Option<DateTime<Utc>> {
    let ms = message.attributes.get("SentTimestamp")?.parse().ok()?;
    crate::time::from_millis(ms)
}

//! The two handlers, driven by Lambda event JSON in the shape AWS documents (`tests/fixtures/`).

use std::collections::BTreeMap;

use aws_lambda_events::event::dynamodb::Event as DynamoDbEvent;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use orderflow_core::handlers::{publish_orders, store_orders};
use orderflow_core::item::{from_item, key_of, to_item};
use orderflow_core::memory::{InMemoryOrderTable, InMemoryTopic};
use orderflow_core::order::OrderStatus;
use orderflow_core::{
    MessageAttribute, Order, OrderCreated, OrderId, OrderTable, StoredOrder, TOPIC_SUBJECT,
};
use serde_json::{Value, json};

const SQS_EVENT: &str = include_str!("fixtures/sqs-event.json");
const DYNAMODB_EVENT: &str = include_str!("fixtures/dynamodb-insert-event.json");

/// The fixture's third record, whose body is `{"customerId": 5}`.
const BAD_MESSAGE_ID: &str = "8f3c2a1e-6b5d-4e7f-9a0b-1c2d3e4f5a6b";

/// `SequenceNumber` of the fixture's stream records: INSERT ord-1001, MODIFY ord-1001, INSERT ord-1002.
const FIRST_INSERT: &str = "4421584500000000017450439091";
const SECOND_INSERT: &str = "4421584700000000017450439093";

fn sqs_event() -> SqsEvent {
    serde_json::from_str(SQS_EVENT).expect("the SQS fixture is a Lambda SQS event")
}

fn dynamodb_event() -> DynamoDbEvent {
    dynamodb_event_with(|_| {})
}

/// The stream fixture, edited as JSON before it is read as a Lambda event.
fn dynamodb_event_with(edit: impl FnOnce(&mut Value)) -> DynamoDbEvent {
    let mut value: Value =
        serde_json::from_str(DYNAMODB_EVENT).expect("the stream fixture is JSON");
    edit(&mut value);
    serde_json::from_value(value).expect("the stream fixture is a Lambda DynamoDB event")
}

fn id(s: &str) -> OrderId {
    OrderId::parse(s).expect("a valid order id")
}

async fn stored(table: &InMemoryOrderTable, order_id: &str) -> StoredOrder {
    table
        .get(&id(order_id))
        .await
        .expect("the in-memory table answers")
        .unwrap_or_else(|| panic!("order {order_id} is stored"))
}

fn sqs_failures(response: &SqsBatchResponse) -> Vec<&str> {
    response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect()
}

fn stream_failures(response: &DynamoDbEventResponse) -> Vec<Option<&str>> {
    response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_deref())
        .collect()
}

fn order_ids_published(topic: &InMemoryTopic) -> Vec<String> {
    topic
        .published()
        .iter()
        .map(|p| {
            let message: Value = serde_json::from_str(&p.message).expect("the message is JSON");
            message["order"]["orderID"]
                .as_str()
                .expect("the message names its order")
                .to_owned()
        })
        .collect()
}

#[tokio::test]
async fn store_orders_stores_valid_records_and_reports_only_the_bad_one() {
    let table = InMemoryOrderTable::new();
    let event = sqs_event();
    let first_body = event.records[0].body.clone().unwrap();

    let response = store_orders(&table, event).await;

    assert_eq!(sqs_failures(&response), vec![BAD_MESSAGE_ID]);
    assert_eq!(table.len(), 2);

    let first = stored(&table, "ord-1001").await;
    assert_eq!(first.order, Order::parse(first_body.as_bytes()).unwrap());
    assert_eq!(
        first.total.to_string(),
        "60.07",
        "3 x 19.99 + 1 x 0.1, exactly"
    );
    assert_eq!(first.status, OrderStatus::Stored);
    assert_eq!(
        orderflow_core::time::format(&first.received_at),
        "2023-11-14T22:13:20.123Z",
        "receivedAt is the message's SentTimestamp"
    );
    assert!(first.stored_at >= first.received_at);

    let second = stored(&table, "ord-1002").await;
    assert_eq!(second.order.customer_id, "cust-7");
    assert_eq!(second.order.customer_email, None);
    assert_eq!(second.order.shipping_address, None);
    assert_eq!(
        second.total.to_string(),
        "0.5",
        "3 x 0.1 + 0.2 is not 0.5000000000000001"
    );
    assert_eq!(
        orderflow_core::time::format(&second.received_at),
        "2023-11-14T22:13:21.456Z"
    );
}

#[tokio::test]
async fn store_orders_treats_an_existing_order_id_as_success() {
    let table = InMemoryOrderTable::new();
    store_orders(&table, sqs_event()).await;
    let first_write = stored(&table, "ord-1001").await;

    let response = store_orders(&table, sqs_event()).await;

    assert_eq!(sqs_failures(&response), vec![BAD_MESSAGE_ID]);
    assert_eq!(table.len(), 2, "still one order per id");
    assert_eq!(
        stored(&table, "ord-1001").await,
        first_write,
        "a redelivery does not overwrite the stored order"
    );
}

#[tokio::test]
async fn store_orders_fails_a_different_order_under_a_stored_id_and_says_why() {
    use orderflow_core::handlers::store::store_orders_explained;
    let table = InMemoryOrderTable::new();
    store_orders(&table, sqs_event()).await;
    let first_write = stored(&table, "ord-1001").await;
    let mut event = sqs_event();
    event.records.truncate(1);
    let body = event.records[0].body.take().unwrap();
    event.records[0].body = Some(body.replace("cust-42", "an-impostor"));
    assert_ne!(
        event.records[0].body.as_deref(),
        Some(body.as_str()),
        "the customer changed"
    );
    let message_id = event.records[0].message_id.clone().unwrap();

    let (response, reasons) = store_orders_explained(&table, event).await;

    assert_eq!(
        sqs_failures(&response),
        vec![message_id.as_str()],
        "never success"
    );
    assert_eq!(reasons.len(), 1);
    assert!(
        reasons[0].1.contains("conflicts with the stored order"),
        "{reasons:?}"
    );
    assert_eq!(
        stored(&table, "ord-1001").await,
        first_write,
        "the first order is untouched"
    );
}

#[tokio::test]
async fn store_orders_stores_what_the_stream_fixture_carries() {
    let table = InMemoryOrderTable::new();
    store_orders(&table, sqs_event()).await;

    for record in dynamodb_event()
        .records
        .iter()
        .filter(|r| r.event_name == "INSERT")
    {
        let image = from_item(&record.change.new_image).expect("an INSERT image is a stored order");
        let mut ours = stored(&table, image.id().as_str()).await;
        ours.stored_at = image.stored_at; // the moment of the put is the only difference
        assert_eq!(ours, image);
        assert_eq!(
            to_item(&ours),
            record.change.new_image,
            "the image is in the item shape"
        );
        assert_eq!(key_of(&ours), record.change.keys);
    }
}

#[tokio::test]
async fn publish_orders_publishes_one_order_created_per_insert_with_attributes() {
    let topic = InMemoryTopic::new();
    let event = dynamodb_event();
    let images: Vec<StoredOrder> = [&event.records[0], &event.records[2]]
        .iter()
        .map(|r| from_item(&r.change.new_image).unwrap())
        .collect();
    let event_ids = [
        event.records[0].event_id.clone(),
        event.records[2].event_id.clone(),
    ];

    let response = publish_orders(&topic, event).await;

    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    let published = topic.published();
    assert_eq!(published.len(), 2, "the MODIFY is not an order event");
    assert_eq!(order_ids_published(&topic), vec!["ord-1001", "ord-1002"]);

    for ((publication, image), event_id) in published.iter().zip(&images).zip(&event_ids) {
        assert_eq!(
            publication.subject,
            format!(
                "Order {} received: {:.2} {}",
                image.id(),
                image.total.decimal(),
                image.order.currency
            ),
            "the subject is the order mail's, which SNS uses as the e-mail subject line"
        );
        assert_eq!(
            publication.attributes["eventType"],
            MessageAttribute::String(TOPIC_SUBJECT.to_owned())
        );
        assert_eq!(
            &publication.dedup_id, event_id,
            "stable across retries of the record"
        );

        let message: Value = serde_json::from_str(&publication.message).unwrap();
        assert_eq!(message["type"], "OrderCreated");
        assert_eq!(message["order"]["orderID"], image.id().as_str());
        assert_eq!(message["order"]["status"], "STORED");
        assert!(message["order"]["total"].is_number(), "{message}");
        assert!(
            publication
                .message
                .contains(&format!("\"total\":{}", image.total)),
            "the total is written from its exact decimal text: {}",
            publication.message
        );

        let expected = BTreeMap::from([
            (
                "eventType".to_owned(),
                MessageAttribute::String("OrderCreated".into()),
            ),
            (
                "currency".to_owned(),
                MessageAttribute::String(image.order.currency.clone()),
            ),
            (
                "customerId".to_owned(),
                MessageAttribute::String(image.order.customer_id.clone()),
            ),
            (
                "total".to_owned(),
                MessageAttribute::Number(image.total.to_string()),
            ),
        ]);
        assert_eq!(publication.attributes, expected);
    }

    let first: Value = serde_json::from_str(&published[0].message).unwrap();
    assert_eq!(
        first,
        json!({
            "type": "OrderCreated",
            "order": {
                "orderID": "ord-1001",
                "customerId": "cust-42",
                "customerEmail": "ada@example.com",
                "items": [
                    {"sku": "BOOK-1", "quantity": 3, "unitPrice": 19.99},
                    {"sku": "PEN", "quantity": 1, "unitPrice": 0.1}
                ],
                "currency": "EUR",
                "shippingAddress": {"line1": "1 Main St", "city": "Berlin", "postalCode": "10115", "country": "DE"},
                "notes": "leave at the door",
                "total": 60.07,
                "status": "STORED",
                "receivedAt": "2023-11-14T22:13:20.123Z",
                "storedAt": "2023-11-14T22:13:20.512Z"
            }
        })
    );
    assert_eq!(
        published[1].attributes["total"],
        MessageAttribute::Number("0.5".into())
    );
}

#[tokio::test]
async fn a_subscriber_reads_the_published_message_back_as_an_order_created() {
    let topic = InMemoryTopic::new();
    let event = dynamodb_event();
    let image = from_item(&event.records[0].change.new_image).unwrap();

    publish_orders(&topic, event).await;

    let message = &topic.published()[0].message;
    let read: OrderCreated = serde_json::from_str(message).expect("the message is an OrderCreated");
    assert_eq!(read, OrderCreated::new(image));
}

#[tokio::test]
async fn publish_orders_reports_the_first_failing_record_and_stops() {
    let topic = InMemoryTopic::new();
    topic.fail_next(1);

    let response = publish_orders(&topic, dynamodb_event()).await;

    assert_eq!(stream_failures(&response), vec![Some(FIRST_INSERT)]);
    assert!(
        topic.published().is_empty(),
        "nothing past the failure is published"
    );

    let retry = publish_orders(&topic, dynamodb_event()).await;
    assert!(retry.batch_item_failures.is_empty(), "{retry:?}");
    assert_eq!(order_ids_published(&topic), vec!["ord-1001", "ord-1002"]);
}

#[tokio::test]
async fn publish_orders_reports_a_corrupt_image() {
    let topic = InMemoryTopic::new();
    let event = dynamodb_event_with(|v| {
        v["Records"][2]["dynamodb"]["NewImage"]
            .as_object_mut()
            .unwrap()
            .remove("items")
            .expect("the fixture's image has items");
    });

    let response = publish_orders(&topic, event).await;

    assert_eq!(stream_failures(&response), vec![Some(SECOND_INSERT)]);
    assert_eq!(
        order_ids_published(&topic),
        vec!["ord-1001"],
        "records before the corrupt one are published"
    );
}

#[tokio::test]
async fn the_sqs_batch_response_serializes_as_lambda_expects() {
    let response = store_orders(&InMemoryOrderTable::new(), sqs_event()).await;

    assert_eq!(
        serde_json::to_value(&response).unwrap(),
        json!({"batchItemFailures": [{"itemIdentifier": BAD_MESSAGE_ID}]})
    );
}

#[tokio::test]
async fn the_stream_batch_response_serializes_as_lambda_expects() {
    let topic = InMemoryTopic::new();
    topic.fail_next(1);

    let response = publish_orders(&topic, dynamodb_event()).await;

    assert_eq!(
        serde_json::to_value(&response).unwrap(),
        json!({"batchItemFailures": [{"itemIdentifier": FIRST_INSERT}]})
    );
}

#[tokio::test]
async fn the_request_id_on_the_message_is_stored_and_published_as_an_attribute() {
    let mut event = sqs_event();
    for (i, record) in event.records.iter_mut().enumerate() {
        record.message_attributes = serde_json::from_value(json!({
            "requestId": {"stringValue": format!("req-{i}"), "dataType": "String"}
        }))
        .unwrap();
    }
    let table = InMemoryOrderTable::default();
    store_orders(&table, event).await;
    let order = stored(&table, "ord-1001").await;
    assert_eq!(order.request_id.as_ref().map(|r| r.as_str()), Some("req-0"));

    let topic = InMemoryTopic::default();
    let mut record = dynamodb_event().records.remove(0);
    record.change.new_image = to_item(&order);
    let mut event = DynamoDbEvent::default();
    event.records = vec![record];
    publish_orders(&topic, event).await;
    let published = topic.published();
    assert_eq!(
        published[0].attributes.get("requestId"),
        Some(&MessageAttribute::String("req-0".into()))
    );
}

#[tokio::test]
async fn a_message_without_a_request_id_stores_an_order_without_one() {
    let table = InMemoryOrderTable::default();
    store_orders(&table, sqs_event()).await;
    assert_eq!(stored(&table, "ord-1001").await.request_id, None);
}

/// Counts batch calls and fails the batch's `fail_at`-th publication.
#[derive(Debug, Default)]
struct BatchingTopic {
    inner: InMemoryTopic,
    batches: std::sync::Mutex<Vec<usize>>,
    fail_at: Option<usize>,
}

#[async_trait::async_trait]
impl orderflow_core::Topic for BatchingTopic {
    async fn publish(
        &self,
        publication: &orderflow_core::Publication,
    ) -> Result<String, orderflow_core::TopicError> {
        self.inner.publish(publication).await
    }

    async fn publish_batch(
        &self,
        publications: &[orderflow_core::Publication],
    ) -> Vec<Result<String, orderflow_core::TopicError>> {
        self.batches.lock().unwrap().push(publications.len());
        let mut out = Vec::new();
        for (i, p) in publications.iter().enumerate() {
            if Some(i) == self.fail_at {
                out.push(Err(orderflow_core::TopicError::Rejected("injected".into())));
                break;
            }
            out.push(self.inner.publish(p).await);
        }
        out
    }
}

#[tokio::test]
async fn publish_orders_hands_every_insert_to_the_topic_in_one_batch() {
    let topic = BatchingTopic::default();
    let response = publish_orders(&topic, dynamodb_event()).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(
        *topic.batches.lock().unwrap(),
        vec![2],
        "two INSERTs, one call"
    );
    assert_eq!(
        order_ids_published(&topic.inner),
        vec!["ord-1001", "ord-1002"]
    );
}

#[tokio::test]
async fn a_failure_inside_the_batch_reports_that_record_and_keeps_those_before_it() {
    let topic = BatchingTopic {
        fail_at: Some(1),
        ..BatchingTopic::default()
    };
    let event = dynamodb_event();
    let second_insert = event
        .records
        .iter()
        .filter(|r| r.event_name == "INSERT")
        .nth(1)
        .unwrap()
        .change
        .sequence_number
        .clone();
    let response = publish_orders(&topic, event).await;
    assert_eq!(stream_failures(&response), vec![second_insert.as_deref()]);
    assert_eq!(order_ids_published(&topic.inner), vec!["ord-1001"]);
}

//! `SnsTopic` against moto's SNS: the per-protocol message leaves queue subscribers' view
//! unchanged, filters behave as before, and `PublishBatch` maps each entry's failure to its
//! stream record.

use std::collections::HashMap;
use std::time::Duration;

use aws_lambda_events::event::dynamodb::Event;
use orderflow_aws::SnsTopic;
use orderflow_core::conformance::sample_order;
use orderflow_core::handlers::publish::publish_orders;
use orderflow_core::{OrderCreated, Publication, StoredOrder, Topic, TopicError};
use serde_json::{Value, json};

use crate::support::{Moto, moto_or_skip, unique};

/// One message as the queue holds it: the body and the SQS message attributes.
struct Received {
    body: String,
    attributes: HashMap<String, String>,
}

/// Receives until `expected` messages arrived or five seconds passed.
async fn receive(moto: &Moto, queue_url: &str, expected: usize) -> Vec<Received> {
    let sqs = moto.sqs();
    let mut received = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while received.len() < expected && tokio::time::Instant::now() < deadline {
        let output = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive from moto");
        for message in output.messages.unwrap_or_default() {
            let attributes = message
                .message_attributes
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.string_value.unwrap_or_default()))
                .collect();
            received.push(Received {
                body: message.body.expect("a body"),
                attributes,
            });
            sqs.delete_message()
                .queue_url(queue_url)
                .receipt_handle(message.receipt_handle.expect("a receipt handle"))
                .send()
                .await
                .expect("delete from moto");
        }
    }
    received
}

fn order_in(currency: &str) -> StoredOrder {
    let mut order = sample_order();
    order.order.currency = currency.into();
    order
}

fn order_id_of(message: &str) -> String {
    let event: Value = serde_json::from_str(message).expect("the message is the event JSON");
    event["order"]["orderID"]
        .as_str()
        .expect("an orderID")
        .to_owned()
}

#[tokio::test]
async fn an_sqs_subscriber_still_receives_the_order_created_json_unchanged() {
    let moto = moto_or_skip!();
    let topic_arn = moto.create_topic().await;
    let enveloped = moto.subscribe_queue_with(&topic_arn, &[]).await;
    let raw = moto
        .subscribe_queue_with(&topic_arn, &[("RawMessageDelivery", json!("true"))])
        .await;
    let topic = SnsTopic::new(moto.sns(), &topic_arn);

    let event = OrderCreated::new(sample_order());
    let publication = event.to_publication(unique("dedup"));
    let batched = OrderCreated::new(sample_order()).to_publication(unique("dedup"));
    topic.publish(&publication).await.expect("Publish");
    let results = topic.publish_batch(std::slice::from_ref(&batched)).await;
    assert!(matches!(results.as_slice(), [Ok(_)]), "{results:?}");

    let mut envelopes = receive(&moto, &enveloped, 2).await;
    assert_eq!(envelopes.len(), 2);
    envelopes.sort_by_key(|r| {
        let envelope: Value = serde_json::from_str(&r.body).unwrap();
        order_id_of(envelope["Message"].as_str().unwrap()) != event.order.id().as_str()
    });
    for (received, sent) in envelopes.iter().zip([&publication, &batched]) {
        let envelope: Value = serde_json::from_str(&received.body).expect("an SNS envelope");
        assert_eq!(envelope["Type"], "Notification");
        assert_eq!(
            envelope["Message"],
            sent.message.as_str(),
            "the OrderCreated JSON, byte for byte, not the per-protocol structure"
        );
        assert_eq!(
            envelope["Subject"],
            OrderCreated::from_message(&sent.message)
                .unwrap()
                .mail()
                .subject
                .as_str()
        );
        assert_eq!(
            envelope["MessageAttributes"]["eventType"],
            json!({"Type": "String", "Value": "OrderCreated"})
        );
        assert_eq!(
            envelope["MessageAttributes"]["total"],
            json!({"Type": "Number", "Value": "60.07"})
        );
    }

    let mut bodies = receive(&moto, &raw, 2).await;
    assert_eq!(bodies.len(), 2);
    bodies.sort_by_key(|r| order_id_of(&r.body) != event.order.id().as_str());
    for (received, sent) in bodies.iter().zip([&publication, &batched]) {
        assert_eq!(received.body, sent.message, "raw delivery: the JSON itself");
        assert_eq!(received.attributes["eventType"], "OrderCreated");
        assert_eq!(received.attributes["currency"], "EUR");
        assert_eq!(received.attributes["total"], "60.07");
    }
}

#[tokio::test]
async fn attribute_and_body_filters_see_the_order_created_event_as_before() {
    let moto = moto_or_skip!();
    let topic_arn = moto.create_topic().await;
    let by_attribute = moto
        .subscribe_queue_with(
            &topic_arn,
            &[("FilterPolicy", json!({"currency": ["EUR"]}))],
        )
        .await;
    let by_body = moto
        .subscribe_queue_with(
            &topic_arn,
            &[
                (
                    "FilterPolicy",
                    json!({"type": ["OrderCreated"], "order": {"currency": ["EUR"]}}),
                ),
                ("FilterPolicyScope", json!("MessageBody")),
                ("RawMessageDelivery", json!("true")),
            ],
        )
        .await;
    let topic = SnsTopic::new(moto.sns(), &topic_arn);
    let eur = OrderCreated::new(order_in("EUR")).to_publication(unique("d"));
    let usd = OrderCreated::new(order_in("USD")).to_publication(unique("d"));
    topic.publish(&usd).await.expect("Publish");
    topic.publish(&eur).await.expect("Publish");
    let results = topic.publish_batch(&[usd.clone(), eur.clone()]).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");

    let received = receive(&moto, &by_attribute, 2).await;
    let messages: Vec<String> = received
        .iter()
        .map(|r| {
            let envelope: Value = serde_json::from_str(&r.body).unwrap();
            envelope["Message"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(messages, [eur.message.clone(), eur.message.clone()]);

    let received = receive(&moto, &by_body, 2).await;
    let bodies: Vec<&str> = received.iter().map(|r| r.body.as_str()).collect();
    assert_eq!(bodies, [eur.message.as_str(), eur.message.as_str()]);

    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(receive(&moto, &by_attribute, 0).await.is_empty());
    assert!(receive(&moto, &by_body, 0).await.is_empty());
}

#[tokio::test]
async fn publish_batch_publishes_more_than_ten_in_order_in_calls_of_ten() {
    let moto = moto_or_skip!();
    let topic_arn = moto.create_topic().await;
    let queue = moto
        .subscribe_queue_with(&topic_arn, &[("RawMessageDelivery", json!("true"))])
        .await;
    let topic = SnsTopic::new(moto.sns(), &topic_arn);
    let publications: Vec<Publication> = (0..23)
        .map(|_| OrderCreated::new(sample_order()).to_publication(unique("d")))
        .collect();

    // moto, like SNS, refuses a PublishBatch of more than ten entries as a whole.
    let results = topic.publish_batch(&publications).await;
    assert_eq!(results.len(), 23);
    let ids: Vec<&String> = results
        .iter()
        .map(|r| r.as_ref().expect("published"))
        .collect();
    let distinct: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(distinct.len(), 23, "one message id each");

    let received = receive(&moto, &queue, 23).await;
    let mut got: Vec<String> = received.iter().map(|r| order_id_of(&r.body)).collect();
    let mut sent: Vec<String> = publications
        .iter()
        .map(|p| order_id_of(&p.message))
        .collect();
    got.sort();
    sent.sort();
    assert_eq!(got, sent);
}

/// A message larger than SNS's 256 KiB limit, which SNS refuses as an entry of `PublishBatch`
/// ("The maximum allowed individual message size ... 256 KB",
/// <https://docs.aws.amazon.com/sns/latest/api/API_PublishBatch.html>). moto reports it in
/// `Failed` with `InvalidParameter` and `SenderFault`; it fails no entry for another reason,
/// so this is the most faithful entry failure it can produce.
fn oversized() -> StoredOrder {
    let mut order = sample_order();
    order.order.notes = Some("n".repeat(270_000));
    order
}

#[tokio::test]
async fn an_entry_sns_refuses_fails_alone_and_nothing_after_it_is_published() {
    let moto = moto_or_skip!();
    let topic_arn = moto.create_topic().await;
    let queue = moto
        .subscribe_queue_with(&topic_arn, &[("RawMessageDelivery", json!("true"))])
        .await;
    let topic = SnsTopic::new(moto.sns(), &topic_arn);
    let orders = [sample_order(), sample_order(), oversized(), sample_order()];
    let publications: Vec<Publication> = orders
        .iter()
        .map(|o| OrderCreated::new(o.clone()).to_publication(unique("d")))
        .collect();

    let results = topic.publish_batch(&publications).await;
    assert_eq!(
        results.len(),
        3,
        "the entry after the failure is not attempted"
    );
    assert!(results[0].is_ok() && results[1].is_ok(), "{results:?}");
    match &results[2] {
        Err(TopicError::Rejected(why)) => {
            assert!(why.contains("InvalidParameter"), "{why}")
        }
        other => panic!("the oversized entry is refused by SNS, got {other:?}"),
    }

    let received = receive(&moto, &queue, 3).await;
    let got: Vec<String> = received.iter().map(|r| order_id_of(&r.body)).collect();
    let mut expected = vec![orders[0].id().to_string(), orders[1].id().to_string()];
    let mut got_sorted = got.clone();
    got_sorted.sort();
    expected.sort();
    assert_eq!(
        got_sorted, expected,
        "only the entries before the refused one"
    );
}

/// A DynamoDB stream event of INSERTs, shaped as Lambda delivers it.
fn stream_event(orders: &[StoredOrder]) -> Event {
    let records: Vec<Value> = orders
        .iter()
        .enumerate()
        .map(|(i, order)| {
            json!({
                "eventID": format!("event-{i}"),
                "eventName": "INSERT",
                "eventVersion": "1.1",
                "eventSource": "aws:dynamodb",
                "awsRegion": "us-east-1",
                "dynamodb": {
                    "Keys": {"orderID": {"S": order.id().as_str()}},
                    "NewImage": serde_json::to_value(orderflow_core::item::to_item(order)).unwrap(),
                    "SequenceNumber": format!("{}", 1000 + i),
                    "SizeBytes": 100,
                    "StreamViewType": "NEW_IMAGE"
                },
                "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/orders/stream/2026-01-01T00:00:00.000"
            })
        })
        .collect();
    serde_json::from_value(json!({ "Records": records })).expect("a DynamoDB stream event")
}

#[tokio::test]
async fn publish_orders_reports_the_record_whose_batch_entry_failed_and_the_retry_goes_on_from_it()
{
    let moto = moto_or_skip!();
    let topic_arn = moto.create_topic().await;
    let queue = moto
        .subscribe_queue_with(&topic_arn, &[("RawMessageDelivery", json!("true"))])
        .await;
    let topic = SnsTopic::new(moto.sns(), &topic_arn);
    let mut orders = vec![sample_order(), sample_order(), oversized(), sample_order()];

    let response = publish_orders(&topic, stream_event(&orders)).await;
    let failures: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_deref().unwrap_or_default())
        .collect();
    assert_eq!(
        failures,
        ["1002"],
        "the third record's sequence number: the stream retries from it, in order"
    );
    let first: Vec<String> = receive(&moto, &queue, 2)
        .await
        .iter()
        .map(|r| order_id_of(&r.body))
        .collect();
    assert_eq!(first.len(), 2);
    assert!(first.contains(&orders[0].id().to_string()));
    assert!(first.contains(&orders[1].id().to_string()));

    // The retry holds the failed record and what followed it; once it can be published,
    // the rest follows.
    orders[2].order.notes = Some("short now".into());
    let retry = stream_event(&orders[2..]);
    let response = publish_orders(&topic, retry).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    let rest: Vec<String> = receive(&moto, &queue, 2)
        .await
        .iter()
        .map(|r| order_id_of(&r.body))
        .collect();
    assert_eq!(rest.len(), 2);
    assert!(rest.contains(&orders[2].id().to_string()));
    assert!(rest.contains(&orders[3].id().to_string()));
}

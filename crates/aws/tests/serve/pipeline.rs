//! The real `store-orders` and `publish-orders` binaries under the Lambda Runtime API
//! harness, with `AWS_ENDPOINT_URL` pointing at `orderflow serve`: they store into its
//! `orders` table and publish to its `POC-Topic`, and its own subscribers receive the orders.

use orderflow_aws::DynamoDbOrderTable;
use orderflow_core::{OrderId, OrderTable};
use serde_json::{Value, json};

use crate::support::runtime::{Function, Outcome};
use crate::support::{Serve, TABLE, serve_or_skip, sqs_event_fixture};

const BAD_RECORD: &str = "8f3c2a1e-6b5d-4e7f-9a0b-1c2d3e4f5a6b";

fn response(outcome: Outcome, function: &Function, serve: &Serve) -> Value {
    match outcome {
        Outcome::Response(value) => value,
        Outcome::Error(error) => panic!(
            "the function reported an error: {error}\nits output:\n{}\nserve's log:\n{}",
            function.output(),
            serve.logs()
        ),
    }
}

/// The `orderID`s of the `OrderCreated` announcements in SNS envelopes, sorted.
fn announced_ids(envelopes: &[Value]) -> Vec<String> {
    let mut ids: Vec<String> = envelopes
        .iter()
        .map(|n| {
            let m: Value = serde_json::from_str(n["Message"].as_str().expect("a Message"))
                .expect("the Message is JSON");
            assert_eq!(m["type"], "OrderCreated");
            m["order"]["orderID"].as_str().unwrap().to_owned()
        })
        .collect();
    ids.sort();
    ids
}

/// Stores the fixture's orders with `store-orders`; returns when serve's own pipeline has
/// announced both to `audit` (a queue subscription made before).
async fn store_the_fixture(serve: &Serve, audit: &str) {
    let store = Function::start(
        env!("CARGO_BIN_EXE_store-orders"),
        "store-orders",
        &serve.lambda_env(&[("ORDERS_TABLE", TABLE)]),
    )
    .await;
    let answer = response(store.invoke(&sqs_event_fixture()).await, &store, serve);
    assert_eq!(
        answer,
        json!({ "batchItemFailures": [{ "itemIdentifier": BAD_RECORD }] }),
        "only the record that is no order fails"
    );
    // SQS delivers at least once: the same batch again stores nothing new.
    let again = response(store.invoke(&sqs_event_fixture()).await, &store, serve);
    assert_eq!(again, answer);
    assert_eq!(
        announced_ids(&serve.receive(audit, 2).await),
        ["ord-1001", "ord-1002"],
        "serve's own stream poller and publisher announce each stored order once"
    );
}

#[tokio::test]
async fn store_orders_stores_into_serves_table_and_serves_own_subscribers_receive_the_orders() {
    let serve = serve_or_skip!();
    let audit = serve.subscribe_queue("audit", None).await;
    store_the_fixture(&serve, &audit).await;

    let table = DynamoDbOrderTable::new(serve.dynamodb(), TABLE);
    let first = table
        .get(&OrderId::parse("ord-1001").unwrap())
        .await
        .unwrap()
        .expect("ord-1001 is in serve's table");
    assert_eq!(first.total.to_string(), "60.07");
    assert_eq!(first.order.customer_id, "cust-42");
    let shown = serve.order("ord-1002").await.expect("serve's API shows it");
    assert_eq!(shown["status"], "STORED");
    assert_eq!(shown["total"].to_string(), "0.5");
    assert!(
        serve.receive(&audit, 0).await.is_empty(),
        "the redelivered batch announced nothing twice"
    );

    let event = serve.stream_event().await;
    let records = event["Records"].as_array().unwrap();
    assert_eq!(
        records.len(),
        2,
        "one stream record per stored order: {event:#}"
    );
    assert!(records.iter().all(|r| r["eventName"] == "INSERT"));
}

#[tokio::test]
async fn publish_orders_publishes_serves_stream_records_to_its_topic_through_the_filters() {
    let serve = serve_or_skip!();
    let audit = serve.subscribe_queue("audit", None).await;
    store_the_fixture(&serve, &audit).await;
    let event = serve.stream_event().await;

    // Subscribed after serve announced the orders itself: these get only what publish-orders
    // publishes.
    let eur = serve
        .subscribe_queue("eur", Some(json!({ "currency": ["EUR"] })))
        .await;
    let all = serve.subscribe_queue("all", None).await;
    // The held-back queue must hold only what publish-orders puts there: its filter lets no
    // announcement through.
    let held_back = serve
        .subscribe_queue("held-back", Some(json!({ "eventType": ["NoSuchEvent"] })))
        .await;
    let topic_arn = serve.topic_arn();
    let publish = Function::start(
        env!("CARGO_BIN_EXE_publish-orders"),
        "publish-orders",
        &serve.lambda_env(&[
            ("ORDERS_TOPIC_ARN", &topic_arn),
            ("HELD_BACK_QUEUE_URL", &held_back),
        ]),
    )
    .await;
    let answer = response(publish.invoke(&event).await, &publish, &serve);
    assert_eq!(answer, json!({ "batchItemFailures": [] }));

    let eur_got = serve.receive(&eur, 1).await;
    assert_eq!(
        announced_ids(&eur_got),
        ["ord-1001"],
        "the EUR filter passes one"
    );
    let notification = &eur_got[0];
    assert_eq!(notification["Type"], "Notification");
    // serve's envelopes still name the engine's own topic ARN, not POC-Topic's (README, the
    // SNS section's remaining differences).
    assert!(
        notification["TopicArn"]
            .as_str()
            .is_some_and(|arn| arn.starts_with("arn:aws:sns:")),
        "{notification}"
    );
    assert_eq!(
        notification["Subject"],
        "Order ord-1001 received: 60.07 EUR"
    );
    let attributes = &notification["MessageAttributes"];
    assert_eq!(
        attributes["eventType"],
        json!({ "Type": "String", "Value": "OrderCreated" })
    );
    assert_eq!(
        attributes["total"],
        json!({ "Type": "Number", "Value": "60.07" })
    );
    assert_eq!(
        announced_ids(&serve.receive(&all, 2).await),
        ["ord-1001", "ord-1002"]
    );
    assert!(
        serve.receive(&held_back, 0).await.is_empty(),
        "nothing is held back while the topic takes every announcement"
    );
}

#[tokio::test]
async fn announcements_serve_has_no_topic_for_are_held_back_in_its_queue() {
    let serve = serve_or_skip!();
    let audit = serve.subscribe_queue("audit", None).await;
    store_the_fixture(&serve, &audit).await;
    let event = serve.stream_event().await;
    let held_back = serve
        .subscribe_queue("held-back", Some(json!({ "eventType": ["NoSuchEvent"] })))
        .await;
    let gone = serve.topic_arn().replace("POC-Topic", "gone");
    let publish = Function::start(
        env!("CARGO_BIN_EXE_publish-orders"),
        "publish-orders",
        &serve.lambda_env(&[
            ("ORDERS_TOPIC_ARN", &gone),
            ("HELD_BACK_QUEUE_URL", &held_back),
        ]),
    )
    .await;
    let answer = response(publish.invoke(&event).await, &publish, &serve);
    assert_eq!(answer, json!({ "batchItemFailures": [] }));
    let held = serve.receive(&held_back, 2).await;
    let mut ids: Vec<String> = held
        .iter()
        .map(|h| {
            assert_eq!(h["MessageStructure"], "json");
            let structure: Value = serde_json::from_str(h["Message"].as_str().unwrap()).unwrap();
            let message: Value =
                serde_json::from_str(structure["default"].as_str().unwrap()).unwrap();
            message["order"]["orderID"].as_str().unwrap().to_owned()
        })
        .collect();
    ids.sort();
    assert_eq!(ids, ["ord-1001", "ord-1002"], "each announcement, whole");
}

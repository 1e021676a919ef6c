//! The real `store-orders` and `publish-orders` binaries, driven through the Lambda Runtime
//! API against moto: SQS event -> DynamoDB -> DynamoDB Streams -> SNS -> subscribed queues.

use std::time::Duration;

use orderflow_aws::DynamoDbOrderTable;
use orderflow_core::{OrderId, OrderTable};
use serde_json::{Value, json};

use crate::support::runtime::{Function, Outcome};
use crate::support::{Moto, moto_or_skip, sqs_event_fixture};

/// The binaries cargo built for this test, or, with `ORDERFLOW_LAMBDA_BOOTSTRAPS` set to
/// `sam build`'s build directory, the `bootstrap` files SAM deploys (one directory per
/// function, named by its logical id in infra/template.yaml).
fn binary(logical_id: &str, built: &str) -> String {
    match std::env::var("ORDERFLOW_LAMBDA_BOOTSTRAPS") {
        Ok(dir) if !dir.is_empty() => format!("{dir}/{logical_id}/bootstrap"),
        _ => built.to_owned(),
    }
}

fn store() -> String {
    binary("StoreOrdersFunction", env!("CARGO_BIN_EXE_store-orders"))
}

fn publish() -> String {
    binary(
        "PublishOrdersFunction",
        env!("CARGO_BIN_EXE_publish-orders"),
    )
}

const BAD_RECORD: &str = "8f3c2a1e-6b5d-4e7f-9a0b-1c2d3e4f5a6b";

fn with(moto: &Moto, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env = moto.lambda_env(&[]);
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

fn response(outcome: Outcome, function: &Function) -> Value {
    match outcome {
        Outcome::Response(value) => value,
        Outcome::Error(error) => panic!(
            "the function reported an error: {error}\nits output:\n{}",
            function.output()
        ),
    }
}

#[tokio::test]
async fn an_order_goes_from_the_sqs_event_to_a_filtered_sns_subscriber() {
    let moto = moto_or_skip!();
    let (table_name, stream_arn) = moto.create_orders_table().await;
    let topic_arn = moto.create_topic().await;
    let eur_queue = moto
        .subscribe_queue(&topic_arn, Some(json!({ "currency": ["EUR"] })))
        .await;
    let all_queue = moto.subscribe_queue(&topic_arn, None).await;

    // Lambda 1: the fixture holds two orders and one record that is not an order.
    let store = Function::start(
        &store(),
        "store-orders",
        &with(&moto, &[("ORDERS_TABLE", &table_name)]),
    )
    .await;
    let answer = response(store.invoke(&sqs_event_fixture()).await, &store);
    assert_eq!(
        answer,
        json!({ "batchItemFailures": [{ "itemIdentifier": BAD_RECORD }] }),
        "only the bad record fails"
    );
    // SQS delivers at least once: the same batch again stores nothing new and fails the same.
    let again = response(store.invoke(&sqs_event_fixture()).await, &store);
    assert_eq!(again, answer);
    assert!(
        store.output().contains("order not stored"),
        "the failure is logged:\n{}",
        store.output()
    );
    for line in store.output().lines().filter(|l| !l.is_empty()) {
        serde_json::from_str::<Value>(line)
            .unwrap_or_else(|_| panic!("every log line is JSON, not {line:?}"));
    }

    let table = DynamoDbOrderTable::new(moto.dynamodb(), &table_name);
    let first = table
        .get(&OrderId::parse("ord-1001").unwrap())
        .await
        .unwrap()
        .expect("ord-1001 is stored");
    assert_eq!(first.total.to_string(), "60.07");
    assert_eq!(first.order.customer_id, "cust-42");
    let second = table
        .get(&OrderId::parse("ord-1002").unwrap())
        .await
        .unwrap()
        .expect("ord-1002 is stored");
    assert_eq!(second.total.to_string(), "0.5");

    // The stream holds one INSERT per order, the redelivery added none.
    let event = moto.stream_event(&stream_arn).await;
    let records = event["Records"].as_array().unwrap();
    assert_eq!(
        records.len(),
        2,
        "one stream record per stored order: {event:#}"
    );
    assert!(records.iter().all(|r| r["eventName"] == "INSERT"));

    // Lambda 2, fed the records read back from moto's DynamoDB Streams.
    let held_back = moto.create_queue("held-back").await;
    let publish = Function::start(
        &publish(),
        "publish-orders",
        &with(
            &moto,
            &[
                ("ORDERS_TOPIC_ARN", &topic_arn),
                ("HELD_BACK_QUEUE_URL", &held_back),
            ],
        ),
    )
    .await;
    let answer = response(publish.invoke(&event).await, &publish);
    assert_eq!(answer, json!({ "batchItemFailures": [] }));
    assert!(
        moto.receive(&held_back, 0).await.is_empty(),
        "nothing is held back while SNS takes every announcement"
    );

    let eur = moto.receive(&eur_queue, 1).await;
    assert_eq!(
        eur.len(),
        1,
        "the EUR filter lets exactly one order through: {eur:#?}"
    );
    let notification = &eur[0];
    assert_eq!(notification["Type"], "Notification");
    assert_eq!(notification["TopicArn"], topic_arn.as_str());
    assert_eq!(
        notification["Subject"], "Order ord-1001 received: 60.07 EUR",
        "the order mail's subject, which SNS also puts in the envelope"
    );
    let message: Value = serde_json::from_str(
        notification["Message"]
            .as_str()
            .expect("Message is a string"),
    )
    .expect("Message is JSON");
    assert_eq!(message["type"], "OrderCreated");
    assert_eq!(message["order"]["orderID"], "ord-1001");
    assert_eq!(message["order"]["status"], "STORED");
    assert_eq!(message["order"]["total"].to_string(), "60.07");
    let attributes = &notification["MessageAttributes"];
    assert_eq!(
        attributes["eventType"],
        json!({ "Type": "String", "Value": "OrderCreated" })
    );
    assert_eq!(
        attributes["currency"],
        json!({ "Type": "String", "Value": "EUR" })
    );
    assert_eq!(
        attributes["customerId"],
        json!({ "Type": "String", "Value": "cust-42" })
    );
    assert_eq!(
        attributes["total"],
        json!({ "Type": "Number", "Value": "60.07" })
    );

    let all = moto.receive(&all_queue, 2).await;
    let mut ids: Vec<String> = all
        .iter()
        .map(|n| {
            let m: Value = serde_json::from_str(n["Message"].as_str().unwrap()).unwrap();
            m["order"]["orderID"].as_str().unwrap().to_owned()
        })
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        ["ord-1001", "ord-1002"],
        "the unfiltered queue gets both"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        moto.receive(&eur_queue, 0).await.is_empty(),
        "nothing else passed the filter"
    );
}

#[tokio::test]
async fn announcements_sns_does_not_take_are_held_back_whole_and_nothing_fails() {
    let moto = moto_or_skip!();
    let (table_name, stream_arn) = moto.create_orders_table().await;
    let store = Function::start(
        &store(),
        "store-orders",
        &with(&moto, &[("ORDERS_TABLE", &table_name)]),
    )
    .await;
    response(store.invoke(&sqs_event_fixture()).await, &store);
    let event = moto.stream_event(&stream_arn).await;

    // SNS is "down": the topic does not exist.
    let held_back = moto.create_queue("held-back").await;
    let publish = Function::start(
        &publish(),
        "publish-orders",
        &with(
            &moto,
            &[
                (
                    "ORDERS_TOPIC_ARN",
                    "arn:aws:sns:us-east-1:123456789012:gone",
                ),
                ("HELD_BACK_QUEUE_URL", &held_back),
            ],
        ),
    )
    .await;
    let answer = response(publish.invoke(&event).await, &publish);
    assert_eq!(answer, json!({ "batchItemFailures": [] }));
    let held = moto.receive(&held_back, 2).await;
    let mut ids: Vec<String> = held
        .iter()
        .map(|h| {
            let subject = h["Subject"].as_str().unwrap();
            assert!(subject.starts_with("Order ord-100"), "{subject}");
            assert_eq!(
                h["MessageAttributes"]["eventType"],
                json!({ "DataType": "String", "StringValue": "OrderCreated" })
            );
            // Held as SnsTopic publishes it, so a republished order still mails readably.
            assert_eq!(h["MessageStructure"], "json");
            let structure: Value = serde_json::from_str(h["Message"].as_str().unwrap()).unwrap();
            assert!(
                structure["email"].as_str().unwrap().contains("Total"),
                "{structure}"
            );
            let message: Value =
                serde_json::from_str(structure["default"].as_str().unwrap()).unwrap();
            assert_eq!(message["type"], "OrderCreated");
            message["order"]["orderID"].as_str().unwrap().to_owned()
        })
        .collect();
    ids.sort();
    assert_eq!(ids, ["ord-1001", "ord-1002"], "each announcement, whole");
}

#[tokio::test]
async fn publish_reports_the_first_record_it_could_neither_publish_nor_hold_back() {
    let moto = moto_or_skip!();
    let (table_name, stream_arn) = moto.create_orders_table().await;
    let store = Function::start(
        &store(),
        "store-orders",
        &with(&moto, &[("ORDERS_TABLE", &table_name)]),
    )
    .await;
    response(store.invoke(&sqs_event_fixture()).await, &store);
    let event = moto.stream_event(&stream_arn).await;
    let first_sequence = event["Records"][0]["dynamodb"]["SequenceNumber"].clone();

    let publish = Function::start(
        &publish(),
        "publish-orders",
        &with(
            &moto,
            &[
                (
                    "ORDERS_TOPIC_ARN",
                    "arn:aws:sns:us-east-1:123456789012:gone",
                ),
                (
                    "HELD_BACK_QUEUE_URL",
                    &format!("{}/123456789012/gone-too", moto.url),
                ),
            ],
        ),
    )
    .await;
    let answer = response(publish.invoke(&event).await, &publish);
    assert_eq!(
        answer,
        json!({ "batchItemFailures": [{ "itemIdentifier": first_sequence }] }),
        "the stream retries from the first failure, so only that one is reported"
    );
}

#[tokio::test]
async fn init_makes_no_network_call_before_the_first_event() {
    let moto = moto_or_skip!();
    // An endpoint that only counts who connects to it.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let connections = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = connections.clone();
    tokio::spawn(async move {
        while let Ok((_socket, _)) = listener.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    let mut env = with(
        &moto,
        &[
            ("ORDERS_TABLE", "orders"),
            ("ORDERS_TOPIC_ARN", "arn:aws:sns:us-east-1:123456789012:t"),
            ("HELD_BACK_QUEUE_URL", "http://127.0.0.1:9/123456789012/q"),
        ],
    );
    for (k, v) in env.iter_mut() {
        if k == "AWS_ENDPOINT_URL" {
            *v = endpoint.clone();
        }
    }
    for (binary, name) in [(store(), "store-orders"), (publish(), "publish-orders")] {
        let function = Function::start(&binary, name, &env).await;
        function.wait_until_polling().await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            connections.load(std::sync::atomic::Ordering::SeqCst),
            0,
            "{name} reached for AWS before its first event; output:\n{}",
            function.output()
        );
        assert_eq!(function.next_calls(), 1);
    }
}

#[tokio::test]
async fn a_function_without_its_configuration_fails_at_init_and_says_what_is_missing() {
    let moto = moto_or_skip!();
    for (binary, name, variable) in [
        (store(), "store-orders", "ORDERS_TABLE"),
        (publish(), "publish-orders", "ORDERS_TOPIC_ARN"),
    ] {
        let mut function = Function::start(&binary, name, &moto.lambda_env(&[])).await;
        let status = function.wait_for_exit().await;
        assert!(
            !status.success(),
            "{name} must not start without {variable}"
        );
        let output = function.output();
        assert!(
            output.contains(&format!("environment variable {variable} is not set")),
            "{name} names the missing variable:\n{output}"
        );
        assert_eq!(function.next_calls(), 0, "{name} never asked for an event");
        let _ = function.init_errors();
    }
}

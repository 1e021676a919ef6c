//! `DynamoDbOrderTable` and `SnsTopic` pass the same port conformance suites against
//! `orderflow serve` as against moto and as the embedded and in-memory adapters.

use orderflow_aws::{DynamoDbOrderTable, SnsTopic};
use orderflow_core::conformance::sample_order;
use orderflow_core::{OrderTable, TableError, Topic, TopicError};

use crate::support::{ACCESS_KEY_ID, TABLE, serve_or_skip};

#[tokio::test]
async fn dynamodb_order_table_passes_the_order_table_suite_against_serves_orders_table() {
    let serve = serve_or_skip!();
    let table = DynamoDbOrderTable::new(serve.dynamodb(), TABLE);
    orderflow_core::conformance::order_table(&table).await;
}

#[tokio::test]
async fn an_order_put_through_dynamodb_is_the_order_serves_own_api_shows() {
    let serve = serve_or_skip!();
    let table = DynamoDbOrderTable::new(serve.dynamodb(), TABLE);
    let order = sample_order();
    table.put_new(&order).await.expect("the put is stored");
    let shown = serve
        .order(order.id().as_str())
        .await
        .expect("GET /orders/{id} finds it");
    assert_eq!(shown["orderID"], order.id().as_str());
    assert_eq!(shown["total"].to_string(), "60.07");
    assert_eq!(shown["customerId"], "cust-1");
}

#[tokio::test]
async fn sns_topic_passes_the_topic_suite_against_serves_topic() {
    let serve = serve_or_skip!();
    let topic = SnsTopic::new(serve.sns(), serve.topic_arn());
    orderflow_core::conformance::topic(&topic).await;
}

#[tokio::test]
async fn a_table_serve_does_not_hold_is_unavailable_with_the_sdk_error_as_source() {
    let serve = serve_or_skip!();
    let table = DynamoDbOrderTable::new(serve.dynamodb(), "no-such-table");
    let error = table.put_new(&sample_order()).await.unwrap_err();
    let TableError::Unavailable(source) = &error else {
        panic!("expected Unavailable, got {error:?}");
    };
    let sdk = source
        .downcast_ref::<aws_sdk_dynamodb::error::SdkError<
            aws_sdk_dynamodb::operation::put_item::PutItemError,
        >>()
        .expect("the SDK error is kept as the source");
    assert!(
        matches!(
            sdk.as_service_error(),
            Some(aws_sdk_dynamodb::operation::put_item::PutItemError::ResourceNotFoundException(_))
        ),
        "DynamoDB's own error for a missing table: {sdk:?}"
    );
}

#[tokio::test]
async fn a_topic_serve_does_not_hold_is_unavailable() {
    let serve = serve_or_skip!();
    let topic = SnsTopic::new(
        serve.sns(),
        serve.topic_arn().replace("POC-Topic", "no-such-topic"),
    );
    let publication = orderflow_core::OrderCreated::new(sample_order()).to_publication("x".into());
    match topic.publish(&publication).await {
        Err(TopicError::Unavailable(_)) => {}
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn with_an_api_key_the_adapters_sign_with_it_and_a_wrong_secret_is_refused() {
    let key = "serve-test-key-0123456789";
    let serve = serve_or_skip!(Some(key));
    // aws-sdk-rust's own SigV4 signer, for DynamoDB's JSON and SNS's form requests.
    let table = DynamoDbOrderTable::new(serve.dynamodb(), TABLE);
    orderflow_core::conformance::order_table(&table).await;
    let topic = SnsTopic::new(serve.sns(), serve.topic_arn());
    orderflow_core::conformance::topic(&topic).await;

    let wrong = serve.config_with(ACCESS_KEY_ID, "not-the-key").await;
    let table = DynamoDbOrderTable::new(aws_sdk_dynamodb::Client::new(&wrong), TABLE);
    let error = table.get(sample_order().id()).await.unwrap_err();
    assert!(
        orderflow_core::error_chain(&error).contains("InvalidSignatureException"),
        "DynamoDB's own error for a wrong secret: {error:?}"
    );
    let topic = SnsTopic::new(aws_sdk_sns::Client::new(&wrong), serve.topic_arn());
    let publication = orderflow_core::OrderCreated::new(sample_order()).to_publication("x".into());
    match topic.publish(&publication).await {
        Err(TopicError::Unavailable(source)) => assert!(
            format!("{source:?}").contains("SignatureDoesNotMatch"),
            "SNS's own error for a wrong secret: {source:?}"
        ),
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

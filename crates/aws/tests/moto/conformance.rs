//! The adapters pass the same port conformance suites as the embedded and in-memory ones.

use orderflow_aws::{DynamoDbOrderTable, SnsTopic};
use orderflow_core::conformance::sample_order;
use orderflow_core::{OrderTable, TableError, Topic, TopicError};

use crate::support::moto_or_skip;

#[tokio::test]
async fn dynamodb_order_table_passes_the_order_table_suite() {
    let moto = moto_or_skip!();
    let (table_name, _) = moto.create_orders_table().await;
    let table = DynamoDbOrderTable::new(moto.dynamodb(), table_name);
    orderflow_core::conformance::order_table(&table).await;
}

#[tokio::test]
async fn sns_topic_passes_the_topic_suite() {
    let moto = moto_or_skip!();
    let topic = SnsTopic::new(moto.sns(), moto.create_topic().await);
    orderflow_core::conformance::topic(&topic).await;
}

#[tokio::test]
async fn a_missing_table_is_unavailable_and_keeps_the_sdk_error_as_source() {
    let moto = moto_or_skip!();
    let table = DynamoDbOrderTable::new(moto.dynamodb(), "no-such-table");
    let error = table.put_new(&sample_order()).await.unwrap_err();
    let TableError::Unavailable(source) = &error else {
        panic!("expected Unavailable, got {error:?}");
    };
    let chain = orderflow_core::error_chain(&error);
    assert!(
        source
            .downcast_ref::<aws_sdk_dynamodb::error::SdkError<
                aws_sdk_dynamodb::operation::put_item::PutItemError,
            >>()
            .is_some(),
        "the SDK error is kept as the source: {chain}"
    );
}

#[tokio::test]
async fn a_missing_topic_is_unavailable() {
    let moto = moto_or_skip!();
    let topic = SnsTopic::new(
        moto.sns(),
        "arn:aws:sns:us-east-1:123456789012:no-such-topic",
    );
    let publication = orderflow_core::OrderCreated::new(sample_order()).to_publication("x".into());
    match topic.publish(&publication).await {
        Err(TopicError::Unavailable(_)) => {}
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

//! Lambda `store-orders` ("Lambda 1"): SQS batch of orders -> `orders` table on DynamoDB.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use orderflow_aws::DynamoDbOrderTable;
use orderflow_aws::lambda::{
    ORDERS_TABLE, init_failed, init_logging, invocation_span, required_env,
};
use orderflow_core::handlers::store_orders;
use tracing::Instrument;

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_logging();
    let table_name =
        required_env(ORDERS_TABLE, "the name of the DynamoDB orders table").map_err(init_failed)?;
    let config = orderflow_aws::sdk_config().await;
    let table = DynamoDbOrderTable::new(aws_sdk_dynamodb::Client::new(&config), table_name);
    let table = &table;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let span = invocation_span(&event.context);
        Ok::<SqsBatchResponse, Error>(store_orders(table, event.payload).instrument(span).await)
    }))
    .await
}

//! Lambda `publish-orders` ("Lambda 2"): DynamoDB stream of the `orders` table -> SNS topic
//! (or, while SNS does not take it, the held-back queue).

use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use orderflow_aws::lambda::{
    HELD_BACK_QUEUE_URL, ORDERS_TOPIC_ARN, init_failed, init_logging, invocation_span, required_env,
};
use orderflow_aws::{HeldBackTopic, SnsTopic};
use orderflow_core::handlers::publish_orders;
use tracing::Instrument;

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_logging();
    let topic_arn = required_env(
        ORDERS_TOPIC_ARN,
        "the ARN of the SNS topic orders are announced on",
    )
    .map_err(init_failed)?;
    let held_back_queue_url = required_env(
        HELD_BACK_QUEUE_URL,
        "the URL of the SQS queue that holds back what SNS did not take",
    )
    .map_err(init_failed)?;
    let config = orderflow_aws::sdk_config().await;
    let topic = HeldBackTopic::new(
        SnsTopic::new(aws_sdk_sns::Client::new(&config), topic_arn),
        aws_sdk_sqs::Client::new(&config),
        held_back_queue_url,
    );
    let topic = &topic;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Event>| async move {
        let span = invocation_span(&event.context);
        Ok::<DynamoDbEventResponse, Error>(
            publish_orders(topic, event.payload).instrument(span).await,
        )
    }))
    .await
}

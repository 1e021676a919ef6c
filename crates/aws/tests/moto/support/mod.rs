//! Moto clients, throwaway resources, and a Lambda Runtime API to drive the real binaries.

#[path = "../../shared/mod.rs"]
mod shared;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    StreamSpecification, StreamViewType,
};
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::Value;

pub use shared::{Endpoint, runtime, sqs_event_fixture, unique};

/// Yields a [`Moto`], or returns from the test after saying loudly that it was skipped.
macro_rules! moto_or_skip {
    () => {
        match crate::support::Moto::from_env().await {
            Some(moto) => moto,
            None => return,
        }
    };
}
pub(crate) use moto_or_skip;

#[derive(Debug, Clone)]
pub struct Moto(Endpoint);

/// Moto's clients and Lambda environment are those of any endpoint.
impl std::ops::Deref for Moto {
    type Target = Endpoint;

    fn deref(&self) -> &Endpoint {
        &self.0
    }
}

impl Moto {
    pub async fn from_env() -> Option<Moto> {
        let url = match std::env::var("ORDERFLOW_MOTO_URL") {
            Ok(url) if !url.trim().is_empty() => url,
            _ => {
                shared::say_skipped(&[
                    "SKIPPED: ORDERFLOW_MOTO_URL is not set, so the AWS adapter",
                    "tests did NOT run. ./scripts/test-aws starts moto and sets",
                    "it (./scripts/test runs that script).",
                ]);
                return None;
            }
        };
        Some(Moto(
            Endpoint::new("moto", &url, "testing", "testing").await,
        ))
    }

    /// A fresh `orders` table as the SAM template makes it; returns its name and stream ARN.
    pub async fn create_orders_table(&self) -> (String, String) {
        let name = unique("orders");
        let output = self
            .dynamodb()
            .create_table()
            .table_name(&name)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("orderID")
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .unwrap(),
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name("orderID")
                    .key_type(KeyType::Hash)
                    .build()
                    .unwrap(),
            )
            .billing_mode(BillingMode::PayPerRequest)
            .stream_specification(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(StreamViewType::NewImage)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .expect("moto creates the table");
        let stream_arn = output
            .table_description
            .and_then(|t| t.latest_stream_arn)
            .expect("the table has a stream");
        (name, stream_arn)
    }

    /// A fresh queue; returns its URL.
    pub async fn create_queue(&self, prefix: &str) -> String {
        self.sqs()
            .create_queue()
            .queue_name(unique(prefix))
            .send()
            .await
            .expect("moto creates the queue")
            .queue_url
            .expect("a queue URL")
    }

    pub async fn create_topic(&self) -> String {
        self.sns()
            .create_topic()
            .name(unique("orders-topic"))
            .send()
            .await
            .expect("moto creates the topic")
            .topic_arn
            .expect("a topic ARN")
    }

    /// A queue subscribed to `topic_arn`, with `filter_policy` on the message attributes
    /// when given. Returns the queue URL.
    pub async fn subscribe_queue(&self, topic_arn: &str, filter_policy: Option<Value>) -> String {
        let policy = filter_policy.map(|p| ("FilterPolicy", p));
        self.subscribe_queue_with(topic_arn, policy.as_slice())
            .await
    }

    /// A queue subscribed to `topic_arn` with the given subscription attributes
    /// (`RawMessageDelivery`, `FilterPolicy`, `FilterPolicyScope`). Returns the queue URL.
    pub async fn subscribe_queue_with(
        &self,
        topic_arn: &str,
        attributes: &[(&str, Value)],
    ) -> String {
        let url = self.create_queue("subscriber").await;
        let arn = self
            .sqs()
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("queue attributes")
            .attributes
            .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
            .expect("a queue ARN");
        let mut request = self
            .sns()
            .subscribe()
            .topic_arn(topic_arn)
            .protocol("sqs")
            .endpoint(arn);
        for (name, value) in attributes {
            let value = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            request = request.attributes(*name, value);
        }
        request.send().await.expect("moto subscribes the queue");
        url
    }

    /// Receives until `expected` messages arrived or ten seconds passed; returns the bodies.
    pub async fn receive(&self, queue_url: &str, expected: usize) -> Vec<Value> {
        shared::receive(&self.sqs(), queue_url, expected).await
    }

    /// Everything on the table's stream so far, as the Lambda event the stream's event
    /// source mapping would deliver (`aws_lambda_events::dynamodb::Event` JSON).
    pub async fn stream_event(&self, stream_arn: &str) -> Value {
        shared::stream_event(&self.streams(), stream_arn).await
    }
}

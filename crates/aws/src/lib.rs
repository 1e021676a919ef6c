//! AWS adapters for the core ports (the `orders` table on DynamoDB, the topic on SNS, with
//! what SNS cannot take held back on SQS) and the little the two Lambda binaries share.

pub mod held_back;
pub mod lambda;
pub mod sns;
pub mod table;

pub use held_back::HeldBackTopic;
pub use sns::SnsTopic;
pub use table::DynamoDbOrderTable;

/// The SDK configuration the standard way: `AWS_REGION`, the credentials chain, and
/// `AWS_ENDPOINT_URL` when an emulator stands in for AWS. Reads no network.
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

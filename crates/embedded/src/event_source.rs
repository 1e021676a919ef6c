//! How the Lambda events the pollers build name their sources: the queue's and the stream's
//! ARNs and the region, the names the AWS protocols give the same queue and stream.

/// The region and ARNs a Lambda event carries (`awsRegion`, `eventSourceARN`). On AWS they
/// name the queue and the stream the event source mapping reads
/// (<https://docs.aws.amazon.com/lambda/latest/dg/with-sqs.html>,
/// <https://docs.aws.amazon.com/lambda/latest/dg/with-ddb.html>); here they are the ones
/// `GetQueueAttributes` (`QueueArn`) and `DescribeStream` (`StreamArn`) answer, so a handler
/// that reads them sees what its team was told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSources {
    pub region: String,
    /// The orders queue's ARN.
    pub queue_arn: String,
    /// The ARN of the `orders` table's stream.
    pub stream_arn: String,
}

impl Default for EventSources {
    /// The names the AWS protocols answer with by default (region `us-east-1`, account
    /// `000000000000`, queue `POC-Queue`, table `orders`).
    fn default() -> Self {
        EventSources {
            region: "us-east-1".into(),
            queue_arn: "arn:aws:sqs:us-east-1:000000000000:POC-Queue".into(),
            stream_arn: "arn:aws:dynamodb:us-east-1:000000000000:table/orders/stream/1970-01-01T00:00:00.000".into(),
        }
    }
}

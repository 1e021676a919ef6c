//! The `serve` flags of the AWS wire protocols: the region and account that queue URLs and
//! ARNs name, and the access key id a signed request must use (its secret is the API key).

use clap::Args;
use orderflow_http::awsapi::AwsSettings;

#[derive(Debug, Args)]
pub struct AwsArgs {
    /// Region the AWS protocols answer as (queue ARNs; a SigV4 signature must be scoped to it).
    #[arg(long, env = "ORDERFLOW_AWS_REGION", default_value = AwsSettings::DEFAULT_REGION)]
    aws_region: String,
    /// Account id in queue URLs and ARNs (12 digits).
    #[arg(long, env = "ORDERFLOW_AWS_ACCOUNT_ID", default_value = AwsSettings::DEFAULT_ACCOUNT_ID, value_parser = account_id)]
    aws_account_id: String,
    /// With --api-key: the access key id AWS SDKs must sign with (the API key is the secret
    /// access key). Without an API key any credentials are accepted.
    #[arg(long, env = "ORDERFLOW_AWS_ACCESS_KEY_ID", default_value = AwsSettings::DEFAULT_ACCESS_KEY_ID)]
    aws_access_key_id: String,
    /// Milliseconds after an SQS PurgeQueue during which another of the same queue is
    /// refused with PurgeQueueInProgress, as SQS does for 60 s. 0 allows every purge (as
    /// moto's MOTO_SQS_ENFORCE_STRICT_QUEUE_PURGE_BEHAVIOUR=false), for test suites that
    /// purge a queue between tests.
    #[arg(
        long,
        env = "ORDERFLOW_SQS_PURGE_INTERVAL_MS",
        default_value_t = 60_000
    )]
    sqs_purge_interval_ms: u64,
}

fn account_id(s: &str) -> Result<String, String> {
    if s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()) {
        Ok(s.to_owned())
    } else {
        Err("an AWS account id is 12 digits".into())
    }
}

impl AwsArgs {
    pub fn settings(&self, secret: Option<String>, tls: bool) -> AwsSettings {
        AwsSettings::new(
            &self.aws_region,
            &self.aws_account_id,
            &self.aws_access_key_id,
        )
        .with_secret(secret)
        .with_tls(tls)
        .with_purge_interval(std::time::Duration::from_millis(self.sqs_purge_interval_ms))
    }
}

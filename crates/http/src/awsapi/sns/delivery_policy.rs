//! SNS's subscription `DeliveryPolicy` (HTTP/S retries) in the engine's terms: `numRetries`
//! retries after the first attempt, delays from `minDelayTarget` to `maxDelayTarget` seconds.
//! <https://docs.aws.amazon.com/sns/latest/dg/sns-message-delivery-retries.html>

use orderflow_embedded::fanout::spec::DeliveryPolicy;
use serde::Deserialize;
use serde_json::{Value, json};

use super::errors;
use crate::awsapi::AwsError;

/// SNS: an HTTP/S policy retries at most 100 times, delays at most 3,600 seconds.
const MAX_RETRIES: u32 = 100;
const MAX_DELAY_SECONDS: u64 = 3_600;

/// The parts of SNS's policy the engine honours. The engine backs off exponentially
/// between the two delays, so the phase counts (`numNoDelayRetries`, ...), another
/// `backoffFunction`, `throttlePolicy` and `requestPolicy` are refused, not ignored.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Policy {
    healthy_retry_policy: RetryPolicy,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RetryPolicy {
    num_retries: u32,
    min_delay_target: u64,
    max_delay_target: u64,
    #[serde(default)]
    backoff_function: Option<String>,
}

fn invalid(why: impl std::fmt::Display) -> AwsError {
    errors::invalid_parameter(format!(
        "Invalid parameter: DeliveryPolicy: {why} (orderflow serve honours healthyRetryPolicy's numRetries, minDelayTarget, maxDelayTarget, backoffFunction exponential)"
    ))
}

/// SNS's JSON text as the engine's policy.
pub fn parse(text: &str) -> Result<DeliveryPolicy, AwsError> {
    let policy: Policy = serde_json::from_str(text).map_err(invalid)?;
    let retry = policy.healthy_retry_policy;
    if retry
        .backoff_function
        .as_deref()
        .is_some_and(|f| f != "exponential")
    {
        return Err(invalid("backoffFunction must be exponential"));
    }
    if retry.num_retries > MAX_RETRIES {
        return Err(invalid(format!("numRetries must be at most {MAX_RETRIES}")));
    }
    if !(1..=retry.max_delay_target).contains(&retry.min_delay_target)
        || retry.max_delay_target > MAX_DELAY_SECONDS
    {
        return Err(invalid(format!(
            "1 <= minDelayTarget <= maxDelayTarget <= {MAX_DELAY_SECONDS} seconds"
        )));
    }
    Ok(DeliveryPolicy {
        max_attempts: Some(retry.num_retries + 1),
        min_delay_ms: Some(retry.min_delay_target * 1000),
        max_delay_ms: Some(retry.max_delay_target * 1000),
    })
}

/// The engine's policy as SNS's JSON, for `GetSubscriptionAttributes`; `None` when a part
/// was left to the server's defaults (set over our own API), which SNS's form cannot say.
pub fn render(policy: &DeliveryPolicy) -> Option<Value> {
    Some(json!({"healthyRetryPolicy": {
        "numRetries": policy.max_attempts?.saturating_sub(1),
        "minDelayTarget": policy.min_delay_ms? / 1000,
        "maxDelayTarget": policy.max_delay_ms? / 1000,
        "backoffFunction": "exponential",
    }}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sns_s_retry_policy_becomes_attempts_and_delays_and_back() {
        let text = r#"{"healthyRetryPolicy": {"numRetries": 3, "minDelayTarget": 1, "maxDelayTarget": 20}}"#;
        let policy = parse(text).unwrap();
        assert_eq!(policy.max_attempts, Some(4));
        assert_eq!(policy.min_delay_ms, Some(1000));
        assert_eq!(policy.max_delay_ms, Some(20_000));
        assert_eq!(
            render(&policy).unwrap()["healthyRetryPolicy"]["numRetries"],
            json!(3)
        );
    }

    #[test]
    fn what_the_engine_cannot_honour_is_refused() {
        for text in [
            r#"{"healthyRetryPolicy": {"numRetries": 3, "minDelayTarget": 1, "maxDelayTarget": 20, "backoffFunction": "linear"}}"#,
            r#"{"healthyRetryPolicy": {"numRetries": 3, "minDelayTarget": 1, "maxDelayTarget": 20, "numNoDelayRetries": 1}}"#,
            r#"{"healthyRetryPolicy": {"numRetries": 101, "minDelayTarget": 1, "maxDelayTarget": 20}}"#,
            r#"{"healthyRetryPolicy": {"numRetries": 3, "minDelayTarget": 30, "maxDelayTarget": 20}}"#,
            r#"{"healthyRetryPolicy": {"numRetries": 3, "minDelayTarget": 1, "maxDelayTarget": 20}, "throttlePolicy": {}}"#,
            "not json",
        ] {
            assert!(parse(text).is_err(), "{text}");
        }
    }
}

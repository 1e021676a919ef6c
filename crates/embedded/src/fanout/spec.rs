//! What a subscription asks for (the HTTP body, a CLI command or an entry of the declarative
//! file) and its validation into a [`SubscriptionSpec`] the topic stores.

use std::path::PathBuf;
use std::str::FromStr;

use orderflow_core::FieldError;
use orderflow_core::filter::{FilterPolicy, FilterPolicyScope};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::topic::Protocol;

/// SQS: a queue name has 1-80 alphanumerics, hyphens and underscores.
const MAX_NAME_LEN: usize = 80;
/// SQS's visibility timeout limit (12 hours).
pub const MAX_VISIBILITY_TIMEOUT_SECONDS: u32 = 43_200;
pub const DEFAULT_VISIBILITY_TIMEOUT_SECONDS: u32 = 30;
pub const DEFAULT_MAX_RECEIVE_COUNT: u32 = 5;
const MAX_DELIVERY_ATTEMPTS: u32 = 10_000;
const MAX_DELAY_MS: u64 = 3_600_000;

/// The body of `POST /subscriptions`, one entry of the `--subscriptions` file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SubscriptionRequest {
    /// A unique name; required in the declarative file, which matches entries by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub protocol: String,
    pub endpoint: String,
    /// An SNS filter policy: a JSON object, or (as SNS's API takes it) a string holding one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter_policy: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter_policy_scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_message_delivery: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_policy: Option<DeliveryPolicy>,
    /// `queue` only: the default visibility timeout of a receive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visibility_timeout_seconds: Option<u32>,
    /// `queue` only: receives before a message moves to the queue's dead-letter queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_receive_count: Option<u32>,
    /// As SNS's `AuthenticateOnUnsubscribe`: the `UnsubscribeURL` alone no longer removes
    /// the subscription; only a request with the API key does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authenticate_on_unsubscribe: Option<bool>,
}

/// Retries of one subscription; what is unset follows the server's `--delivery-*` flags.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeliveryPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_delay_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_delay_ms: Option<u64>,
}

/// Per-subscription settings, stored as JSON with the subscription.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter_policy: Option<Value>,
    #[serde(default)]
    pub filter_policy_scope: FilterPolicyScope,
    #[serde(default)]
    pub raw_message_delivery: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_policy: Option<DeliveryPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visibility_timeout_seconds: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_receive_count: Option<u32>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub authenticate_on_unsubscribe: bool,
}

impl SubscriptionSettings {
    /// The parsed filter policy; a stored policy was valid when it was stored.
    pub fn policy(&self) -> Option<FilterPolicy> {
        let value = self.filter_policy.as_ref()?;
        FilterPolicy::parse(value, self.filter_policy_scope, "filterPolicy").ok()
    }
}

/// A validated subscription, ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionSpec {
    pub name: Option<String>,
    pub protocol: Protocol,
    /// URL, e-mail address, queue name, or `stdout` / a file path.
    pub endpoint: String,
    pub settings: SubscriptionSettings,
}

/// What the validation may allow, depending on who asks.
#[derive(Debug, Clone, Default)]
pub struct Validation {
    /// E-mail subscriptions need an SMTP relay.
    pub email_enabled: bool,
    /// The declarative file is the operator's: its `log` entries may name any file path.
    /// Over HTTP a log file is a plain file name under the data directory.
    pub trusted: bool,
}

fn field_error(field: &str, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.to_owned(),
        message: message.into(),
    }
}

/// `^[A-Za-z0-9_-]{1,80}$`, the SQS queue-name rule, also used for subscription names.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Where a `log` subscription writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogTarget {
    Stdout,
    File(PathBuf),
}

impl LogTarget {
    /// `stdout` (or `-`), or a file: relative paths are under `log_dir`.
    pub fn of(endpoint: &str, log_dir: &std::path::Path) -> LogTarget {
        if endpoint == "stdout" || endpoint == "-" {
            return LogTarget::Stdout;
        }
        let path = PathBuf::from(endpoint);
        if path.is_absolute() {
            LogTarget::File(path)
        } else {
            LogTarget::File(log_dir.join(path))
        }
    }
}

impl SubscriptionRequest {
    pub fn validate(self, rules: &Validation) -> Result<SubscriptionSpec, Vec<FieldError>> {
        let mut errors = Vec::new();
        if let Some(name) = &self.name
            && !valid_name(name)
        {
            errors.push(field_error(
                "name",
                "must be 1-80 letters, digits, hyphens or underscores",
            ));
        }
        let protocol = Protocol::parse(&self.protocol);
        let endpoint = match protocol {
            None => {
                errors.push(field_error(
                    "protocol",
                    "must be one of http, https, email, queue, log",
                ));
                self.endpoint.clone()
            }
            Some(p) => match validate_endpoint(p, &self.endpoint, rules) {
                Ok(endpoint) => endpoint,
                Err(mut e) => {
                    errors.append(&mut e);
                    self.endpoint.clone()
                }
            },
        };
        let scope = match self.filter_policy_scope.as_deref() {
            None => FilterPolicyScope::MessageAttributes,
            Some(s) => FilterPolicyScope::parse(s).unwrap_or_else(|| {
                errors.push(field_error(
                    "filterPolicyScope",
                    "must be MessageAttributes or MessageBody",
                ));
                FilterPolicyScope::MessageAttributes
            }),
        };
        let filter_policy = match self.filter_policy {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => match serde_json::from_str::<Value>(&text) {
                Ok(value) => Some(value),
                Err(e) => {
                    errors.push(field_error(
                        "filterPolicy",
                        format!("is not a JSON object: {e}"),
                    ));
                    None
                }
            },
            Some(value) => Some(value),
        };
        if let Some(policy) = &filter_policy
            && let Err(mut e) = FilterPolicy::parse(policy, scope, "filterPolicy")
        {
            errors.append(&mut e);
        }
        let raw = self.raw_message_delivery.unwrap_or(false);
        if raw && protocol == Some(Protocol::Email) {
            errors.push(field_error(
                "rawMessageDelivery",
                "is not available for e-mail (the message is rendered for people)",
            ));
        }
        if let Some(policy) = &self.delivery_policy {
            if let Some(n) = policy.max_attempts
                && !(1..=MAX_DELIVERY_ATTEMPTS).contains(&n)
            {
                errors.push(field_error(
                    "deliveryPolicy.maxAttempts",
                    format!("must be between 1 and {MAX_DELIVERY_ATTEMPTS}"),
                ));
            }
            for (field, value) in [
                ("deliveryPolicy.minDelayMs", policy.min_delay_ms),
                ("deliveryPolicy.maxDelayMs", policy.max_delay_ms),
            ] {
                if let Some(v) = value
                    && !(1..=MAX_DELAY_MS).contains(&v)
                {
                    errors.push(field_error(
                        field,
                        format!("must be between 1 and {MAX_DELAY_MS}"),
                    ));
                }
            }
            if let (Some(min), Some(max)) = (policy.min_delay_ms, policy.max_delay_ms)
                && min > max
            {
                errors.push(field_error(
                    "deliveryPolicy.minDelayMs",
                    "must not exceed maxDelayMs",
                ));
            }
        }
        let is_queue = protocol == Some(Protocol::Queue);
        if let Some(v) = self.visibility_timeout_seconds {
            if !is_queue {
                errors.push(field_error(
                    "visibilityTimeoutSeconds",
                    "applies to protocol queue only",
                ));
            } else if v > MAX_VISIBILITY_TIMEOUT_SECONDS {
                errors.push(field_error(
                    "visibilityTimeoutSeconds",
                    format!("must be between 0 and {MAX_VISIBILITY_TIMEOUT_SECONDS}"),
                ));
            }
        }
        if let Some(v) = self.max_receive_count {
            if !is_queue {
                errors.push(field_error(
                    "maxReceiveCount",
                    "applies to protocol queue only",
                ));
            } else if !(1..=1000).contains(&v) {
                errors.push(field_error("maxReceiveCount", "must be between 1 and 1000"));
            }
        }
        match protocol {
            Some(protocol) if errors.is_empty() => Ok(SubscriptionSpec {
                name: self.name,
                protocol,
                endpoint,
                settings: SubscriptionSettings {
                    filter_policy,
                    filter_policy_scope: scope,
                    raw_message_delivery: raw,
                    delivery_policy: self.delivery_policy,
                    visibility_timeout_seconds: self
                        .visibility_timeout_seconds
                        .or(is_queue.then_some(DEFAULT_VISIBILITY_TIMEOUT_SECONDS)),
                    max_receive_count: self
                        .max_receive_count
                        .or(is_queue.then_some(DEFAULT_MAX_RECEIVE_COUNT)),
                    authenticate_on_unsubscribe: self.authenticate_on_unsubscribe.unwrap_or(false),
                },
            }),
            _ => Err(errors),
        }
    }
}

fn validate_endpoint(
    protocol: Protocol,
    endpoint: &str,
    rules: &Validation,
) -> Result<String, Vec<FieldError>> {
    let mut details = Vec::new();
    match protocol {
        Protocol::Http | Protocol::Https => match url::Url::parse(endpoint) {
            // The URL parser silently drops tabs and newlines, so the stored endpoint would
            // carry them into listings, logs and terminals while naming the same target.
            Ok(_) if endpoint.chars().any(char::is_control) => {
                details.push(field_error(
                    "endpoint",
                    "must not contain control characters",
                ));
            }
            Ok(url) => {
                if url.host_str().is_none_or(str::is_empty) {
                    details.push(field_error("endpoint", "must name a host"));
                }
                if url.scheme() != protocol.as_str() {
                    details.push(field_error(
                        "endpoint",
                        format!("must be an {0}:// URL for protocol {0}", protocol.as_str()),
                    ));
                }
                if !url.username().is_empty() || url.password().is_some() {
                    details.push(field_error("endpoint", "must not carry credentials"));
                }
            }
            Err(e) => details.push(field_error("endpoint", format!("is not a valid URL: {e}"))),
        },
        Protocol::Email => {
            if !rules.email_enabled {
                details.push(field_error(
                    "protocol",
                    "email needs the server to be started with --smtp-url",
                ));
            }
            if lettre::Address::from_str(endpoint).is_err() {
                details.push(field_error("endpoint", "is not an e-mail address"));
            }
        }
        Protocol::Queue => {
            if !valid_name(endpoint) || endpoint.ends_with("-dlq") {
                details.push(field_error(
                    "endpoint",
                    "must be a queue name: 1-80 letters, digits, hyphens or underscores, not ending in -dlq",
                ));
            }
        }
        Protocol::Log => {
            let plain_file = !endpoint.starts_with('.')
                && endpoint.len() <= 255
                && endpoint
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
            let ok = endpoint == "stdout"
                || endpoint == "-"
                || plain_file
                || (rules.trusted && !endpoint.is_empty());
            if !ok {
                details.push(field_error(
                    "endpoint",
                    "must be stdout or a file name (letters, digits, '.', '-', '_'), written under the data directory's subscription-logs/",
                ));
            }
        }
    }
    if details.is_empty() {
        Ok(endpoint.to_owned())
    } else {
        Err(details)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(value: Value) -> SubscriptionRequest {
        serde_json::from_value(value).unwrap()
    }

    fn fields(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn a_queue_subscription_gets_sqs_defaults() {
        let spec = request(json!({"protocol": "queue", "endpoint": "warehouse"}))
            .validate(&Validation::default())
            .unwrap();
        assert_eq!(spec.protocol, Protocol::Queue);
        assert_eq!(spec.settings.visibility_timeout_seconds, Some(30));
        assert_eq!(spec.settings.max_receive_count, Some(5));
    }

    #[test]
    fn a_filter_policy_may_be_an_object_or_a_string_holding_one() {
        for policy in [
            json!({"currency": ["EUR"]}),
            json!("{\"currency\": [\"EUR\"]}"),
        ] {
            let spec =
                request(json!({"protocol": "log", "endpoint": "stdout", "filterPolicy": policy}))
                    .validate(&Validation::default())
                    .unwrap();
            assert_eq!(
                spec.settings.filter_policy,
                Some(json!({"currency": ["EUR"]}))
            );
            assert!(spec.settings.policy().is_some());
        }
    }

    #[test]
    fn every_offending_field_is_named() {
        let errors = request(json!({
            "name": "bad name",
            "protocol": "http",
            "endpoint": "ftp://x",
            "filterPolicy": {"a": ["1"], "b": ["1"], "c": ["1"], "d": ["1"], "e": ["1"], "f": ["1"]},
            "filterPolicyScope": "Body",
            "deliveryPolicy": {"maxAttempts": 0, "minDelayMs": 500, "maxDelayMs": 100},
            "maxReceiveCount": 3
        }))
        .validate(&Validation::default())
        .unwrap_err();
        let f = fields(&errors);
        for expected in [
            "name",
            "endpoint",
            "filterPolicy",
            "filterPolicyScope",
            "deliveryPolicy.maxAttempts",
            "deliveryPolicy.minDelayMs",
            "maxReceiveCount",
        ] {
            assert!(f.contains(&expected), "{expected} not in {f:?}");
        }
    }

    #[test]
    fn email_needs_smtp_and_an_address() {
        let errors = request(json!({"protocol": "email", "endpoint": "not an address"}))
            .validate(&Validation::default())
            .unwrap_err();
        assert_eq!(fields(&errors), ["protocol", "endpoint"]);
        let enabled = Validation {
            email_enabled: true,
            trusted: false,
        };
        request(json!({"protocol": "email", "endpoint": "ops@example.com"}))
            .validate(&enabled)
            .unwrap();
        let raw = request(
            json!({"protocol": "email", "endpoint": "ops@example.com", "rawMessageDelivery": true}),
        )
        .validate(&enabled)
        .unwrap_err();
        assert_eq!(fields(&raw), ["rawMessageDelivery"]);
    }

    #[test]
    fn over_http_a_log_file_is_a_plain_name_but_the_operator_may_name_any_path() {
        let absolute = json!({"protocol": "log", "endpoint": "/etc/passwd"});
        assert!(
            request(absolute.clone())
                .validate(&Validation::default())
                .is_err()
        );
        assert!(
            request(json!({"protocol": "log", "endpoint": "../x"}))
                .validate(&Validation::default())
                .is_err()
        );
        request(json!({"protocol": "log", "endpoint": "orders.jsonl"}))
            .validate(&Validation::default())
            .unwrap();
        let trusted = Validation {
            email_enabled: false,
            trusted: true,
        };
        request(absolute).validate(&trusted).unwrap();
    }

    #[test]
    fn queue_names_follow_sqs_and_cannot_look_like_a_dead_letter_queue() {
        for bad in ["", "a b", "x-dlq", &"q".repeat(81)] {
            assert!(
                request(json!({"protocol": "queue", "endpoint": bad}))
                    .validate(&Validation::default())
                    .is_err(),
                "{bad:?}"
            );
        }
    }
}

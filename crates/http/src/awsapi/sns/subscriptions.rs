//! Subscriptions over SNS's API: `Subscribe` (http, https, email, and sqs for our own
//! queues), `ConfirmSubscription`, `Unsubscribe`, `ListSubscriptions(ByTopic)` and
//! `Get`/`SetSubscriptionAttributes`, on the engine's topic and its rules (admission
//! limits, egress policy, confirmation handshake).
//! <https://docs.aws.amazon.com/sns/latest/api/API_Subscribe.html>

use std::collections::BTreeMap;

use orderflow_core::FieldError;
use orderflow_embedded::fanout::admission::{AdmissionError, Admitted};
use orderflow_embedded::fanout::spec::{SubscriptionRequest, Validation};
use orderflow_embedded::topic::{
    LEGACY_TOPIC_ARN, Protocol, SubscribeError, Subscription, SubscriptionStatus,
};
use serde_json::Value;

use super::request::{Params, parse_bool};
use super::xml::Xml;
use super::{Answer, Sns};
use super::{delivery_policy, errors};
use crate::awsapi::AwsError;
use crate::awsapi::sqs::{ORDERS_DLQ, ORDERS_QUEUE};

/// SNS lists subscriptions 100 at a time (API_ListSubscriptions.html).
const PAGE: usize = 100;

/// What `Subscribe` answers for a subscription still waiting for its confirmation when the
/// caller did not ask for `ReturnSubscriptionArn` (API_Subscribe.html).
const PENDING_ANSWER: &str = "pending confirmation";

/// What `ListSubscriptions` shows in place of the ARN of an unconfirmed subscription.
const PENDING_LISTED: &str = "PendingConfirmation";

fn validation_error(details: &[FieldError]) -> AwsError {
    errors::invalid_parameter(format!(
        "Invalid parameter: {}",
        details
            .iter()
            .map(|d| format!("{} {}", d.field, d.message))
            .collect::<Vec<_>>()
            .join("; ")
    ))
}

/// Sets one SNS subscription attribute on a request; the ones SNS has and we do not carry
/// are refused rather than silently dropped.
fn apply_attribute(
    request: &mut SubscriptionRequest,
    name: &str,
    value: &str,
) -> Result<(), AwsError> {
    match name {
        // An empty policy removes it, as SNS does for `SetSubscriptionAttributes`.
        "FilterPolicy" if value.trim().is_empty() || value.trim() == "{}" => {
            request.filter_policy = None;
        }
        "FilterPolicy" => request.filter_policy = Some(Value::String(value.to_owned())),
        "FilterPolicyScope" => request.filter_policy_scope = Some(value.to_owned()),
        "RawMessageDelivery" => request.raw_message_delivery = Some(parse_bool(name, value)?),
        // SNS: "DeliveryPolicy – The policy that defines how Amazon SNS retries failed
        // deliveries to HTTP/S endpoints" (API_SetSubscriptionAttributes.html).
        "DeliveryPolicy" if !matches!(request.protocol.as_str(), "http" | "https") => {
            return Err(errors::invalid_parameter(
                "Invalid parameter: DeliveryPolicy Reason: applies to http and https subscriptions only",
            ));
        }
        "DeliveryPolicy" if value.trim().is_empty() => request.delivery_policy = None,
        "DeliveryPolicy" => request.delivery_policy = Some(delivery_policy::parse(value)?),
        _ => {
            return Err(errors::invalid_parameter(format!(
                "Invalid parameter: AttributeName Reason: orderflow serve sets FilterPolicy, FilterPolicyScope, RawMessageDelivery and DeliveryPolicy, not {name}"
            )));
        }
    }
    Ok(())
}

impl Sns<'_> {
    /// `<topic ARN>:<subscription id>`: stable for the subscription's life.
    fn arn_of(&self, sub: &Subscription) -> String {
        format!("{}:{}", self.settings().topic_arn(), sub.id)
    }

    /// The protocol and endpoint as SNS names them: a queue is `sqs` and its queue ARN.
    fn protocol_and_endpoint(&self, sub: &Subscription) -> (&'static str, String) {
        match sub.protocol {
            Protocol::Queue => ("sqs", self.settings().arn("sqs", &sub.endpoint)),
            other => (other.as_str(), sub.endpoint.clone()),
        }
    }

    /// The queue an `sqs` endpoint names: an ARN of this region and account.
    fn queue_of(&self, endpoint: &str) -> Result<String, AwsError> {
        let prefix = self.settings().arn("sqs", "");
        let Some(name) = endpoint.strip_prefix(&prefix) else {
            return Err(errors::invalid_parameter(format!(
                "Invalid parameter: SQS endpoint ARN Reason: must be a queue ARN of this server ({prefix}<name>)"
            )));
        };
        if name == ORDERS_QUEUE || name == ORDERS_DLQ {
            // Announcements fed into the orders queue would come back as orders.
            return Err(errors::invalid_parameter(format!(
                "Invalid parameter: SQS endpoint ARN Reason: {name} is the pipeline's own queue and cannot subscribe to its topic"
            )));
        }
        Ok(name.to_owned())
    }

    /// The subscription a `SubscriptionArn` names (ours, or the engine's form of it that
    /// deliveries carry in `x-amz-sns-subscription-arn`).
    async fn find(&self, arn: &str) -> Result<Subscription, AwsError> {
        let ours = format!("{}:", self.settings().topic_arn());
        let key = match arn.strip_prefix(&ours) {
            Some(id) if uuid::Uuid::parse_str(id).is_ok() => id.to_owned(),
            Some(_) => return Err(errors::not_found("Subscription does not exist")),
            // Links sent before the topic took its AWS name carry the legacy ARN.
            None if arn.starts_with(&format!("{LEGACY_TOPIC_ARN}:")) => arn.to_owned(),
            None if arn.starts_with("arn:aws:sns:") && arn.split(':').count() == 7 => {
                return Err(errors::not_found("Subscription does not exist"));
            }
            None => {
                return Err(errors::invalid_parameter(
                    "Invalid parameter: SubscriptionArn",
                ));
            }
        };
        self.state
            .engine
            .topic()
            .get(key)
            .await
            .map_err(AwsError::internal)?
            .ok_or_else(|| errors::not_found("Subscription does not exist"))
    }

    pub(super) async fn subscribe(&self, params: &Params) -> Answer {
        self.check_topic(params.required("TopicArn")?, "Subscribe")?;
        let protocol = params.required("Protocol")?;
        let endpoint = params.required("Endpoint")?;
        let (protocol, endpoint) = match protocol {
            "http" | "https" | "email" => (protocol, endpoint.to_owned()),
            "sqs" => ("queue", self.queue_of(endpoint)?),
            other => {
                return Err(errors::invalid_parameter(format!(
                    "Invalid parameter: Amazon SNS does not support this protocol string: {other} (orderflow serve: http, https, email, sqs)"
                )));
            }
        };
        let mut request = SubscriptionRequest {
            protocol: protocol.to_owned(),
            endpoint,
            ..SubscriptionRequest::default()
        };
        for (name, value) in params.string_map("Attributes") {
            apply_attribute(&mut request, &name, &value)?;
        }
        let return_arn = params.flag("ReturnSubscriptionArn")?.unwrap_or(false);
        let spec = request
            .validate(&self.state.engine.subscription_rules(false))
            .map_err(|details| validation_error(&details))?;
        if let Err(e) = self.state.engine.egress().check_subscription(&spec).await {
            return Err(errors::invalid_parameter(format!(
                "Invalid parameter: Endpoint Reason: {}",
                e.message
            )));
        }
        let sub = match self.state.engine.subscribe(spec).await {
            Ok(Admitted::Created(sub)) => {
                tracing::info!(subscription = %sub.subscription_arn, protocol = sub.protocol.as_str(), endpoint = %sub.endpoint, status = ?sub.status, "subscription created over the SNS protocol");
                sub
            }
            // SNS's Subscribe is idempotent: the same endpoint and attributes give the same
            // subscription and no second confirmation request.
            Ok(Admitted::Existing(sub)) => sub,
            Err(AdmissionError::DifferentSettings(_)) => {
                return Err(errors::invalid_parameter(
                    "Invalid parameter: Attributes Reason: Subscription already exists with different attributes",
                ));
            }
            Err(e @ AdmissionError::TooMany(_)) => {
                return Err(errors::sns(
                    axum::http::StatusCode::FORBIDDEN,
                    "SubscriptionLimitExceeded",
                    e.to_string(),
                ));
            }
            Err(AdmissionError::ConfirmationsThrottled(wait)) => {
                return Err(errors::sns(
                    axum::http::StatusCode::TOO_MANY_REQUESTS,
                    "Throttled",
                    format!(
                        "Too many confirmation requests to this endpoint; retry in {} s",
                        wait.as_secs().max(1)
                    ),
                ));
            }
            Err(AdmissionError::Subscribe(SubscribeError::Conflict(message))) => {
                return Err(errors::invalid_parameter(format!(
                    "Invalid parameter: Endpoint Reason: {message}"
                )));
            }
            Err(AdmissionError::Subscribe(SubscribeError::Db(e))) => {
                return Err(AwsError::internal(e));
            }
        };
        let arn = if sub.status == SubscriptionStatus::Confirmed || return_arn {
            self.arn_of(&sub)
        } else {
            PENDING_ANSWER.to_owned()
        };
        self.answer("Subscribe", &|x: &mut Xml| {
            x.text("SubscriptionArn", &arn);
        })
    }

    pub(super) async fn confirm_subscription(&self, params: &Params) -> Answer {
        let topic = params.required("TopicArn")?;
        // Confirmation links sent before the topic took its AWS name carry the legacy ARN.
        if topic != LEGACY_TOPIC_ARN {
            self.check_topic(topic, "ConfirmSubscription")?;
        }
        let token = params.required("Token")?.to_owned();
        let authenticated = params.flag("AuthenticateOnUnsubscribe")?.unwrap_or(false);
        let sub = self
            .state
            .engine
            .topic()
            .confirm(token, authenticated)
            .await
            .map_err(AwsError::internal)?
            .ok_or_else(|| errors::invalid_parameter("Invalid token"))?;
        tracing::info!(subscription = %sub.subscription_arn, "subscription confirmed over the SNS protocol");
        let arn = self.arn_of(&sub);
        self.answer("ConfirmSubscription", &|x: &mut Xml| {
            x.text("SubscriptionArn", &arn);
        })
    }

    pub(super) async fn unsubscribe(&self, params: &Params) -> Answer {
        let sub = self.find(params.required("SubscriptionArn")?).await?;
        // The request is signed (SigV4), which is what `AuthenticateOnUnsubscribe` asks for.
        self.state
            .engine
            .topic()
            .unsubscribe(sub.id.clone())
            .await
            .map_err(AwsError::internal)?;
        tracing::info!(subscription = %sub.subscription_arn, "unsubscribed over the SNS protocol");
        Ok(super::xml::success("Unsubscribe", self.request_id, None))
    }

    pub(super) async fn list_subscriptions(&self, params: &Params, by_topic: bool) -> Answer {
        let action = if by_topic {
            let topic = params.required("TopicArn")?;
            self.check_topic(topic, "ListSubscriptionsByTopic")?;
            "ListSubscriptionsByTopic"
        } else {
            "ListSubscriptions"
        };
        let subs = self
            .state
            .engine
            .topic()
            .list()
            .await
            .map_err(AwsError::internal)?;
        // The token names the last subscription of the previous page in the listing's order
        // (creation time, then id), so a subscription added or removed between two pages
        // neither repeats nor hides another one.
        let start = match params.get("NextToken") {
            None => 0,
            Some(token) => {
                let (created, id) = token
                    .split_once('/')
                    .filter(|(created, id)| !created.is_empty() && !id.is_empty())
                    .ok_or_else(|| errors::invalid_parameter("Invalid parameter: NextToken"))?;
                subs.iter()
                    .position(|s| (s.created_at.as_str(), s.id.as_str()) > (created, id))
                    .unwrap_or(subs.len())
            }
        };
        let page = &subs[start..subs.len().min(start + PAGE)];
        let next = (start + page.len() < subs.len())
            .then(|| page.last().map(|s| format!("{}/{}", s.created_at, s.id)))
            .flatten();
        let topic = self.settings().topic_arn();
        let owner = self.settings().account_id.clone();
        let rows: Vec<(String, &'static str, String)> = page
            .iter()
            .map(|s| {
                let (protocol, endpoint) = self.protocol_and_endpoint(s);
                let arn = match s.status {
                    SubscriptionStatus::Confirmed => self.arn_of(s),
                    SubscriptionStatus::PendingConfirmation => PENDING_LISTED.to_owned(),
                };
                (arn, protocol, endpoint)
            })
            .collect();
        self.answer(action, &|x: &mut Xml| {
            x.open("Subscriptions");
            for (arn, protocol, endpoint) in &rows {
                x.open("member")
                    .text("SubscriptionArn", arn)
                    .text("Owner", &owner)
                    .text("Protocol", protocol)
                    .text("Endpoint", endpoint)
                    .text("TopicArn", &topic)
                    .close("member");
            }
            x.close("Subscriptions");
            if let Some(token) = &next {
                x.text("NextToken", token);
            }
        })
    }

    pub(super) async fn get_subscription_attributes(&self, params: &Params) -> Answer {
        let sub = self.find(params.required("SubscriptionArn")?).await?;
        let (protocol, endpoint) = self.protocol_and_endpoint(&sub);
        let s = &sub.settings;
        let confirmed = sub.status == SubscriptionStatus::Confirmed;
        let mut attributes: BTreeMap<&str, String> = BTreeMap::from([
            ("SubscriptionArn", self.arn_of(&sub)),
            ("TopicArn", self.settings().topic_arn()),
            ("Owner", self.settings().account_id.clone()),
            ("Protocol", protocol.to_owned()),
            ("Endpoint", endpoint),
            ("PendingConfirmation", (!confirmed).to_string()),
            ("ConfirmationWasAuthenticated", confirmed.to_string()),
            ("RawMessageDelivery", s.raw_message_delivery.to_string()),
        ]);
        if let Some(policy) = s.delivery_policy.as_ref().and_then(delivery_policy::render) {
            attributes.insert("DeliveryPolicy", policy.to_string());
        }
        if let Some(policy) = &s.filter_policy {
            attributes.insert("FilterPolicy", policy.to_string());
            attributes.insert(
                "FilterPolicyScope",
                s.filter_policy_scope.as_str().to_owned(),
            );
        }
        self.answer("GetSubscriptionAttributes", &|x: &mut Xml| {
            x.map(
                "Attributes",
                attributes.iter().map(|(k, v)| (*k, v.as_str())),
            );
        })
    }

    pub(super) async fn set_subscription_attributes(&self, params: &Params) -> Answer {
        let sub = self.find(params.required("SubscriptionArn")?).await?;
        let name = params.required("AttributeName")?;
        let value = params.get("AttributeValue").unwrap_or_default();
        let s = sub.settings.clone();
        let mut request = SubscriptionRequest {
            name: sub.name.clone(),
            protocol: sub.protocol.as_str().to_owned(),
            endpoint: sub.endpoint.clone(),
            filter_policy: s.filter_policy,
            filter_policy_scope: Some(s.filter_policy_scope.as_str().to_owned()),
            raw_message_delivery: Some(s.raw_message_delivery),
            delivery_policy: s.delivery_policy,
            visibility_timeout_seconds: s.visibility_timeout_seconds,
            max_receive_count: s.max_receive_count,
            authenticate_on_unsubscribe: Some(s.authenticate_on_unsubscribe),
        };
        apply_attribute(&mut request, name, value)?;
        // The endpoint was checked when the subscription was made and does not change.
        let rules = Validation {
            email_enabled: true,
            trusted: true,
        };
        let spec = request
            .validate(&rules)
            .map_err(|details| validation_error(&details))?;
        self.state
            .engine
            .topic()
            .set_settings(sub.id.clone(), spec.settings)
            .await
            .map_err(AwsError::internal)?
            .ok_or_else(|| errors::not_found("Subscription does not exist"))?;
        tracing::info!(subscription = %sub.subscription_arn, attribute = name, "subscription attribute set over the SNS protocol");
        Ok(super::xml::success(
            "SetSubscriptionAttributes",
            self.request_id,
            None,
        ))
    }
}

//! Fan-out to every kind of subscriber: HTTP(S) webhooks (signed SNS envelopes), e-mail,
//! pull queues and logs; plus what a subscription may ask for and its validation.

pub mod admission;
pub mod attributes;
pub mod email;
pub mod envelopes;
pub mod log;
pub mod pull;
pub mod signing;
pub mod spec;
pub mod tokens;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use crate::delivery::{DeliveryConfig, envelope, subscribe_url, unsubscribe_url};
use crate::topic::{DeliveryKind, DueDelivery, Protocol};

/// Fan-out settings of `orderflow serve` beyond HTTP delivery.
#[derive(Debug, Clone, Default)]
pub struct FanoutConfig {
    /// The relay for `email` subscriptions; without it they are refused.
    pub smtp: Option<email::SmtpConfig>,
}

/// What the delivery worker sends with, built once at start.
#[derive(Debug)]
pub struct Deliverers {
    pub http: reqwest::Client,
    pub mailer: Option<email::Mailer>,
    pub signer: Option<Arc<signing::Signer>>,
    pub queues: Arc<pull::PullQueues>,
    pub logs: log::LogWriter,
    /// Recent messages' envelope text, shared by their subscribers.
    pub envelopes: envelopes::Envelopes,
}

impl Deliverers {
    /// The SNS envelope of `d`, signed when a signer is available.
    pub fn envelope(&self, d: &DueDelivery, public_url: &str) -> Value {
        let mut value = envelope(d, public_url);
        if let (Some(signer), Some(map)) = (&self.signer, value.as_object_mut()) {
            signer.sign_envelope(map, public_url);
        }
        value
    }

    /// The envelope as sent: see [`envelopes::Envelopes::text`].
    pub async fn envelope_text(&self, d: &DueDelivery, public_url: &str) -> String {
        self.envelopes
            .text(self.signer.as_ref(), d, public_url)
            .await
    }
}

/// Message attributes as SQS carries them for a raw delivery to a queue.
fn raw_attributes(d: &DueDelivery) -> BTreeMap<String, String> {
    d.message
        .as_ref()
        .map(|m| {
            m.attributes
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        serde_json::json!({"Type": v.data_type(), "Value": v.value()}).to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// One attempt to deliver `d`; `Err` says why it failed, for the retry log.
pub async fn deliver(
    x: &Deliverers,
    config: &DeliveryConfig,
    d: &DueDelivery,
) -> Result<(), String> {
    let sub = &d.subscription;
    let notification = d.kind == DeliveryKind::Notification;
    let raw = sub.settings.raw_message_delivery && notification;
    let message = d.message.as_ref();
    match sub.protocol {
        Protocol::Http | Protocol::Https => {
            config
                .egress
                .check_literal(&sub.endpoint)
                .map_err(|e| e.to_string())?;
            let mut request = x
                .http
                .post(&sub.endpoint)
                .timeout(config.request_timeout)
                .header("content-type", "text/plain; charset=UTF-8")
                .header("x-amz-sns-message-type", d.kind.header_value())
                .header("x-amz-sns-message-id", &d.message_id)
                .header("x-amz-sns-topic-arn", &sub.topic_arn);
            if notification {
                request = request.header("x-amz-sns-subscription-arn", &sub.subscription_arn);
            }
            let body = if raw {
                request = request.header("x-amz-sns-rawdelivery", "true");
                message.map(|m| m.message.clone()).unwrap_or_default()
            } else {
                x.envelope_text(d, &config.public_url).await
            };
            match request.body(body).send().await {
                Ok(resp) if resp.status().is_success() => Ok(()),
                Ok(resp) if resp.status().is_redirection() => Err(format!(
                    "endpoint answered HTTP {} (redirects are not followed)",
                    resp.status().as_u16()
                )),
                Ok(resp) => Err(format!("endpoint answered HTTP {}", resp.status().as_u16())),
                Err(e) => {
                    // The full chain goes to the log only: what an endpoint or the network
                    // said must not reach anyone who can read the subscription's lastError.
                    tracing::info!(error = %orderflow_core::error_chain(&e), "delivery request failed");
                    Err(request_failure(&e))
                }
            }
        }
        Protocol::Email => {
            let Some(mailer) = &x.mailer else {
                return Err("no SMTP relay is configured (--smtp-url)".into());
            };
            let (subject, body) = match (d.kind, message) {
                (DeliveryKind::SubscriptionConfirmation, _) => email::confirmation_mail(
                    &sub.topic_arn,
                    &subscribe_url(&config.public_url, sub),
                ),
                (DeliveryKind::Notification, Some(m)) => email::notification_mail(
                    &sub.topic_arn,
                    &m.subject,
                    &m.message,
                    &unsubscribe_url(&config.public_url, sub),
                ),
                (DeliveryKind::Notification, None) => {
                    return Err("the message is no longer stored".into());
                }
            };
            mailer.send(&sub.endpoint, &subject, body).await
        }
        // Ours, so confirmed at creation: there is no handshake to deliver.
        Protocol::Queue | Protocol::Log if !notification => Ok(()),
        Protocol::Queue => {
            let (body, attributes) = if raw {
                (
                    message.map(|m| m.message.clone()).unwrap_or_default(),
                    raw_attributes(d),
                )
            } else {
                (
                    x.envelope_text(d, &config.public_url).await,
                    BTreeMap::new(),
                )
            };
            x.queues
                .send(sub, body, attributes)
                .await
                .map(|_| ())
                .map_err(|e| orderflow_core::error_chain(&e))
        }
        Protocol::Log => {
            let line = if raw {
                let text = message.map(|m| m.message.as_str()).unwrap_or_default();
                match serde_json::from_str::<Value>(text) {
                    Ok(value) => value.to_string(),
                    Err(_) => Value::String(text.to_owned()).to_string(),
                }
            } else {
                x.envelope_text(d, &config.public_url).await
            };
            x.logs.write(&sub.endpoint, line).await
        }
    }
}

/// What a failed request is called where others can read it: its class, never the text an
/// endpoint or a resolver returned (that could map internal ports and services).
fn request_failure(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut source = e.source();
    while let Some(inner) = source {
        if let Some(refused) = inner.downcast_ref::<crate::egress::Refused>() {
            return refused.to_string();
        }
        source = inner.source();
    }
    if e.is_timeout() {
        "the request timed out".into()
    } else if e.is_connect() {
        "could not connect to the endpoint".into()
    } else {
        "the request failed before an answer arrived".into()
    }
}

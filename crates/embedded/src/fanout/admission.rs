//! Admission of subscriptions made over the API: an identical subscribe returns the existing
//! subscription (as SNS's Subscribe does), the number of subscriptions is capped, and
//! confirmation requests to any one endpoint are rate-limited, so the API cannot be used to
//! flood a mailbox or a URL, or to multiply the work each order makes.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::{OptionalExtension, params};

use crate::db::{DbError, now_ms};
use crate::fanout::spec::SubscriptionSpec;
use crate::fanout::tokens::confirmation_token_valid;
use crate::topic::{
    SUBSCRIPTION_COLUMNS, Source, SqliteTopic, SubscribeError, Subscription, SubscriptionStatus,
    delete_subscription, insert_subscription, subscription_from_row,
};

/// SNS's default is 12.5 million per topic; one machine that multiplies every order by its
/// subscriptions wants far fewer.
pub const DEFAULT_MAX_SUBSCRIPTIONS: usize = 100;
/// Confirmation requests one endpoint may be sent per [`CONFIRMATION_WINDOW`].
pub const DEFAULT_CONFIRMATIONS_PER_ENDPOINT: usize = 3;
pub const CONFIRMATION_WINDOW: Duration = Duration::from_secs(3600);
/// Endpoints remembered by the confirmation limiter before the quiet ones are forgotten.
const MAX_TRACKED_ENDPOINTS: usize = 10_000;

#[derive(Debug, Clone, Copy)]
pub struct AdmissionLimits {
    pub max_subscriptions: usize,
    pub confirmations_per_endpoint: usize,
}

impl Default for AdmissionLimits {
    fn default() -> Self {
        AdmissionLimits {
            max_subscriptions: DEFAULT_MAX_SUBSCRIPTIONS,
            confirmations_per_endpoint: DEFAULT_CONFIRMATIONS_PER_ENDPOINT,
        }
    }
}

/// What a subscribe came to.
#[derive(Debug, Clone)]
pub enum Admitted {
    Created(Subscription),
    /// The same protocol, endpoint and settings were subscribed already.
    Existing(Subscription),
}

#[derive(Debug, thiserror::Error)]
pub enum AdmissionError {
    /// SNS: `InvalidParameter: Attributes Reason: Subscription already exists with
    /// different attributes`.
    #[error(
        "a subscription to this endpoint already exists with different settings ({0}); change it or remove it first"
    )]
    DifferentSettings(String),
    #[error(
        "this server holds its maximum of {0} subscriptions (--max-subscriptions); remove one first"
    )]
    TooMany(usize),
    #[error(
        "too many confirmation requests were sent to this endpoint's web server or mailbox this hour; retry later"
    )]
    ConfirmationsThrottled(Duration),
    #[error(transparent)]
    Subscribe(#[from] SubscribeError),
}

/// Remembers when confirmation requests went to each endpoint.
#[derive(Debug)]
pub struct Admission {
    limits: AdmissionLimits,
    sent: Arc<Mutex<HashMap<String, VecDeque<Instant>>>>,
}

impl Admission {
    pub fn new(limits: AdmissionLimits) -> Self {
        Admission {
            limits,
            sent: Arc::default(),
        }
    }

    pub fn limits(&self) -> AdmissionLimits {
        self.limits
    }

    /// Subscribes `spec` for the API, within the limits.
    pub async fn subscribe(
        &self,
        topic: &SqliteTopic,
        spec: SubscriptionSpec,
    ) -> Result<Admitted, AdmissionError> {
        let limits = self.limits;
        let sent = Arc::clone(&self.sent);
        let arn = topic.arn().to_owned();
        let admitted = topic
            .db
            .write(move |c| Ok(admit(c, &spec, limits, &sent, &arn)))
            .await
            .map_err(SubscribeError::from)??;
        if matches!(admitted, Admitted::Created(_)) {
            topic.delivery_notify.notify_one();
        }
        Ok(admitted)
    }
}

fn admit(
    c: &rusqlite::Connection,
    spec: &SubscriptionSpec,
    limits: AdmissionLimits,
    sent: &Mutex<HashMap<String, VecDeque<Instant>>>,
    topic_arn: &str,
) -> Result<Admitted, AdmissionError> {
    let db = |e: rusqlite::Error| AdmissionError::Subscribe(SubscribeError::Db(DbError::from(e)));
    let existing = c
        .query_row(
            &format!(
                "SELECT {SUBSCRIPTION_COLUMNS}, s.created_at FROM subscriptions s
                 WHERE protocol = ?1 AND endpoint = ?2 ORDER BY created_at LIMIT 1"
            ),
            params![spec.protocol.as_str(), spec.endpoint],
            |r| Ok((subscription_from_row(r, 0)?, r.get::<_, i64>(11)?)),
        )
        .optional()
        .map_err(db)?;
    if let Some((sub, created_at)) = existing {
        let expired = sub.status == SubscriptionStatus::PendingConfirmation
            && !confirmation_token_valid(created_at, now_ms());
        if expired {
            // Never confirmed, and its token is void: subscribing again starts afresh.
            delete_subscription(c, &sub.id).map_err(SubscribeError::from)?;
        } else if sub.settings == spec.settings && (spec.name.is_none() || spec.name == sub.name) {
            return Ok(Admitted::Existing(sub));
        } else {
            return Err(AdmissionError::DifferentSettings(sub.subscription_arn));
        }
    }
    let count: i64 = c
        .query_row("SELECT count(*) FROM subscriptions", [], |r| r.get(0))
        .map_err(db)?;
    if count as usize >= limits.max_subscriptions {
        return Err(AdmissionError::TooMany(limits.max_subscriptions));
    }
    if spec.protocol.needs_confirmation() {
        take_confirmation(sent, &spec.endpoint, limits, Instant::now())?;
    }
    Ok(Admitted::Created(insert_subscription(
        c,
        spec,
        Source::Api,
        topic_arn,
    )?))
}

/// What a confirmation request reaches, so that variants of one target share one
/// allowance: a web server (`scheme://host:port`, whatever the path, query or spelling of
/// the host, which the URL parser normalises: case, IDNA, `0x7f.1` for `127.0.0.1`) or a
/// mailbox (case-blind, without a `+tag`, which most mail systems deliver to the same box).
fn confirmation_target(endpoint: &str) -> String {
    if let Ok(url) = url::Url::parse(endpoint)
        && matches!(url.scheme(), "http" | "https")
        && let Some(host) = url.host_str()
    {
        let port = url.port_or_known_default().unwrap_or_default();
        return format!("{}://{}:{port}", url.scheme(), host.trim_end_matches('.'));
    }
    let endpoint = endpoint.trim().to_lowercase();
    match endpoint.rsplit_once('@') {
        Some((local, domain)) => {
            let mailbox = local.split('+').next().unwrap_or(local);
            format!("{mailbox}@{}", domain.trim_end_matches('.'))
        }
        None => endpoint,
    }
}

/// Counts one confirmation request to `endpoint`'s target ([`confirmation_target`]), or
/// refuses it with how long until the oldest in the window ages out.
fn take_confirmation(
    sent: &Mutex<HashMap<String, VecDeque<Instant>>>,
    endpoint: &str,
    limits: AdmissionLimits,
    now: Instant,
) -> Result<(), AdmissionError> {
    let mut sent = sent.lock().expect("confirmation limiter lock");
    let recent = |times: &mut VecDeque<Instant>| {
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) >= CONFIRMATION_WINDOW)
        {
            times.pop_front();
        }
    };
    if sent.len() >= MAX_TRACKED_ENDPOINTS {
        sent.retain(|_, times| {
            recent(times);
            !times.is_empty()
        });
    }
    let times = sent.entry(confirmation_target(endpoint)).or_default();
    recent(times);
    if times.len() >= limits.confirmations_per_endpoint.max(1) {
        let oldest = *times.front().expect("a full window has an oldest entry");
        return Err(AdmissionError::ConfirmationsThrottled(
            CONFIRMATION_WINDOW.saturating_sub(now.duration_since(oldest)),
        ));
    }
    times.push_back(now);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endpoint_gets_a_few_confirmations_an_hour_case_blind_and_others_are_not_held_up() {
        let sent = Mutex::default();
        let limits = AdmissionLimits {
            max_subscriptions: 10,
            confirmations_per_endpoint: 2,
        };
        let t0 = Instant::now();
        take_confirmation(&sent, "a@example.com", limits, t0).unwrap();
        take_confirmation(&sent, "A@Example.com", limits, t0).unwrap();
        let refused = take_confirmation(&sent, "a@example.com", limits, t0);
        assert!(
            matches!(refused, Err(AdmissionError::ConfirmationsThrottled(wait)) if wait <= CONFIRMATION_WINDOW),
            "{refused:?}"
        );
        take_confirmation(&sent, "b@example.com", limits, t0).unwrap();
        take_confirmation(&sent, "a@example.com", limits, t0 + CONFIRMATION_WINDOW).unwrap();
    }

    #[test]
    fn variants_of_one_target_share_one_allowance() {
        for variants in [
            [
                "http://victim.example/a?x=1",
                "HTTP://Victim.Example.:80/b#frag",
                "http://victim.example/c?x=2",
            ],
            [
                "https://10.0.0.1/hook",
                "https://0x0a.0.0.1:443/other",
                "https://10.0.0.1/hook?again",
            ],
            [
                "ops@example.com",
                "OPS+orders@Example.com",
                "ops+x@example.com.",
            ],
        ] {
            let sent = Mutex::default();
            let limits = AdmissionLimits {
                max_subscriptions: 10,
                confirmations_per_endpoint: 2,
            };
            let t0 = Instant::now();
            take_confirmation(&sent, variants[0], limits, t0).unwrap();
            take_confirmation(&sent, variants[1], limits, t0).unwrap();
            let refused = take_confirmation(&sent, variants[2], limits, t0);
            assert!(
                matches!(refused, Err(AdmissionError::ConfirmationsThrottled(_))),
                "{variants:?}: {refused:?}"
            );
        }
    }

    #[test]
    fn other_ports_schemes_and_mailboxes_are_other_targets() {
        let target = confirmation_target;
        assert_ne!(
            target("http://h.example/"),
            target("http://h.example:8080/")
        );
        assert_ne!(target("http://h.example/"), target("https://h.example/"));
        assert_ne!(target("a@example.com"), target("b@example.com"));
        assert_eq!(target("http://h.example/x"), "http://h.example:80");
    }
}

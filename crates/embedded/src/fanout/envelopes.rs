//! Notification envelopes built once per message: everything but `UnsubscribeURL` (the
//! signed fields, the signature, the attributes) is the same for every subscriber, so each
//! delivery splices its own link into the message's prebuilt text.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::signing::Signer;
use crate::delivery::{envelope, unsubscribe_url};
use crate::topic::{DeliveryKind, DueDelivery};

/// Messages whose text is kept: a message reaches its subscribers within moments of each
/// other, and an evicted one is only built again (its signature is kept by the signer).
const RECENT_ENVELOPES: usize = 1024;

/// The key that sorts last in an envelope (serde_json's map is ordered by key), so the text
/// of the other fields is a prefix of every subscriber's envelope.
const SPLICED_KEY: &str = "UnsubscribeURL";

/// Subscriptions whose link is kept: past this many the links are built afresh.
const KEPT_LINKS: usize = 4096;

/// One message's envelope up to `"UnsubscribeURL":`, for the topic ARN it was built under.
struct Shared {
    topic_arn: String,
    /// `None` when the fields do not sort before `UnsubscribeURL`: built whole each time.
    /// Its subscribers' deliveries wait for the first one's build (and signature) without
    /// holding a thread.
    prefix: tokio::sync::OnceCell<Option<Arc<str>>>,
}

#[derive(Default)]
struct Recent {
    cells: HashMap<String, Arc<Shared>>,
    order: VecDeque<String>,
}

/// A subscription's `UnsubscribeURL` as a JSON string, for the token it was made from.
struct Link {
    token: String,
    json: Arc<str>,
}

/// The recent messages' prebuilt envelope text, and each subscription's link: the same
/// for every notification it is sent (a digest of its token, its ARN escaped), so built
/// once rather than per delivery.
#[derive(Default)]
pub struct Envelopes {
    recent: Mutex<Recent>,
    links: Mutex<HashMap<String, Link>>,
}

impl std::fmt::Debug for Envelopes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Envelopes").finish_non_exhaustive()
    }
}

/// The whole envelope of `d`, signed when there is a signer: the text SNS would POST.
pub fn whole(signer: Option<&Signer>, d: &DueDelivery, public_url: &str) -> String {
    let mut value = envelope(d, public_url);
    if let (Some(signer), Some(map)) = (signer, value.as_object_mut()) {
        signer.sign_envelope(map, public_url);
    }
    value.to_string()
}

/// The envelope of `d` without `UnsubscribeURL`, as text up to where its value goes.
fn prefix(signer: Option<&Signer>, d: &DueDelivery, public_url: &str) -> Option<Arc<str>> {
    let mut value = envelope(d, public_url);
    let map = value.as_object_mut()?;
    map.remove(SPLICED_KEY)?;
    if map.keys().any(|k| k.as_str() > SPLICED_KEY) {
        return None;
    }
    if let Some(signer) = signer {
        signer.sign_envelope(map, public_url);
    }
    let mut text = value.to_string();
    text.pop(); // the closing brace
    text.push_str(",\"");
    text.push_str(SPLICED_KEY);
    text.push_str("\":");
    Some(text.into())
}

/// `prefix` followed by the subscription's own link (as JSON) and the closing brace.
fn splice(prefix: &str, link: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + link.len() + 1);
    out.push_str(prefix);
    out.push_str(link);
    out.push('}');
    out
}

impl Envelopes {
    /// `d`'s subscription's `UnsubscribeURL` as a JSON string, built on its first use.
    fn link(&self, d: &DueDelivery, public_url: &str) -> Arc<str> {
        let sub = &d.subscription;
        let mut links = self.links.lock().expect("links lock");
        if let Some(link) = links.get(&sub.subscription_arn)
            && link.token == sub.token
        {
            return Arc::clone(&link.json);
        }
        let json: Arc<str> = Value::String(unsubscribe_url(public_url, sub))
            .to_string()
            .into();
        if links.len() >= KEPT_LINKS {
            links.clear();
        }
        links.insert(
            sub.subscription_arn.clone(),
            Link {
                token: sub.token.clone(),
                json: Arc::clone(&json),
            },
        );
        json
    }

    /// The shared part of `d`'s message, when `d` is a notification of a stored message.
    fn shared(&self, d: &DueDelivery) -> Option<Arc<Shared>> {
        if d.kind != DeliveryKind::Notification || d.message.is_none() {
            return None;
        }
        let mut recent = self.recent.lock().expect("envelopes lock");
        if let Some(shared) = recent.cells.get(&d.message_id) {
            // A subscription made under another topic ARN gets its envelope whole.
            return (shared.topic_arn == d.subscription.topic_arn).then(|| Arc::clone(shared));
        }
        if recent.order.len() >= RECENT_ENVELOPES
            && let Some(oldest) = recent.order.pop_front()
        {
            recent.cells.remove(&oldest);
        }
        let shared = Arc::new(Shared {
            topic_arn: d.subscription.topic_arn.clone(),
            prefix: tokio::sync::OnceCell::new(),
        });
        recent.order.push_back(d.message_id.clone());
        recent
            .cells
            .insert(d.message_id.clone(), Arc::clone(&shared));
        Some(shared)
    }

    /// The envelope of `d` as sent. Signing is an RSA private-key operation (about a
    /// millisecond of CPU), so the first delivery of a message builds its text on the
    /// blocking pool, not on a worker that also serves requests; the others reuse it.
    pub async fn text(
        &self,
        signer: Option<&Arc<Signer>>,
        d: &DueDelivery,
        public_url: &str,
    ) -> String {
        let Some(shared) = self.shared(d) else {
            return whole_off_thread(signer, d, public_url).await;
        };
        let prefix = shared
            .prefix
            .get_or_init(|| async {
                let Some(signer) = signer else {
                    return prefix(None, d, public_url);
                };
                let (signer, d, public_url) =
                    (Arc::clone(signer), d.clone(), public_url.to_owned());
                tokio::task::spawn_blocking(move || prefix(Some(&signer), &d, &public_url))
                    .await
                    .expect("signing does not panic")
            })
            .await;
        match prefix {
            Some(prefix) => splice(prefix, &self.link(d, public_url)),
            None => whole_off_thread(signer, d, public_url).await,
        }
    }
}

/// [`whole`], on the blocking pool when it signs.
async fn whole_off_thread(
    signer: Option<&Arc<Signer>>,
    d: &DueDelivery,
    public_url: &str,
) -> String {
    let Some(signer) = signer.cloned() else {
        return whole(None, d, public_url);
    };
    let (d, public_url) = (d.clone(), public_url.to_owned());
    tokio::task::spawn_blocking(move || whole(Some(&signer), &d, &public_url))
        .await
        .expect("signing does not panic")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topic::{Protocol, Source, Subscription, SubscriptionStatus, TopicMessage};
    use orderflow_core::MessageAttribute;

    const PUBLIC: &str = "http://127.0.0.1:8080";
    const TOPIC: &str = "arn:aws:sns:us-east-1:000000000000:POC-Topic";

    fn subscription(id: &str, topic_arn: &str) -> Subscription {
        Subscription {
            id: id.into(),
            subscription_arn: format!("{topic_arn}:{id}"),
            topic_arn: topic_arn.into(),
            name: None,
            protocol: Protocol::Http,
            endpoint: format!("http://127.0.0.1:9/{id}"),
            status: SubscriptionStatus::Confirmed,
            created_at: String::new(),
            confirmed_at: None,
            settings: Default::default(),
            managed_by: Source::Api,
            token: format!("token-of-{id}"),
        }
    }

    fn notification(message_id: &str, subject: &str, attributes: bool, sub: &str) -> DueDelivery {
        let mut attrs = std::collections::BTreeMap::new();
        if attributes {
            attrs.insert("currency".into(), MessageAttribute::String("EUR".into()));
            attrs.insert("total".into(), MessageAttribute::Number("60.07".into()));
        }
        DueDelivery {
            source: crate::topic::DeliveryRef::Row(1),
            kind: DeliveryKind::Notification,
            message_id: message_id.into(),
            attempts: 0,
            created_at: 1_767_225_600_000,
            subscription: subscription(sub, TOPIC).into(),
            message: Some(
                TopicMessage {
                    message_id: message_id.into(),
                    subject: subject.into(),
                    message: "{\"orderId\":\"o-1\",\"note\":\"line\\nbreak \\\"q\\\" é </>\"}"
                        .into(),
                    attributes: attrs,
                    published_at: 1_767_225_600_123,
                }
                .into(),
            ),
        }
    }

    /// Before envelopes were shared, every delivery serialized the whole map; the spliced
    /// text must be the very same bytes, or a subscriber's verifier could see a change.
    #[tokio::test]
    async fn a_spliced_envelope_is_byte_for_byte_the_envelope_built_whole() {
        let dir = tempfile::tempdir().unwrap();
        let signer = Arc::new(Signer::load_or_create(dir.path()).unwrap());
        let envelopes = Envelopes::default();
        for (i, (subject, attributes)) in [
            ("OrderCreated", true),
            ("", false),
            ("", true),
            ("Ünïcode \"s\"", false),
        ]
        .into_iter()
        .enumerate()
        {
            for signer in [None, Some(&signer)] {
                for sub in ["s1", "s2", "s/3?&"] {
                    let d = notification(
                        &format!("m-{i}-{}", signer.is_some()),
                        subject,
                        attributes,
                        sub,
                    );
                    let spliced = envelopes.text(signer, &d, PUBLIC).await;
                    assert_eq!(
                        spliced,
                        whole(signer.map(Arc::as_ref), &d, PUBLIC),
                        "{subject:?} {attributes} {sub}"
                    );
                }
            }
        }
    }

    #[tokio::test]
    async fn an_unsigned_envelope_has_the_bytes_sns_s_envelope_had_before() {
        let d = notification("m-1", "OrderCreated", true, "s1");
        let text = Envelopes::default().text(None, &d, PUBLIC).await;
        assert_eq!(
            text,
            format!(
                "{{\"Message\":\"{{\\\"orderId\\\":\\\"o-1\\\",\\\"note\\\":\\\"line\\\\nbreak \\\\\\\"q\\\\\\\" é </>\\\"}}\",\
                 \"MessageAttributes\":{{\"currency\":{{\"Type\":\"String\",\"Value\":\"EUR\"}},\"total\":{{\"Type\":\"Number\",\"Value\":\"60.07\"}}}},\
                 \"MessageId\":\"m-1\",\"Subject\":\"OrderCreated\",\"Timestamp\":\"2026-01-01T00:00:00.123Z\",\
                 \"TopicArn\":\"{TOPIC}\",\"Type\":\"Notification\",\
                 \"UnsubscribeURL\":\"{PUBLIC}/subscriptions/unsubscribe?Action=Unsubscribe&SubscriptionArn=arn%3Aaws%3Asns%3Aus-east-1%3A000000000000%3APOC-Topic%3As1&Token={}\"}}",
                crate::fanout::tokens::unsubscribe_token("token-of-s1")
            )
        );
        let parsed: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed["Message"], d.message.unwrap().message.as_str());
    }

    #[tokio::test]
    async fn ten_subscribers_of_a_message_get_one_signed_build_each_with_its_own_link() {
        let dir = tempfile::tempdir().unwrap();
        let signer = Arc::new(Signer::load_or_create(dir.path()).unwrap());
        let envelopes = Envelopes::default();
        let mut links = std::collections::HashSet::new();
        for s in 0..10 {
            let d = notification("m-1", "OrderCreated", true, &format!("s{s}"));
            let text: Value =
                serde_json::from_str(&envelopes.text(Some(&signer), &d, PUBLIC).await).unwrap();
            assert_eq!(text["SignatureVersion"], "2");
            let link = text["UnsubscribeURL"].as_str().unwrap().to_owned();
            assert!(link.contains(&format!("POC-Topic%3As{s}&Token=")), "{link}");
            links.insert(link);
        }
        assert_eq!(links.len(), 10);
        assert_eq!(signer.signatures_made(), 1);
        assert_eq!(
            envelopes.recent.lock().unwrap().cells.len(),
            1,
            "one shared build"
        );
    }

    #[tokio::test]
    async fn a_subscription_under_another_topic_arn_is_sent_its_own_topic_arn() {
        let envelopes = Envelopes::default();
        let first = notification("m-1", "", false, "s1");
        let mut legacy = notification("m-1", "", false, "s2");
        legacy.subscription = subscription("s2", crate::topic::LEGACY_TOPIC_ARN).into();
        let _ = envelopes.text(None, &first, PUBLIC).await;
        let text: Value =
            serde_json::from_str(&envelopes.text(None, &legacy, PUBLIC).await).unwrap();
        assert_eq!(text["TopicArn"], crate::topic::LEGACY_TOPIC_ARN);
        assert_eq!(
            envelopes.text(None, &legacy, PUBLIC).await,
            whole(None, &legacy, PUBLIC)
        );
    }

    /// The link is kept per subscription ARN, for the token it was made from: another
    /// token under the same ARN gets its own.
    #[tokio::test]
    async fn each_subscription_s_link_is_built_once_for_its_own_token() {
        let envelopes = Envelopes::default();
        let first = notification("m-1", "", false, "s1");
        let again = notification("m-2", "", false, "s1");
        let link = envelopes.link(&first, PUBLIC);
        assert!(Arc::ptr_eq(&link, &envelopes.link(&again, PUBLIC)));
        let mut other = notification("m-3", "", false, "s1");
        let mut sub = subscription("s1", TOPIC);
        sub.token = "another".into();
        other.subscription = sub.into();
        let text: Value =
            serde_json::from_str(&envelopes.text(None, &other, PUBLIC).await).unwrap();
        assert!(
            text["UnsubscribeURL"]
                .as_str()
                .unwrap()
                .ends_with(&crate::fanout::tokens::unsubscribe_token("another"))
        );
        assert_eq!(
            envelopes.text(None, &other, PUBLIC).await,
            whole(None, &other, PUBLIC)
        );
    }

    /// Concurrent deliveries of one message wait for one signed build.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_deliveries_of_a_message_share_one_signature() {
        let dir = tempfile::tempdir().unwrap();
        let signer = Arc::new(Signer::load_or_create(dir.path()).unwrap());
        let envelopes = Arc::new(Envelopes::default());
        let tasks: Vec<_> = (0..10)
            .map(|s| {
                let (signer, envelopes) = (Arc::clone(&signer), Arc::clone(&envelopes));
                tokio::spawn(async move {
                    let d = notification("m-1", "OrderCreated", true, &format!("s{s}"));
                    let text = envelopes.text(Some(&signer), &d, PUBLIC).await;
                    assert_eq!(text, whole(Some(&signer), &d, PUBLIC));
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(
            signer.signatures_made(),
            1,
            "whole() reuses the signer's kept signature"
        );
    }

    #[tokio::test]
    async fn the_kept_envelopes_are_bounded() {
        let envelopes = Envelopes::default();
        for i in 0..RECENT_ENVELOPES + 10 {
            let _ = envelopes
                .text(
                    None,
                    &notification(&format!("m-{i}"), "", false, "s1"),
                    PUBLIC,
                )
                .await;
        }
        let recent = envelopes.recent.lock().unwrap();
        assert_eq!(recent.cells.len(), RECENT_ENVELOPES);
        assert_eq!(recent.order.len(), RECENT_ENVELOPES);
    }
}

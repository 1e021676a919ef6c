//! Changes a subscription's settings in place, as SNS's `SetSubscriptionAttributes` does:
//! the subscription keeps its ARN, its confirmation status and, for a queue, its messages.

use rusqlite::{OptionalExtension, params};

use crate::db::DbError;
use crate::fanout::spec::SubscriptionSettings;
use crate::topic::{SUBSCRIPTION_COLUMNS, SqliteTopic, Subscription, subscription_from_row};

impl SqliteTopic {
    /// Replaces the settings of the subscription `id_or_arn` (already validated); `None`
    /// when there is no such subscription. Messages published from now on are filtered and
    /// delivered by the new settings; deliveries already queued keep theirs.
    pub async fn set_settings(
        &self,
        id_or_arn: String,
        settings: SubscriptionSettings,
    ) -> Result<Option<Subscription>, DbError> {
        let id_or_arn = self.stored_key(id_or_arn);
        let text = serde_json::to_string(&settings).expect("settings serialize");
        self.db
            .write(move |c| {
                let changed = c.execute(
                    "UPDATE subscriptions SET settings = ?2 WHERE id = ?1 OR arn = ?1",
                    params![id_or_arn, text],
                )?;
                if changed == 0 {
                    return Ok(None);
                }
                Ok(c.query_row(
                    &format!(
                        "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions s WHERE id = ?1 OR arn = ?1"
                    ),
                    params![id_or_arn],
                    |r| subscription_from_row(r, 0),
                )
                .optional()?)
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use orderflow_core::{MessageAttribute, Publication, Topic};

    use crate::db::Db;
    use crate::fanout::spec::{SubscriptionRequest, Validation};
    use crate::topic::{Source, SqliteTopic};

    fn publication(dedup: &str, currency: &str) -> Publication {
        Publication {
            dedup_id: dedup.into(),
            subject: "OrderCreated".into(),
            message: "{}".into(),
            attributes: BTreeMap::from([(
                "currency".to_owned(),
                MessageAttribute::String(currency.into()),
            )]),
        }
    }

    #[tokio::test]
    async fn a_new_filter_policy_applies_to_what_is_published_after_it_and_keeps_the_arn() {
        let dir = tempfile::tempdir().unwrap();
        let topic =
            SqliteTopic::new(Db::open(&dir.path().join("t.db"), crate::schema::migrate).unwrap());
        let rules = Validation {
            email_enabled: false,
            trusted: false,
        };
        let request: SubscriptionRequest =
            serde_json::from_value(serde_json::json!({"protocol": "queue", "endpoint": "audit"}))
                .unwrap();
        let sub = topic
            .subscribe(request.clone().validate(&rules).unwrap(), Source::Api)
            .await
            .unwrap();
        let filtered = SubscriptionRequest {
            filter_policy: Some(serde_json::json!({"currency": ["EUR"]})),
            raw_message_delivery: Some(true),
            ..request
        }
        .validate(&rules)
        .unwrap();
        let changed = topic
            .set_settings(sub.subscription_arn.clone(), filtered.settings.clone())
            .await
            .unwrap()
            .expect("the subscription exists");
        assert_eq!(changed.subscription_arn, sub.subscription_arn);
        assert_eq!(changed.status, sub.status);
        assert_eq!(changed.settings, filtered.settings);

        topic.publish(&publication("a", "USD")).await.unwrap();
        topic.publish(&publication("b", "EUR")).await.unwrap();
        topic.due_now().await;
        let stats = topic.health().await.unwrap();
        assert_eq!(stats[0].deliveries.filtered, 1, "USD no longer matches");
        assert_eq!(stats[0].deliveries.pending, 1, "EUR does");

        assert!(
            topic
                .set_settings("no-such-subscription".into(), filtered.settings)
                .await
                .unwrap()
                .is_none()
        );
    }
}

use super::*;

fn topic(dir: &tempfile::TempDir) -> SqliteTopic {
    SqliteTopic::new(Db::open(&dir.path().join("t.db"), crate::schema::migrate).unwrap())
}

fn spec(value: serde_json::Value) -> SubscriptionSpec {
    serde_json::from_value::<crate::fanout::spec::SubscriptionRequest>(value)
        .unwrap()
        .validate(&crate::fanout::spec::Validation {
            email_enabled: true,
            trusted: true,
        })
        .unwrap()
}

/// A subscription made through the API from its request's JSON.
async fn subscribed(t: &SqliteTopic, request: serde_json::Value) -> Subscription {
    t.subscribe(spec(request), Source::Api).await.unwrap()
}

/// A confirmed `queue` subscription (ours: no handshake).
async fn queue_subscriber(t: &SqliteTopic, endpoint: &str) -> Subscription {
    subscribed(
        t,
        serde_json::json!({"protocol": "queue", "endpoint": endpoint}),
    )
    .await
}

fn http_spec(url: &str) -> SubscriptionSpec {
    spec(serde_json::json!({"protocol": "http", "endpoint": url}))
}

fn order_publication(dedup: &str, currency: &str, total: &str) -> Publication {
    Publication {
        dedup_id: dedup.into(),
        subject: "OrderCreated".into(),
        message: serde_json::json!({"type": "OrderCreated", "order": {"currency": currency}})
            .to_string(),
        attributes: BTreeMap::from([
            (
                "currency".to_owned(),
                MessageAttribute::String(currency.into()),
            ),
            ("total".to_owned(), MessageAttribute::Number(total.into())),
        ]),
    }
}

/// Every due delivery of every subscription.
async fn all_due(t: &SqliteTopic) -> Vec<DueDelivery> {
    t.due_now().await
}

fn want(id: &str, n: usize) -> Want {
    Want {
        subscription_id: id.to_owned(),
        n,
        after: None,
        room: 1000,
    }
}

async fn notifications_for(t: &SqliteTopic, subscription: &str) -> usize {
    let due = all_due(t).await;
    due.iter()
        .filter(|d| d.kind == DeliveryKind::Notification && d.subscription.id == subscription)
        .count()
}

/// A publication made while the delivery worker is busy (not waiting) still wakes it
/// the next time it waits; a lost wake-up left deliveries idle for seconds.
#[tokio::test]
async fn a_publication_wakes_a_worker_that_was_not_yet_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let t = topic(&dir);
    t.subscribe(http_spec("http://127.0.0.1:9/hook"), Source::Api)
        .await
        .unwrap();
    // Take any wake-up the subscription itself left.
    let _ = tokio::time::timeout(
        std::time::Duration::from_millis(50),
        t.delivery_notify().notified(),
    )
    .await;
    t.publish_batch(&[order_publication("m-1", "EUR", "1")])
        .await
        .into_iter()
        .for_each(|r| {
            r.unwrap();
        });
    tokio::time::timeout(
        std::time::Duration::from_secs(1),
        t.delivery_notify().notified(),
    )
    .await
    .expect("the wake-up was kept for the next wait");
}

#[tokio::test]
async fn a_filter_policy_lets_only_matching_messages_through_and_counts_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let t = topic(&dir);
    let eur = subscribed(&t, serde_json::json!({"protocol": "queue", "endpoint": "eur", "filterPolicy": {"currency": ["EUR"]}})).await;
    let body = subscribed(&t, serde_json::json!({"protocol": "queue", "endpoint": "usd", "filterPolicyScope": "MessageBody",
                "filterPolicy": {"order": {"currency": ["USD"]}}})).await;
    let all = subscribed(
        &t,
        serde_json::json!({"protocol": "log", "endpoint": "stdout"}),
    )
    .await;
    assert_eq!(
        eur.status,
        SubscriptionStatus::Confirmed,
        "a queue needs no handshake"
    );
    for (i, currency) in ["EUR", "USD", "EUR", "GBP"].iter().enumerate() {
        t.publish(&order_publication(&format!("r{i}"), currency, "10"))
            .await
            .unwrap();
    }
    assert_eq!(notifications_for(&t, &eur.id).await, 2);
    assert_eq!(notifications_for(&t, &body.id).await, 1);
    assert_eq!(notifications_for(&t, &all.id).await, 4);
    // A filter policy is applied as the worker reaches each message, and counted as its
    // cursor passes it.
    assert_eq!(t.deliver_all().await, 7);
    assert_eq!(t.delivery_stats().await.unwrap().pending, 0);
    let health = t.health().await.unwrap();
    let filtered = |id: &str| {
        health
            .iter()
            .find(|h| h.subscription.id == id)
            .unwrap()
            .deliveries
            .filtered
    };
    assert_eq!(
        (filtered(&eur.id), filtered(&body.id), filtered(&all.id)),
        (2, 3, 0)
    );
    assert_eq!(t.delivery_stats().await.unwrap().filtered, 5);
}

#[tokio::test]
async fn a_failed_delivery_waits_in_the_dead_letter_store_until_redriven() {
    let dir = tempfile::tempdir().unwrap();
    let t = topic(&dir);
    let sub = queue_subscriber(&t, "q").await;
    t.publish(&order_publication("r1", "EUR", "1"))
        .await
        .unwrap();
    let due = all_due(&t).await;
    t.settle(
        &due[0],
        Settled::Failed {
            error: "boom".into(),
        },
    )
    .await;
    assert_eq!(notifications_for(&t, &sub.id).await, 0);
    let dead = t.dead_letters(sub.id.clone(), 10).await.unwrap().unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].last_error.as_deref(), Some("boom"));
    assert_eq!(dead[0].attempts, 1);
    assert!(dead[0].message.is_some());
    assert!(t.dead_letters("nope".into(), 10).await.unwrap().is_none());

    assert_eq!(
        t.redrive(sub.subscription_arn.clone(), None).await.unwrap(),
        Some(1)
    );
    assert!(
        t.dead_letters(sub.id.clone(), 10)
            .await
            .unwrap()
            .unwrap()
            .is_empty()
    );
    let due = all_due(&t).await;
    assert_eq!(due[0].attempts, 0, "a redriven delivery starts over");
}

#[tokio::test]
async fn a_backlog_of_one_subscription_does_not_crowd_out_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let t = topic(&dir);
    let slow = queue_subscriber(&t, "slow").await;
    for i in 0..50 {
        t.publish(&order_publication(&format!("early{i}"), "EUR", "1"))
            .await
            .unwrap();
    }
    let fast = queue_subscriber(&t, "fast").await;
    t.publish(&order_publication("late", "EUR", "1"))
        .await
        .unwrap();
    let due = t
        .due_for(vec![want(&slow.id, 4), want(&fast.id, 4)], HashSet::new())
        .await
        .unwrap();
    assert!(
        due.deliveries.iter().any(|d| d.subscription.id == fast.id),
        "the fast subscription is served"
    );
    let slow_due: Vec<DeliveryRef> = due
        .deliveries
        .iter()
        .filter(|d| d.subscription.id == slow.id)
        .map(|d| d.source)
        .collect();
    assert_eq!(
        slow_due.len(),
        4,
        "each subscription gets at most what was asked"
    );
    let lane = &due.lanes[&slow.id];
    assert!(!lane.reached_end, "46 more wait");
    let next = t
        .due_for(
            vec![Want {
                after: Some(lane.upto),
                ..want(&slow.id, 4)
            }],
            HashSet::new(),
        )
        .await
        .unwrap()
        .deliveries;
    assert!(
        next.iter().all(|d| !slow_due.contains(&d.source)) && next.len() == 4,
        "first attempts the worker read are not read again"
    );
    let due = t
        .due_for(vec![want(&fast.id, 4)], HashSet::new())
        .await
        .unwrap();
    assert!(
        due.deliveries.iter().all(|d| d.subscription.id == fast.id),
        "a saturated subscription is not asked for"
    );
    assert_eq!(due.deliveries.len(), 1, "only what was published after it");
    assert!(due.lanes[&fast.id].reached_end);
}

/// A read goes no further than the worker's room along a subscription's messages, filtered
/// ones included, and says whether it reached the newest.
#[tokio::test]
async fn a_read_stops_at_the_room_it_was_given() {
    let dir = tempfile::tempdir().unwrap();
    let t = topic(&dir);
    let eur = subscribed(&t, serde_json::json!({"protocol": "queue", "endpoint": "eur", "filterPolicy": {"currency": ["EUR"]}})).await;
    for i in 0..10 {
        let currency = if i == 9 { "EUR" } else { "USD" };
        t.publish(&order_publication(&format!("m{i}"), currency, "1"))
            .await
            .unwrap();
    }
    let read = |room| {
        t.due_for(
            vec![Want {
                room,
                ..want(&eur.id, 16)
            }],
            HashSet::new(),
        )
    };
    let due = read(5).await.unwrap();
    assert!(due.deliveries.is_empty(), "five USD messages turned away");
    assert_eq!(due.lanes[&eur.id].filtered.len(), 5);
    assert!(!due.lanes[&eur.id].reached_end);
    let due = read(100).await.unwrap();
    assert_eq!(due.deliveries.len(), 1);
    assert_eq!(due.lanes[&eur.id].filtered.len(), 9);
    assert!(due.lanes[&eur.id].reached_end);
}

#[tokio::test]
async fn applying_the_file_creates_updates_replaces_and_removes_by_name_only_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let t = topic(&dir);
    let api = t
        .subscribe(http_spec("http://127.0.0.1:1/api"), Source::Api)
        .await
        .unwrap();
    let first = vec![
        spec(serde_json::json!({"name": "a", "protocol": "queue", "endpoint": "qa"})),
        spec(serde_json::json!({"name": "b", "protocol": "log", "endpoint": "stdout"})),
        spec(serde_json::json!({"name": "c", "protocol": "queue", "endpoint": "qc"})),
    ];
    let applied = t.apply_file(first.clone()).await.unwrap();
    assert_eq!(applied.created, ["a", "b", "c"]);
    assert_eq!(
        t.apply_file(first).await.unwrap().unchanged,
        ["a", "b", "c"]
    );

    let second = vec![
        spec(
            serde_json::json!({"name": "a", "protocol": "queue", "endpoint": "qa", "maxReceiveCount": 9}),
        ),
        spec(serde_json::json!({"name": "b", "protocol": "log", "endpoint": "other.jsonl"})),
    ];
    let applied = t.apply_file(second).await.unwrap();
    assert_eq!(applied.updated, ["a"]);
    assert_eq!(applied.replaced, ["b"]);
    assert_eq!(applied.removed, ["c"]);
    let names: Vec<_> = t
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.name, s.managed_by))
        .collect();
    assert!(names.contains(&(None, Source::Api)), "{names:?}");
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(t.get(api.id).await.unwrap().is_some());

    queue_subscriber(&t, "apiq").await;
    let clash = vec![
        spec(
            serde_json::json!({"name": "a", "protocol": "queue", "endpoint": "qa", "maxReceiveCount": 9}),
        ),
        spec(serde_json::json!({"name": "z", "protocol": "queue", "endpoint": "apiq"})),
    ];
    assert!(matches!(
        t.apply_file(clash).await,
        Err(SubscribeError::Conflict(_))
    ));
    assert_eq!(
        t.list().await.unwrap().len(),
        4,
        "a failed file changes nothing"
    );
}

#[tokio::test]
async fn a_confirmation_token_expires_after_three_days_and_can_ask_for_authenticated_unsubscribes()
{
    use crate::fanout::tokens::CONFIRMATION_TOKEN_LIFETIME_MS;
    let dir = tempfile::tempdir().unwrap();
    let t = topic(&dir);
    let late = t
        .subscribe(http_spec("http://127.0.0.1:1/late"), Source::Api)
        .await
        .unwrap();
    let in_time = t
        .subscribe(http_spec("http://127.0.0.1:1/in-time"), Source::Api)
        .await
        .unwrap();
    let later = now_ms() + CONFIRMATION_TOKEN_LIFETIME_MS + 1;
    assert!(
        t.confirm_at(late.token.clone(), false, later)
            .await
            .unwrap()
            .is_none()
    );
    let late = t.get(late.id).await.unwrap().unwrap();
    assert_eq!(late.status, SubscriptionStatus::PendingConfirmation);

    let confirmed = t
        .confirm(in_time.token.clone(), true)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(confirmed.status, SubscriptionStatus::Confirmed);
    assert!(confirmed.settings.authenticate_on_unsubscribe);
}

#[tokio::test]
async fn sqlite_topic_conforms() {
    let dir = tempfile::tempdir().unwrap();
    orderflow_core::conformance::topic(&topic(&dir)).await;
}

#[tokio::test]
async fn only_confirmed_subscriptions_get_deliveries_and_a_repeat_publication_adds_none() {
    let dir = tempfile::tempdir().unwrap();
    let t = topic(&dir);
    let confirmed = t
        .subscribe(http_spec("http://127.0.0.1:1/a"), Source::Api)
        .await
        .unwrap();
    let _pending = t
        .subscribe(http_spec("http://127.0.0.1:1/b"), Source::Api)
        .await
        .unwrap();
    let c = t
        .confirm(confirmed.token.clone(), false)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.status, SubscriptionStatus::Confirmed);
    assert!(t.confirm("nope".into(), false).await.unwrap().is_none());

    let p = Publication {
        dedup_id: "rec-1".into(),
        subject: "OrderCreated".into(),
        message: "{}".into(),
        attributes: BTreeMap::new(),
    };
    let id1 = t.publish(&p).await.unwrap();
    let id2 = t.publish(&p).await.unwrap();
    assert_eq!(id1, id2);
    assert_eq!(t.delivery_stats().await.unwrap().pending, 1);

    let due = all_due(&t).await;
    let notifications: Vec<_> = due
        .iter()
        .filter(|d| d.kind == DeliveryKind::Notification)
        .collect();
    assert_eq!(notifications.len(), 1);
    assert_eq!(notifications[0].subscription.id, confirmed.id);

    assert!(
        t.unsubscribe(confirmed.subscription_arn.clone())
            .await
            .unwrap()
    );
    assert_eq!(
        t.delivery_stats().await.unwrap().pending,
        0,
        "deliveries go with the subscription"
    );
}

/// SNS sends a subscription what is published once it is confirmed: its cursor starts at
/// its confirmation, and confirming it again does not move it back.
#[tokio::test]
async fn a_subscription_confirmed_later_gets_what_is_published_after_and_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let t = topic(&dir);
    let sub = t
        .subscribe(http_spec("http://127.0.0.1:1/late"), Source::Api)
        .await
        .unwrap();
    t.publish(&order_publication("before", "EUR", "1"))
        .await
        .unwrap();
    t.confirm(sub.token.clone(), false).await.unwrap().unwrap();
    t.publish(&order_publication("after", "EUR", "1"))
        .await
        .unwrap();
    let notifications = |due: Vec<DueDelivery>| {
        due.into_iter()
            .filter(|d| d.kind == DeliveryKind::Notification)
            .map(|d| d.message.unwrap().message_id.clone())
            .collect::<Vec<_>>()
    };
    let due = notifications(all_due(&t).await);
    assert_eq!(due.len(), 1, "{due:?}");
    assert_eq!(t.delivery_stats().await.unwrap().pending, 1);
    let published = all_due(&t).await[0].created_at;
    assert_eq!(t.deliver_all().await, 1);
    // Its row is written once, delivered: one attempt, due since its publication.
    let row: (String, u32, i64, Option<i64>) = t
        .db
        .read(|c| {
            Ok(c.query_row(
                "SELECT state, attempts, created_at, delivered_at FROM deliveries WHERE kind = 'Notification'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )?)
        })
        .await
        .unwrap();
    assert_eq!((row.0.as_str(), row.1, row.2), ("delivered", 1, published));
    assert!(row.3.is_some_and(|at| at >= published));
    t.confirm(sub.token.clone(), false).await.unwrap().unwrap();
    assert!(notifications(all_due(&t).await).is_empty());
    let stats = t.delivery_stats().await.unwrap();
    assert_eq!((stats.pending, stats.delivered), (0, 1));
}

/// An attempt that settles after its subscription was removed writes nothing, and does not
/// undo the rest of its batch.
#[tokio::test]
async fn an_advance_for_a_removed_subscription_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let t = topic(&dir);
    let gone = queue_subscriber(&t, "gone").await;
    let kept = queue_subscriber(&t, "kept").await;
    t.publish(&order_publication("m", "EUR", "1"))
        .await
        .unwrap();
    let due = all_due(&t).await;
    assert!(t.unsubscribe(gone.id.clone()).await.unwrap());
    let advances: Vec<CursorAdvance> = due
        .iter()
        .map(|d| CursorAdvance {
            subscription_id: d.subscription.id.clone(),
            to: match d.source {
                DeliveryRef::Cursor(seq) => seq,
                DeliveryRef::Row(_) => unreachable!(),
            },
            filtered: 0,
            settled: vec![DeliveryOutcome::of(d, Settled::Delivered)],
        })
        .collect();
    t.record(Vec::new(), advances).await.unwrap();
    let health = t.health().await.unwrap();
    assert_eq!(health.len(), 1);
    assert_eq!(health[0].subscription.id, kept.id);
    assert_eq!(health[0].deliveries.delivered, 1);
    assert_eq!(t.delivery_stats().await.unwrap().delivered, 1);
}

/// The trace lists a first attempt not made yet (it has no row) for each subscription whose
/// filter policy lets the message through, and the delivered row once it is made.
#[tokio::test]
async fn the_trace_shows_first_attempts_not_yet_made_and_not_filtered_ones() {
    let dir = tempfile::tempdir().unwrap();
    let t = topic(&dir);
    let eur = subscribed(&t, serde_json::json!({"protocol": "queue", "endpoint": "eur", "filterPolicy": {"currency": ["EUR"]}})).await;
    subscribed(&t, serde_json::json!({"protocol": "queue", "endpoint": "usd", "filterPolicy": {"currency": ["USD"]}})).await;
    let id = t
        .publish(&order_publication("m", "EUR", "1"))
        .await
        .unwrap();
    let traced = |id: String| t.db.read(move |c| crate::trace::not_yet_attempted(c, &id));
    let pending = traced(id.clone()).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].subscription_id, eur.id);
    assert_eq!(
        (pending[0].state.as_str(), pending[0].attempts),
        ("pending", 0)
    );
    t.deliver_all().await;
    assert!(
        traced(id).await.unwrap().is_empty(),
        "delivered: its row says so"
    );
}

/// Retention may prune the newest messages once every cursor has passed them; a
/// subscription made then starts after the last number given out, not after the newest
/// row left (found by review: its pending count counted the pruned ones).
#[tokio::test]
async fn a_subscription_made_after_the_newest_messages_were_pruned_counts_only_what_follows() {
    let dir = tempfile::tempdir().unwrap();
    let t = topic(&dir);
    queue_subscriber(&t, "a").await;
    for i in 0..3 {
        t.publish(&order_publication(&format!("m-{i}"), "EUR", "1"))
            .await
            .unwrap();
    }
    assert_eq!(t.deliver_all().await, 3);
    // What retention does once they are older than the history retention.
    t.db.write(|c| Ok(c.execute("DELETE FROM topic_messages", [])?))
        .await
        .unwrap();
    let b = queue_subscriber(&t, "b").await;
    assert_eq!(t.delivery_stats().await.unwrap().pending, 0);
    t.publish(&order_publication("m-3", "EUR", "1"))
        .await
        .unwrap();
    let health = t.health().await.unwrap();
    let b = health.iter().find(|h| h.subscription.id == b.id).unwrap();
    assert_eq!(
        b.deliveries.pending, 1,
        "one message was published since it subscribed"
    );
}

/// A failed first attempt's row is written as a dead letter; one already there for the
/// message takes the outcome rather than making it vanish.
#[tokio::test]
async fn a_failed_first_attempt_is_kept_even_over_a_row_already_there() {
    let dir = tempfile::tempdir().unwrap();
    let t = topic(&dir);
    let sub = queue_subscriber(&t, "q").await;
    t.publish(&order_publication("m", "EUR", "1"))
        .await
        .unwrap();
    let due = all_due(&t).await;
    let stale = (sub.id.clone(), due[0].message_id.clone());
    t.db.write(move |c| {
        Ok(c.execute(
            "INSERT INTO deliveries (subscription_id, kind, message_id, state, next_attempt_at, created_at)
             VALUES (?1, 'Notification', ?2, 'delivered', 1, 1)",
            params![stale.0, stale.1],
        )?)
    })
    .await
    .unwrap();
    t.settle(
        &due[0],
        Settled::Failed {
            error: "refused".into(),
        },
    )
    .await;
    let dead = t.dead_letters(sub.id.clone(), 10).await.unwrap().unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].last_error.as_deref(), Some("refused"));
}

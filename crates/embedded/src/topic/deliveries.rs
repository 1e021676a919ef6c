//! The delivery log's bookkeeping: which deliveries are due, their outcomes, the
//! dead-letter store and its redrive, and the counts.

use super::*;

impl SqliteTopic {
    /// The subscription's dead-letter store: deliveries whose retries ran out, oldest first.
    /// `None` when there is no such subscription.
    pub async fn dead_letters(
        &self,
        id_or_arn: String,
        limit: usize,
    ) -> Result<Option<Vec<DeadLetterDelivery>>, DbError> {
        let Some(sub) = self.get(id_or_arn).await? else {
            return Ok(None);
        };
        self.db
            .read(move |c| {
                let mut stmt = c.prepare_cached(
                    "SELECT d.id, d.message_id, d.kind, d.attempts, d.last_error, d.created_at, d.failed_at,
                            m.subject, m.message
                     FROM deliveries d LEFT JOIN topic_messages m ON m.message_id = d.message_id
                     WHERE d.subscription_id = ?1 AND d.state = 'failed' ORDER BY d.id LIMIT ?2",
                )?;
                let rows = stmt
                    .query_map(params![sub.id, limit as i64], |r| {
                        let kind: String = r.get(2)?;
                        let failed: Option<i64> = r.get(6)?;
                        Ok(DeadLetterDelivery {
                            delivery_id: r.get(0)?,
                            message_id: r.get(1)?,
                            kind: if kind == "Notification" {
                                "Notification"
                            } else {
                                "SubscriptionConfirmation"
                            },
                            attempts: r.get(3)?,
                            last_error: r.get(4)?,
                            created_at: fmt_ms(r.get(5)?),
                            failed_at: failed.map(fmt_ms),
                            subject: r.get(7)?,
                            message: r.get(8)?,
                        })
                    })?
                    .collect::<Result<_, _>>()?;
                Ok(Some(rows))
            })
            .await
    }

    /// Moves dead-lettered deliveries (all, or the given delivery ids) back to pending with
    /// fresh attempts. `None` when there is no such subscription.
    pub async fn redrive(
        &self,
        id_or_arn: String,
        delivery_ids: Option<Vec<i64>>,
    ) -> Result<Option<usize>, DbError> {
        let Some(sub) = self.get(id_or_arn).await? else {
            return Ok(None);
        };
        let n = self
            .db
            .write(move |c| {
                let now = now_ms();
                let sql =
                    "UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = ?2,
                           failed_at = NULL WHERE subscription_id = ?1 AND state = 'failed'";
                Ok(match delivery_ids {
                    None => c.execute(sql, params![sub.id, now])?,
                    Some(ids) => {
                        let mut stmt = c.prepare(&format!("{sql} AND id = ?3"))?;
                        let mut n = 0;
                        for id in ids {
                            n += stmt.execute(params![sub.id, now, id])?;
                        }
                        n
                    }
                })
            })
            .await?;
        self.delivery_notify.notify_one();
        Ok(Some(n))
    }

    /// Due work per subscription: for each [`Want`], its due rows (retries, confirmation
    /// requests, redriven dead letters) oldest first, skipping `exclude` (rows the worker
    /// already holds), then first attempts at the messages after its cursor, in order, which
    /// its filter policy decides on here. Also returns when the next retry falls due.
    ///
    /// Each subscription and each message is read and parsed once per call, however many
    /// deliveries share it: with ten subscribers a message is due ten times in one read.
    pub async fn due_for(&self, wants: Vec<Want>, exclude: HashSet<i64>) -> Result<Due, DbError> {
        let policies = Arc::clone(&self.policies);
        self.db
            .read(move |c| {
                let now = now_ms();
                let mut due = c.prepare_cached(
                    "SELECT id, kind, message_id, attempts, created_at FROM deliveries
                     WHERE subscription_id = ?1 AND state = 'pending' AND next_attempt_at <= ?2
                     ORDER BY next_attempt_at, id LIMIT ?3",
                )?;
                let mut subscription = c.prepare_cached(&format!(
                    "SELECT {SUBSCRIPTION_COLUMNS}, s.cursor FROM subscriptions s WHERE s.id = ?1"
                ))?;
                let mut message = c.prepare_cached(
                    "SELECT subject, message, attributes, published_at FROM topic_messages
                     WHERE message_id = ?1",
                )?;
                let mut after = c.prepare_cached(
                    "SELECT subject, message, attributes, published_at, seq, message_id
                     FROM topic_messages WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                )?;
                let mut messages: HashMap<String, Option<Arc<TopicMessage>>> = HashMap::new();
                let mut by_seq: HashMap<i64, Arc<TopicMessage>> = HashMap::new();
                let mut out = Due::default();
                for want in wants {
                    let Some((sub, settings, cursor)) = subscription
                        .query_row(params![want.subscription_id], |r| {
                            Ok((subscription_from_row(r, 0)?, r.get::<_, String>(9)?, r.get::<_, i64>(11)?))
                        })
                        .optional()?
                    else {
                        continue; // removed since it was listed: its deliveries went with it
                    };
                    let sub = Arc::new(sub);
                    // Held ones come first in the same order, so ask for enough to skip them.
                    let limit = (want.n + exclude.len()) as i64;
                    let mut rows = due.query(params![want.subscription_id, now, limit])?;
                    let mut taken = 0;
                    while taken < want.n
                        && let Some(r) = rows.next()?
                    {
                        let id: i64 = r.get(0)?;
                        if exclude.contains(&id) {
                            continue;
                        }
                        let kind: String = r.get(1)?;
                        let message_id: String = r.get(2)?;
                        let message = match messages.get(&message_id) {
                            Some(m) => m.clone(),
                            None => {
                                let m = message
                                    .query_row(params![message_id], |m| message_from_row(m, &message_id))
                                    .optional()?
                                    .map(Arc::new);
                                messages.insert(message_id.clone(), m.clone());
                                m
                            }
                        };
                        out.deliveries.push(DueDelivery {
                            source: DeliveryRef::Row(id),
                            kind: if kind == "Notification" {
                                DeliveryKind::Notification
                            } else {
                                DeliveryKind::SubscriptionConfirmation
                            },
                            message_id,
                            attempts: r.get(3)?,
                            created_at: r.get(4)?,
                            subscription: Arc::clone(&sub),
                            message,
                        });
                        taken += 1;
                    }
                    drop(rows);
                    if sub.status != SubscriptionStatus::Confirmed || want.room == 0 {
                        continue;
                    }
                    // The worker never reads behind the stored cursor, whatever it noted.
                    let start = want.after.map_or(cursor, |a| a.max(cursor));
                    let policy = policy_for(&policies, &settings);
                    let mut lane = LaneRead {
                        upto: start,
                        ..LaneRead::default()
                    };
                    let mut rows = after.query(params![start, want.room as i64])?;
                    let mut read = 0;
                    while taken < want.n
                        && let Some(r) = rows.next()?
                    {
                        read += 1;
                        let seq: i64 = r.get(4)?;
                        let m = match by_seq.get(&seq) {
                            Some(m) => Arc::clone(m),
                            None => {
                                let message_id: String = r.get(5)?;
                                let m = Arc::new(message_from_row(r, &message_id)?);
                                by_seq.insert(seq, Arc::clone(&m));
                                m
                            }
                        };
                        lane.upto = seq;
                        if policy.as_ref().is_some_and(|p| !p.matches(&m.message, &m.attributes)) {
                            lane.filtered.push(seq);
                            continue;
                        }
                        out.deliveries.push(DueDelivery {
                            source: DeliveryRef::Cursor(seq),
                            kind: DeliveryKind::Notification,
                            message_id: m.message_id.clone(),
                            attempts: 0,
                            created_at: m.published_at,
                            subscription: Arc::clone(&sub),
                            message: Some(m),
                        });
                        taken += 1;
                    }
                    lane.reached_end = taken < want.n && read < want.room;
                    out.lanes.insert(sub.id.clone(), lane);
                }
                out.next_due = c
                    .prepare_cached(
                        "SELECT min(next_attempt_at) FROM deliveries WHERE state = 'pending' AND next_attempt_at > ?1",
                    )?
                    .query_row(params![now], |r| r.get(0))?;
                Ok(out)
            })
            .await
    }

    /// Ids of every subscription, the worker's unit of fairness.
    pub async fn subscription_ids(&self) -> Result<Vec<String>, DbError> {
        self.db
            .read(|c| {
                let mut stmt = c.prepare_cached("SELECT id FROM subscriptions ORDER BY id")?;
                let ids = stmt
                    .query_map([], |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
                Ok(ids)
            })
            .await
    }

    /// Records, in one transaction, the outcomes of attempts at rows and the cursors'
    /// advances, each with the rows of the first attempts it passes: a delivered one as
    /// history, a failed one as a retry or a dead letter. A cursor only moves forward, and
    /// a removed subscription's advance writes nothing.
    pub async fn record(
        &self,
        rows: Vec<DeliveryOutcome>,
        advances: impl Into<Arc<[CursorAdvance]>>,
    ) -> Result<(), DbError> {
        // Shared, so a caller keeps what it may have to try again without a copy.
        let advances: Arc<[CursorAdvance]> = advances.into();
        if rows.is_empty() && advances.is_empty() {
            return Ok(());
        }
        self.db
            .write_relaxed(move |c| {
                let mut delivered = c.prepare_cached(
                    "UPDATE deliveries SET state = 'delivered', attempts = attempts + 1, delivered_at = ?2,
                     last_error = NULL WHERE id = ?1",
                )?;
                let mut retry = c.prepare_cached(
                    "UPDATE deliveries SET attempts = attempts + 1, next_attempt_at = ?2, last_error = ?3
                     WHERE id = ?1",
                )?;
                let mut failed = c.prepare_cached(
                    "UPDATE deliveries SET attempts = attempts + 1, state = 'failed', last_error = ?2,
                     failed_at = ?3 WHERE id = ?1",
                )?;
                for o in &rows {
                    let DeliveryRef::Row(id) = o.source else {
                        continue; // a first attempt is recorded with its cursor's advance
                    };
                    match &o.settled {
                        Settled::Delivered => delivered.execute(params![id, o.at])?,
                        Settled::Retry { error, at } => retry.execute(params![id, at, error])?,
                        Settled::Failed { error } => failed.execute(params![id, error, o.at])?,
                    };
                }
                let mut advance = c.prepare_cached(
                    "UPDATE subscriptions SET cursor = max(cursor, ?2), filtered = filtered + ?3 WHERE id = ?1",
                )?;
                // Written once, in their final state. The delivered ones go in one statement
                // per advance: each statement keeps a journal of the pages it changes (the
                // table's foreign key and count trigger may abort it), so one per row copied
                // every page it touched once per notification. The count of delivered ones is
                // added here; triggers count the others.
                let mut delivered_rows = c.prepare_cached(
                    "INSERT OR IGNORE INTO deliveries (subscription_id, kind, message_id, state, attempts,
                         next_attempt_at, created_at, delivered_at)
                     SELECT ?1, 'Notification', value ->> 0, 'delivered', 1, value ->> 2, value ->> 1, value ->> 2
                     FROM json_each(?2)",
                )?;
                // A retry or a dead letter must never vanish: should a row for the message be
                // there already, it takes this attempt's outcome.
                let mut other_row = c.prepare_cached(
                    "INSERT INTO deliveries (subscription_id, kind, message_id, state, attempts,
                         next_attempt_at, last_error, created_at, failed_at)
                     VALUES (?1, 'Notification', ?2, ?3, 1, ?4, ?5, ?6, ?7)
                     ON CONFLICT (subscription_id, message_id) DO UPDATE SET
                         state = excluded.state, attempts = attempts + 1,
                         next_attempt_at = excluded.next_attempt_at, last_error = excluded.last_error,
                         failed_at = excluded.failed_at",
                )?;
                let mut count = c.prepare_cached(
                    "INSERT INTO delivery_counts VALUES (?1, 'delivered', ?2)
                     ON CONFLICT (subscription_id, state) DO UPDATE SET n = n + excluded.n",
                )?;
                for a in advances.iter() {
                    if advance.execute(params![a.subscription_id, a.to, a.filtered as i64])? == 0 {
                        continue; // unsubscribed meanwhile
                    }
                    let mut delivered = Vec::new();
                    for o in &a.settled {
                        // (state, next attempt, error, failed at)
                        let (state, next, error, failed_at) = match &o.settled {
                            Settled::Delivered => {
                                delivered.push((&o.message_id, o.created_at, o.at));
                                continue;
                            }
                            Settled::Retry { error, at } => ("pending", *at, error, None),
                            Settled::Failed { error } => ("failed", o.at, error, Some(o.at)),
                        };
                        other_row.execute(params![
                            a.subscription_id,
                            o.message_id,
                            state,
                            next,
                            error,
                            o.created_at,
                            failed_at
                        ])?;
                    }
                    if delivered.is_empty() {
                        continue;
                    }
                    let rows = serde_json::to_string(&delivered).expect("ids and times serialize");
                    let written = delivered_rows.execute(params![a.subscription_id, rows])?;
                    if written > 0 {
                        count.execute(params![a.subscription_id, written as i64])?;
                    }
                }
                Ok(())
            })
            .await
    }

    pub async fn delivery_stats(&self) -> Result<DeliveryStats, DbError> {
        self.db
            .read(|c| {
                let counts = crate::counters::deliveries(c, None)?;
                let filtered: i64 = c.query_row(
                    "SELECT coalesce(sum(filtered), 0) FROM subscriptions",
                    [],
                    |r| r.get(0),
                )?;
                Ok(DeliveryStats {
                    filtered: filtered as u64,
                    ..counts
                })
            })
            .await
    }
}

#[cfg(test)]
impl SqliteTopic {
    /// One read of every subscription, each asked for up to 1,000 from its stored cursor.
    async fn read_everything(&self) -> Due {
        let wants = self
            .subscription_ids()
            .await
            .unwrap()
            .into_iter()
            .map(|id| Want {
                subscription_id: id,
                n: 1000,
                after: None,
                room: 1000,
            })
            .collect();
        self.due_for(wants, HashSet::new()).await.unwrap()
    }

    /// What a worker's read finds due now, every subscription asked for everything. The
    /// run of messages filter policies turned away at the front of each cursor is settled
    /// at once, as the worker's recorder does.
    pub(crate) async fn due_now(&self) -> Vec<DueDelivery> {
        let due = self.read_everything().await;
        let mut advances = Vec::new();
        for (id, lane) in &due.lanes {
            let first_sent = due
                .deliveries
                .iter()
                .filter(|d| &d.subscription.id == id)
                .find_map(|d| match d.source {
                    DeliveryRef::Cursor(seq) => Some(seq),
                    DeliveryRef::Row(_) => None,
                })
                .unwrap_or(i64::MAX);
            let front: Vec<i64> = lane
                .filtered
                .iter()
                .copied()
                .take_while(|seq| *seq < first_sent)
                .collect();
            if let Some(to) = front.last() {
                advances.push(CursorAdvance {
                    subscription_id: id.clone(),
                    to: *to,
                    filtered: front.len() as u64,
                    settled: Vec::new(),
                });
            }
        }
        self.record(Vec::new(), advances).await.unwrap();
        due.deliveries
    }

    /// Reads everything due and records it delivered, each cursor moved to the end of what
    /// it read, past the messages filtered out on the way.
    pub(crate) async fn deliver_all(&self) -> usize {
        let due = self.read_everything().await;
        let n = due.deliveries.len();
        let mut rows = Vec::new();
        let mut advances: HashMap<String, CursorAdvance> = due
            .lanes
            .iter()
            .map(|(id, lane)| {
                let a = CursorAdvance {
                    subscription_id: id.clone(),
                    to: lane.upto,
                    filtered: lane.filtered.len() as u64,
                    settled: Vec::new(),
                };
                (id.clone(), a)
            })
            .collect();
        for d in &due.deliveries {
            let outcome = DeliveryOutcome::of(d, Settled::Delivered);
            match d.source {
                DeliveryRef::Row(_) => rows.push(outcome),
                DeliveryRef::Cursor(_) => advances
                    .get_mut(&d.subscription.id)
                    .unwrap()
                    .settled
                    .push(outcome),
            }
        }
        self.record(rows, advances.into_values().collect::<Vec<_>>())
            .await
            .unwrap();
        n
    }

    /// Records one attempt's outcome as the worker does; a first attempt must be the next
    /// its subscription's cursor reaches.
    pub(crate) async fn settle(&self, d: &DueDelivery, settled: Settled) {
        let outcome = DeliveryOutcome::of(d, settled);
        match d.source {
            DeliveryRef::Row(_) => self.record(vec![outcome], Vec::new()).await,
            DeliveryRef::Cursor(seq) => {
                let advance = CursorAdvance {
                    subscription_id: d.subscription.id.clone(),
                    to: seq,
                    filtered: 0,
                    settled: vec![outcome],
                };
                self.record(Vec::new(), vec![advance]).await
            }
        }
        .unwrap()
    }
}

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

    /// Due deliveries per subscription: for each `(subscription id, n)`, up to `n` of its
    /// pending deliveries whose time has come, oldest first, skipping `exclude` (those the
    /// worker already holds). Also returns when the next not-yet-due delivery falls due.
    ///
    /// Each subscription and each message is read and parsed once per call, however many
    /// deliveries share it: with ten subscribers a message is due ten times in one read.
    pub async fn due_for(
        &self,
        wants: Vec<(String, usize)>,
        exclude: HashSet<i64>,
    ) -> Result<(Vec<DueDelivery>, Option<i64>), DbError> {
        self.db
            .read(move |c| {
                let now = now_ms();
                let mut due = c.prepare_cached(
                    "SELECT id, kind, message_id, attempts, created_at FROM deliveries
                     WHERE subscription_id = ?1 AND state = 'pending' AND next_attempt_at <= ?2
                     ORDER BY next_attempt_at, id LIMIT ?3",
                )?;
                let mut subscription = c.prepare_cached(&format!(
                    "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions s WHERE s.id = ?1"
                ))?;
                let mut message = c.prepare_cached(
                    "SELECT subject, message, attributes, published_at FROM topic_messages
                     WHERE message_id = ?1",
                )?;
                let mut messages: HashMap<String, Option<Arc<TopicMessage>>> = HashMap::new();
                let mut out = Vec::new();
                for (subscription_id, n) in wants {
                    let Some(sub) = subscription
                        .query_row(params![subscription_id], |r| subscription_from_row(r, 0))
                        .optional()?
                    else {
                        continue; // removed since it was listed: its deliveries went with it
                    };
                    let sub = Arc::new(sub);
                    // Held ones come first in the same order, so ask for enough to skip them.
                    let limit = (n + exclude.len()) as i64;
                    let mut rows = due.query(params![subscription_id, now, limit])?;
                    let mut taken = 0;
                    while taken < n
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
                        out.push(DueDelivery {
                            id,
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
                }
                let next: Option<i64> = c
                    .prepare_cached(
                        "SELECT min(next_attempt_at) FROM deliveries WHERE state = 'pending' AND next_attempt_at > ?1",
                    )?
                    .query_row(params![now], |r| r.get(0))?;
                Ok((out, next))
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

    /// Records many attempts' outcomes in one transaction.
    pub async fn record_outcomes(&self, outcomes: Vec<DeliveryOutcome>) -> Result<(), DbError> {
        self.db
            .write_relaxed(move |c| {
                let now = now_ms();
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
                for o in &outcomes {
                    match o {
                        DeliveryOutcome::Delivered(id) => delivered.execute(params![id, now])?,
                        DeliveryOutcome::Retry { id, error, at } => retry.execute(params![id, at, error])?,
                        DeliveryOutcome::Failed { id, error } => failed.execute(params![id, error, now])?,
                    };
                }
                Ok(())
            })
            .await
    }

    pub async fn mark_delivered(&self, id: i64) -> Result<(), DbError> {
        self.record_outcomes(vec![DeliveryOutcome::Delivered(id)])
            .await
    }

    /// Records a failed attempt: the next one at `next_attempt_at`, or none (`failed`).
    pub async fn mark_attempt_failed(
        &self,
        id: i64,
        error: String,
        next_attempt_at: Option<i64>,
    ) -> Result<(), DbError> {
        let outcome = match next_attempt_at {
            Some(at) => DeliveryOutcome::Retry { id, error, at },
            None => DeliveryOutcome::Failed { id, error },
        };
        self.record_outcomes(vec![outcome]).await
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

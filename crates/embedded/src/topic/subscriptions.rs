//! Subscribing, confirming and removing subscriptions, the declarative file, and the
//! subscription listings.

use super::*;

impl SqliteTopic {
    /// Creates a subscription: pending with a confirmation request queued when its protocol
    /// needs one, confirmed at once otherwise.
    pub async fn subscribe(
        &self,
        spec: SubscriptionSpec,
        source: Source,
    ) -> Result<Subscription, SubscribeError> {
        let arn = Arc::clone(&self.arn);
        let result = self
            .db
            .write(move |c| Ok(insert_subscription(c, &spec, source, &arn)))
            .await?;
        let sub = result?;
        self.delivery_notify.notify_one();
        Ok(sub)
    }

    /// Makes the stored subscriptions match the declarative file: entries are matched by
    /// name; a changed protocol or endpoint replaces the subscription (a new confirmation),
    /// changed settings are updated in place; file-managed subscriptions no longer listed
    /// are removed. Subscriptions made over the API are left alone. One transaction.
    pub async fn apply_file(
        &self,
        specs: Vec<SubscriptionSpec>,
    ) -> Result<AppliedFile, SubscribeError> {
        let arn = Arc::clone(&self.arn);
        let result = self
            .db
            .write(move |c| {
                let mut applied = AppliedFile::default();
                let mut run = || -> Result<(), SubscribeError> {
                    let listed: HashSet<&str> =
                        specs.iter().filter_map(|s| s.name.as_deref()).collect();
                    let stale: Vec<(String, String)> = c
                        .prepare("SELECT id, name FROM subscriptions WHERE source = 'file'")
                        .and_then(|mut st| {
                            st.query_map([], |r| Ok((r.get(0)?, r.get::<_, Option<String>>(1)?)))?
                                .collect::<Result<Vec<_>, _>>()
                        })
                        .map_err(DbError::from)?
                        .into_iter()
                        .filter_map(|(id, name)| {
                            let name = name.unwrap_or_default();
                            (!listed.contains(name.as_str())).then_some((id, name))
                        })
                        .collect();
                    for (id, name) in stale {
                        delete_subscription(c, &id)?;
                        applied.removed.push(name);
                    }
                    for spec in &specs {
                        let name = spec.name.clone().unwrap_or_default();
                        let existing = c
                            .query_row(
                                &format!("SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions s WHERE name = ?1"),
                                params![name],
                                |r| subscription_from_row(r, 0),
                            )
                            .optional()
                            .map_err(DbError::from)?;
                        match existing {
                            None => {
                                insert_subscription(c, spec, Source::File, &arn)?;
                                applied.created.push(name);
                            }
                            Some(old)
                                if old.protocol != spec.protocol
                                    || old.endpoint != spec.endpoint =>
                            {
                                delete_subscription(c, &old.id)?;
                                insert_subscription(c, spec, Source::File, &arn)?;
                                applied.replaced.push(name);
                            }
                            Some(old)
                                if old.settings != spec.settings
                                    || old.managed_by != Source::File =>
                            {
                                let settings = serde_json::to_string(&spec.settings)
                                    .expect("settings serialize");
                                c.execute(
                                    "UPDATE subscriptions SET settings = ?2, source = 'file' WHERE id = ?1",
                                    params![old.id, settings],
                                )
                                .map_err(DbError::from)?;
                                applied.updated.push(name);
                            }
                            Some(_) => applied.unchanged.push(name),
                        }
                    }
                    Ok(())
                };
                // The savepoint rolls back the whole file when any entry fails.
                match run() {
                    Ok(()) => Ok(applied),
                    Err(SubscribeError::Db(e)) => Err(e),
                    Err(conflict) => Err(DbError::Corrupt(Box::new(ConflictInFile(
                        conflict.to_string(),
                    )))),
                }
            })
            .await;
        let applied = match result {
            Ok(applied) => applied,
            Err(DbError::Corrupt(e)) if e.is::<ConflictInFile>() => {
                return Err(SubscribeError::Conflict(e.to_string()));
            }
            Err(e) => return Err(e.into()),
        };
        self.delivery_notify.notify_one();
        Ok(applied)
    }

    /// Confirms the subscription the token was sent to; `None` for an unknown token or one
    /// issued more than three days ago. `authenticate_on_unsubscribe` sets SNS's flag of
    /// that name: from then on only the API key removes the subscription.
    pub async fn confirm(
        &self,
        token: String,
        authenticate_on_unsubscribe: bool,
    ) -> Result<Option<Subscription>, DbError> {
        self.confirm_at(token, authenticate_on_unsubscribe, now_ms())
            .await
    }

    pub(super) async fn confirm_at(
        &self,
        token: String,
        authenticate_on_unsubscribe: bool,
        now: i64,
    ) -> Result<Option<Subscription>, DbError> {
        let issued_after = now - crate::fanout::tokens::CONFIRMATION_TOKEN_LIFETIME_MS;
        self.db
            .write(move |c| {
                // Confirmed now, it gets the messages published from now on; confirmed again,
                // its cursor stays where it is.
                c.execute(
                    "UPDATE subscriptions SET status = 'Confirmed', confirmed_at = coalesce(confirmed_at, ?2),
                         settings = CASE WHEN ?4 THEN json_set(settings, '$.authenticateOnUnsubscribe', json('true'))
                                    ELSE settings END,
                         cursor = CASE WHEN status = 'Confirmed' THEN cursor ELSE ?5 END,
                         first_seq = CASE WHEN status = 'Confirmed' THEN first_seq ELSE ?5 END
                     WHERE token = ?1 AND created_at > ?3",
                    params![token, now, issued_after, authenticate_on_unsubscribe, newest_message(c)?],
                )?;
                // The handshake is done; an unsent confirmation request is moot.
                c.execute(
                    "UPDATE deliveries SET state = 'delivered', delivered_at = ?2
                     WHERE kind = 'SubscriptionConfirmation' AND state = 'pending'
                       AND subscription_id = (SELECT id FROM subscriptions WHERE token = ?1 AND created_at > ?3)",
                    params![token, now, issued_after],
                )?;
                Ok(c.query_row(
                    &format!("SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions s WHERE token = ?1 AND created_at > ?2"),
                    params![token, issued_after],
                    |r| subscription_from_row(r, 0),
                )
                .optional()?)
            })
            .await
    }

    /// Removes a subscription (by id or ARN) and its undelivered messages (for a queue,
    /// its pull queue too).
    pub async fn unsubscribe(&self, id_or_arn: String) -> Result<bool, DbError> {
        let id_or_arn = self.stored_key(id_or_arn);
        self.db
            .write(move |c| delete_subscription(c, &id_or_arn))
            .await
    }

    /// The `queue` subscription that owns pull queue `name`.
    pub async fn by_queue(&self, name: String) -> Result<Option<Subscription>, DbError> {
        self.db
            .read(move |c| {
                Ok(c.query_row(
                    &format!("SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions s WHERE protocol = 'queue' AND endpoint = ?1"),
                    params![name],
                    |r| subscription_from_row(r, 0),
                )
                .optional()?)
            })
            .await
    }

    pub async fn get(&self, id_or_arn: String) -> Result<Option<Subscription>, DbError> {
        let id_or_arn = self.stored_key(id_or_arn);
        self.db
            .read(move |c| {
                Ok(c.query_row(
                    &format!("SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions s WHERE id = ?1 OR arn = ?1"),
                    params![id_or_arn],
                    |r| subscription_from_row(r, 0),
                )
                .optional()?)
            })
            .await
    }

    pub async fn list(&self) -> Result<Vec<Subscription>, DbError> {
        self.db
            .read(|c| {
                let mut stmt = c.prepare_cached(&format!(
                    "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions s ORDER BY created_at, id"
                ))?;
                let rows = stmt
                    .query_map([], |r| subscription_from_row(r, 0))?
                    .collect::<Result<_, _>>()?;
                Ok(rows)
            })
            .await
    }

    /// Each subscription with its delivery counts and latest error.
    pub async fn health(&self) -> Result<Vec<SubscriptionHealth>, DbError> {
        let subs = self.list().await?;
        self.db
            .read(move |c| {
                let mut out = Vec::with_capacity(subs.len());
                let mut stmt =
                    c.prepare_cached("SELECT filtered FROM subscriptions WHERE id = ?1")?;
                let mut err_stmt = c.prepare_cached(LATEST_ERROR_SQL)?;
                for s in subs {
                    let filtered: Option<i64> =
                        stmt.query_row(params![s.id], |r| r.get(0)).optional()?;
                    let counts = crate::counters::deliveries(c, Some(&s.id))?;
                    let last_error: Option<String> =
                        err_stmt.query_row(params![s.id], |r| r.get(0)).optional()?;
                    out.push(SubscriptionHealth {
                        subscription: s,
                        deliveries: DeliveryStats {
                            filtered: filtered.unwrap_or(0) as u64,
                            ..counts
                        },
                        last_error,
                    });
                }
                Ok(out)
            })
            .await
    }
}

//! The orders change stream: INSERT records in commit order, read by a checkpointed consumer,
//! delivered as DynamoDB Streams events; records that keep failing go to an on-failure table.

use std::sync::Arc;

use aws_lambda_events::event::dynamodb::{EventRecord, StreamRecord, StreamViewType};
use rusqlite::params;
use serde::Serialize;

use crate::db::{Db, DbError, now_ms};
use crate::event_source::EventSources;

#[derive(Debug)]
pub struct Stream {
    db: Arc<Db>,
    consumer: String,
    /// The region and the stream's ARN its Lambda records carry.
    region: Arc<str>,
    arn: Arc<str>,
}

/// Records after the consumer's checkpoint.
#[derive(Debug)]
pub struct Pending {
    /// How many times the first record has already been tried and failed.
    pub attempts: u32,
    pub records: Vec<(i64, EventRecord)>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamFailure {
    pub sequence_number: String,
    pub event_id: String,
    pub attempts: u32,
    pub failed_at: String,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    pub record: serde_json::Value,
}

/// DynamoDB sequence numbers are decimal strings that sort by length then value; ours are
/// zero-padded so they also sort as text.
pub fn sequence_number(seq: i64) -> String {
    format!("{seq:021}")
}

impl Stream {
    pub fn new(db: Arc<Db>, consumer: &str) -> Self {
        Stream::with_sources_of(db, consumer, &EventSources::default())
    }

    /// Records name the stream and region as `sources` do.
    pub fn with_sources(self, sources: &EventSources) -> Self {
        Stream::with_sources_of(self.db, &self.consumer, sources)
    }

    fn with_sources_of(db: Arc<Db>, consumer: &str, sources: &EventSources) -> Self {
        Stream {
            db,
            consumer: consumer.to_owned(),
            region: sources.region.as_str().into(),
            arn: sources.stream_arn.as_str().into(),
        }
    }

    pub async fn read(&self, limit: usize) -> Result<Pending, DbError> {
        let consumer = self.consumer.clone();
        let (region, arn) = (Arc::clone(&self.region), Arc::clone(&self.arn));
        self.db
            .read(move |c| {
                let (checkpoint, attempts) = checkpoint_of(c, &consumer)?;
                let mut stmt = c.prepare_cached(
                    "SELECT seq, event_id, event_name, keys, new_image, created_at, size_bytes
                     FROM stream_records WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                )?;
                let rows: Vec<(i64, String, String, String, String, i64, i64)> = stmt
                    .query_map(params![checkpoint, limit as i64], |r| {
                        Ok((
                            r.get(0)?,
                            r.get(1)?,
                            r.get(2)?,
                            r.get(3)?,
                            r.get(4)?,
                            r.get(5)?,
                            r.get(6)?,
                        ))
                    })?
                    .collect::<Result<_, _>>()?;
                let mut records = Vec::with_capacity(rows.len());
                for (seq, event_id, event_name, keys, image, created, size) in rows {
                    let mut change = StreamRecord::default();
                    change.approximate_creation_date_time =
                        orderflow_core::time::from_millis(created).unwrap_or_default();
                    change.keys =
                        serde_json::from_str(&keys).map_err(|e| DbError::Corrupt(e.into()))?;
                    change.new_image =
                        serde_json::from_str(&image).map_err(|e| DbError::Corrupt(e.into()))?;
                    change.sequence_number = Some(sequence_number(seq));
                    change.size_bytes = size;
                    change.stream_view_type = Some(StreamViewType::NewImage);
                    let mut record = EventRecord::default();
                    record.aws_region = region.to_string();
                    record.change = change;
                    record.event_id = event_id;
                    record.event_name = event_name;
                    record.event_source = Some("aws:dynamodb".into());
                    record.event_version = Some("1.1".into());
                    record.event_source_arn = Some(arn.to_string());
                    records.push((seq, record));
                }
                Ok(Pending { attempts, records })
            })
            .await
    }

    /// Everything up to and including `seq` is done.
    pub async fn checkpoint(&self, seq: i64) -> Result<(), DbError> {
        let consumer = self.consumer.clone();
        self.db
            .write_relaxed(move |c| {
                c.prepare_cached(
                    "INSERT INTO stream_checkpoints (consumer, seq, attempts) VALUES (?1, ?2, 0)
                     ON CONFLICT (consumer) DO UPDATE SET seq = max(seq, excluded.seq), attempts = 0",
                )?
                .execute(params![consumer, seq])?;
                Ok(())
            })
            .await
    }

    /// Records before `failed_seq` are done; the record at `failed_seq` failed once more.
    pub async fn record_failed_attempt(&self, failed_seq: i64) -> Result<u32, DbError> {
        let consumer = self.consumer.clone();
        self.db
            .write_relaxed(move |c| {
                let (checkpoint, attempts) = checkpoint_of(c, &consumer)?;
                let attempts = if checkpoint == failed_seq - 1 { attempts + 1 } else { 1 };
                c.prepare_cached(
                    "INSERT INTO stream_checkpoints (consumer, seq, attempts) VALUES (?1, ?2, ?3)
                     ON CONFLICT (consumer) DO UPDATE SET seq = excluded.seq, attempts = excluded.attempts",
                )?
                .execute(params![consumer, failed_seq - 1, attempts])?;
                Ok(attempts)
            })
            .await
    }

    /// Sends the record to the on-failure destination and moves past it.
    pub async fn give_up(
        &self,
        seq: i64,
        record: &EventRecord,
        attempts: u32,
        reason: Option<String>,
    ) -> Result<(), DbError> {
        let consumer = self.consumer.clone();
        let body = serde_json::to_string(record).expect("records serialize");
        let event_id = record.event_id.clone();
        self.db
            .write_relaxed(move |c| {
                c.prepare_cached(
                    "INSERT OR REPLACE INTO stream_failures (seq, event_id, record, attempts, failed_at, last_error)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?
                .execute(params![seq, event_id, body, attempts, now_ms(), reason])?;
                c.prepare_cached(
                    "INSERT INTO stream_checkpoints (consumer, seq, attempts) VALUES (?1, ?2, 0)
                     ON CONFLICT (consumer) DO UPDATE SET seq = excluded.seq, attempts = 0",
                )?
                .execute(params![consumer, seq])?;
                Ok(())
            })
            .await
    }

    /// Records not yet consumed (the stream's lag).
    pub async fn pending_count(&self) -> Result<u64, DbError> {
        let consumer = self.consumer.clone();
        self.db
            .read(move |c| {
                let (checkpoint, _) = checkpoint_of(c, &consumer)?;
                let n: i64 = c.query_row(
                    "SELECT count(*) FROM stream_records WHERE seq > ?1",
                    params![checkpoint],
                    |r| r.get(0),
                )?;
                Ok(n as u64)
            })
            .await
    }

    pub async fn failures(&self, limit: usize) -> Result<Vec<StreamFailure>, DbError> {
        self.failures_from(0, limit).await
    }

    /// The failure recorded for the record at `seq`, if any.
    pub async fn failure(&self, seq: i64) -> Result<Option<StreamFailure>, DbError> {
        let mut one = self.failures_from(seq, 1).await?;
        Ok(one
            .pop()
            .filter(|f| f.sequence_number == sequence_number(seq)))
    }

    /// Deletes failures for good (all, or the given sequence numbers); returns how many.
    pub async fn purge_failures(&self, seqs: Option<Vec<i64>>) -> Result<usize, DbError> {
        self.db
            .write(move |c| {
                Ok(match seqs {
                    None => c.execute("DELETE FROM stream_failures", [])?,
                    Some(seqs) => {
                        let mut stmt = c.prepare("DELETE FROM stream_failures WHERE seq = ?1")?;
                        let mut n = 0;
                        for seq in seqs {
                            n += stmt.execute(params![seq])?;
                        }
                        n
                    }
                })
            })
            .await
    }

    /// Notes one more failed attempt (a redrive that failed again) and why.
    pub async fn note_failure(&self, seq: i64, reason: String) -> Result<(), DbError> {
        self.db
            .write(move |c| {
                c.execute(
                    "UPDATE stream_failures SET attempts = attempts + 1, failed_at = ?2, last_error = ?3
                     WHERE seq = ?1",
                    params![seq, now_ms(), reason],
                )?;
                Ok(())
            })
            .await
    }

    async fn failures_from(&self, from: i64, limit: usize) -> Result<Vec<StreamFailure>, DbError> {
        self.db
            .read(move |c| {
                let mut stmt = c.prepare_cached(
                    "SELECT seq, event_id, record, attempts, failed_at, last_error FROM stream_failures
                     WHERE seq >= ?1 ORDER BY seq LIMIT ?2",
                )?;
                let rows = stmt
                    .query_map(params![from, limit as i64], |r| {
                        let record: String = r.get(2)?;
                        let failed_at: i64 = r.get(4)?;
                        Ok(StreamFailure {
                            sequence_number: sequence_number(r.get(0)?),
                            event_id: r.get(1)?,
                            attempts: r.get(3)?,
                            failed_at: orderflow_core::time::from_millis(failed_at)
                                .map(|t| orderflow_core::time::format(&t))
                                .unwrap_or_default(),
                            last_error: r.get(5)?,
                            record: serde_json::from_str(&record).unwrap_or(serde_json::Value::String(record)),
                        })
                    })?
                    .collect::<Result<_, _>>()?;
                Ok(rows)
            })
            .await
    }
}

/// A change as the log holds it, for readers that must not move any consumer's checkpoint
/// (DynamoDB Streams' own API): `keys` and `new_image` are the DynamoDB JSON texts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedChange {
    pub seq: i64,
    pub event_id: String,
    pub event_name: String,
    pub keys: String,
    pub new_image: String,
    /// Milliseconds since the Unix epoch.
    pub created_ms: i64,
    pub size_bytes: i64,
}

/// What the log holds: its oldest kept record (retention prunes older ones), and the last
/// sequence number it ever assigned (kept by SQLite's AUTOINCREMENT even once pruned).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogBounds {
    pub oldest: Option<i64>,
    pub latest: i64,
}

impl Stream {
    /// The log's bounds, and whether the record at `seq` is still kept.
    pub async fn bounds(&self, seq: Option<i64>) -> Result<(LogBounds, bool), DbError> {
        self.db
            .read(move |c| {
                let bounds = bounds_of(c)?;
                let kept = match seq {
                    None => false,
                    Some(seq) => c
                        .prepare_cached("SELECT 1 FROM stream_records WHERE seq = ?1")?
                        .exists(params![seq])?,
                };
                Ok((bounds, kept))
            })
            .await
    }

    /// Up to `limit` records after `after`, in commit order, with the bounds they were read
    /// under (one snapshot). Reads only: no checkpoint moves.
    pub async fn changes_after(
        &self,
        after: i64,
        limit: usize,
    ) -> Result<(LogBounds, Vec<LoggedChange>), DbError> {
        self.db
            .read(move |c| {
                let bounds = bounds_of(c)?;
                let changes = c
                    .prepare_cached(
                        "SELECT seq, event_id, event_name, keys, new_image, created_at, size_bytes
                         FROM stream_records WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                    )?
                    .query_map(params![after, limit as i64], |r| {
                        Ok(LoggedChange {
                            seq: r.get(0)?,
                            event_id: r.get(1)?,
                            event_name: r.get(2)?,
                            keys: r.get(3)?,
                            new_image: r.get(4)?,
                            created_ms: r.get(5)?,
                            size_bytes: r.get(6)?,
                        })
                    })?
                    .collect::<Result<_, _>>()?;
                Ok((bounds, changes))
            })
            .await
    }
}

fn bounds_of(c: &rusqlite::Connection) -> Result<LogBounds, DbError> {
    let (oldest, newest): (Option<i64>, Option<i64>) = c
        .prepare_cached("SELECT min(seq), max(seq) FROM stream_records")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    use rusqlite::OptionalExtension;
    let assigned: Option<i64> = c
        .prepare_cached("SELECT seq FROM sqlite_sequence WHERE name = 'stream_records'")?
        .query_row([], |r| r.get(0))
        .optional()?;
    Ok(LogBounds {
        oldest,
        latest: newest.unwrap_or(0).max(assigned.unwrap_or(0)),
    })
}

fn checkpoint_of(c: &rusqlite::Connection, consumer: &str) -> Result<(i64, u32), DbError> {
    use rusqlite::OptionalExtension;
    Ok(
        c.prepare_cached("SELECT seq, attempts FROM stream_checkpoints WHERE consumer = ?1")?
            .query_row(params![consumer], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?
            .unwrap_or((0, 0)),
    )
}

#[cfg(test)]
mod tests {
    use orderflow_core::OrderTable;
    use orderflow_core::conformance::sample_order;

    use super::*;
    use crate::SqliteOrderTable;

    async fn stream_with_orders(dir: &tempfile::TempDir, n: usize) -> Stream {
        let db = Db::open(&dir.path().join("s.db"), crate::schema::migrate).unwrap();
        let table = SqliteOrderTable::new(Arc::clone(&db));
        for _ in 0..n {
            table.put_new(&sample_order()).await.unwrap();
        }
        Stream::new(db, "publish-orders")
    }

    #[tokio::test]
    async fn reading_changes_moves_no_consumer_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let stream = stream_with_orders(&dir, 3).await;
        let (bounds, changes) = stream.changes_after(0, 10).await.unwrap();
        assert_eq!(
            bounds,
            LogBounds {
                oldest: Some(1),
                latest: 3
            }
        );
        assert_eq!(changes.iter().map(|c| c.seq).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(stream.changes_after(1, 1).await.unwrap().1[0].seq, 2);
        assert_eq!(stream.pending_count().await.unwrap(), 3);
        assert_eq!(stream.read(10).await.unwrap().records.len(), 3);
    }

    #[tokio::test]
    async fn the_bounds_remember_the_last_sequence_after_every_record_is_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let stream = stream_with_orders(&dir, 2).await;
        stream
            .db
            .write(|c| {
                c.execute("DELETE FROM stream_records WHERE seq = 1", [])?;
                Ok(())
            })
            .await
            .unwrap();
        assert_eq!(
            stream.bounds(Some(1)).await.unwrap(),
            (
                LogBounds {
                    oldest: Some(2),
                    latest: 2
                },
                false
            )
        );
        stream
            .db
            .write(|c| {
                c.execute("DELETE FROM stream_records", [])?;
                Ok(())
            })
            .await
            .unwrap();
        let (bounds, kept) = stream.bounds(Some(2)).await.unwrap();
        assert_eq!(
            bounds,
            LogBounds {
                oldest: None,
                latest: 2
            }
        );
        assert!(!kept);
    }
}

//! Counts kept by triggers in the writer's transactions (schema migration 8), so `/stats`
//! and `/metrics` read a row instead of counting a table that grows with history.

use rusqlite::{Connection, OptionalExtension, params};

use crate::db::DbError;
use crate::topic::DeliveryStats;

/// The counter `name` (`orders`, `stream_failures`).
pub(crate) fn counter(c: &Connection, name: &str) -> Result<u64, DbError> {
    let value: Option<i64> = c
        .prepare_cached("SELECT value FROM counters WHERE name = ?1")?
        .query_row(params![name], |r| r.get(0))
        .optional()?;
    Ok(value.unwrap_or(0).max(0) as u64)
}

/// Notification deliveries by state, of one subscription or (`None`) of all; `filtered` is
/// left for the caller, who has it on the subscription. Pending counts what the worker has
/// not reached yet, including messages a filter policy will turn away.
pub(crate) fn deliveries(
    c: &Connection,
    subscription_id: Option<&str>,
) -> Result<DeliveryStats, DbError> {
    let (p, d, f): (i64, i64, i64) = c
        .prepare_cached(
            "SELECT coalesce(sum(CASE state WHEN 'pending' THEN n END), 0),
                    coalesce(sum(CASE state WHEN 'delivered' THEN n END), 0),
                    coalesce(sum(CASE state WHEN 'failed' THEN n END), 0)
             FROM delivery_counts WHERE ?1 IS NULL OR subscription_id = ?1",
        )?
        .query_row(params![subscription_id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
    // First attempts have no row until they settle: a confirmed subscription's messages
    // after its cursor are pending too. Messages are numbered without gaps (retention only
    // prunes behind every cursor), so that is the last `seq` given out less the cursor.
    let newest = crate::topic::newest_message(c)?;
    let behind: i64 = c
        .prepare_cached(
            "SELECT coalesce(sum(max(0, ?2 - cursor)), 0)
             FROM subscriptions WHERE status = 'Confirmed' AND (?1 IS NULL OR id = ?1)",
        )?
        .query_row(params![subscription_id, newest], |r| r.get(0))?;
    Ok(DeliveryStats {
        pending: (p.max(0) + behind.max(0)) as u64,
        delivered: d.max(0) as u64,
        failed: f.max(0) as u64,
        filtered: 0,
    })
}

//! The slowest orders of a bench phase, stage by stage, so an outlier explains itself.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

/// How many of each phase's slowest orders the report follows through the pipeline.
pub const SLOWEST_JOURNEYS: usize = 5;

/// One order's end-to-end time and where it went.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Journey {
    pub order_id: String,
    pub end_to_end_ms: f64,
    pub stages: Stages,
    /// `GET /orders/{id}/trace`: when each stage saw the order (or why it could not be read).
    pub trace: Value,
}

/// Milliseconds spent between consecutive stages; `None` where the trace lacks a stage.
/// The server's stamps are wall-clock milliseconds, so a stage under 1 ms reads 0 or 1.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Stages {
    /// Sent by the client to the `202` (the queue's `sent_at`, once fsync'd).
    pub post_ms: Option<f64>,
    /// Accepted to first received by the store poller.
    pub queued_ms: Option<f64>,
    /// Received to stored (the store handler and its commit).
    pub store_ms: Option<f64>,
    /// Stored to published on the topic (the change stream and the publish handler).
    pub stream_ms: Option<f64>,
    /// Published to the notification arriving at the subscriber (delivery worker,
    /// signing, HTTP).
    pub deliver_ms: Option<f64>,
}

fn at(v: &Value) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(v.as_str()?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn between(from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>) -> Option<f64> {
    Some((to? - from?).num_microseconds()? as f64 / 1e3)
}

/// The stages of an order sent at `sent` (wall clock) whose notification arrived
/// `end_to_end` later, from its trace.
pub fn stages(sent: DateTime<Utc>, end_to_end: Duration, trace: &Value) -> Stages {
    let arrived = chrono::Duration::from_std(end_to_end)
        .ok()
        .map(|d| sent + d);
    let accepted = at(&trace["acceptedAt"]);
    let received = at(&trace["received"]["firstReceivedAt"]);
    let stored = at(&trace["storedAt"]);
    let published = at(&trace["published"]["at"]);
    Stages {
        post_ms: between(Some(sent), accepted),
        queued_ms: between(accepted, received),
        store_ms: between(received, stored),
        stream_ms: between(stored, published),
        deliver_ms: between(published, arrived),
    }
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "?".into(), |v| format!("{v:.0}"))
}

/// A Markdown table of `journeys` measured at `rate` orders/s, slowest first.
pub fn markdown(rate: u32, journeys: &[Journey]) -> String {
    if journeys.is_empty() {
        return String::new();
    }
    let mut out = format!(
        "\nSlowest journeys at {rate}/s (ms; the server stamps whole milliseconds):\n\n\
         | order | end to end | POST | queued | store | stream | deliver | stage now |\n\
         |---|---|---|---|---|---|---|---|\n"
    );
    for j in journeys {
        let s = &j.stages;
        out.push_str(&format!(
            "| `{}` | {:.0} | {} | {} | {} | {} | {} | {} |\n",
            j.order_id,
            j.end_to_end_ms,
            ms(s.post_ms),
            ms(s.queued_ms),
            ms(s.store_ms),
            ms(s.stream_ms),
            ms(s.deliver_ms),
            j.trace["stage"].as_str().unwrap_or("?"),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_stage_is_the_time_between_its_neighbours_and_a_missing_one_stays_unknown() {
        let sent = DateTime::parse_from_rfc3339("2026-01-01T00:00:00.000Z")
            .unwrap()
            .with_timezone(&Utc);
        let trace = json!({
            "acceptedAt": "2026-01-01T00:00:00.002Z",
            "received": {"firstReceivedAt": "2026-01-01T00:00:00.005Z"},
            "storedAt": "2026-01-01T00:00:00.009Z",
            "published": {"at": "2026-01-01T00:00:05.009Z"},
        });
        let s = stages(sent, Duration::from_millis(5_020), &trace);
        assert_eq!(
            s,
            Stages {
                post_ms: Some(2.0),
                queued_ms: Some(3.0),
                store_ms: Some(4.0),
                stream_ms: Some(5_000.0),
                deliver_ms: Some(11.0),
            }
        );
        let unread = stages(sent, Duration::from_millis(7), &json!({"error": "gone"}));
        assert_eq!(unread.post_ms, None);
        assert_eq!(unread.deliver_ms, None);
    }
}

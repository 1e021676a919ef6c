//! The open-loop phases of `orderflow bench`: orders offered at a fixed rate, and what the
//! API accepted and the pipeline stored and delivered of them, each phase's drain bounded.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use super::journey::{self, Journey};
use super::latency::{Latency, ms};
use super::orders::order_bodies;
use super::progress::progress;
use super::server::{order_trace, stats};
use super::subscriber::Subscriber;
use super::throughput::{self, TargetVerdict, Throughput};
use crate::BoxError;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OpenLoop {
    pub offered_per_second: u32,
    pub sent: usize,
    pub accepted: usize,
    pub achieved_per_second: f64,
    pub post_latency: Latency,
    pub end_to_end: Latency,
    /// Accepted orders not delivered within `--drain-seconds` of the last send.
    pub undelivered: usize,
    /// Messages in the orders queue (visible or in flight) when the phase began: a backlog
    /// an earlier phase left behind (or a batch stored but not yet deleted), which this
    /// phase's stored/s does not count.
    pub backlog_at_start: u64,
    #[serde(flatten)]
    pub throughput: Throughput,
    /// The order that took longest end to end, with its journey, to see which stage it was.
    pub slowest: Option<Journey>,
    /// The phase's slowest orders, slowest first, each with its time in every stage.
    pub slowest_journeys: Vec<Journey>,
}

/// Counts the server's stored orders and its orders queue's backlog (messages not yet
/// stored), from `/stats`.
async fn stored_and_backlog(client: &reqwest::Client, url: &str) -> Result<(u64, u64), BoxError> {
    let s = stats(client, url).await?;
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    Ok((
        n(&s["orders"]["stored"]),
        n(&s["queue"]["visible"]) + n(&s["queue"]["inFlight"]),
    ))
}

/// Offers `rate` orders/s for `seconds`, then waits up to `drain` for them to be stored and
/// delivered, and reports what the API and the pipeline each managed.
pub async fn phase(
    client: &reqwest::Client,
    url: &str,
    sub: &Arc<Subscriber>,
    rate: u32,
    seconds: u64,
    drain: Duration,
    run: &str,
) -> Result<OpenLoop, BoxError> {
    let n = (u64::from(rate) * seconds) as usize;
    let ids: Vec<String> = (0..n).map(|i| format!("{run}-r{rate}-{i}")).collect();
    let bodies = order_bodies(&ids);
    let orders_url = format!("{url}/orders");
    let (stored_before, backlog_at_start) = stored_and_backlog(client, url).await?;
    let bar = progress(n as u64, &format!("{rate}/s"));
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let started = Instant::now();
    let results = Arc::new(Mutex::new(Vec::with_capacity(n)));
    let sent_at = Arc::new(Mutex::new(HashMap::with_capacity(n)));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, id) in ids.iter().enumerate() {
        // Open loop: each order leaves on its schedule, whether or not earlier ones returned.
        let due = started + interval.mul_f64(i as f64);
        tokio::time::sleep_until(due.into()).await;
        let request = client
            .post(&orders_url)
            .header("content-type", "application/json")
            .body(bodies[i].clone());
        let (results, sent_at, bar, id) = (
            Arc::clone(&results),
            Arc::clone(&sent_at),
            bar.clone(),
            id.clone(),
        );
        tasks.spawn(async move {
            let t0 = Instant::now();
            sent_at
                .lock()
                .expect("lock")
                .insert(id, (t0, chrono::Utc::now()));
            let ok = request
                .send()
                .await
                .is_ok_and(|r| r.status() == reqwest::StatusCode::ACCEPTED);
            results.lock().expect("lock").push((i, ok, t0.elapsed()));
            bar.inc(1);
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let sending_done = Instant::now();
    let send_seconds = (sending_done - started).as_secs_f64();
    bar.finish_and_clear();
    let results = std::mem::take(&mut *results.lock().expect("lock"));
    let sent = std::mem::take(&mut *sent_at.lock().expect("lock"));
    let accepted_ids: Vec<&String> = results
        .iter()
        .filter(|(_, ok, _)| *ok)
        .map(|(i, _, _)| &ids[*i])
        .collect();
    let accepted = accepted_ids.len();
    let first_send = sent.values().map(|(t, _)| *t).min().unwrap_or(started);
    let last_send = sent.values().map(|(t, _)| *t).max().unwrap_or(started);

    // The drain, bounded: a pipeline that fell behind ends the phase with what arrived.
    let deadline = sending_done + drain;
    let mut missing = accepted_ids.clone();
    let (mut stored, mut stored_seen, mut all_stored) = (0, sending_done, false);
    // When the phase stopped waiting: a delivery after it is not one within the drain, even
    // if it lands while the report is made (a fast pipeline delivers the last orders while
    // the loop's `/stats` request is under way).
    let drain_ended = loop {
        {
            let delivered = sub.delivered.lock().expect("lock");
            missing.retain(|id| !delivered.contains_key(*id));
        }
        if !all_stored {
            let (now_stored, _) = stored_and_backlog(client, url).await?;
            stored_seen = Instant::now();
            (stored, all_stored) = throughput::stored_of_phase(
                now_stored,
                stored_before + backlog_at_start,
                accepted,
                missing.is_empty(),
            );
        }
        let now = Instant::now();
        if (missing.is_empty() && all_stored) || now >= deadline {
            break now.min(deadline);
        }
        // Fine steps while a caught-up pipeline finishes (they set stored/s's resolution),
        // coarser ones through a long backlog, where `/stats` costs the server more.
        let step = if now - sending_done < Duration::from_secs(1) {
            Duration::from_millis(20)
        } else {
            Duration::from_millis(100)
        };
        tokio::time::sleep(step.min(deadline - now)).await;
    };

    let post_latency = Latency::of(
        results
            .iter()
            .filter(|(_, ok, _)| *ok)
            .map(|(_, _, d)| *d)
            .collect(),
    );
    // One look at the deliveries made by the end of the drain, so delivered and undelivered
    // add up.
    let (e2e, last_delivery, undelivered): (Vec<(&String, Duration)>, Option<Instant>, usize) = {
        let all = sub.delivered.lock().expect("lock");
        let delivered = |id: &String| all.get(id).copied().filter(|at| *at <= drain_ended);
        missing.retain(|id| delivered(id).is_none());
        let e2e = ids
            .iter()
            .filter_map(|id| {
                Some((
                    id,
                    delivered(id)?.saturating_duration_since(sent.get(id)?.0),
                ))
            })
            .collect();
        let last = ids.iter().filter_map(delivered).max();
        (e2e, last, missing.len())
    };
    let throughput = Throughput::of(&throughput::Timeline {
        offered_per_second: rate,
        sent: n,
        accepted,
        last_send: last_send - first_send,
        stored,
        stored_seen: stored_seen.saturating_duration_since(first_send),
        delivered: e2e.len(),
        last_delivery: last_delivery.map(|t| t.saturating_duration_since(first_send)),
    });
    let mut slowest_first = e2e.clone();
    slowest_first.sort_by_key(|(_, d)| std::cmp::Reverse(*d));
    let mut slowest_journeys = Vec::with_capacity(journey::SLOWEST_JOURNEYS);
    for (id, d) in slowest_first.into_iter().take(journey::SLOWEST_JOURNEYS) {
        let trace = order_trace(client, url, id).await;
        let stages = sent
            .get(id)
            .map(|(_, wall)| journey::stages(*wall, d, &trace))
            .unwrap_or_default();
        slowest_journeys.push(Journey {
            order_id: id.clone(),
            end_to_end_ms: d.as_secs_f64() * 1e3,
            stages,
            trace,
        });
    }
    Ok(OpenLoop {
        offered_per_second: rate,
        sent: n,
        accepted,
        achieved_per_second: accepted as f64 / send_seconds,
        post_latency,
        end_to_end: Latency::of(e2e.into_iter().map(|(_, d)| d).collect()),
        undelivered,
        backlog_at_start,
        throughput,
        slowest: slowest_journeys.first().cloned(),
        slowest_journeys,
    })
}

/// The end-to-end table of `phases`, the rule they are judged by, and the target's verdict.
pub fn markdown(phases: &[OpenLoop], target: &TargetVerdict, settings: &Value) -> String {
    let mut out = String::new();
    out.push_str(
        "\nEnd to end (POST sent -> notification received by the subscriber), open loop:\n\n",
    );
    out.push_str("| offered/s | accepted/s | stored/s | delivered/s | drain lag | kept up | POST p50 | POST p99 | e2e p50 | e2e p99 | e2e max | undelivered |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for e in phases {
        let t = &e.throughput;
        out.push_str(&format!(
            "| {} | {:.0} | {:.0} | {:.0} | {} | {} | {} ms | {} ms | {} ms | {} ms | {} ms | {} |\n",
            e.offered_per_second,
            e.achieved_per_second,
            t.stored_per_second,
            t.delivered_per_second,
            drain_lag(e, settings),
            if t.kept_up { "yes" } else { "**no**" },
            ms(e.post_latency.p50_ms),
            ms(e.post_latency.p99_ms),
            ms(e.end_to_end.p50_ms),
            ms(e.end_to_end.p99_ms),
            ms(e.end_to_end.max_ms),
            e.undelivered
        ));
    }
    if !phases.is_empty() {
        out.push_str(&format!(
            "\naccepted/s: `202`s over the sending window. stored/s and delivered/s: the phase's orders \
             stored (seen in `/stats`) and delivered to the subscriber, over the time from its first \
             send to the last one stored or delivered, so a pipeline that falls behind reads below the \
             offered rate. Drain lag: the last delivery after the last send. A phase **kept up** when \
             every order sent was accepted and delivered within `--drain-seconds` ({}) of the last \
             send, and delivered/s is at least {:.0} % of offered.\n",
            settings["drainSeconds"],
            throughput::KEPT_UP_SHARE * 100.0
        ));
        for e in phases.iter().filter(|e| e.backlog_at_start > 0) {
            out.push_str(&format!(
                "\nAt {}/s, {} messages were in the orders queue when the phase began (an earlier \
                 phase's backlog, or a batch stored but not yet deleted); a backlog shares the \
                 phase's cores, and its stored/s leaves those messages out.\n",
                e.offered_per_second, e.backlog_at_start
            ));
        }
    }
    let v = target;
    out.push_str(&format!(
        "\nTarget ({}): **{}** ({}).\n",
        v.target,
        v.verdict.as_str(),
        v.why
    ));
    for (i, e) in phases.iter().enumerate() {
        if let Some(s) = &e.slowest {
            out.push_str(&format!(
                "\nSlowest at {}/s: `{}`, {} ms end to end (its journey: `endToEnd[{i}].slowest.trace` in bench.json).\n",
                e.offered_per_second,
                s.order_id,
                ms(s.end_to_end_ms)
            ));
        }
        out.push_str(&journey::markdown(
            e.offered_per_second,
            &e.slowest_journeys,
        ));
    }
    out
}

/// The drain lag of a phase, or how long it waited in vain.
fn drain_lag(e: &OpenLoop, settings: &Value) -> String {
    match e.throughput.drain_lag_ms {
        Some(lag) => format!("{} ms", ms(lag)),
        None => format!("> {} s", settings["drainSeconds"]),
    }
}

/// One line per finished open-loop phase, printed as the run goes.
pub fn summary(e: &OpenLoop) -> String {
    let t = &e.throughput;
    format!(
        "  {}/s offered: {:.0} accepted/s, {:.0} stored/s, {:.0} delivered/s, drain lag {}, e2e p99 {} ms, {} undelivered: {}",
        e.offered_per_second,
        e.achieved_per_second,
        t.stored_per_second,
        t.delivered_per_second,
        t.drain_lag_ms
            .map_or_else(|| "unfinished".into(), |l| format!("{} ms", ms(l))),
        ms(e.end_to_end.p99_ms),
        e.undelivered,
        if t.kept_up {
            "kept up"
        } else {
            "did not keep up"
        }
    )
}

//! Whether an open-loop phase's pipeline kept up: stored/s and delivered/s over the phase,
//! the drain lag, and the verdict on issue 17's sustained-rate target.

use std::time::Duration;

use serde::Serialize;

use super::verdict::Verdict;

/// A phase kept up when every order was delivered and delivered/s reached this share of
/// the offered rate. Delivered/s counts from the first send to the last delivery, so over a
/// sending window of `w` seconds this allows a drain lag of about `w / 19`.
pub const KEPT_UP_SHARE: f64 = 0.95;

/// Issue 17, target 2: at this rate offered for this long, with `--burst-rate 0`, every
/// order is delivered with an end-to-end p99 of at most this.
pub const TARGET_RATE: u32 = 3_000;
pub const TARGET_SECONDS: u64 = 60;
pub const TARGET_P99_MS: f64 = 50.0;

/// When one phase's orders were sent, stored and delivered, each measured from the phase's
/// first send.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    pub offered_per_second: u32,
    pub sent: usize,
    pub accepted: usize,
    /// When the last order left the client.
    pub last_send: Duration,
    /// This phase's orders counted stored by the server at the bench's last look at
    /// `/stats`, and when it looked (it stops looking once all are stored).
    pub stored: usize,
    pub stored_seen: Duration,
    /// This phase's orders whose notification reached the subscriber, and when the last
    /// one arrived.
    pub delivered: usize,
    pub last_delivery: Option<Duration>,
}

/// What a phase's pipeline managed, beside what the API accepted.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Throughput {
    pub stored: usize,
    /// Stored orders over the time from the first send until all were seen stored.
    pub stored_per_second: f64,
    pub delivered: usize,
    /// Delivered orders over the time from the first send to the last delivery.
    pub delivered_per_second: f64,
    /// The last delivery after the last send; `None` when some order was never delivered
    /// before the drain timeout, as the drain then did not end.
    pub drain_lag_ms: Option<f64>,
    /// Every order sent was accepted and delivered.
    pub every_order_delivered: bool,
    /// Every order delivered, and delivered/s at least [`KEPT_UP_SHARE`] of offered.
    pub kept_up: bool,
}

fn per_second(count: usize, over: Duration) -> f64 {
    if over.is_zero() {
        0.0
    } else {
        count as f64 / over.as_secs_f64()
    }
}

impl Throughput {
    pub fn of(t: &Timeline) -> Throughput {
        let delivered_per_second = per_second(t.delivered, t.last_delivery.unwrap_or_default());
        let every_order_delivered = t.accepted == t.sent && t.delivered == t.accepted;
        Throughput {
            stored: t.stored,
            stored_per_second: per_second(t.stored, t.stored_seen),
            delivered: t.delivered,
            delivered_per_second,
            drain_lag_ms: t
                .last_delivery
                .filter(|_| t.delivered >= t.accepted)
                .map(|last| last.saturating_sub(t.last_send).as_secs_f64() * 1e3),
            every_order_delivered,
            kept_up: every_order_delivered
                && delivered_per_second >= KEPT_UP_SHARE * f64::from(t.offered_per_second),
        }
    }
}

/// How many of a phase's `accepted` orders are stored, and whether all are, from the
/// server's stored count now and `before` the phase (the orders stored then plus those
/// still queued, which the queue stores first).
///
/// A delivered order was stored first, so once `all_delivered` every order counts stored.
/// The count alone can fall short: the store poller deletes a batch's messages after
/// storing it, so a batch stored but not yet deleted when the phase began counts both in
/// `before`'s stored and in its queued.
pub fn stored_of_phase(
    stored_now: u64,
    before: u64,
    accepted: usize,
    all_delivered: bool,
) -> (usize, bool) {
    if all_delivered {
        return (accepted, true);
    }
    let stored = usize::try_from(stored_now.saturating_sub(before)).unwrap_or(usize::MAX);
    (stored.min(accepted), stored >= accepted)
}

/// The verdict on target 2's second bullet, from a run's phases.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TargetVerdict {
    pub target: String,
    pub verdict: Verdict,
    pub why: String,
}

/// One phase as the target sees it.
#[derive(Debug, Clone, Copy)]
pub struct PhaseOutcome<'a> {
    pub offered_per_second: u32,
    pub sent: usize,
    pub throughput: &'a Throughput,
    pub end_to_end_p99_ms: f64,
}

/// `burst_rate` is the started server's (`None`: a server the bench did not start, whose
/// burst policy it cannot know).
pub fn sustained_rate_verdict(
    phases: &[PhaseOutcome<'_>],
    rate_seconds: u64,
    burst_rate: Option<u64>,
) -> TargetVerdict {
    let (verdict, why) = match phase_at_target(phases, rate_seconds, burst_rate) {
        Ok(phase) => judge(&phase),
        Err(why) => (Verdict::NotMeasured, why),
    };
    TargetVerdict {
        target: format!(
            "{TARGET_RATE} orders/s offered for {TARGET_SECONDS} s with --burst-rate 0: every order delivered, end-to-end p99 <= {TARGET_P99_MS} ms"
        ),
        verdict,
        why,
    }
}

/// The phase that measures the target, or why the run has none (and the flag that gives one).
fn phase_at_target<'a>(
    phases: &[PhaseOutcome<'a>],
    rate_seconds: u64,
    burst_rate: Option<u64>,
) -> Result<PhaseOutcome<'a>, String> {
    let phase = phases
        .iter()
        .find(|p| p.offered_per_second == TARGET_RATE)
        .copied()
        .ok_or_else(|| format!("no phase at {TARGET_RATE} orders/s (--rates)"))?;
    if rate_seconds < TARGET_SECONDS {
        return Err(format!(
            "the phase lasted {rate_seconds} s, not {TARGET_SECONDS} (--rate-seconds)"
        ));
    }
    match burst_rate {
        Some(0) => Ok(phase),
        Some(n) => Err(format!(
            "the server stepped aside for bursts from {n} orders/s (--burst-rate 0)"
        )),
        None => Err(
            "the server's burst policy is unknown (--url); let the bench start it with --burst-rate 0"
                .into(),
        ),
    }
}

/// Met when every order was delivered and p99 is within the target; otherwise what missed.
fn judge(phase: &PhaseOutcome<'_>) -> (Verdict, String) {
    let t = phase.throughput;
    let p99 = phase.end_to_end_p99_ms;
    let mut misses = Vec::new();
    if !t.every_order_delivered {
        misses.push(format!(
            "{} of {} orders not delivered",
            phase.sent.saturating_sub(t.delivered),
            phase.sent
        ));
    }
    if p99 > TARGET_P99_MS {
        misses.push(format!("end-to-end p99 {p99:.1} ms"));
    }
    if misses.is_empty() {
        (
            Verdict::Met,
            format!(
                "every order delivered, end-to-end p99 {p99:.1} ms, {:.0} delivered/s",
                t.delivered_per_second
            ),
        )
    } else {
        (Verdict::NotMet, misses.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn delivered_per_second_counts_from_the_first_send_to_the_last_delivery() {
        // 1,000 orders offered at 500/s: sent over 2 s, the last delivered 0.5 s later.
        let t = Throughput::of(&Timeline {
            offered_per_second: 500,
            sent: 1_000,
            accepted: 1_000,
            last_send: ms(1_998),
            stored: 1_000,
            stored_seen: ms(2_000),
            delivered: 1_000,
            last_delivery: Some(ms(2_500)),
        });
        assert_eq!(t.delivered_per_second, 400.0);
        assert_eq!(t.stored_per_second, 500.0);
        assert_eq!(t.drain_lag_ms, Some(502.0));
        assert!(t.every_order_delivered);
        assert!(!t.kept_up, "400/s is 80 % of 500/s: {t:?}");
    }

    #[test]
    fn a_phase_keeps_up_at_95_percent_of_offered_and_not_below() {
        let at = |last_delivery_ms: u64| {
            Throughput::of(&Timeline {
                offered_per_second: 1_000,
                sent: 9_500,
                accepted: 9_500,
                last_send: ms(9_499),
                stored: 9_500,
                stored_seen: ms(9_600),
                delivered: 9_500,
                last_delivery: Some(ms(last_delivery_ms)),
            })
        };
        assert_eq!(at(10_000).delivered_per_second, 950.0);
        assert!(at(10_000).kept_up);
        assert!(!at(10_001).kept_up);
    }

    #[test]
    fn a_phase_with_an_order_left_undelivered_did_not_keep_up_and_has_no_drain_lag() {
        let t = Throughput::of(&Timeline {
            offered_per_second: 100,
            sent: 100,
            accepted: 100,
            last_send: ms(990),
            stored: 100,
            stored_seen: ms(1_000),
            delivered: 99,
            last_delivery: Some(ms(1_000)),
        });
        assert_eq!(t.delivered_per_second, 99.0);
        assert_eq!(t.drain_lag_ms, None);
        assert!(!t.every_order_delivered && !t.kept_up, "{t:?}");
        // Nothing delivered at all: no rate, no lag, and no division by zero.
        let none = Throughput::of(&Timeline {
            offered_per_second: 100,
            sent: 100,
            accepted: 100,
            ..Timeline::default()
        });
        assert_eq!((none.delivered_per_second, none.drain_lag_ms), (0.0, None));
        // An order the API refused is not delivered either.
        let refused = Throughput::of(&Timeline {
            offered_per_second: 100,
            sent: 100,
            accepted: 99,
            last_send: ms(990),
            stored: 99,
            stored_seen: ms(1_000),
            delivered: 99,
            last_delivery: Some(ms(1_000)),
        });
        assert!(!refused.every_order_delivered && !refused.kept_up);
    }

    #[test]
    fn a_phase_counts_its_stored_orders_past_what_was_stored_or_queued_before_it() {
        // 1,000 stored and 200 queued before; 500 accepted in the phase.
        assert_eq!(stored_of_phase(1_100, 1_200, 500, false), (0, false));
        assert_eq!(stored_of_phase(1_500, 1_200, 500, false), (300, false));
        assert_eq!(stored_of_phase(1_700, 1_200, 500, false), (500, true));
        // Orders of another client stored meanwhile do not count past the phase's own.
        assert_eq!(stored_of_phase(1_750, 1_200, 500, false), (500, true));
    }

    #[test]
    fn a_batch_stored_but_not_yet_deleted_when_the_phase_began_does_not_hold_its_drain_open() {
        // 10 of the 200 "queued" were already among the 1,000 stored: the count stops 10
        // short of 1,700, yet every order was delivered, so every order was stored.
        assert_eq!(stored_of_phase(1_690, 1_200, 500, false), (490, false));
        assert_eq!(stored_of_phase(1_690, 1_200, 500, true), (500, true));
    }

    fn all_delivered(delivered: usize) -> Throughput {
        Throughput::of(&Timeline {
            offered_per_second: TARGET_RATE,
            sent: 180_000,
            accepted: 180_000,
            last_send: ms(59_999),
            stored: 180_000,
            stored_seen: ms(60_020),
            delivered,
            last_delivery: Some(ms(60_030)),
        })
    }

    fn at_target<'a>(t: &'a Throughput, p99: f64) -> [PhaseOutcome<'a>; 1] {
        [PhaseOutcome {
            offered_per_second: TARGET_RATE,
            sent: 180_000,
            throughput: t,
            end_to_end_p99_ms: p99,
        }]
    }

    #[test]
    fn the_target_is_met_only_with_every_order_delivered_and_p99_at_most_50_ms() {
        let every = all_delivered(180_000);
        let v = sustained_rate_verdict(&at_target(&every, 50.0), 60, Some(0));
        assert_eq!(v.verdict, Verdict::Met, "{v:?}");
        let v = sustained_rate_verdict(&at_target(&every, 50.1), 60, Some(0));
        assert_eq!(v.verdict, Verdict::NotMet, "{v:?}");
        assert!(v.why.contains("p99 50.1 ms"), "{v:?}");
        let short = all_delivered(179_999);
        let v = sustained_rate_verdict(&at_target(&short, 12.0), 60, Some(0));
        assert_eq!(v.verdict, Verdict::NotMet, "{v:?}");
        assert!(v.why.contains("1 of 180000 orders not delivered"), "{v:?}");
    }

    #[test]
    fn the_target_is_not_measured_by_a_shorter_run_a_burst_policy_or_another_rate() {
        let every = all_delivered(180_000);
        let phases = at_target(&every, 10.0);
        // Not measured, and the reason names the flag that would measure it.
        let not_measured_for = |phases: &[PhaseOutcome<'_>], secs, burst, flag: &str| {
            let v = sustained_rate_verdict(phases, secs, burst);
            v.verdict == Verdict::NotMeasured && v.why.contains(flag)
        };
        assert!(not_measured_for(&phases, 59, Some(0), "--rate-seconds"));
        assert!(not_measured_for(&phases, 60, Some(5_000), "--burst-rate 0"));
        assert!(not_measured_for(&phases, 60, None, "--burst-rate 0"));
        let other = [PhaseOutcome {
            offered_per_second: 2_500,
            ..phases[0]
        }];
        assert!(not_measured_for(&other, 60, Some(0), "--rates"));
    }
}

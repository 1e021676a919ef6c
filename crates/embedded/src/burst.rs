//! Absorbing a burst: while orders are accepted faster than the pipeline could drain them,
//! the pipeline (store, publish, deliver) steps aside and leaves the CPU and the writer to
//! the API.
//!
//! SQS lets its consumer fall behind a burst, and that is what the queue is for. On a small
//! machine the API and the drain share the same cores and the same SQLite writer, and a drain
//! that cannot keep up with the burst anyway only slows the acceptance: measured on two cores,
//! 7,000-9,000 orders/s accepted while draining against 10,000-13,000 with the drain held
//! back. So while a burst lasts, the orders wait in the queue, on disk, and are stored and
//! announced right after.
//!
//! Every side of the pause is bounded:
//! - it starts only when the API accepts at least `rate` orders/s *and* `min_backlog`
//!   orders already wait, so a steady load the pipeline keeps up with, or a short spike, is
//!   drained as it comes and its end-to-end latency is untouched;
//! - it ends as soon as the rate drops;
//! - once `allowance` orders wait, the drain takes its share again, whatever the rate,
//!   until the backlog is back under `min_backlog`;
//! - within a pause, each stage still takes one batch every `max_pause`.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::watch;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BurstConfig {
    /// Orders accepted per second, over [`RATE_WINDOW`], from which the drain steps aside;
    /// 0: never.
    pub rate: u64,
    /// Orders waiting before the drain steps aside.
    pub min_backlog: u64,
    /// Orders waiting at which the drain takes its share again, whatever the rate.
    pub allowance: u64,
    /// Longest a pipeline stage steps aside before it takes one batch anyway.
    pub max_pause: Duration,
}

impl Default for BurstConfig {
    fn default() -> Self {
        BurstConfig {
            rate: DEFAULT_BURST_RATE,
            min_backlog: 1_000,
            allowance: DEFAULT_BURST_ALLOWANCE,
            max_pause: Duration::from_secs(1),
        }
    }
}

impl BurstConfig {
    /// Never steps aside: the drain always runs beside the API.
    pub fn off() -> Self {
        BurstConfig {
            rate: 0,
            ..BurstConfig::default()
        }
    }
}

/// Twice what the signed pipeline drains on two cores (about 2,500 orders/s), so a steady
/// load it can keep up with never triggers a pause.
pub const DEFAULT_BURST_RATE: u64 = 5_000;

/// About 35 MB of queued orders, and half a minute of the drain on two cores.
pub const DEFAULT_BURST_ALLOWANCE: u64 = 100_000;

/// The accept rate is measured over this much of the recent past.
pub const RATE_WINDOW: Duration = Duration::from_millis(250);

/// How often a paused store worker looks again.
const RECHECK: Duration = Duration::from_millis(5);

/// Messages sent to the queue and received for the first time since the process started;
/// their difference is the backlog the drain has not reached yet.
#[derive(Debug)]
pub struct Flow {
    sent: AtomicU64,
    first_received: AtomicU64,
    /// When counting began (ms since the epoch, as `sent_at`).
    since_ms: i64,
}

impl Default for Flow {
    fn default() -> Self {
        Flow {
            sent: AtomicU64::new(0),
            first_received: AtomicU64::new(0),
            since_ms: crate::db::now_ms(),
        }
    }
}

impl Flow {
    /// Counts a send before it is committed, so a message is never received uncounted.
    pub(crate) fn sent(&self, n: u64) {
        self.sent.fetch_add(n, Ordering::Relaxed);
    }

    /// Takes back sends that were counted but not committed.
    pub(crate) fn unsent(&self, n: u64) {
        let _ = self
            .sent
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |s| {
                Some(s.saturating_sub(n))
            });
    }

    /// Whether a message sent at `sent_at` (ms) was counted by [`Flow::sent`].
    pub(crate) fn counts(&self, sent_at: i64) -> bool {
        sent_at >= self.since_ms
    }

    /// Counts first receives of counted messages, never past the sends (a redriven message
    /// is received for the first time again), so they cannot hide later sends.
    pub(crate) fn first_received(&self, n: u64) {
        let sent = self.sent_total();
        let _ = self
            .first_received
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |r| {
                Some(r.saturating_add(n).min(sent).max(r))
            });
    }

    pub fn sent_total(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Messages sent since the start and not yet received once. Messages left from an
    /// earlier run count neither way, so after a restart this errs towards draining.
    pub fn backlog(&self) -> u64 {
        let received = self.first_received.load(Ordering::Relaxed);
        self.sent_total().saturating_sub(received)
    }
}

#[derive(Debug, Default)]
struct State {
    /// (when, messages sent by then), oldest first, spanning at most [`RATE_WINDOW`].
    samples: VecDeque<(Instant, u64)>,
    /// A burst is being absorbed (for the log and the gauge).
    absorbing: bool,
    /// The allowance was reached: drain until the backlog is small again.
    exhausted: bool,
}

#[derive(Debug)]
pub struct Burst {
    config: BurstConfig,
    flow: std::sync::Arc<Flow>,
    state: Mutex<State>,
}

impl Burst {
    pub fn new(config: BurstConfig, flow: std::sync::Arc<Flow>) -> Self {
        Burst {
            config,
            flow,
            state: Mutex::new(State::default()),
        }
    }

    /// Whether a burst was being absorbed when the pipeline last asked, without asking.
    pub fn was_absorbing(&self) -> bool {
        self.state.lock().expect("burst state lock").absorbing
    }

    /// Whether the drain should step aside now.
    pub fn absorbing(&self) -> bool {
        self.absorbing_at(Instant::now())
    }

    fn absorbing_at(&self, now: Instant) -> bool {
        if self.config.rate == 0 {
            return false;
        }
        let sent = self.flow.sent_total();
        let backlog = self.flow.backlog();
        let mut state = self.state.lock().expect("burst state lock");
        if state
            .samples
            .back()
            .is_none_or(|(at, _)| now.saturating_duration_since(*at) >= RECHECK)
        {
            state.samples.push_back((now, sent));
        }
        while state
            .samples
            .front()
            .is_some_and(|(at, _)| now.saturating_duration_since(*at) > RATE_WINDOW)
        {
            state.samples.pop_front();
        }
        let rate = match state.samples.front() {
            Some((at, then)) if now.saturating_duration_since(*at) >= RATE_WINDOW / 4 => {
                sent.saturating_sub(*then) as f64 / now.saturating_duration_since(*at).as_secs_f64()
            }
            _ => 0.0,
        };
        if state.exhausted && backlog < self.config.min_backlog {
            state.exhausted = false;
        }
        if !state.exhausted && backlog >= self.config.allowance {
            state.exhausted = true;
            tracing::warn!(
                backlog,
                allowance = self.config.allowance,
                "the burst filled its allowance; the drain runs beside the API again"
            );
        }
        let absorbing = !state.exhausted
            && rate >= self.config.rate as f64
            && backlog >= self.config.min_backlog;
        if absorbing != state.absorbing {
            state.absorbing = absorbing;
            metrics::gauge!("orderflow_burst_absorbing").set(f64::from(u8::from(absorbing)));
            if absorbing {
                tracing::info!(
                    rate = rate as u64,
                    backlog,
                    "absorbing a burst: orders wait in the queue and are stored once it ends"
                );
            } else {
                tracing::info!(backlog, "burst over; draining the queue");
            }
        }
        absorbing
    }

    /// Waits while a burst is being absorbed, at most `max_pause`, or until shutdown.
    pub async fn wait_turn(&self, shutdown: &mut watch::Receiver<bool>) {
        if !self.absorbing() {
            return;
        }
        let started = Instant::now();
        while started.elapsed() < self.config.max_pause && self.absorbing() {
            tokio::select! {
                _ = tokio::time::sleep(RECHECK) => {}
                _ = shutdown.changed() => break,
            }
        }
        metrics::histogram!("orderflow_burst_pause_seconds")
            .record(started.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn burst(config: BurstConfig) -> (Burst, Arc<Flow>) {
        let flow = Arc::new(Flow::default());
        (Burst::new(config, Arc::clone(&flow)), flow)
    }

    fn config() -> BurstConfig {
        BurstConfig {
            rate: 1_000,
            min_backlog: 100,
            allowance: 10_000,
            max_pause: Duration::from_millis(200),
        }
    }

    /// Sends `per_tick` messages every 10 ms for `ticks`, asking the policy at each tick.
    fn drive(b: &Burst, flow: &Flow, t0: Instant, ticks: u32, per_tick: u64) -> Vec<bool> {
        (1..=ticks)
            .map(|i| {
                flow.sent(per_tick);
                b.absorbing_at(t0 + Duration::from_millis(10) * i)
            })
            .collect()
    }

    #[test]
    fn a_fast_burst_with_a_backlog_is_absorbed_and_released_when_it_stops() {
        let (b, flow) = burst(config());
        let t0 = Instant::now();
        // 50 per 10 ms = 5,000/s, nothing received: absorbed once the window has a rate.
        let seen = drive(&b, &flow, t0, 30, 50);
        assert!(!seen[0], "no rate is known from one sample");
        assert!(seen[29], "5,000/s with a backlog of 1,500");
        // The API stops: the rate falls under 1,000/s within the window.
        let later = t0 + Duration::from_millis(300) + RATE_WINDOW + RECHECK;
        assert!(!b.absorbing_at(later));
    }

    #[test]
    fn a_rate_the_drain_keeps_up_with_is_never_absorbed() {
        let (b, flow) = burst(config());
        let t0 = Instant::now();
        // 5,000/s, but every message is received as it comes: no backlog.
        let seen: Vec<bool> = (1..=50)
            .map(|i| {
                flow.sent(50);
                flow.first_received(50);
                b.absorbing_at(t0 + Duration::from_millis(10) * i)
            })
            .collect();
        assert!(seen.iter().all(|a| !a));
        // A backlog, but at 500/s: below the rate.
        flow.sent(500);
        let seen = drive(&b, &flow, t0 + Duration::from_secs(1), 50, 5);
        assert!(seen.iter().all(|a| !a), "{seen:?}");
    }

    #[test]
    fn the_allowance_ends_the_pause_until_the_backlog_is_small_again() {
        let (b, flow) = burst(BurstConfig {
            allowance: 2_000,
            ..config()
        });
        let t0 = Instant::now();
        let seen = drive(&b, &flow, t0, 60, 50);
        let first = seen.iter().position(|a| *a).expect("absorbed at first");
        let released = seen.iter().rposition(|a| *a).expect("then released") + 1;
        assert!(first < released);
        assert!(seen[released..].iter().all(|a| !a), "{seen:?}");
        assert!(flow.backlog() >= 2_000);
        // Still bursting, but the drain catches up: under min_backlog, absorbing again.
        flow.first_received(flow.backlog());
        let seen = drive(&b, &flow, t0 + Duration::from_millis(600), 10, 50);
        assert!(seen.last().copied().unwrap(), "{seen:?}");
    }

    #[test]
    fn first_receives_never_hide_later_sends() {
        let flow = Flow::default();
        assert!(!flow.counts(flow.since_ms - 1), "sent by an earlier run");
        assert!(flow.counts(flow.since_ms));
        // First receives beyond the sends (redriven messages) are not counted.
        flow.first_received(5_000);
        assert_eq!(flow.backlog(), 0);
        flow.sent(300);
        assert_eq!(flow.backlog(), 300, "the new sends are waiting");
        flow.first_received(100);
        assert_eq!(flow.backlog(), 200);
        flow.unsent(50);
        assert_eq!(flow.backlog(), 150, "a send that failed is taken back");
    }

    #[test]
    fn a_zero_rate_never_steps_aside() {
        let (b, flow) = burst(BurstConfig::off());
        let seen = drive(&b, &flow, Instant::now(), 50, 1_000);
        assert!(seen.iter().all(|a| !a));
    }

    #[tokio::test]
    async fn a_paused_worker_still_takes_a_batch_every_max_pause() {
        let (b, flow) = burst(config());
        let (_tx, mut shutdown) = watch::channel(false);
        // Keep the burst going in the background for the whole test.
        let keep = Arc::clone(&flow);
        let feeder = tokio::spawn(async move {
            loop {
                keep.sent(50);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        let noticed = async {
            while !b.absorbing() {
                tokio::time::sleep(RECHECK).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(2), noticed)
            .await
            .expect("a burst of 10,000/s is noticed");
        let started = Instant::now();
        b.wait_turn(&mut shutdown).await;
        let waited = started.elapsed();
        feeder.abort();
        assert!(waited >= Duration::from_millis(190), "{waited:?}");
        assert!(waited < Duration::from_secs(2), "{waited:?}");
    }
}

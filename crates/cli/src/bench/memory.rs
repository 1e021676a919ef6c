//! The server's memory over a run: RSS sampled from `/proc` while the bench sends, so a long
//! run says whether memory stays steady (issue 17: RSS after the run within 10 % of RSS
//! after the first 100,000 orders, and a peak of at most 64 MiB).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::verdict::Verdict;

/// How often RSS is read.
const EVERY: Duration = Duration::from_secs(5);
/// The reference point: RSS once the server has accepted this many orders.
pub const REFERENCE_ORDERS: u64 = 100_000;
/// A run this long judges the target; a shorter one reports its figures only.
pub const TARGET_ORDERS: u64 = 1_000_000;
/// RSS after the run may exceed the reference by at most this share.
pub const STEADY_SHARE: f64 = 0.10;
/// Peak RSS allowed.
pub const PEAK_MIB: f64 = 64.0;

/// One reading of the server's memory.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Sample {
    pub seconds: f64,
    /// Orders the server had accepted (`orderflow_orders_accepted_total`).
    pub orders_accepted: u64,
    pub rss_mib: f64,
    pub anon_mib: f64,
}

/// The run's memory, as the report shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoryReport {
    /// RSS at the first sample once [`REFERENCE_ORDERS`] were sent; `None` in a shorter run.
    pub rss_at_reference_mib: Option<f64>,
    /// RSS once the last phase is drained.
    pub rss_after_run_mib: Option<f64>,
    /// `VmHWM`: the most the server ever held.
    pub peak_mib: Option<f64>,
    /// Not measured when fewer than [`TARGET_ORDERS`] were sent.
    pub verdict: Verdict,
    pub why: String,
    pub samples: Vec<Sample>,
}

/// Reads the server's RSS every [`EVERY`] until [`Sampler::finish`].
#[derive(Debug)]
pub struct Sampler {
    probe: Probe,
    samples: Arc<Mutex<Vec<Sample>>>,
    task: tokio::task::JoinHandle<()>,
}

/// Where a reading comes from: the server's `/proc` status and its `/metrics`.
#[derive(Debug, Clone)]
struct Probe {
    pid: u32,
    client: reqwest::Client,
    metrics_url: String,
    started: Instant,
}

fn status_mib(pid: u32) -> Option<(f64, f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<f64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib / 1024.0)
    };
    Some((field("VmRSS:")?, field("RssAnon:")?, field("VmHWM:")?))
}

impl Sampler {
    pub fn start(pid: u32, client: &reqwest::Client, url: &str) -> Sampler {
        let probe = Probe {
            pid,
            client: client.clone(),
            metrics_url: format!("{url}/metrics"),
            started: Instant::now(),
        };
        let samples = Arc::new(Mutex::new(Vec::new()));
        let task = {
            let (probe, samples) = (probe.clone(), Arc::clone(&samples));
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(EVERY);
                loop {
                    tick.tick().await;
                    match probe.read().await {
                        Ok(sample) => samples.lock().expect("samples").push(sample),
                        // The server is gone: nothing more to read.
                        Err(Unreadable::Process) => return,
                        // A slow or refused `/metrics` skips one reading, not the rest.
                        Err(Unreadable::Metrics) => {}
                    }
                }
            })
        };
        Sampler {
            probe,
            samples,
            task,
        }
    }

    /// Stops sampling, takes one last reading (the RSS after the run) and judges the run.
    pub async fn finish(self) -> MemoryReport {
        self.task.abort();
        let mut samples = std::mem::take(&mut *self.samples.lock().expect("samples"));
        let last = self.probe.read().await.ok();
        samples.extend(last);
        let peak = status_mib(self.probe.pid).map(|(_, _, hwm)| hwm);
        judge(samples, last.map(|s| s.rss_mib), peak)
    }
}

/// Why a reading was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unreadable {
    Process,
    Metrics,
}

impl Probe {
    async fn read(&self) -> Result<Sample, Unreadable> {
        let (rss, anon, _) = status_mib(self.pid).ok_or(Unreadable::Process)?;
        let metrics = async {
            self.client
                .get(&self.metrics_url)
                .timeout(EVERY)
                .send()
                .await?
                .error_for_status()?
                .text()
                .await
        };
        let metrics = metrics.await.map_err(|_| Unreadable::Metrics)?;
        Ok(Sample {
            seconds: self.started.elapsed().as_secs_f64(),
            orders_accepted: accepted(&metrics),
            rss_mib: rss,
            anon_mib: anon,
        })
    }
}

/// `orderflow_orders_accepted_total` from a Prometheus text exposition; a counter not yet
/// incremented is not listed at all, which means none.
fn accepted(metrics: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| {
            let value = l.strip_prefix("orderflow_orders_accepted_total ")?;
            value.trim().parse::<f64>().ok().map(|v| v as u64)
        })
        .unwrap_or(0)
}

/// The target's verdict from the samples, the RSS after the run and the peak.
pub fn judge(samples: Vec<Sample>, after: Option<f64>, peak: Option<f64>) -> MemoryReport {
    // The reference is read during the run: the last sample is the one after it.
    let during = &samples[..samples.len().saturating_sub(1)];
    let reference = during
        .iter()
        .find(|s| s.orders_accepted >= REFERENCE_ORDERS)
        .map(|s| s.rss_mib);
    let sent = samples.iter().map(|s| s.orders_accepted).max().unwrap_or(0);
    let (verdict, why) = match (reference, after, peak) {
        _ if sent < TARGET_ORDERS => (
            Verdict::NotMeasured,
            format!("{sent} orders accepted; the target is judged over {TARGET_ORDERS}"),
        ),
        (Some(reference), Some(after), Some(peak)) => {
            let steady = after <= reference * (1.0 + STEADY_SHARE);
            let low = peak <= PEAK_MIB;
            let verdict = if steady && low {
                Verdict::Met
            } else {
                Verdict::NotMet
            };
            (
                verdict,
                format!(
                    "RSS after the run {after:.1} MiB against {reference:.1} MiB after the first \
                     {REFERENCE_ORDERS} orders ({:+.0} %, at most +{:.0} %); peak {peak:.1} MiB \
                     (at most {PEAK_MIB:.0})",
                    (after / reference - 1.0) * 100.0,
                    STEADY_SHARE * 100.0
                ),
            )
        }
        _ => (
            Verdict::NotMeasured,
            format!("no reading of the server during the run past {REFERENCE_ORDERS} orders"),
        ),
    };
    MemoryReport {
        rss_at_reference_mib: reference,
        rss_after_run_mib: after,
        peak_mib: peak,
        verdict,
        why,
        samples,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(orders_accepted: u64, rss_mib: f64) -> Sample {
        Sample {
            seconds: 0.0,
            orders_accepted,
            rss_mib,
            anon_mib: rss_mib / 2.0,
        }
    }

    #[test]
    fn the_accepted_count_is_read_from_the_metrics_text() {
        let text = "# TYPE orderflow_orders_accepted_total counter\n\
                    orderflow_orders_accepted_total_x 5\n\
                    orderflow_orders_accepted_total 123456\n";
        assert_eq!(accepted(text), 123_456);
        // Before the first order the counter is not listed at all: none accepted, and the
        // sampling goes on (a first version stopped at its first reading this way).
        assert_eq!(accepted("orderflow_orders_stored_total 3\n"), 0);
    }

    #[test]
    fn a_run_under_a_million_orders_is_not_judged() {
        let r = judge(
            vec![sample(100_000, 40.0), sample(500_000, 41.0)],
            Some(41.0),
            Some(45.0),
        );
        assert_eq!(r.verdict, Verdict::NotMeasured);
        assert_eq!(r.rss_at_reference_mib, Some(40.0));
    }

    #[test]
    fn the_reading_after_the_run_is_not_the_reference() {
        let r = judge(
            vec![sample(90_000, 40.0), sample(1_000_000, 50.0)],
            Some(50.0),
            Some(60.0),
        );
        assert_eq!(r.rss_at_reference_mib, None);
        assert_eq!(r.verdict, Verdict::NotMeasured);
    }

    #[test]
    fn memory_is_steady_within_ten_percent_of_the_reference_and_under_the_peak() {
        let samples = || {
            vec![
                sample(50_000, 30.0),
                sample(100_000, 40.0),
                sample(1_000_000, 43.0),
            ]
        };
        assert_eq!(
            judge(samples(), Some(43.9), Some(60.0)).verdict,
            Verdict::Met
        );
        // 10 % above the reference (40 MiB) is the limit: 43.9 passes, 44.1 does not.
        assert_eq!(
            judge(samples(), Some(44.1), Some(60.0)).verdict,
            Verdict::NotMet
        );
        assert_eq!(
            judge(samples(), Some(43.0), Some(64.5)).verdict,
            Verdict::NotMet
        );
    }
}

//! SQS's one `PurgeQueue` per queue a minute: another within 60 s is `PurgeQueueInProgress`
//! (<https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_PurgeQueue.html>).
//! That page says HTTP 400, but SQS answers 403 with the message below (a real answer in
//! <https://github.com/aws/aws-sdk-js-v3/issues/5558>: `httpStatusCode: 403`), and so does
//! moto; serve answers what the service sends.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::StatusCode;

use crate::awsapi::AwsError;

/// SQS's interval between two purges of one queue.
pub const SQS_PURGE_INTERVAL: Duration = Duration::from_secs(60);

/// When each queue was last purged, within the interval.
#[derive(Debug)]
pub struct RecentPurges {
    interval: Duration,
    purged_at: Mutex<HashMap<String, Instant>>,
}

impl RecentPurges {
    /// Zero lets every purge through, as moto's `MOTO_SQS_ENFORCE_STRICT_QUEUE_PURGE_BEHAVIOUR=false`
    /// and LocalStack's `SQS_DELAY_PURGE_RETRY` do for test suites that purge between tests.
    pub fn new(interval: Duration) -> Self {
        RecentPurges {
            interval,
            purged_at: Mutex::default(),
        }
    }

    /// Takes `queue`'s purge for this interval, or refuses it in SQS's words when the queue
    /// was purged less than an interval ago.
    pub fn begin(&self, queue: &str, now: Instant) -> Result<(), AwsError> {
        if self.interval.is_zero() {
            return Ok(());
        }
        let mut purged_at = self.purged_at.lock().expect("purges lock");
        // Only purges within the interval are kept, so this holds at most one entry for each
        // queue purged in the last minute.
        purged_at.retain(|_, at| now.saturating_duration_since(*at) < self.interval);
        if purged_at.contains_key(queue) {
            return Err(AwsError {
                status: StatusCode::FORBIDDEN,
                ..AwsError::sqs(
                    "PurgeQueueInProgress",
                    "AWS.SimpleQueueService.PurgeQueueInProgress",
                    format!(
                        "Only one PurgeQueue operation on {queue} is allowed every {} seconds.",
                        self.interval.as_secs()
                    ),
                )
            });
        }
        purged_at.insert(queue.to_owned(), now);
        Ok(())
    }

    /// Forgets a purge that failed, so that it may be tried again at once.
    pub fn forget(&self, queue: &str) {
        self.purged_at.lock().expect("purges lock").remove(queue);
    }
}

impl Default for RecentPurges {
    fn default() -> Self {
        RecentPurges::new(SQS_PURGE_INTERVAL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_purge_of_a_queue_within_the_minute_is_refused_and_allowed_after_it() {
        let purges = RecentPurges::default();
        let start = Instant::now();
        purges.begin("a", start).unwrap();
        purges.begin("b", start).unwrap();
        let refused = purges
            .begin("a", start + Duration::from_secs(59))
            .unwrap_err();
        assert_eq!(refused.status, 403);
        assert_eq!(
            refused.query_code,
            "AWS.SimpleQueueService.PurgeQueueInProgress"
        );
        assert_eq!(
            refused.message,
            "Only one PurgeQueue operation on a is allowed every 60 seconds."
        );
        purges.begin("a", start + Duration::from_secs(60)).unwrap();
    }

    #[test]
    fn with_no_interval_every_purge_is_allowed() {
        let purges = RecentPurges::new(Duration::ZERO);
        let now = Instant::now();
        purges.begin("a", now).unwrap();
        purges.begin("a", now).unwrap();
    }
}

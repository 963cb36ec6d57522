//! The dispatcher's counters, as plain atomics rendered in the Prometheus text format so the
//! HTTP adapter's `/metrics` can append them to its own.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds, in seconds, of the attempt-latency histogram's buckets.
const LATENCY_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// What became of one delivery attempt, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptResult {
    /// 2xx: the task is delivered.
    Delivered,
    /// Transient failure: the task is due again later.
    Retry,
    /// Permanent refusal or retries exhausted: the task failed.
    Failed,
}

/// Counters and gauges of one node's dispatcher. Share it in an `Arc` between the dispatcher
/// and the metrics endpoint.
#[derive(Debug, Default)]
pub struct DispatchMetrics {
    delivered: AtomicU64,
    retried: AtomicU64,
    failed: AtomicU64,
    /// Attempts whose result could not be recorded because the lease was lost.
    leases_lost: AtomicU64,
    /// Leases given back untouched (shutdown, or the target at its concurrency limit).
    leases_released: AtomicU64,
    /// Store errors while claiming or recording.
    store_errors: AtomicU64,
    latency_buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_micros: AtomicU64,
    in_flight: AtomicI64,
}

impl DispatchMetrics {
    /// Counts a recorded attempt and its latency.
    pub fn record_attempt(&self, result: AttemptResult, latency: Duration) {
        let counter = match result {
            AttemptResult::Delivered => &self.delivered,
            AttemptResult::Retry => &self.retried,
            AttemptResult::Failed => &self.failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let seconds = latency.as_secs_f64();
        if let Some(index) = LATENCY_BUCKETS.iter().position(|&le| seconds <= le) {
            self.latency_buckets[index].fetch_add(1, Ordering::Relaxed);
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_micros.fetch_add(
            u64::try_from(latency.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    pub(crate) fn lease_lost(&self) {
        self.leases_lost.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn lease_released(&self) {
        self.leases_released.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn store_error(&self) {
        self.store_errors.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn in_flight_add(&self, delta: i64) {
        self.in_flight.fetch_add(delta, Ordering::Relaxed);
    }

    /// Attempts recorded with `result` so far.
    pub fn attempts(&self, result: AttemptResult) -> u64 {
        match result {
            AttemptResult::Delivered => &self.delivered,
            AttemptResult::Retry => &self.retried,
            AttemptResult::Failed => &self.failed,
        }
        .load(Ordering::Relaxed)
    }

    /// Deliveries in progress right now.
    pub fn in_flight(&self) -> i64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Appends the metrics in the Prometheus text exposition format (version 0.0.4).
    pub fn render(&self, out: &mut String) {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "# HELP webhookd_dispatch_attempts_total Delivery attempts recorded, by what became of the task.\n\
             # TYPE webhookd_dispatch_attempts_total counter\n\
             webhookd_dispatch_attempts_total{{result=\"delivered\"}} {}\n\
             webhookd_dispatch_attempts_total{{result=\"retry\"}} {}\n\
             webhookd_dispatch_attempts_total{{result=\"failed\"}} {}",
            load(&self.delivered),
            load(&self.retried),
            load(&self.failed),
        );
        let _ = writeln!(
            out,
            "# HELP webhookd_dispatch_leases_lost_total Attempts not recorded because another dispatcher took the task over.\n\
             # TYPE webhookd_dispatch_leases_lost_total counter\n\
             webhookd_dispatch_leases_lost_total {}\n\
             # HELP webhookd_dispatch_leases_released_total Claimed tasks given back without an attempt.\n\
             # TYPE webhookd_dispatch_leases_released_total counter\n\
             webhookd_dispatch_leases_released_total {}\n\
             # HELP webhookd_dispatch_store_errors_total Store failures while claiming or recording attempts.\n\
             # TYPE webhookd_dispatch_store_errors_total counter\n\
             webhookd_dispatch_store_errors_total {}\n\
             # HELP webhookd_dispatch_in_flight Deliveries in progress.\n\
             # TYPE webhookd_dispatch_in_flight gauge\n\
             webhookd_dispatch_in_flight {}",
            load(&self.leases_lost),
            load(&self.leases_released),
            load(&self.store_errors),
            self.in_flight(),
        );
        let _ = writeln!(
            out,
            "# HELP webhookd_dispatch_attempt_duration_seconds Latency of delivery attempts.\n\
             # TYPE webhookd_dispatch_attempt_duration_seconds histogram"
        );
        let mut cumulative = 0;
        for (le, bucket) in LATENCY_BUCKETS.iter().zip(&self.latency_buckets) {
            cumulative += load(bucket);
            let _ = writeln!(
                out,
                "webhookd_dispatch_attempt_duration_seconds_bucket{{le=\"{le}\"}} {cumulative}"
            );
        }
        let count = load(&self.latency_count);
        #[expect(
            clippy::cast_precision_loss,
            reason = "a sum of microseconds stays exact in f64 for centuries of latency"
        )]
        let sum = load(&self.latency_sum_micros) as f64 / 1e6;
        let _ = writeln!(
            out,
            "webhookd_dispatch_attempt_duration_seconds_bucket{{le=\"+Inf\"}} {count}\n\
             webhookd_dispatch_attempt_duration_seconds_sum {sum}\n\
             webhookd_dispatch_attempt_duration_seconds_count {count}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let metrics = DispatchMetrics::default();
        metrics.record_attempt(AttemptResult::Delivered, Duration::from_millis(3));
        metrics.record_attempt(AttemptResult::Delivered, Duration::from_millis(40));
        metrics.record_attempt(AttemptResult::Retry, Duration::from_secs(60));
        metrics.lease_lost();
        metrics.in_flight_add(2);
        let mut text = String::new();
        metrics.render(&mut text);
        for line in [
            r#"webhookd_dispatch_attempts_total{result="delivered"} 2"#,
            r#"webhookd_dispatch_attempts_total{result="retry"} 1"#,
            r#"webhookd_dispatch_attempts_total{result="failed"} 0"#,
            "webhookd_dispatch_leases_lost_total 1",
            "webhookd_dispatch_in_flight 2",
            r#"webhookd_dispatch_attempt_duration_seconds_bucket{le="0.005"} 1"#,
            r#"webhookd_dispatch_attempt_duration_seconds_bucket{le="0.05"} 2"#,
            r#"webhookd_dispatch_attempt_duration_seconds_bucket{le="30"} 2"#,
            r#"webhookd_dispatch_attempt_duration_seconds_bucket{le="+Inf"} 3"#,
            "webhookd_dispatch_attempt_duration_seconds_sum 60.043",
            "webhookd_dispatch_attempt_duration_seconds_count 3",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from\n{text}"
            );
        }
        assert!(text.ends_with('\n'));
    }
}

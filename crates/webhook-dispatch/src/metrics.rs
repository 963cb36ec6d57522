//! The dispatcher's metrics on `prometheus-client` types. [`DispatchMetrics::register`] adds
//! them to the registry the HTTP adapter's `/metrics` encodes, so one exposition holds both.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use webhook_domain::model::QueueStats;
use webhook_domain::model::Timestamp;

/// Upper bounds, in seconds, of the attempt-latency histogram's buckets.
const LATENCY_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Upper bounds, in seconds, of the buckets of the store round trips' histograms (claims and
/// batches of recorded attempts).
const STORE_BUCKETS: [f64; 11] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
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

impl AttemptResult {
    const fn as_str(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Retry => "retry",
            Self::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

/// Counters and gauges of one node's dispatcher. Cheap to clone: clones share the values.
#[derive(Debug, Clone)]
pub struct DispatchMetrics {
    attempts: Family<ResultLabels, Counter>,
    /// Attempts whose result could not be recorded because the lease was lost.
    leases_lost: Counter,
    /// Leases given back untouched (shutdown, or the target at its concurrency limit).
    leases_released: Counter,
    /// Store errors while claiming or recording.
    store_errors: Counter,
    latency: Histogram,
    /// Claims sent to the store (their count) and how long each took to answer.
    claim_duration: Histogram,
    /// Tasks the claims handed over.
    claimed_tasks: Counter,
    /// Batches of finished attempts written to the store, and how long each took.
    record_duration: Histogram,
    in_flight: Gauge,
    queued: Gauge,
    due: Gauge,
    oldest_queued_age: Gauge<f64, AtomicU64>,
}

impl Default for DispatchMetrics {
    fn default() -> Self {
        Self {
            attempts: Family::default(),
            leases_lost: Counter::default(),
            leases_released: Counter::default(),
            store_errors: Counter::default(),
            latency: Histogram::new(LATENCY_BUCKETS),
            claim_duration: Histogram::new(STORE_BUCKETS),
            claimed_tasks: Counter::default(),
            record_duration: Histogram::new(STORE_BUCKETS),
            in_flight: Gauge::default(),
            queued: Gauge::default(),
            due: Gauge::default(),
            oldest_queued_age: Gauge::default(),
        }
    }
}

impl DispatchMetrics {
    /// Adds every metric to `registry`; they keep counting in the registry's copy.
    pub fn register(&self, registry: &mut Registry) {
        // (name, help) => the metric
        macro_rules! register {
            ($(($name:literal, $help:literal) => $metric:ident;)*) => {
                $(registry.register($name, $help, self.$metric.clone());)*
            };
        }
        register! {
            ("webhookd_dispatch_attempts", "Delivery attempts recorded, by what became of the task") => attempts;
            ("webhookd_dispatch_attempt_duration_seconds", "Latency of delivery attempts, from sending to the last byte of the answer read") => latency;
            ("webhookd_dispatch_claim_duration_seconds", "Claims of due tasks sent to the store, by how long the store took to answer") => claim_duration;
            ("webhookd_dispatch_claimed_tasks", "Tasks handed over by claims") => claimed_tasks;
            ("webhookd_dispatch_record_duration_seconds", "Batches of finished attempts written to the store, by how long the write took") => record_duration;
            ("webhookd_dispatch_leases_lost", "Attempts not recorded because another dispatcher took the task over") => leases_lost;
            ("webhookd_dispatch_leases_released", "Claimed tasks given back without an attempt") => leases_released;
            ("webhookd_dispatch_store_errors", "Store failures while claiming or recording attempts") => store_errors;
            ("webhookd_dispatch_in_flight", "Deliveries in progress on this node") => in_flight;
            ("webhookd_dispatch_queued_tasks", "Tasks waiting for delivery in the whole queue, due or in backoff") => queued;
            ("webhookd_dispatch_due_tasks", "Tasks waiting for delivery whose next attempt is due") => due;
            ("webhookd_dispatch_oldest_queued_age_seconds", "Age of the oldest task waiting for delivery, 0 when none waits") => oldest_queued_age;
        }
    }

    /// Counts a recorded attempt and its latency.
    pub fn record_attempt(&self, result: AttemptResult, latency: Duration) {
        self.attempts
            .get_or_create(&ResultLabels {
                result: result.as_str(),
            })
            .inc();
        self.latency.observe(latency.as_secs_f64());
    }

    /// Sets the queue gauges from `stats` read at `now`.
    pub fn set_queue(&self, stats: &QueueStats, now: Timestamp) {
        self.queued
            .set(i64::try_from(stats.queued).unwrap_or(i64::MAX));
        self.due.set(i64::try_from(stats.due).unwrap_or(i64::MAX));
        let age = stats
            .oldest_queued_at
            .map_or(Duration::ZERO, |oldest| now.since(oldest));
        self.oldest_queued_age.set(age.as_secs_f64());
    }

    pub(crate) fn claim(&self, tasks: usize, took: Duration) {
        self.claim_duration.observe(took.as_secs_f64());
        self.claimed_tasks
            .inc_by(u64::try_from(tasks).unwrap_or(u64::MAX));
    }

    pub(crate) fn recorded_batch(&self, took: Duration) {
        self.record_duration.observe(took.as_secs_f64());
    }

    pub(crate) fn lease_lost(&self) {
        self.leases_lost.inc();
    }

    pub(crate) fn lease_released(&self) {
        self.leases_released.inc();
    }

    pub(crate) fn store_error(&self) {
        self.store_errors.inc();
    }

    pub(crate) fn in_flight_add(&self, delta: i64) {
        self.in_flight.inc_by(delta);
    }

    /// Attempts recorded with `result` so far.
    pub fn attempts(&self, result: AttemptResult) -> u64 {
        self.attempts
            .get_or_create(&ResultLabels {
                result: result.as_str(),
            })
            .get()
    }

    /// Deliveries in progress right now.
    pub fn in_flight(&self) -> i64 {
        self.in_flight.get()
    }

    /// The metrics alone in the `OpenMetrics` text format, as `/metrics` shows them.
    pub fn render(&self, out: &mut String) {
        let mut registry = Registry::default();
        self.register(&mut registry);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(out, &registry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_openmetrics_text() {
        let metrics = DispatchMetrics::default();
        metrics.record_attempt(AttemptResult::Delivered, Duration::from_millis(3));
        metrics.record_attempt(AttemptResult::Delivered, Duration::from_millis(40));
        metrics.record_attempt(AttemptResult::Retry, Duration::from_secs(60));
        metrics.lease_lost();
        metrics.claim(5, Duration::from_millis(2));
        metrics.claim(0, Duration::from_micros(300));
        metrics.recorded_batch(Duration::from_millis(7));
        metrics.in_flight_add(2);
        let now = Timestamp::parse_rfc3339("2025-01-01T00:01:30Z").unwrap();
        metrics.set_queue(
            &QueueStats {
                queued: 7,
                due: 3,
                oldest_queued_at: Some(Timestamp::parse_rfc3339("2025-01-01T00:00:00Z").unwrap()),
            },
            now,
        );
        assert_eq!(metrics.attempts(AttemptResult::Delivered), 2);
        assert_eq!(metrics.attempts(AttemptResult::Failed), 0);
        let mut text = String::new();
        metrics.render(&mut text);
        for line in [
            r#"webhookd_dispatch_attempts_total{result="delivered"} 2"#,
            r#"webhookd_dispatch_attempts_total{result="retry"} 1"#,
            "webhookd_dispatch_leases_lost_total 1",
            "webhookd_dispatch_in_flight 2",
            "webhookd_dispatch_queued_tasks 7",
            "webhookd_dispatch_due_tasks 3",
            "webhookd_dispatch_oldest_queued_age_seconds 90.0",
            r#"webhookd_dispatch_attempt_duration_seconds_bucket{le="0.005"} 1"#,
            r#"webhookd_dispatch_attempt_duration_seconds_bucket{le="0.05"} 2"#,
            r#"webhookd_dispatch_attempt_duration_seconds_bucket{le="30.0"} 2"#,
            r#"webhookd_dispatch_attempt_duration_seconds_bucket{le="+Inf"} 3"#,
            "webhookd_dispatch_attempt_duration_seconds_count 3",
            r#"webhookd_dispatch_claim_duration_seconds_bucket{le="0.0005"} 1"#,
            r#"webhookd_dispatch_claim_duration_seconds_bucket{le="0.0025"} 2"#,
            "webhookd_dispatch_claim_duration_seconds_count 2",
            "webhookd_dispatch_claimed_tasks_total 5",
            r#"webhookd_dispatch_record_duration_seconds_bucket{le="0.005"} 0"#,
            r#"webhookd_dispatch_record_duration_seconds_bucket{le="0.01"} 1"#,
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from\n{text}"
            );
        }
        assert!(text.ends_with("# EOF\n"), "{text}");

        metrics.set_queue(&QueueStats::default(), now);
        let mut text = String::new();
        metrics.render(&mut text);
        assert!(
            text.lines()
                .any(|l| l == "webhookd_dispatch_oldest_queued_age_seconds 0.0"),
            "{text}"
        );
    }
}

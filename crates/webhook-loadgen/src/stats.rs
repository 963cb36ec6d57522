//! What the connections saw: answers by status, transport errors and latencies, merged into the
//! report at the end.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// One connection's measured requests.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    statuses: BTreeMap<u16, u64>,
    errors: u64,
    first_error: Option<String>,
    /// Microseconds, one per answered request.
    latencies_us: Vec<u32>,
    last_done: Option<Instant>,
}

impl Tally {
    pub(crate) fn with_capacity(requests: usize) -> Self {
        Self {
            latencies_us: Vec::with_capacity(requests),
            ..Self::default()
        }
    }

    pub(crate) fn answered(&mut self, status: u16, latency: Duration, done: Instant) {
        *self.statuses.entry(status).or_default() += 1;
        self.latencies_us
            .push(u32::try_from(latency.as_micros()).unwrap_or(u32::MAX));
        self.last_done = Some(done);
    }

    pub(crate) fn failed(&mut self, error: &anyhow::Error, done: Instant) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(format!("{error:#}"));
        }
        self.last_done = Some(done);
    }

    pub(crate) fn merge(&mut self, other: Self) {
        for (status, count) in other.statuses {
            *self.statuses.entry(status).or_default() += count;
        }
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.latencies_us.extend(other.latencies_us);
        self.last_done = self.last_done.max(other.last_done);
    }

    /// The report of a measurement that began at `from` (its end is the last answer).
    #[expect(
        clippy::cast_precision_loss,
        reason = "request counts stay far below 2^52"
    )]
    pub(crate) fn report(mut self, from: Instant) -> Value {
        self.latencies_us.sort_unstable();
        let answered = self.latencies_us.len() as u64;
        let requests = answered + self.errors;
        let accepted = self.statuses.get(&202).copied().unwrap_or(0);
        let elapsed = self
            .last_done
            .map_or(Duration::ZERO, |done| done.saturating_duration_since(from))
            .as_secs_f64();
        let per_sec = |count: u64| {
            if elapsed > 0.0 {
                count as f64 / elapsed
            } else {
                0.0
            }
        };
        let mean_ms = if answered == 0 {
            0.0
        } else {
            self.latencies_us
                .iter()
                .map(|&us| f64::from(us))
                .sum::<f64>()
                / answered as f64
                / 1000.0
        };
        let status: serde_json::Map<String, Value> = self
            .statuses
            .iter()
            .map(|(status, count)| (status.to_string(), json!(count)))
            .collect();
        json!({
            "requests": requests,
            "elapsed_s": elapsed,
            "accepted": accepted,
            "accepted_per_sec": per_sec(accepted),
            "requests_per_sec": per_sec(requests),
            "status": status,
            "errors": self.errors,
            "first_error": self.first_error,
            "latency_ms": {
                "p50": percentile_ms(&self.latencies_us, 0.50),
                "p90": percentile_ms(&self.latencies_us, 0.90),
                "p99": percentile_ms(&self.latencies_us, 0.99),
                "p999": percentile_ms(&self.latencies_us, 0.999),
                "max": self.latencies_us.last().map(|&us| f64::from(us) / 1000.0),
                "mean": mean_ms,
            },
        })
    }
}

/// The `q` quantile (nearest rank) of `sorted` microseconds, in milliseconds.
pub(crate) fn percentile_ms(sorted: &[u32], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "a rank within a slice's length, computed from a fraction in [0, 1]"
    )]
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(f64::from(sorted[rank - 1]) / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let check = |values: &[u32], q: f64, expected: Option<f64>| {
            assert_eq!(percentile_ms(values, q), expected, "{values:?} q={q}");
        };
        let hundred: Vec<u32> = (1..=100).map(|n| n * 1000).collect();
        check(&hundred, 0.5, Some(50.0));
        check(&hundred, 0.99, Some(99.0));
        check(&hundred, 0.999, Some(100.0));
        check(&hundred, 0.0, Some(1.0));
        check(&[1500], 0.5, Some(1.5));
        check(&[], 0.5, None);
    }

    #[test]
    fn merged_report_counts_accepted_and_errors() {
        let start = Instant::now();
        let mut a = Tally::default();
        a.answered(
            202,
            Duration::from_millis(1),
            start + Duration::from_secs(1),
        );
        a.answered(
            429,
            Duration::from_millis(3),
            start + Duration::from_secs(1),
        );
        let mut b = Tally::default();
        b.answered(
            202,
            Duration::from_millis(2),
            start + Duration::from_secs(2),
        );
        b.failed(&anyhow::anyhow!("reset"), start + Duration::from_secs(2));
        a.merge(b);
        let report = a.report(start);
        assert_eq!(report["requests"], 4);
        assert_eq!(report["accepted"], 2);
        assert_eq!(report["errors"], 1);
        assert_eq!(report["first_error"], "reset");
        assert_eq!(report["status"]["202"], 2);
        assert_eq!(report["status"]["429"], 1);
        assert_eq!(report["accepted_per_sec"], 1.0);
        assert_eq!(report["latency_ms"]["p50"], 2.0);
        assert_eq!(report["latency_ms"]["max"], 3.0);
    }
}

//! Operations endpoints: `/healthz` (the process answers), `/readyz` (the store can commit) and
//! `/metrics` (Prometheus text exposition of the ingest counters and latency histogram, and of
//! whatever else the binary registers, such as the dispatcher's metrics).

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use utoipa::ToSchema;
use webhook_domain::ports::{Adapters, InvocationLog as _};

use crate::AppState;
use crate::problem::{ErrorChain, Problem};

/// The content type of the `OpenMetrics` text format, which Prometheus reads.
pub const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

/// The service's metrics. Cheap to clone; every clone feeds the same registry.
#[derive(Debug, Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    registry: Registry,
    requests: Family<OutcomeLabels, Counter>,
    latency: Histogram,
    in_flight: Gauge,
}

impl Metrics {
    /// A registry with `webhookd_ingest_requests_total{outcome}`,
    /// `webhookd_ingest_duration_seconds` and `webhookd_ingest_requests_in_flight`.
    pub fn new() -> Self {
        Self::new_with(|_| {})
    }

    /// A registry with the ingest metrics of [`Metrics::new`] and whatever `register` adds
    /// (other components' metrics, such as the dispatcher's), all in one exposition.
    pub fn new_with(register: impl FnOnce(&mut Registry)) -> Self {
        let mut registry = Registry::default();
        let requests = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "webhookd_ingest_requests",
            "Ingest requests by outcome: accepted, ignored, or the problem code of a rejection",
            requests.clone(),
        );
        // 0.5 ms to about 8 s.
        let latency = Histogram::new(exponential_buckets(0.000_5, 2.0, 15));
        registry.register(
            "webhookd_ingest_duration_seconds",
            "Time from the start of an ingest request to its answer",
            latency.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "webhookd_ingest_requests_in_flight",
            "Ingest requests begun and not yet answered (slow senders show here)",
            in_flight.clone(),
        );
        register(&mut registry);
        Self {
            inner: Arc::new(Inner {
                registry,
                requests,
                latency,
                in_flight,
            }),
        }
    }

    /// Counts one ingest request with `outcome` that took `elapsed`.
    pub fn observe_ingest(&self, outcome: &'static str, elapsed: Duration) {
        self.inner
            .requests
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
        self.inner.latency.observe(elapsed.as_secs_f64());
    }

    /// Counts an ingest request as in flight until the returned guard is dropped.
    pub fn ingest_in_flight(&self) -> InFlight {
        self.inner.in_flight.inc();
        InFlight(self.inner.in_flight.clone())
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut text = String::with_capacity(2048);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.inner.registry);
        text
    }
}

/// An ingest request in flight; it stops counting when dropped (also when the client goes away
/// and the request is abandoned).
#[derive(Debug)]
pub struct InFlight(Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The answer of `/healthz` and `/readyz`.
#[derive(Debug, ToSchema)]
pub struct OpsStatus {
    /// `ok` (`/healthz`) or `ready` (`/readyz`).
    #[schema(pattern = "^(ok|ready)$")]
    pub status: String,
}

/// The process is up and answering.
#[utoipa::path(
    get, path = "/healthz", tag = "operations", operation_id = "healthz",
    responses((status = 200, description = "`{\"status\":\"ok\"}`", body = OpsStatus)),
)]
pub(crate) async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// The store can commit a write: the node can accept events. A store that still answers reads
/// but cannot write is not ready.
#[utoipa::path(
    get, path = "/readyz", tag = "operations", operation_id = "readyz",
    responses(
        (status = 200, description = "`{\"status\":\"ready\"}`", body = OpsStatus),
        (status = 503, description = "`store_unavailable`: the store cannot commit a write", body = crate::ingest::IngestProblem, content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn readyz<A: Adapters>(
    state: web::Data<AppState<A>>,
) -> Result<HttpResponse, Problem> {
    match state.ingest.store.check_writable().await {
        Ok(()) => Ok(HttpResponse::Ok().json(serde_json::json!({ "status": "ready" }))),
        Err(e) => {
            tracing::warn!(error = %ErrorChain(&e), "readiness check failed: the store cannot commit a write");
            Err(Problem::store_unavailable())
        }
    }
}

/// Prometheus metrics in the `OpenMetrics` text format: ingest requests by outcome, ingest
/// latency, and the dispatcher's counters.
#[utoipa::path(
    get, path = "/metrics", tag = "operations", operation_id = "metrics",
    responses((status = 200, description = "The metrics", body = String, content_type = "application/openmetrics-text")),
)]
pub(crate) async fn metrics<A: Adapters>(state: web::Data<AppState<A>>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, METRICS_CONTENT_TYPE))
        .body(state.metrics.encode())
}

#[cfg(test)]
mod tests {
    use prometheus_client::metrics::gauge::Gauge;

    use super::*;

    #[test]
    fn exposes_metrics_registered_by_others() {
        let depth = Gauge::<i64>::default();
        let metrics = Metrics::new_with(|registry| {
            registry.register(
                "webhookd_other_depth",
                "Another component's gauge",
                depth.clone(),
            );
        });
        depth.set(7);
        let text = metrics.encode();
        for line in [
            "webhookd_other_depth 7\n",
            "webhookd_ingest_duration_seconds_count 0",
        ] {
            assert!(text.contains(line), "{line:?} missing from {text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn exposes_counters_and_histogram() {
        let metrics = Metrics::new();
        metrics.observe_ingest("accepted", Duration::from_millis(3));
        metrics.observe_ingest("accepted", Duration::from_millis(3));
        metrics.observe_ingest("rate_limited", Duration::from_micros(100));
        let text = metrics.encode();
        // 0.1 ms, 3 ms and 3 ms are all within the 4 ms bucket; only the first within 0.5 ms.
        for line in [
            r#"webhookd_ingest_requests_total{outcome="accepted"} 2"#,
            r#"webhookd_ingest_requests_total{outcome="rate_limited"} 1"#,
            "webhookd_ingest_duration_seconds_count 3",
            r#"webhookd_ingest_duration_seconds_bucket{le="0.0005"} 1"#,
            r#"webhookd_ingest_duration_seconds_bucket{le="0.004"} 3"#,
        ] {
            assert!(text.contains(line), "{line:?} missing from {text}");
        }
    }
}

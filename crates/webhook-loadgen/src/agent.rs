//! `agent`: a delivery target on loopback for measuring the whole pipeline. It answers every
//! `POST` 200 at once and records, for each delivery, when it arrived and when webhookd received
//! the event (`source.received_at` in the body), so that the time from ingest to delivery can be
//! computed for any window afterwards.
//!
//! The body is the one webhookd's dispatcher sends (`webhook_dispatch::task_body`):
//! `{task_id, …, source: {…, received_at}}`; it is parsed, and a body that does not have that
//! shape is answered 400 and counted. The Standard Webhooks signature headers
//! (`webhook-id`, `webhook-timestamp`, `webhook-signature`) are not verified: the agent measures
//! timing, and checking signatures is the dispatcher's tests' business.

use std::collections::HashSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::net::TcpListener;

use crate::stats::percentile_ms;

/// The pause after a failed `accept` (out of file descriptors, say), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

/// The part of a delivery's body the agent reads.
#[derive(Debug, Deserialize)]
struct DeliveryBody {
    task_id: String,
    source: DeliverySource,
}

#[derive(Debug, Deserialize)]
struct DeliverySource {
    received_at: String,
}

/// A delivery's task id and when webhookd received its event, in µs since the Unix epoch.
fn parse_delivery(body: &[u8]) -> Result<(String, i64)> {
    let delivery: DeliveryBody =
        serde_json::from_slice(body).context("the body is not a task message")?;
    let received_at =
        OffsetDateTime::parse(&delivery.source.received_at, &Rfc3339).with_context(|| {
            format!(
                "source.received_at {:?} is not an RFC 3339 time",
                delivery.source.received_at
            )
        })?;
    let micros = i64::try_from(received_at.unix_timestamp_nanos().div_euclid(1_000))
        .context("source.received_at is out of range")?;
    Ok((delivery.task_id, micros))
}

/// Microseconds since the Unix epoch, now: the clock `received_at` is read from.
fn now_micros() -> i64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_micros()).unwrap_or(i64::MAX)
}

/// What the agent received.
#[derive(Debug, Default)]
pub(crate) struct Log {
    /// `[arrived, received_at]` of each delivery, in µs since the Unix epoch, in arrival order.
    deliveries: Vec<[i64; 2]>,
    task_ids: HashSet<String>,
    /// Deliveries of a task delivered before (each is also in `deliveries`).
    duplicates: u64,
    /// Requests answered 400 because their body was not a task message.
    malformed: u64,
    first_malformed: Option<String>,
}

impl Log {
    fn delivered(&mut self, task_id: String, received_us: i64, arrived_us: i64) {
        self.deliveries.push([arrived_us, received_us]);
        if !self.task_ids.insert(task_id) {
            self.duplicates += 1;
        }
    }

    fn malformed(&mut self, error: &anyhow::Error) {
        self.malformed += 1;
        if self.first_malformed.is_none() {
            self.first_malformed = Some(format!("{error:#}"));
        }
    }

    /// Counts and the latency of every delivery from `received_at` to its arrival.
    pub(crate) fn summary(&self) -> Value {
        let mut latencies: Vec<u32> = self
            .deliveries
            .iter()
            .map(|[arrived, received]| {
                u32::try_from(arrived.saturating_sub(*received).max(0)).unwrap_or(u32::MAX)
            })
            .collect();
        latencies.sort_unstable();
        json!({
            "delivered": self.deliveries.len(),
            "tasks": self.task_ids.len(),
            "duplicates": self.duplicates,
            "malformed": self.malformed,
            "first_malformed": self.first_malformed,
            "latency_ms": {
                "p50": percentile_ms(&latencies, 0.50),
                "p99": percentile_ms(&latencies, 0.99),
                "p999": percentile_ms(&latencies, 0.999),
                "max": latencies.last().map(|&us| f64::from(us) / 1000.0),
            },
        })
    }

    /// The summary with every delivery's `[arrived_us, received_at_us]`.
    pub(crate) fn report(&self) -> Value {
        let mut report = self.summary();
        report["deliveries"] = json!(self.deliveries);
        report
    }
}

/// A listening agent.
#[derive(Debug)]
pub(crate) struct Agent {
    listener: TcpListener,
    log: Arc<Mutex<Log>>,
}

impl Agent {
    pub(crate) async fn bind(address: SocketAddr) -> Result<Self> {
        let listener = TcpListener::bind(address)
            .await
            .with_context(|| format!("listening on {address}"))?;
        Ok(Self {
            listener,
            log: Arc::default(),
        })
    }

    pub(crate) fn local_addr(&self) -> Result<SocketAddr> {
        self.listener.local_addr().context("the listening address")
    }

    /// Answers deliveries until `shutdown` completes, then returns what it received. Answers
    /// still being written then are not waited for.
    pub(crate) async fn serve(self, shutdown: impl Future<Output = ()>) -> Log {
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        // Answers are tiny: send them at once.
                        let _ = stream.set_nodelay(true);
                        let log = Arc::clone(&self.log);
                        tokio::spawn(async move {
                            let service = service_fn(move |request| {
                                let log = Arc::clone(&log);
                                async move { Ok::<_, Infallible>(answer(&log, request).await) }
                            });
                            // A connection webhookd closes or breaks ends here; nothing to keep.
                            let _ = http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        });
                    }
                    Err(_) => tokio::time::sleep(ACCEPT_BACKOFF).await,
                },
            }
        }
        std::mem::take(&mut *self.log.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

async fn answer(log: &Mutex<Log>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    if request.method() != Method::POST {
        return reply(StatusCode::METHOD_NOT_ALLOWED, "deliveries are POSTs\n");
    }
    let body = match request.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => return reply(StatusCode::BAD_REQUEST, "the body broke off\n"),
    };
    let arrived = now_micros();
    let parsed = parse_delivery(&body);
    let mut log = log.lock().unwrap_or_else(PoisonError::into_inner);
    match parsed {
        Ok((task_id, received_at)) => {
            log.delivered(task_id, received_at, arrived);
            reply(StatusCode::OK, "")
        }
        Err(error) => {
            log.malformed(&error);
            reply(StatusCode::BAD_REQUEST, "not a task message\n")
        }
    }
}

fn reply(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response
}

/// `webhook-loadgen agent`: prints the listening address, answers deliveries until SIGTERM or
/// Ctrl-C, then prints the summary and writes the report with every delivery to `report`.
pub(crate) async fn agent(args: &crate::AgentArgs) -> Result<()> {
    let agent = Agent::bind(args.listen).await?;
    println!(
        "{}",
        json!({ "listening": agent.local_addr()?.to_string() })
    );
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("listening for SIGTERM")?;
    let log = agent
        .serve(async move {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        })
        .await;
    if let Some(path) = &args.report {
        std::fs::write(path, serde_json::to_vec(&log.report())?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    println!("{}", serde_json::to_string_pretty(&log.summary())?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use hyper::Uri;
    use hyper::header::{CONTENT_TYPE, HOST};
    use webhook_domain::model::{Task, Timestamp};
    use webhook_store_contract::fixtures;

    use super::*;
    use crate::client::Server;

    /// A task as webhookd stores it, received at `received_at`.
    fn task(received_at: Timestamp) -> Task {
        let organization = fixtures::organization(received_at);
        let target = fixtures::target(&organization, received_at);
        let (_, task) = fixtures::accepted(&fixtures::webhook(&target, received_at), received_at);
        task
    }

    #[test]
    fn reads_the_dispatchers_message() {
        let received_at = Timestamp::from_unix_micros(1_796_000_000_123_456);
        let task = task(received_at);
        let body = webhook_dispatch::task_body(&task);
        let (task_id, micros) = parse_delivery(&body).unwrap();
        assert_eq!(task_id, task.id.to_string());
        assert_eq!(micros, received_at.unix_micros());
    }

    #[test]
    fn refuses_what_is_not_a_task_message() {
        let check = |body: &str, fragment: &str| {
            let error = format!("{:#}", parse_delivery(body.as_bytes()).unwrap_err());
            assert!(error.contains(fragment), "{body}: {error}");
        };
        check("not json", "not a task message");
        check(r#"{"task_id":"t"}"#, "not a task message");
        check(
            r#"{"task_id":"t","source":{"received_at":"yesterday"}}"#,
            "not an RFC 3339 time",
        );
        // Offsets other than Z are read as the instant they denote.
        assert_eq!(
            parse_delivery(
                br#"{"task_id":"t","source":{"received_at":"1970-01-01T01:00:00.000001+01:00"}}"#
            )
            .unwrap()
            .1,
            1
        );
    }

    #[test]
    fn summary_counts_duplicates_and_measures_from_received_at() {
        let mut log = Log::default();
        log.delivered("a".to_owned(), 1_000, 3_000);
        log.delivered("b".to_owned(), 1_000, 5_000);
        log.delivered("a".to_owned(), 1_000, 11_000);
        log.malformed(&anyhow::anyhow!("not a task message"));
        let summary = log.summary();
        assert_eq!(summary["delivered"], 3);
        assert_eq!(summary["tasks"], 2);
        assert_eq!(summary["duplicates"], 1);
        assert_eq!(summary["malformed"], 1);
        assert_eq!(summary["first_malformed"], "not a task message");
        assert_eq!(summary["latency_ms"]["p50"], 4.0);
        assert_eq!(summary["latency_ms"]["max"], 10.0);
        assert_eq!(
            log.report()["deliveries"],
            json!([[3_000, 1_000], [5_000, 1_000], [11_000, 1_000]])
        );
    }

    #[tokio::test]
    async fn answers_deliveries_over_http_and_records_them() {
        let agent = Agent::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .await
            .unwrap();
        let address = agent.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(agent.serve(async {
            let _ = stopped.await;
        }));

        let uri: Uri = format!("http://{address}/deliveries").parse().unwrap();
        let server = Server::of(&uri).await.unwrap();
        let mut sender = server.connect().await.unwrap();
        let received_at = Timestamp::from_unix_micros(now_micros() - 5_000);
        let mut post = async |body: Vec<u8>| {
            let request = Request::post(uri.path())
                .header(HOST, server.host.clone())
                .header(CONTENT_TYPE, "application/json")
                .body(Full::new(Bytes::from(body)))
                .unwrap();
            sender.ready().await.unwrap();
            sender.send_request(request).await.unwrap().status()
        };
        let body = webhook_dispatch::task_body(&task(received_at));
        assert_eq!(post(body.clone()).await, StatusCode::OK);
        assert_eq!(post(body).await, StatusCode::OK);
        assert_eq!(post(b"{}".to_vec()).await, StatusCode::BAD_REQUEST);

        stop.send(()).unwrap();
        let log = serving.await.unwrap();
        let summary = log.summary();
        assert_eq!(summary["delivered"], 2);
        assert_eq!(summary["duplicates"], 1);
        assert_eq!(summary["malformed"], 1);
        let [arrived, received] = log.deliveries[0];
        assert_eq!(received, received_at.unix_micros());
        assert!(arrived - received >= 5_000, "{arrived} - {received}");
    }
}

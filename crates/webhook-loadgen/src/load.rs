//! The generator: `concurrency` keep-alive connections, each sending one request at a time to
//! the webhooks in turn, closed loop or on a fixed-rate schedule.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::header::{CONTENT_TYPE, HOST, HeaderName, HeaderValue};
use hyper::{Method, Request, Uri};
use serde_json::{Value, json};

use crate::client::{Sender, Server};
use crate::stats::Tally;

/// The event every request carries.
const BODY: &str = r#"{"message":"Load test event: deploy finished","event_type":"load.test","source":"webhook-loadgen"}"#;
const SECRET_HEADER: HeaderName = HeaderName::from_static("x-webhook-secret");
const GITHUB_SIGNATURE: HeaderName = HeaderName::from_static("x-hub-signature-256");
const GITHUB_EVENT: HeaderName = HeaderName::from_static("x-github-event");
/// The pause after a failed connection attempt, so a server that is gone is not hammered.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(10);

/// The webhooks to spread the load over, all on one server.
#[derive(Debug)]
pub(crate) struct Targets {
    url: Uri,
    webhooks: Vec<Webhook>,
}

#[derive(Debug)]
struct Webhook {
    path: Uri,
    /// The headers that authenticate each request, as the webhook's source expects them.
    auth: Vec<(HeaderName, HeaderValue)>,
}

/// The headers with which a sender of `source` authenticates [`BODY`] with `secret`: the
/// secret itself for `generic`, GitHub's signature of the body (and its event header) for
/// `github`.
fn auth_headers(source: &str, secret: &str) -> Result<Vec<(HeaderName, HeaderValue)>> {
    let sensitive = |text: &str| -> Result<HeaderValue> {
        let mut value = HeaderValue::from_str(text).context("the secret is not a header value")?;
        value.set_sensitive(true);
        Ok(value)
    };
    match source {
        "generic" => Ok(vec![(SECRET_HEADER, sensitive(secret)?)]),
        "github" => {
            let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
            let tag = ring::hmac::sign(&key, BODY.as_bytes());
            let hex = tag.as_ref().iter().fold(String::new(), |mut hex, b| {
                use std::fmt::Write as _;
                let _ = write!(hex, "{b:02x}");
                hex
            });
            Ok(vec![
                (GITHUB_SIGNATURE, sensitive(&format!("sha256={hex}"))?),
                (GITHUB_EVENT, HeaderValue::from_static("push")),
            ])
        }
        other => {
            bail!("the source {other:?} is not one the generator can sign for (generic, github)")
        }
    }
}

impl Targets {
    /// Reads `URL [SECRET [SOURCE]]` lines (`SOURCE` is `generic`, the default, or `github`);
    /// blank lines and `#` comments are skipped.
    pub(crate) fn parse(text: &str) -> Result<Self> {
        let mut first: Option<Uri> = None;
        let mut webhooks = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut fields = line.split_whitespace();
            let (Some(url), secret, source, None) =
                (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                bail!("line {}: expected `URL [SECRET [SOURCE]]`", number + 1);
            };
            let url: Uri = url
                .parse()
                .with_context(|| format!("line {}: {url:?} is not a URL", number + 1))?;
            match &first {
                Some(first) if first.authority() != url.authority() => bail!(
                    "line {}: every URL must be on one server ({} and {})",
                    number + 1,
                    first.authority().map_or("?", |a| a.as_str()),
                    url.authority().map_or("?", |a| a.as_str()),
                ),
                Some(_) => {}
                None => first = Some(url.clone()),
            }
            let path = url
                .path_and_query()
                .map_or("/", |path| path.as_str())
                .parse()
                .context("a URL's path")?;
            let auth = match secret {
                Some(secret) => auth_headers(source.unwrap_or("generic"), secret)
                    .with_context(|| format!("line {}", number + 1))?,
                None => Vec::new(),
            };
            webhooks.push(Webhook { path, auth });
        }
        let Some(url) = first else {
            bail!("no webhook URL in the file");
        };
        Ok(Self { url, webhooks })
    }

    fn request(&self, index: usize, host: &HeaderValue, body: &Bytes) -> Request<Full<Bytes>> {
        let webhook = &self.webhooks[index];
        let mut request = Request::new(Full::new(body.clone()));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = webhook.path.clone();
        let headers = request.headers_mut();
        headers.insert(HOST, host.clone());
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        for (name, value) in &webhook.auth {
            headers.insert(name.clone(), value.clone());
        }
        request
    }
}

/// How long to measure.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Measure {
    For(Duration),
    Requests(u64),
}

/// A run: connections, warm-up, what to measure and, for an open loop, the rate.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) concurrency: usize,
    pub(crate) warmup: Duration,
    pub(crate) measure: Measure,
    pub(crate) rate: Option<f64>,
}

/// Hands out the requests: when each is due, and whether it is measured.
#[derive(Debug)]
struct Schedule {
    start: Instant,
    measure_from: Instant,
    end: Option<Instant>,
    limit: Option<u64>,
    rate: Option<f64>,
    issued: AtomicU64,
    measured: AtomicU64,
}

enum Slot {
    Warmup(Instant),
    Measured(Instant),
    Done,
}

impl Schedule {
    fn new(plan: &Plan) -> Self {
        let start = Instant::now();
        let measure_from = start + plan.warmup;
        let (end, limit) = match plan.measure {
            Measure::For(duration) => (Some(measure_from + duration), None),
            Measure::Requests(requests) => (None, Some(requests)),
        };
        Self {
            start,
            measure_from,
            end,
            limit,
            rate: plan.rate,
            issued: AtomicU64::new(0),
            measured: AtomicU64::new(0),
        }
    }

    /// The next request: in a closed loop due now, in an open loop at its place in the schedule.
    fn next(&self) -> Slot {
        let due = match self.rate {
            Some(rate) => {
                let index = self.issued.fetch_add(1, Ordering::Relaxed);
                #[expect(
                    clippy::cast_precision_loss,
                    reason = "request indexes stay far below 2^52"
                )]
                let offset = Duration::from_secs_f64(index as f64 / rate);
                self.start + offset
            }
            None => Instant::now(),
        };
        if due < self.measure_from {
            return Slot::Warmup(due);
        }
        if self.end.is_some_and(|end| due >= end) {
            return Slot::Done;
        }
        if self
            .limit
            .is_some_and(|limit| self.measured.fetch_add(1, Ordering::Relaxed) >= limit)
        {
            return Slot::Done;
        }
        Slot::Measured(due)
    }
}

/// Runs `plan` against `targets` and returns the report.
pub(crate) async fn run(targets: Targets, plan: &Plan) -> Result<Value> {
    let server = Arc::new(Server::of(&targets.url).await?);
    // Fail early and clearly when nothing listens.
    drop(server.connect().await?);
    let targets = Arc::new(targets);
    let schedule = Arc::new(Schedule::new(plan));
    // Room for the latencies each connection records, so recording does not reallocate.
    let expected = match (plan.measure, plan.rate) {
        (Measure::Requests(n), _) => n,
        (Measure::For(duration), Some(rate)) => {
            #[expect(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                reason = "a capacity hint from positive, finite figures"
            )]
            let requests = (duration.as_secs_f64() * rate) as u64;
            requests
        }
        (Measure::For(duration), None) => duration.as_secs().saturating_mul(20_000),
    };
    let per_worker = usize::try_from(expected / plan.concurrency as u64 + 1)
        .unwrap_or(0)
        .min(1 << 24);
    let workers: Vec<_> = (0..plan.concurrency)
        .map(|worker| {
            let first = worker * targets.webhooks.len() / plan.concurrency;
            tokio::spawn(connection(
                Arc::clone(&server),
                Arc::clone(&targets),
                Arc::clone(&schedule),
                first,
                per_worker,
            ))
        })
        .collect();
    let mut tally = Tally::default();
    for worker in workers {
        tally.merge(worker.await.context("a connection task failed")?);
    }
    let mut report = tally.report(schedule.measure_from);
    report["concurrency"] = json!(plan.concurrency);
    report["offered_rate"] = json!(plan.rate);
    report["warmup_s"] = json!(plan.warmup.as_secs_f64());
    report["webhooks"] = json!(targets.webhooks.len());
    Ok(report)
}

/// One connection's loop: takes the next slot, waits until it is due, sends to the next webhook
/// in turn; reconnects when the server closed the connection.
async fn connection(
    server: Arc<Server>,
    targets: Arc<Targets>,
    schedule: Arc<Schedule>,
    first: usize,
    capacity: usize,
) -> Tally {
    let body = Bytes::from_static(BODY.as_bytes());
    let mut tally = Tally::with_capacity(capacity);
    let mut sender: Option<Sender> = None;
    let mut next = first;
    loop {
        let (due, measured) = match schedule.next() {
            Slot::Warmup(due) => (due, false),
            Slot::Measured(due) => (due, true),
            Slot::Done => break,
        };
        // Latency counts from when a request was due, so queueing behind a slow server counts;
        // a timer firing late for a request due in the future is the generator's, not counted.
        let from = if due > Instant::now() {
            tokio::time::sleep_until(due.into()).await;
            Instant::now()
        } else {
            due
        };
        let request = targets.request(next, &server.host, &body);
        next = (next + 1) % targets.webhooks.len();
        let result = send(&server, &mut sender, request).await;
        let done = Instant::now();
        match result {
            Ok(status) if measured => tally.answered(status, done - from, done),
            Ok(_) => {}
            Err(error) => {
                sender = None;
                if measured {
                    tally.failed(&error, done);
                }
                tokio::time::sleep(RECONNECT_BACKOFF).await;
            }
        }
    }
    tally
}

/// Sends `request` on the open connection, or a new one when there is none or it was closed;
/// reads the whole answer and returns its status.
async fn send(
    server: &Server,
    sender: &mut Option<Sender>,
    request: Request<Full<Bytes>>,
) -> Result<u16> {
    let usable = match sender {
        Some(open) => !open.is_closed() && open.ready().await.is_ok(),
        None => false,
    };
    let open = match sender {
        Some(open) if usable => open,
        _ => sender.insert(server.connect().await?),
    };
    let response = open
        .send_request(request)
        .await
        .context("sending the request")?;
    let status = response.status().as_u16();
    response
        .into_body()
        .collect()
        .await
        .context("reading the answer")?;
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_file_lines() {
        let targets = Targets::parse(
            "# webhooks\n\nhttp://127.0.0.1:8080/api/webhooks/a s3cret\n  http://127.0.0.1:8080/api/webhooks/b\nhttp://127.0.0.1:8080/api/webhooks/c It's-a-Secret-to-Everybody github\n",
        )
        .unwrap();
        assert_eq!(targets.webhooks.len(), 3);
        assert_eq!(targets.webhooks[0].path, "/api/webhooks/a");
        let auth = |n: usize| -> Vec<(String, Vec<u8>)> {
            targets.webhooks[n]
                .auth
                .iter()
                .map(|(name, value)| (name.to_string(), value.as_bytes().to_vec()))
                .collect()
        };
        assert_eq!(
            auth(0),
            vec![("x-webhook-secret".to_owned(), b"s3cret".to_vec())]
        );
        assert!(auth(1).is_empty());
        // The body's HMAC-SHA256 under the secret, as GitHub signs.
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"It's-a-Secret-to-Everybody");
        assert!(auth(2).iter().any(|(name, value)| {
            name == "x-hub-signature-256"
                && value.strip_prefix(b"sha256=").is_some_and(|hex| {
                    let tag: Vec<u8> = hex
                        .chunks(2)
                        .map(|pair| {
                            u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap()
                        })
                        .collect();
                    ring::hmac::verify(&key, BODY.as_bytes(), &tag).is_ok()
                })
        }));
    }

    #[test]
    fn url_file_errors() {
        let check = |text: &str, fragment: &str| {
            let error = format!("{:#}", Targets::parse(text).unwrap_err());
            assert!(error.contains(fragment), "{text:?}: {error}");
        };
        check("", "no webhook URL");
        check(
            "http://a:1/x s github extra\n",
            "expected `URL [SECRET [SOURCE]]`",
        );
        check(
            "http://a:1/x s gitea\n",
            "not one the generator can sign for",
        );
        check("http://a:1/x\nhttp://b:1/y\n", "one server");
    }

    #[test]
    fn open_loop_schedule_spaces_requests_and_stops_at_the_limit() {
        let plan = Plan {
            concurrency: 1,
            warmup: Duration::from_millis(10),
            measure: Measure::Requests(2),
            rate: Some(1000.0),
        };
        let schedule = Schedule::new(&plan);
        let mut warmups = 0;
        let mut measured = Vec::new();
        loop {
            match schedule.next() {
                Slot::Warmup(_) => warmups += 1,
                Slot::Measured(due) => measured.push(due),
                Slot::Done => break,
            }
        }
        assert_eq!(warmups, 10);
        assert_eq!(measured.len(), 2);
        assert_eq!(measured[1] - measured[0], Duration::from_millis(1));
        assert_eq!(measured[0] - schedule.start, Duration::from_millis(10));
    }
}

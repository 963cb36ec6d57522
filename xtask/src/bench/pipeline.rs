//! `cargo xtask bench pipeline`: ingest and delivery together. webhookd runs with dispatch on and
//! delivers every accepted event to a loopback agent (`webhook-loadgen agent`) answering 200 at
//! once, on SQLite and on PostgreSQL. Against the ingest-only maximum measured on the same
//! server, it offers 80 % of it at a fixed rate and reports what was accepted, what was delivered
//! over the same window, the backlog at both ends of it and the CPU time per delivered event;
//! then the time from ingest to the agent at half of the accepted rate, and the closed-loop
//! maximum with dispatch on.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::database::BenchDatabase;
use super::process::{Programs, Server, free_port};
use super::{
    CONCURRENCY, MEASURE_SECS, ORGANIZATIONS, WARMUP_SECS, WEBHOOKS_PER_ORGANIZATION, report_of,
    write_report,
};
use crate::{cmd, postgres};

/// Connections of the fixed-rate runs: enough that the generator keeps to its schedule while
/// answers slow down, so a rate not reached is the server's doing.
const RATE_CONCURRENCY: &str = "128";
/// The fixed rate offered, as a share of the ingest-only maximum (the run is named for it).
const RATE_SHARE: f64 = 0.8;
/// How long the queue may take to empty after a run before the next one starts anyway.
const DRAIN_DEADLINE: Duration = Duration::from_secs(90);
const DRAIN_POLL: Duration = Duration::from_millis(250);

/// The throughput targets, as shares and bounds.
const ACCEPTED_OF_OFFERED: f64 = 0.95;
const DELIVERED_OF_ACCEPTED: f64 = 0.95;
/// The backlog at the end of the window, in seconds of ingest at the accepted rate.
const BACKLOG_SECONDS: f64 = 1.0;
const AGENT_P99_MS: f64 = 50.0;
const INGEST_P99_MS: f64 = 5.0;

/// The series of webhookd's `/metrics` the backlog is counted from.
const ACCEPTED: &str = "webhookd_ingest_requests_total{outcome=\"accepted\"}";
const DELIVERED: &str = "webhookd_dispatch_attempts_total{result=\"delivered\"}";
const FAILED: &str = "webhookd_dispatch_attempts_total{result=\"failed\"}";
const RETRIED: &str = "webhookd_dispatch_attempts_total{result=\"retry\"}";

/// webhookd's counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Counters {
    accepted: f64,
    delivered: f64,
    failed: f64,
    retried: f64,
}

impl Counters {
    /// The counters in the samples `webhook-loadgen metrics` printed; a series not there yet
    /// (no event of its kind so far) is 0.
    fn from_samples(samples: &Value) -> Result<Self> {
        if !samples.is_object() {
            bail!("the metrics are not a JSON object: {samples}");
        }
        let read = |series: &str| samples[series].as_f64().unwrap_or(0.0);
        Ok(Self {
            accepted: read(ACCEPTED),
            delivered: read(DELIVERED),
            failed: read(FAILED),
            retried: read(RETRIED),
        })
    }

    /// Tasks accepted since `base` accepted events and not finished yet (delivered, or failed
    /// for good): the queue of the agent targets, when `base` counts every event accepted before
    /// the first one for them. A task in a retry's backoff is still waiting.
    fn backlog(&self, base: f64) -> f64 {
        (self.accepted - base) - (self.delivered + self.failed)
    }
}

/// What was read at one edge of a measured window.
#[derive(Debug, Clone, Copy)]
struct Snapshot {
    /// Wall-clock time in µs since the Unix epoch: the clock of `received_at`.
    at_us: i64,
    server_cpu: Duration,
    db_cpu: Duration,
    counters: Counters,
}

/// What became of the queue after a run.
#[derive(Debug, Clone, Copy)]
struct Drain {
    seconds: f64,
    /// Tasks still waiting at the deadline; 0 when the queue emptied.
    left: f64,
}

/// The time from `received_at` to the agent, over the events received in a window.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Latency {
    deliveries: usize,
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    max_ms: f64,
}

/// Which load a run offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Closed loop to webhooks whose target has no endpoint: ingest alone, dispatch idle.
    IngestOnly,
    /// Fixed rate, a share of the ingest-only maximum.
    Offered,
    /// Fixed rate, half of what the offered run accepted.
    Half,
    /// Closed loop to the agent's webhooks.
    ClosedLoop,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::IngestOnly => "ingest only",
            Self::Offered => "80% of max",
            Self::Half => "half rate",
            Self::ClosedLoop => "closed loop",
        }
    }
}

/// One measured window of one store.
#[derive(Debug, Clone)]
struct Run {
    kind: Kind,
    /// Requests per second scheduled; `None` in a closed loop.
    offered: Option<f64>,
    start: Snapshot,
    end: Snapshot,
    /// The generator's report.
    load: Value,
    drain: Option<Drain>,
    latency: Option<Latency>,
}

impl Run {
    fn seconds(&self) -> f64 {
        micros_between(self.start.at_us, self.end.at_us) / 1e6
    }

    fn accepted(&self) -> f64 {
        self.end.counters.accepted - self.start.counters.accepted
    }

    fn delivered(&self) -> f64 {
        self.end.counters.delivered - self.start.counters.delivered
    }

    fn accepted_per_sec(&self) -> f64 {
        per_second(self.accepted(), self.seconds())
    }

    fn delivered_per_sec(&self) -> f64 {
        per_second(self.delivered(), self.seconds())
    }

    /// Events the CPU time is shared over: those accepted on the ingest-only run, those
    /// delivered on the others (each costs its ingest and its delivery).
    fn events(&self) -> f64 {
        match self.kind {
            Kind::IngestOnly => self.accepted(),
            _ => self.delivered(),
        }
    }

    /// The server's and PostgreSQL's CPU time per event, in µs.
    fn cpu_us(&self) -> (f64, f64) {
        let per_event = |before: Duration, after: Duration| {
            let events = self.events();
            if events > 0.0 {
                after.saturating_sub(before).as_secs_f64() * 1e6 / events
            } else {
                f64::NAN
            }
        };
        (
            per_event(self.start.server_cpu, self.end.server_cpu),
            per_event(self.start.db_cpu, self.end.db_cpu),
        )
    }

    fn ingest_p99_ms(&self) -> f64 {
        self.load["latency_ms"]["p99"].as_f64().unwrap_or(f64::NAN)
    }

    fn json(&self, base: f64, postgres: bool) -> Value {
        let (server_us, db_us) = self.cpu_us();
        let pipeline = self.kind != Kind::IngestOnly;
        json!({
            "run": self.kind.name(),
            "offered_per_sec": self.offered,
            "window_s": self.seconds(),
            "accepted": self.accepted(),
            "accepted_per_sec": self.accepted_per_sec(),
            "delivered": pipeline.then(|| self.delivered()),
            "delivered_per_sec": pipeline.then(|| self.delivered_per_sec()),
            "retried": self.end.counters.retried - self.start.counters.retried,
            "failed": self.end.counters.failed - self.start.counters.failed,
            "backlog": pipeline.then(|| json!({
                "start": self.start.counters.backlog(base),
                "end": self.end.counters.backlog(base),
            })),
            "cpu_us_per_event": {
                "per": if pipeline { "delivered event" } else { "accepted event" },
                "server": server_us,
                "postgres": postgres.then_some(db_us),
            },
            "agent_latency_ms": self.latency.map(|l| json!({
                "deliveries": l.deliveries,
                "p50": l.p50_ms,
                "p99": l.p99_ms,
                "p999": l.p999_ms,
                "max": l.max_ms,
            })),
            "drain": self.drain.map(|d| json!({ "seconds": d.seconds, "left": d.left })),
            "load": self.load,
        })
    }
}

fn micros_between(from: i64, to: i64) -> f64 {
    #[expect(
        clippy::cast_precision_loss,
        reason = "a difference of µs timestamps, far below 2^52"
    )]
    let micros = to.saturating_sub(from) as f64;
    micros
}

fn per_second(count: f64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        count / seconds
    } else {
        f64::NAN
    }
}

/// The `q` quantile (nearest rank) of `sorted` µs, in ms.
fn percentile_ms(sorted: &[i64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "a rank within a slice's length, computed from a fraction in [0, 1]"
    )]
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    micros_between(0, sorted[rank - 1]) / 1000.0
}

/// The time from `received_at` to arrival of the deliveries (`[arrived, received_at]` in µs) of
/// events received in `[from_us, to_us)`; `None` when there are none.
fn latency_of(deliveries: &[[i64; 2]], from_us: i64, to_us: i64) -> Option<Latency> {
    let mut micros: Vec<i64> = deliveries
        .iter()
        .filter(|[_, received]| (from_us..to_us).contains(received))
        .map(|[arrived, received]| arrived - received)
        .collect();
    micros.sort_unstable();
    let max = *micros.last()?;
    Some(Latency {
        deliveries: micros.len(),
        p50_ms: percentile_ms(&micros, 0.50),
        p99_ms: percentile_ms(&micros, 0.99),
        p999_ms: percentile_ms(&micros, 0.999),
        max_ms: micros_between(0, max) / 1000.0,
    })
}

/// The deliveries in the agent's report.
fn deliveries_of(report: &Value) -> Result<Vec<[i64; 2]>> {
    report["deliveries"]
        .as_array()
        .context("the agent's report has no deliveries")?
        .iter()
        .map(|pair| match pair.as_array().map(Vec::as_slice) {
            Some([arrived, received]) => match (arrived.as_i64(), received.as_i64()) {
                (Some(arrived), Some(received)) => Ok([arrived, received]),
                _ => bail!("a delivery of the agent's report is not two integers: {pair}"),
            },
            _ => bail!("a delivery of the agent's report is not a pair: {pair}"),
        })
        .collect()
}

/// The runs of one store and what the agent received.
struct StoreRuns {
    store: &'static str,
    runs: Vec<Run>,
    /// Accepted events counted before the first one for the agent's webhooks.
    base: f64,
    /// webhookd's counters once the last run's queue emptied (or its deadline passed).
    last: Counters,
    agent: Value,
    postgres: bool,
}

impl StoreRuns {
    fn run(&self, kind: Kind) -> Option<&Run> {
        self.runs.iter().find(|run| run.kind == kind)
    }

    /// Whether each throughput target is met, in one line.
    fn verdicts(&self) -> String {
        let met = |ok: bool| if ok { "met" } else { "NOT met" };
        let mut line = format!("{}:", self.store);
        if let Some(run) = self.run(Kind::Offered) {
            let offered = run.offered.unwrap_or(f64::NAN);
            let accepted = run.accepted_per_sec();
            let delivered = run.delivered_per_sec();
            let backlog_s = run.end.counters.backlog(self.base) / accepted;
            let _ = write!(
                line,
                " accepted {:.1}% of offered (>= {:.0}%: {}); delivered {:.1}% of accepted \
                 (>= {:.0}%: {}); backlog at the end {:.2} s of ingest (<= {BACKLOG_SECONDS} s: \
                 {});",
                100.0 * accepted / offered,
                100.0 * ACCEPTED_OF_OFFERED,
                met(accepted >= ACCEPTED_OF_OFFERED * offered),
                100.0 * delivered / accepted,
                100.0 * DELIVERED_OF_ACCEPTED,
                met(delivered >= DELIVERED_OF_ACCEPTED * accepted),
                backlog_s,
                met(backlog_s <= BACKLOG_SECONDS),
            );
        }
        if let Some(run) = self.run(Kind::Half) {
            let agent_p99 = run.latency.map_or(f64::NAN, |l| l.p99_ms);
            let ingest_p99 = run.ingest_p99_ms();
            let _ = write!(
                line,
                " at half rate 202 -> agent p99 {agent_p99:.1} ms (<= {AGENT_P99_MS} ms: {}), \
                 ingest p99 {ingest_p99:.1} ms (<= {INGEST_P99_MS} ms: {})",
                met(agent_p99 <= AGENT_P99_MS),
                met(ingest_p99 <= INGEST_P99_MS),
            );
        }
        line
    }

    /// What does not look like a clean run: refused requests, retries or failures, a queue
    /// that did not empty, an agent that saw something other than each task once.
    fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        for run in &self.runs {
            let name = run.kind.name();
            let requests = run.load["requests"].as_u64().unwrap_or(0);
            let accepted = run.load["accepted"].as_u64().unwrap_or(0);
            if requests != accepted {
                warnings.push(format!(
                    "{} {name}: {accepted} of {requests} requests accepted (status {}, errors {}, \
                     first error {})",
                    self.store, run.load["status"], run.load["errors"], run.load["first_error"]
                ));
            }
            let retried = run.end.counters.retried - run.start.counters.retried;
            let failed = run.end.counters.failed - run.start.counters.failed;
            if retried > 0.0 || failed > 0.0 {
                warnings.push(format!(
                    "{} {name}: {retried} attempts to be retried and {failed} failed tasks",
                    self.store
                ));
            }
            if let Some(drain) = run.drain
                && drain.left > 0.0
            {
                warnings.push(format!(
                    "{} {name}: {} tasks still queued {:.0} s after the run; the next run began \
                     with them",
                    self.store, drain.left, drain.seconds
                ));
            }
        }
        let count = |key: &str| self.agent[key].as_u64().unwrap_or(0);
        if count("duplicates") > 0 || count("malformed") > 0 {
            warnings.push(format!(
                "{}: the agent received {} repeated deliveries and {} bodies that were not task \
                 messages (first: {})",
                self.store,
                count("duplicates"),
                count("malformed"),
                self.agent["first_malformed"]
            ));
        }
        #[expect(clippy::cast_precision_loss, reason = "delivery counts far below 2^52")]
        let agent_delivered = count("delivered") as f64;
        if (agent_delivered - self.last.delivered).abs() >= 0.5 {
            warnings.push(format!(
                "{}: webhookd counted {} deliveries, the agent received {agent_delivered}",
                self.store, self.last.delivered
            ));
        }
        warnings
    }

    fn json(&self) -> Value {
        json!({
            "store": self.store,
            "runs": self.runs.iter().map(|run| run.json(self.base, self.postgres)).collect::<Vec<_>>(),
            "agent": self.agent,
            "verdicts": self.verdicts(),
        })
    }
}

/// The table of `bench pipeline`: a row per run of each store, then whether each target is met
/// and what looked wrong.
fn pipeline_table(stores: &[StoreRuns], pinning: &str) -> Result<String> {
    let mut table = String::new();
    writeln!(
        table,
        "{:<9} {:<12} {:>9} {:>10} {:>11} {:>12} {:>10} {:>7} {:>7} | {:>9} {:>8} {:>8} {:>8} | {:>10}",
        "store",
        "run",
        "offered/s",
        "accepted/s",
        "delivered/s",
        "queued@start",
        "queued@end",
        "cpu µs",
        "db µs",
        "to agent",
        "p50 ms",
        "p99 ms",
        "p999 ms",
        "ingest p99",
    )?;
    let or_dash = |value: Option<f64>, decimals: usize| match value {
        Some(v) if v.is_finite() => format!("{v:.decimals$}"),
        _ => "-".to_owned(),
    };
    for store in stores {
        for run in &store.runs {
            let pipeline = run.kind != Kind::IngestOnly;
            let (server_us, db_us) = run.cpu_us();
            let latency = |pick: fn(&Latency) -> f64| or_dash(run.latency.as_ref().map(pick), 1);
            writeln!(
                table,
                "{:<9} {:<12} {:>9} {:>10.0} {:>11} {:>12} {:>10} {:>7.1} {:>7} | {:>9} {:>8} {:>8} {:>8} | {:>10.2}",
                store.store,
                run.kind.name(),
                or_dash(run.offered, 0),
                run.accepted_per_sec(),
                or_dash(pipeline.then(|| run.delivered_per_sec()), 0),
                or_dash(pipeline.then(|| run.start.counters.backlog(store.base)), 0),
                or_dash(pipeline.then(|| run.end.counters.backlog(store.base)), 0),
                server_us,
                or_dash(store.postgres.then_some(db_us), 1),
                or_dash(
                    run.latency.map(|l| {
                        #[expect(clippy::cast_precision_loss, reason = "counts far below 2^52")]
                        let count = l.deliveries as f64;
                        count
                    }),
                    0
                ),
                latency(|l| l.p50_ms),
                latency(|l| l.p99_ms),
                latency(|l| l.p999_ms),
                run.ingest_p99_ms(),
            )?;
        }
    }
    let share = 100.0 * RATE_SHARE;
    for line in [
        format!(
            "{ORGANIZATIONS} organizations x {WEBHOOKS_PER_ORGANIZATION} webhooks; each \
             organization's agent target delivers to a loopback agent answering 200 at once; \
             dispatch and rate limiter at webhookd's defaults (the limiter's windows shared in \
             the database on PostgreSQL, in memory on SQLite)."
        ),
        format!(
            "ingest only: closed loop, {CONCURRENCY} connections, to webhooks whose target has no \
             endpoint (dispatch on, nothing to deliver); {share:.0}% of max: that share of it at a \
             fixed rate over {RATE_CONCURRENCY} connections; half rate: half of what that run \
             accepted; closed loop: {CONCURRENCY} connections to the agent's webhooks."
        ),
        format!(
            "Each run: {MEASURE_SECS} s measured after {WARMUP_SECS} s of warm-up, then a wait \
             for the queue to empty. accepted/s, delivered/s: webhookd's counters over the same \
             window; queued@start, queued@end: tasks accepted and not yet delivered at its edges."
        ),
        "cpu µs, db µs: CPU time (user and system) of the server and of every postgres process \
         per delivered event (per accepted event on the ingest-only row)."
            .to_owned(),
        "to agent: deliveries of the events received in the window, timed from their \
         `source.received_at` to their arrival at the agent; ingest p99: the generator's, from \
         when each request was due."
            .to_owned(),
        format!("{pinning}."),
    ] {
        writeln!(table, "{line}")?;
    }
    for store in stores {
        writeln!(table, "{}", store.verdicts())?;
    }
    for store in stores {
        for warning in store.warnings() {
            writeln!(table, "warning: {warning}")?;
        }
    }
    Ok(table)
}

/// `cargo xtask bench pipeline`.
pub(crate) fn pipeline() -> Result<()> {
    let bench = Programs::build("pipeline")?;

    eprintln!("==> webhookd on SQLite, dispatch on");
    let sqlite = bench.store("sqlite", None)?;
    eprintln!("==> webhookd on PostgreSQL, dispatch on");
    let server = postgres::for_bench()?;
    let database = BenchDatabase::create(server.url())?;
    let postgres = bench.store("postgres", Some(&database.url));
    drop(database);
    drop(server);
    let stores = [sqlite, postgres?];

    let table = pipeline_table(&stores, &bench.pinning.describe())?;
    print!("{table}");
    write_report(
        "pipeline",
        &json!({
            "organizations": ORGANIZATIONS,
            "webhooks_per_organization": WEBHOOKS_PER_ORGANIZATION,
            "rate_share": RATE_SHARE,
            "pinned": bench.pinning.cores.is_some(),
            "stores": stores.iter().map(StoreRuns::json).collect::<Vec<_>>(),
            "table": table,
        }),
    )
}

/// webhookd serving one store.
struct Node<'a> {
    server: Server,
    /// `http://127.0.0.1:<port>`.
    base_url: String,
    postgres: bool,
    bench: &'a Programs,
}

impl Programs {
    /// Every run on one store: an agent, then webhookd with dispatch on, its organizations and
    /// their webhooks (with and without an endpoint), the runs in order, and what the agent saw.
    fn store(&self, store: &'static str, database_url: Option<&str>) -> Result<StoreRuns> {
        let data_dir = self.scratch.path.join(store);
        let keys = self.organizations(&data_dir, database_url, ORGANIZATIONS)?;

        let agent_port = free_port()?;
        let agent_report = self.scratch.path.join(format!("{store}-agent.json"));
        let mut agent = self.pinning.generator(&self.loadgen);
        agent
            .args(["agent", "--listen", &format!("127.0.0.1:{agent_port}")])
            .arg("--report")
            .arg(&agent_report);
        let agent = Server::start("agent", agent, agent_port, &self.scratch.path)?;

        let port = free_port()?;
        let listen = format!("127.0.0.1:{port}");
        let serve = self.webhookd(
            &data_dir,
            database_url,
            &[
                "serve",
                "--listen",
                &listen,
                "--log-format",
                "json",
                "--allow-private-targets",
            ],
        );
        let node = Node {
            server: Server::start("webhookd", serve, port, &self.scratch.path)?,
            base_url: format!("http://{listen}"),
            postgres: database_url.is_some(),
            bench: self,
        };
        let board = node.provision(store, &keys, None)?;
        let agent_url = format!("http://127.0.0.1:{agent_port}");
        let delivered = node.provision(store, &keys, Some(&agent_url))?;
        let (mut runs, base) = node.runs(store, &board, &delivered)?;
        let last = node.counters()?;

        node.server.stop()?;
        agent.stop()?;
        let text = std::fs::read_to_string(&agent_report)
            .with_context(|| format!("reading {}", agent_report.display()))?;
        let mut agent: Value = serde_json::from_str(&text)
            .with_context(|| format!("reading {}", agent_report.display()))?;
        let deliveries = deliveries_of(&agent)?;
        for run in &mut runs {
            if run.kind != Kind::IngestOnly {
                run.latency = latency_of(&deliveries, run.start.at_us, run.end.at_us);
            }
        }
        if let Some(object) = agent.as_object_mut() {
            object.remove("deliveries");
        }
        Ok(StoreRuns {
            store,
            runs,
            base,
            last,
            agent,
            postgres: database_url.is_some(),
        })
    }

    /// The generator on `url_file` for the warm-up and the measured seconds, at `rate` or in a
    /// closed loop.
    fn loadgen_at(&self, url_file: &Path, rate: Option<f64>) -> Command {
        let mut command = self.pinning.generator(&self.loadgen);
        command.arg("run").arg("--url-file").arg(url_file).args([
            "--warmup",
            WARMUP_SECS,
            "--duration",
            MEASURE_SECS,
        ]);
        match rate {
            Some(rate) => command.args([
                "--concurrency",
                RATE_CONCURRENCY,
                "--rate",
                &format!("{rate:.0}"),
            ]),
            None => command.args(["--concurrency", CONCURRENCY]),
        };
        eprintln!("$ {}", cmd::display(&command));
        command
    }
}

impl Node<'_> {
    /// A webhook for each organization of `keys` on a target of its own, delivering to
    /// `endpoint` (a path of it per organization), or without an endpoint: its tasks wait on
    /// the board. Returns the file of their URLs for the generator.
    fn provision(&self, store: &str, keys: &[String], endpoint: Option<&str>) -> Result<PathBuf> {
        let mut urls = String::new();
        for (n, key) in keys.iter().enumerate() {
            let mut provision = Command::new(&self.bench.loadgen);
            provision
                .args([
                    "provision",
                    "--base-url",
                    &self.base_url,
                    "--webhooks",
                    &WEBHOOKS_PER_ORGANIZATION.to_string(),
                ])
                .env("WEBHOOKD_API_KEY", key);
            if let Some(endpoint) = endpoint {
                provision
                    .arg("--endpoint-url")
                    .arg(format!("{endpoint}/deliveries/{n}"));
            }
            urls.push_str(&cmd::read(&mut provision)?);
        }
        let name = if endpoint.is_some() { "agent" } else { "board" };
        let file = self.bench.scratch.path.join(format!("{store}-{name}.urls"));
        std::fs::write(&file, urls).with_context(|| format!("writing {}", file.display()))?;
        Ok(file)
    }

    /// The runs in order: the ingest-only maximum on the `board` webhooks, then on the
    /// `delivered` ones a share of it, half of what that accepted, and the closed loop. Returns
    /// them with the count of events accepted before the first delivered one.
    fn runs(&self, store: &str, board: &Path, delivered: &Path) -> Result<(Vec<Run>, f64)> {
        let mut runs = Vec::new();
        let ingest_only = self.measure(Kind::IngestOnly, board, None, 0.0)?;
        let max = ingest_only.accepted_per_sec();
        if max.is_nan() || max < 1.0 {
            bail!(
                "{store}: no event was accepted on the ingest-only run: {}",
                ingest_only.load
            );
        }
        runs.push(ingest_only);
        // Every event accepted so far is on the board; from here each is delivered.
        let base = self.counters()?.accepted;
        let offered = RATE_SHARE * max;
        eprintln!("{store}: ingest-only maximum {max:.0}/s; offering {offered:.0}/s");
        let rate = self.measure(Kind::Offered, delivered, Some(offered), base)?;
        let half = rate.accepted_per_sec() / 2.0;
        runs.push(rate);
        eprintln!("{store}: now at {half:.0}/s");
        runs.push(self.measure(Kind::Half, delivered, Some(half), base)?);
        runs.push(self.measure(Kind::ClosedLoop, delivered, None, base)?);
        Ok((runs, base))
    }

    fn counters(&self) -> Result<Counters> {
        let mut command = Command::new(&self.bench.loadgen);
        command.args(["metrics", "--url", &format!("{}/metrics", self.base_url)]);
        let output = cmd::read(&mut command)?;
        Counters::from_samples(&report_of(&command, &output)?)
    }

    fn snapshot(&self) -> Result<Snapshot> {
        let at_us = unix_micros();
        let server_cpu = self.bench.cpu.of_process(self.server.child.id())?;
        let db_cpu = if self.postgres {
            self.bench.cpu.of_named("postgres")
        } else {
            Duration::ZERO
        };
        Ok(Snapshot {
            at_us,
            server_cpu,
            db_cpu,
            counters: self.counters()?,
        })
    }

    /// One run: the generator on `url_file`, the edges of its measured window read, then (for
    /// the agent's webhooks) a wait for the queue to empty.
    fn measure(&self, kind: Kind, url_file: &Path, rate: Option<f64>, base: f64) -> Result<Run> {
        let mut command = self.bench.loadgen_at(url_file, rate);
        let running = cmd::start_read(&mut command)?;
        std::thread::sleep(Duration::from_secs_f64(WARMUP_SECS.parse()?));
        let start = self.snapshot();
        let output = cmd::finish_read(&command, running);
        let end = self.snapshot()?;
        let mut run = Run {
            kind,
            offered: rate,
            start: start?,
            end,
            load: report_of(&command, &output?)?,
            drain: None,
            latency: None,
        };
        if kind != Kind::IngestOnly {
            run.drain = Some(self.drain(base)?);
        }
        eprintln!(
            "{}: {:.0} accepted/s, {:.0} delivered/s{}",
            kind.name(),
            run.accepted_per_sec(),
            run.delivered_per_sec(),
            run.drain.map_or(String::new(), |d| format!(
                "; queue emptied in {:.1} s",
                d.seconds
            )),
        );
        Ok(run)
    }

    /// Waits until every task accepted since `base` is delivered, or [`DRAIN_DEADLINE`].
    fn drain(&self, base: f64) -> Result<Drain> {
        let started = Instant::now();
        loop {
            let left = self.counters()?.backlog(base);
            let seconds = started.elapsed().as_secs_f64();
            if left <= 0.0 {
                return Ok(Drain { seconds, left: 0.0 });
            }
            if started.elapsed() >= DRAIN_DEADLINE {
                return Ok(Drain { seconds, left });
            }
            std::thread::sleep(DRAIN_POLL);
        }
    }
}

/// Now, in µs since the Unix epoch.
fn unix_micros() -> i64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_micros()).unwrap_or(i64::MAX)
}

#[cfg(test)]
#[expect(
    clippy::float_cmp,
    reason = "the figures are exact: small integers and binary fractions of them"
)]
mod tests {
    use super::*;

    fn counters(accepted: f64, delivered: f64) -> Counters {
        Counters {
            accepted,
            delivered,
            ..Counters::default()
        }
    }

    fn snapshot(at_s: i64, cpu_ms: u64, counters: Counters) -> Snapshot {
        Snapshot {
            at_us: at_s * 1_000_000,
            server_cpu: Duration::from_millis(cpu_ms),
            db_cpu: Duration::from_millis(2 * cpu_ms),
            counters,
        }
    }

    fn run(kind: Kind, offered: Option<f64>, start: Snapshot, end: Snapshot) -> Run {
        Run {
            kind,
            offered,
            start,
            end,
            load: json!({
                "requests": 100,
                "accepted": 100,
                "latency_ms": { "p99": 2.5 },
            }),
            drain: Some(Drain {
                seconds: 1.0,
                left: 0.0,
            }),
            latency: None,
        }
    }

    #[test]
    fn counters_read_from_the_samples() {
        let samples = json!({
            "webhookd_ingest_requests_total{outcome=\"accepted\"}": 1500.0,
            "webhookd_ingest_requests_total{outcome=\"rate_limited\"}": 7.0,
            "webhookd_dispatch_attempts_total{result=\"delivered\"}": 900.0,
            "webhookd_dispatch_attempts_total{result=\"failed\"}": 3.0,
            "webhookd_dispatch_in_flight": 12.0,
        });
        let read = Counters::from_samples(&samples).unwrap();
        assert_eq!(
            read,
            Counters {
                accepted: 1500.0,
                delivered: 900.0,
                failed: 3.0,
                retried: 0.0,
            }
        );
        // 500 accepted before the agent's webhooks; 997 of the rest are not finished.
        assert_eq!(read.backlog(500.0), 97.0);
        assert!(Counters::from_samples(&json!([1, 2])).is_err());
    }

    #[test]
    fn rates_and_cpu_over_the_window() {
        let base = 1000.0;
        let r = run(
            Kind::Offered,
            Some(500.0),
            snapshot(10, 1_000, counters(1_200.0, 100.0)),
            snapshot(20, 3_000, counters(6_200.0, 4_100.0)),
        );
        assert_eq!(r.seconds(), 10.0);
        assert_eq!(r.accepted_per_sec(), 500.0);
        assert_eq!(r.delivered_per_sec(), 400.0);
        assert_eq!(r.start.counters.backlog(base), 100.0);
        assert_eq!(r.end.counters.backlog(base), 1_100.0);
        // 2 s of server CPU and 4 s of PostgreSQL's over 4,000 delivered events.
        assert_eq!(r.cpu_us(), (500.0, 1_000.0));
        let ingest = Run {
            kind: Kind::IngestOnly,
            ..r.clone()
        };
        // Over the 5,000 accepted ones when nothing is delivered.
        assert_eq!(ingest.cpu_us(), (400.0, 800.0));
        let idle = run(
            Kind::Half,
            Some(1.0),
            snapshot(0, 0, Counters::default()),
            snapshot(1, 5, Counters::default()),
        );
        assert!(idle.cpu_us().0.is_nan());
    }

    #[test]
    fn latency_of_the_events_received_in_the_window() {
        // [arrived, received_at] in µs.
        let mut deliveries = vec![[1_500, 500], [2_000, 999]];
        deliveries.extend((0..100).map(|n| [1_000 + n + 1_000 * (n + 1), 1_000 + n]));
        deliveries.push([5_000, 2_000]);
        let latency = latency_of(&deliveries, 1_000, 2_000).unwrap();
        assert_eq!(latency.deliveries, 100);
        assert_eq!(latency.p50_ms, 50.0);
        assert_eq!(latency.p99_ms, 99.0);
        assert_eq!(latency.p999_ms, 100.0);
        assert_eq!(latency.max_ms, 100.0);
        assert_eq!(latency_of(&deliveries, 3_000, 4_000), None);
    }

    #[test]
    fn deliveries_read_from_the_agents_report() {
        let check = |report: Value, expected: Option<Vec<[i64; 2]>>| {
            assert_eq!(deliveries_of(&report).ok(), expected, "{report}");
        };
        check(
            json!({ "delivered": 2, "deliveries": [[3, 1], [9, 4]] }),
            Some(vec![[3, 1], [9, 4]]),
        );
        check(json!({ "deliveries": [] }), Some(vec![]));
        check(json!({ "delivered": 2 }), None);
        check(json!({ "deliveries": [[3]] }), None);
        check(json!({ "deliveries": [[3, "x"]] }), None);
    }

    /// A store whose offered run meets the throughput targets but not the backlog one, and whose
    /// half-rate run meets the ingest latency target but not the agent one.
    fn store() -> StoreRuns {
        let base = 100.0;
        let ingest = run(
            Kind::IngestOnly,
            None,
            snapshot(0, 0, counters(0.0, 0.0)),
            snapshot(10, 1_000, counters(10_000.0, 0.0)),
        );
        let offered = run(
            Kind::Offered,
            Some(1_000.0),
            snapshot(10, 1_000, counters(100.0, 0.0)),
            snapshot(20, 2_000, counters(9_900.0, 9_400.0)),
        );
        let mut half = run(
            Kind::Half,
            Some(490.0),
            snapshot(30, 2_000, counters(9_900.0, 9_800.0)),
            snapshot(40, 2_500, counters(14_800.0, 14_700.0)),
        );
        half.latency = Some(Latency {
            deliveries: 4_900,
            p50_ms: 12.0,
            p99_ms: 61.5,
            p999_ms: 80.0,
            max_ms: 95.0,
        });
        half.drain = Some(Drain {
            seconds: 90.0,
            left: 3.0,
        });
        StoreRuns {
            store: "sqlite",
            runs: vec![ingest, offered, half],
            base,
            last: counters(14_800.0, 14_700.0),
            agent: json!({ "delivered": 14_700, "duplicates": 0, "malformed": 0 }),
            postgres: false,
        }
    }

    #[test]
    fn verdicts_on_each_target() {
        let verdicts = store().verdicts();
        for fragment in [
            "sqlite: accepted 98.0% of offered (>= 95%: met)",
            "delivered 95.9% of accepted (>= 95%: met)",
            "backlog at the end 0.41 s of ingest (<= 1 s: met)",
            "agent p99 61.5 ms (<= 50 ms: NOT met)",
            "ingest p99 2.5 ms (<= 5 ms: met)",
        ] {
            assert!(verdicts.contains(fragment), "{fragment:?} in {verdicts}");
        }
    }

    #[test]
    fn table_rows_and_warnings() {
        let table = pipeline_table(&[store()], "not pinned").unwrap();
        let lines: Vec<&str> = table.lines().collect();
        let columns = |line: &str| {
            line.split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        assert!(lines[0].starts_with("store"), "{table}");
        assert_eq!(
            columns(lines[1]),
            [
                "sqlite", "ingest", "only", "-", "1000", "-", "-", "-", "100.0", "-", "|", "-",
                "-", "-", "-", "|", "2.50"
            ],
            "{table}"
        );
        assert_eq!(
            columns(lines[3]),
            [
                "sqlite", "half", "rate", "490", "490", "490", "0", "0", "102.0", "-", "|", "4900",
                "12.0", "61.5", "80.0", "|", "2.50"
            ],
            "{table}"
        );
        assert!(
            table.contains("warning: sqlite half rate: 3 tasks still queued 90 s after the run"),
            "{table}"
        );
        assert!(!table.contains("webhookd counted"), "{table}");
        let lost = StoreRuns {
            last: counters(14_800.0, 14_701.0),
            ..store()
        };
        assert!(
            lost.warnings().contains(
                &"sqlite: webhookd counted 14701 deliveries, the agent received 14700".to_owned()
            ),
            "{:?}",
            lost.warnings()
        );
    }
}

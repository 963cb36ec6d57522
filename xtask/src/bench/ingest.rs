//! `cargo xtask bench ingest`: accepted events per second over loopback from `webhook-loadgen`
//! against a bare actix-web handler (the ceiling) and webhookd on SQLite and on PostgreSQL.

use std::fmt::Write as _;
use std::hash::BuildHasher as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::database::BenchDatabase;
use super::process::{Pinning, Programs, Server, free_port};
use super::{
    CONCURRENCY, MEASURE_SECS, ORGANIZATIONS, WARMUP_SECS, WEBHOOKS_PER_ORGANIZATION, report_of,
    run_json, write_report,
};
use crate::{cmd, postgres};

/// Connections for the fixed-rate run: more than the closed loop needs, so a slow answer delays
/// the requests behind it only when the server, not the generator, is the bottleneck.
const RATE_CONCURRENCY: &str = "64";

/// Rounds of each source, and their length in seconds, in the comparison of their CPU cost.
const SOURCE_ROUNDS: u32 = 3;
const SOURCE_SECS: &str = "5";

/// The server's CPU time per request with webhooks of each source, measured in alternating
/// rounds on one server.
struct SourceCost {
    store: &'static str,
    generic_us: f64,
    github_us: f64,
}

impl SourceCost {
    fn ratio(&self) -> f64 {
        self.github_us / self.generic_us
    }
}

/// The server's and PostgreSQL's CPU time per request, in µs, with each rate limiter.
struct LimiterCost {
    shared: (f64, f64),
    memory: (f64, f64),
}

impl LimiterCost {
    fn ratio(&self) -> f64 {
        (self.shared.0 + self.shared.1) / (self.memory.0 + self.memory.1)
    }
}

/// One target of `bench ingest`: its closed-loop maximum and its latency at half of it.
struct IngestRow {
    target: &'static str,
    max: Value,
    half: Value,
}

impl IngestRow {
    fn accepted_per_sec(&self) -> f64 {
        self.max["accepted_per_sec"].as_f64().unwrap_or(0.0)
    }

    /// CPU time per request at the maximum rate, in µs: the server's, or PostgreSQL's.
    fn cpu_us(&self, whose: &str) -> f64 {
        self.max["cpu_us_per_request"][whose]
            .as_f64()
            .unwrap_or(f64::NAN)
    }
}

/// The name of a row of webhookd on `store` with webhooks of `source`.
fn row_name(store: &'static str, source: &str) -> &'static str {
    match (store, source) {
        ("sqlite", "github") => "sqlite github",
        ("postgres", "github") => "postgres github",
        (store, _) => store,
    }
}

/// `cargo xtask bench ingest`: accepted events per second over loopback at a fixed concurrency
/// against a bare actix-web handler (the ceiling) and webhookd on SQLite and on PostgreSQL, then
/// the latency of each at half of its maximum rate.
pub(crate) fn ingest() -> Result<()> {
    let bench = Programs::build("ingest")?;
    eprintln!("==> building the bare handler (release)");
    cmd::run(&mut cmd::cargo([
        "build",
        "--release",
        "-p",
        "webhook-http",
        "--example",
        "bare_accept",
    ]))?;

    let mut rows = Vec::new();
    eprintln!("==> bare actix-web handler (the ceiling)");
    rows.push(bench.bare(&bench.release.join("examples").join("bare_accept"))?);
    let mut paired = Vec::new();
    eprintln!("==> webhookd on SQLite, generic and GitHub webhooks (signed bodies)");
    let (sqlite, sqlite_sources) = bench.sqlite()?;
    rows.extend(sqlite);
    paired.push(sqlite_sources);
    eprintln!("==> webhookd on PostgreSQL, generic and GitHub webhooks (signed bodies)");
    let (postgres, postgres_sources, limiters) = bench.postgres()?;
    rows.extend(postgres);
    paired.push(postgres_sources);

    let ceiling = rows[0].accepted_per_sec();
    let table = ingest_table(&rows, &paired, &limiters, ceiling, &bench.pinning)?;
    print!("{table}");
    let report = json!({
        "organizations": ORGANIZATIONS,
        "webhooks_per_organization": WEBHOOKS_PER_ORGANIZATION,
        "pinned": bench.pinning.cores.is_some(),
        "targets": rows.iter().map(|row| json!({
            "target": row.target,
            "max": row.max,
            "half_rate": row.half,
            "ratio_to_bare": row.accepted_per_sec() / ceiling,
        })).collect::<Vec<_>>(),
        "sources": paired.iter().map(|pair| json!({
            "store": pair.store,
            "rounds": SOURCE_ROUNDS,
            "generic_cpu_us_per_request": pair.generic_us,
            "github_cpu_us_per_request": pair.github_us,
            "github_to_generic": pair.ratio(),
        })).collect::<Vec<_>>(),
        "rate_limiters": {
            "rounds": SOURCE_ROUNDS,
            "shared": {"server_cpu_us": limiters.shared.0, "db_cpu_us": limiters.shared.1},
            "memory": {"server_cpu_us": limiters.memory.0, "db_cpu_us": limiters.memory.1},
            "shared_to_memory": limiters.ratio(),
        },
        "table": table,
    });
    write_report("ingest", &report)
}

/// The table of `bench ingest`, with a warning line for each run where not every request was
/// accepted.
fn ingest_table(
    rows: &[IngestRow],
    paired: &[SourceCost],
    limiters: &LimiterCost,
    ceiling: f64,
    pinning: &Pinning,
) -> Result<String> {
    let mut table = String::new();
    writeln!(
        table,
        "{:<16} {:>11} {:>8} {:>8} {:>8} {:>8} {:>7} {:>7} | {:>9} {:>8} {:>8} {:>8}",
        "target",
        "accepted/s",
        "p50 ms",
        "p99 ms",
        "p999 ms",
        "vs bare",
        "cpu µs",
        "db µs",
        "half rate",
        "p50 ms",
        "p99 ms",
        "p999 ms"
    )?;
    for row in rows {
        let latency = |run: &Value, q: &str| run["latency_ms"][q].as_f64().unwrap_or(f64::NAN);
        writeln!(
            table,
            "{:<16} {:>11.0} {:>8.2} {:>8.2} {:>8.2} {:>7.0}% {:>7.1} {:>7} | {:>9.0} {:>8.2} {:>8.2} {:>8.2}",
            row.target,
            row.accepted_per_sec(),
            latency(&row.max, "p50"),
            latency(&row.max, "p99"),
            latency(&row.max, "p999"),
            100.0 * row.accepted_per_sec() / ceiling,
            row.cpu_us("server"),
            match row.cpu_us("postgres") {
                us if us.is_nan() => "-".to_owned(),
                us => format!("{us:.1}"),
            },
            row.half["accepted_per_sec"].as_f64().unwrap_or(f64::NAN),
            latency(&row.half, "p50"),
            latency(&row.half, "p99"),
            latency(&row.half, "p999"),
        )?;
    }
    writeln!(
        table,
        "{ORGANIZATIONS} organizations x {WEBHOOKS_PER_ORGANIZATION} webhooks, limits at \
         1,000,000/min; {CONCURRENCY} connections for {MEASURE_SECS} s after {WARMUP_SECS} s of \
         warm-up; half rate: an open loop at half of each target's maximum over \
         {RATE_CONCURRENCY} connections, latency counted from when each request was due; cpu µs: \
         the server's CPU time (user and system, all threads) per request at the maximum rate; \
         db µs: that of every postgres process on the machine; {}",
        pinning.describe()
    )?;
    for pair in paired {
        writeln!(
            table,
            "{}: a GitHub webhook (HMAC-SHA256 of the body, the payload read for the source's \
             fields) costs {:.2}x the server CPU per request of a generic one ({:.1} vs {:.1} µs, \
             {SOURCE_ROUNDS} alternating rounds of {SOURCE_SECS} s on one server)",
            pair.store,
            pair.ratio(),
            pair.github_us,
            pair.generic_us,
        )?;
    }
    writeln!(
        table,
        "postgres: the shared rate limiter costs {:.2}x the server + db CPU per request of the \
         in-memory one ({:.1} + {:.1} vs {:.1} + {:.1} µs, {SOURCE_ROUNDS} alternating rounds of \
         {SOURCE_SECS} s, a server started for each)",
        limiters.ratio(),
        limiters.shared.0,
        limiters.shared.1,
        limiters.memory.0,
        limiters.memory.1,
    )?;
    let anomalies: Vec<String> = rows
        .iter()
        .flat_map(|row| [(row.target, &row.max), (row.target, &row.half)])
        .filter_map(|(target, run)| {
            let requests = run["requests"].as_u64().unwrap_or(0);
            let accepted = run["accepted"].as_u64().unwrap_or(0);
            (requests != accepted).then(|| {
                format!(
                    "{target}: {accepted} of {requests} requests accepted (status {}, errors {}, first error {})",
                    run["status"], run["errors"], run["first_error"]
                )
            })
        })
        .collect();
    for anomaly in &anomalies {
        writeln!(table, "warning: {anomaly}")?;
    }
    Ok(table)
}

impl Programs {
    fn bare(&self, program: &Path) -> Result<IngestRow> {
        let port = free_port()?;
        let mut command = self.pinning.server(program);
        command.arg(format!("127.0.0.1:{port}"));
        let server = Server::start("bare_accept", command, port, &self.scratch.path)?;
        let hasher = std::collections::hash_map::RandomState::new();
        let mut urls = String::new();
        for n in 0..ORGANIZATIONS * WEBHOOKS_PER_ORGANIZATION {
            writeln!(
                urls,
                "http://127.0.0.1:{port}/api/webhooks/{:016x}{n:016x}",
                hasher.hash_one(n)
            )?;
        }
        let row = self.measure("bare", &urls, &server, false)?;
        server.stop()?;
        Ok(row)
    }

    /// webhookd on SQLite: its generic and GitHub rows, and what each source costs.
    fn sqlite(&self) -> Result<(Vec<IngestRow>, SourceCost)> {
        let data_dir = self.scratch.path.join("sqlite");
        let (rows, sources, _) = self.webhookd_rows("sqlite", &data_dir, None)?;
        Ok((rows, sources))
    }

    /// webhookd on PostgreSQL: its generic and GitHub rows (with the shared rate limiter), what
    /// each source costs, and what each rate limiter costs.
    fn postgres(&self) -> Result<(Vec<IngestRow>, SourceCost, LimiterCost)> {
        let server = postgres::for_bench()?;
        let database = BenchDatabase::create(server.url())?;
        let data_dir = self.scratch.path.join("postgres");
        let measured = self.webhookd_rows("postgres", &data_dir, Some(&database.url));
        drop(database);
        drop(server);
        let (rows, sources, limiters) = measured?;
        Ok((
            rows,
            sources,
            limiters.context("PostgreSQL measures both limiters")?,
        ))
    }

    /// Creates the organizations, starts webhookd, provisions generic and GitHub webhooks and
    /// measures a row of each; then the two in alternating rounds on the same server, so that
    /// what the machine does meanwhile weighs on both alike.
    fn webhookd_rows(
        &self,
        store: &'static str,
        data_dir: &Path,
        database_url: Option<&str>,
    ) -> Result<(Vec<IngestRow>, SourceCost, Option<LimiterCost>)> {
        let keys = self.organizations(data_dir, database_url, ORGANIZATIONS)?;
        let serve = |extra: &[&str]| -> Result<(Server, String)> {
            let port = free_port()?;
            let listen = format!("127.0.0.1:{port}");
            let mut args = vec!["serve", "--listen", &listen, "--log-format", "json"];
            args.extend(extra);
            let serve = self.webhookd(data_dir, database_url, &args);
            let server = Server::start("webhookd", serve, port, &self.scratch.path)?;
            Ok((server, listen))
        };
        let (server, listen) = serve(&[])?;
        let provision = |source: &str| -> Result<String> {
            let mut urls = String::new();
            for key in &keys {
                let mut provision = Command::new(&self.loadgen);
                provision
                    .args([
                        "provision",
                        "--base-url",
                        &format!("http://{listen}"),
                        "--webhooks",
                        &WEBHOOKS_PER_ORGANIZATION.to_string(),
                        "--source",
                        source,
                    ])
                    .env("WEBHOOKD_API_KEY", key);
                urls.push_str(&cmd::read(&mut provision)?);
            }
            Ok(urls)
        };
        let (generic, github) = (provision("generic")?, provision("github")?);
        let postgres = database_url.is_some();
        let rows = vec![
            self.measure(store, &generic, &server, postgres)?,
            self.measure(row_name(store, "github"), &github, &server, postgres)?,
        ];
        let cost = self.source_cost(store, &generic, &github, &server)?;
        server.stop()?;
        let limiters = if postgres {
            Some(self.limiter_cost(&generic, &listen, serve)?)
        } else {
            None
        };
        Ok((rows, cost, limiters))
    }

    /// The server's and PostgreSQL's CPU time per request of generic webhooks with the shared
    /// rate limiter and with the in-memory one, in [`SOURCE_ROUNDS`] alternating rounds, each
    /// on a server started for it on the same database (`urls` name `listen`, where they were
    /// provisioned).
    fn limiter_cost(
        &self,
        urls: &str,
        listen: &str,
        serve: impl Fn(&[&str]) -> Result<(Server, String)>,
    ) -> Result<LimiterCost> {
        let mut totals = [(Duration::ZERO, Duration::ZERO, 0.0); 2];
        for _ in 0..SOURCE_ROUNDS {
            for (total, kind) in totals.iter_mut().zip(["shared", "memory"]) {
                let (server, now_at) = serve(&["--rate-limiter", kind])?;
                let url_file = self.scratch.path.join(format!("limiter-{kind}.urls"));
                std::fs::write(&url_file, urls.replace(listen, &now_at))
                    .with_context(|| format!("writing {}", url_file.display()))?;
                // A second to fill the route cache, then the measured loop.
                run_json(&mut self.loadgen_for(&url_file, CONCURRENCY, ("0", "1"), &[]))?;
                let before = (
                    self.cpu.of_process(server.child.id())?,
                    self.cpu.of_named("postgres"),
                );
                let mut command = self.loadgen_for(&url_file, CONCURRENCY, ("0", SOURCE_SECS), &[]);
                let report = run_json(&mut command)?;
                total.0 += self
                    .cpu
                    .of_process(server.child.id())?
                    .saturating_sub(before.0);
                total.1 += self.cpu.of_named("postgres").saturating_sub(before.1);
                total.2 += report["requests"].as_f64().unwrap_or(0.0);
                server.stop()?;
            }
        }
        let per_request = |cpu: Duration, requests: f64| cpu.as_secs_f64() * 1e6 / requests;
        let [shared, memory] = totals.map(|(server, db, requests)| {
            (per_request(server, requests), per_request(db, requests))
        });
        Ok(LimiterCost { shared, memory })
    }

    /// The server's CPU time per request of generic and of GitHub webhooks, closed loop, in
    /// [`SOURCE_ROUNDS`] alternating rounds.
    fn source_cost(
        &self,
        store: &'static str,
        generic: &str,
        github: &str,
        server: &Server,
    ) -> Result<SourceCost> {
        let mut url_files = Vec::new();
        for (source, urls) in [("generic", generic), ("github", github)] {
            let url_file = self.scratch.path.join(format!("{store}-{source}.urls"));
            std::fs::write(&url_file, urls)
                .with_context(|| format!("writing {}", url_file.display()))?;
            url_files.push(url_file);
        }
        let mut totals = [(Duration::ZERO, 0.0); 2];
        for _ in 0..SOURCE_ROUNDS {
            for (total, url_file) in totals.iter_mut().zip(&url_files) {
                // No warm-up: the server's CPU time is read around the whole run.
                let mut command = self.loadgen_for(url_file, CONCURRENCY, ("0", SOURCE_SECS), &[]);
                let before = self.cpu.of_process(server.child.id())?;
                let report = run_json(&mut command)?;
                let after = self.cpu.of_process(server.child.id())?;
                total.0 += after.saturating_sub(before);
                total.1 += report["requests"].as_f64().unwrap_or(0.0);
            }
        }
        let per_request = |(cpu, requests): (Duration, f64)| cpu.as_secs_f64() * 1e6 / requests;
        Ok(SourceCost {
            store,
            generic_us: per_request(totals[0]),
            github_us: per_request(totals[1]),
        })
    }

    /// The closed-loop maximum, with the CPU time it cost the server (and PostgreSQL when
    /// `postgres`), then an open loop at half of it.
    fn measure(
        &self,
        target: &'static str,
        urls: &str,
        server: &Server,
        postgres: bool,
    ) -> Result<IngestRow> {
        let url_file = self.scratch.path.join(format!("{target}.urls"));
        std::fs::write(&url_file, urls)
            .with_context(|| format!("writing {}", url_file.display()))?;
        let mut command = self.loadgen_command(&url_file, CONCURRENCY, &[]);
        let running = cmd::start_read(&mut command)?;
        // Count from the end of the warm-up to the end of the run.
        std::thread::sleep(Duration::from_secs_f64(WARMUP_SECS.parse()?));
        let cpu = &self.cpu;
        let before = (cpu.of_process(server.child.id()), cpu.of_named("postgres"));
        let output = cmd::finish_read(&command, running);
        let after = (cpu.of_process(server.child.id()), cpu.of_named("postgres"));
        let mut max = report_of(&command, &output?)?;
        let requests = max["requests"].as_f64().unwrap_or(0.0).max(1.0);
        let per_request = |before: Duration, after: Duration| {
            after.saturating_sub(before).as_secs_f64() * 1e6 / requests
        };
        max["cpu_us_per_request"] = json!({
            "server": per_request(before.0?, after.0?),
            "postgres": postgres.then(|| per_request(before.1, after.1)),
        });
        let half = max["accepted_per_sec"].as_f64().unwrap_or(0.0) / 2.0;
        if half < 1.0 {
            bail!(
                "{target}: no request was accepted at full load: {}",
                serde_json::to_string(&max)?
            );
        }
        eprintln!(
            "{target}: {:.0} accepted/s; now at {half:.0}/s",
            max["accepted_per_sec"].as_f64().unwrap_or(0.0)
        );
        let half = self.loadgen(
            &url_file,
            RATE_CONCURRENCY,
            &["--rate", &format!("{half:.0}")],
        )?;
        Ok(IngestRow { target, max, half })
    }

    fn loadgen(&self, url_file: &Path, concurrency: &str, extra: &[&str]) -> Result<Value> {
        run_json(&mut self.loadgen_command(url_file, concurrency, extra))
    }

    fn loadgen_command(&self, url_file: &Path, concurrency: &str, extra: &[&str]) -> Command {
        self.loadgen_for(url_file, concurrency, (WARMUP_SECS, MEASURE_SECS), extra)
    }

    /// A closed or open loop on `url_file`'s webhooks for `(warm-up, measured)` seconds.
    fn loadgen_for(
        &self,
        url_file: &Path,
        concurrency: &str,
        (warmup, duration): (&str, &str),
        extra: &[&str],
    ) -> Command {
        let mut command = self.pinning.generator(&self.loadgen);
        command
            .arg("run")
            .arg("--url-file")
            .arg(url_file)
            .args([
                "--concurrency",
                concurrency,
                "--warmup",
                warmup,
                "--duration",
                duration,
            ])
            .args(extra);
        eprintln!("$ {}", cmd::display(&command));
        command
    }
}

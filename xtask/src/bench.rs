//! `cargo xtask bench`: runs the benchmarks in release mode, prints a table of each beside the
//! baseline measured in the same run, and writes the figures to `target/bench/<name>.json`.
//! `ingest` runs webhookd and a bare actix-web handler as processes and loads them over loopback
//! with `webhook-loadgen`.

use std::fmt::Write as _;
use std::hash::BuildHasher as _;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::{cmd, metadata::Workspace, postgres};

/// One measured row: a configuration of the store and its figures.
struct Row {
    adapter: &'static str,
    writers: u64,
    ops_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// `cargo xtask bench store`: durable `record_invocation` per second at 1, 8 and 64 writers,
/// for SQLite and PostgreSQL, against a plain batched insert on each.
pub(crate) fn store() -> Result<()> {
    eprintln!("==> SQLite (synchronous=FULL): group commit vs a plain batched insert");
    let sqlite = run_json(&mut cmd::cargo([
        "bench",
        "-p",
        "webhook-store-sqlite",
        "--bench",
        "record_invocation",
    ]))?;
    let database = postgres::for_bench()?;
    eprintln!("==> PostgreSQL: group commit vs 50 events per INSERT transaction");
    let mut pg_command = cmd::cargo([
        "run",
        "--release",
        "-p",
        "webhook-store-pg",
        "--features",
        "test-util",
        "--example",
        "bench_record",
    ]);
    pg_command.env("DATABASE_URL", database.url());
    let postgres = run_json(&mut pg_command)?;
    drop(database);

    let sqlite_baseline = number(&sqlite["baseline_plain_batched_insert"]["ops_per_sec"])?;
    let pg_baseline = number(&postgres["baseline_batched_50"]["events_per_sec"])?;
    let mut rows = rows_of("sqlite", &sqlite["group_commit"])?;
    rows.extend(rows_of("postgres", &postgres["group_commit"])?);

    let mut table = String::new();
    writeln!(
        table,
        "{:<9} {:>8} {:>12} {:>9} {:>9} {:>12}",
        "store", "writers", "ops/s", "p50 ms", "p99 ms", "vs baseline"
    )?;
    for row in &rows {
        let baseline = if row.adapter == "sqlite" {
            sqlite_baseline
        } else {
            pg_baseline
        };
        writeln!(
            table,
            "{:<9} {:>8} {:>12.0} {:>9.2} {:>9.2} {:>11.0}%",
            row.adapter,
            row.writers,
            row.ops_per_sec,
            row.p50_ms,
            row.p99_ms,
            100.0 * row.ops_per_sec / baseline
        )?;
    }
    writeln!(
        table,
        "baselines: sqlite plain batched insert {sqlite_baseline:.0} rows/s, \
         postgres 50-row transactions {pg_baseline:.0} rows/s"
    )?;
    print!("{table}");
    write_report(
        "store",
        &json!({ "sqlite": sqlite, "postgres": postgres, "table": table }),
    )
}

/// `cargo xtask bench dispatch`: deliveries per second at several concurrency settings, with
/// the memory store's figures as the in-run baseline for the durable stores.
pub(crate) fn dispatch() -> Result<()> {
    let database = postgres::for_bench()?;
    let mut command = cmd::cargo([
        "run",
        "--release",
        "-p",
        "webhook-dispatch",
        "--example",
        "bench_dispatch",
    ]);
    command.env("DATABASE_URL", database.url());
    let report = run_json(&mut command)?;
    drop(database);
    let results = report["results"]
        .as_array()
        .context("the dispatch report has no results")?;
    let memory_rate = |in_flight: &Value| {
        results
            .iter()
            .find(|r| r["store"] == "memory" && &r["in_flight"] == in_flight)
            .and_then(|r| r["per_second"].as_f64())
    };
    let mut table = String::new();
    writeln!(
        table,
        "{:<9} {:>9} {:>12} {:>10}",
        "store", "in flight", "delivered/s", "vs memory"
    )?;
    for result in results {
        let rate = number(&result["per_second"])?;
        let ratio = memory_rate(&result["in_flight"]).map_or(f64::NAN, |m| 100.0 * rate / m);
        writeln!(
            table,
            "{:<9} {:>9} {:>12.0} {:>9.0}%",
            result["store"].as_str().unwrap_or("?"),
            result["in_flight"].as_u64().unwrap_or(0),
            rate,
            ratio
        )?;
    }
    print!("{table}");
    write_report("dispatch", &json!({ "report": report, "table": table }))
}

fn run_json(command: &mut std::process::Command) -> Result<Value> {
    let output = cmd::read(command)?;
    report_of(command, &output)
}

/// The JSON report that `command` printed in `output`.
fn report_of(command: &Command, output: &str) -> Result<Value> {
    let start = output.find('{').with_context(|| {
        format!(
            "no JSON report in the output of `{}`",
            cmd::display(command)
        )
    })?;
    serde_json::from_str(output[start..].trim())
        .with_context(|| format!("reading the report of `{}`", cmd::display(command)))
}

fn number(value: &Value) -> Result<f64> {
    match value.as_f64() {
        Some(n) if n > 0.0 => Ok(n),
        _ => bail!("the bench report lacks a positive number where one was expected: {value}"),
    }
}

fn rows_of(adapter: &'static str, runs: &Value) -> Result<Vec<Row>> {
    let runs = runs
        .as_array()
        .with_context(|| format!("{adapter}: the report has no list of runs"))?;
    runs.iter()
        .map(|run| {
            Ok(Row {
                adapter,
                writers: run["writers"].as_u64().context("a run without writers")?,
                ops_per_sec: number(&run["ops_per_sec"])?,
                p50_ms: run["p50_ms"].as_f64().unwrap_or(f64::NAN),
                p99_ms: run["p99_ms"].as_f64().unwrap_or(f64::NAN),
            })
        })
        .collect()
}

fn write_report(name: &str, report: &Value) -> Result<()> {
    let workspace = Workspace::load()?;
    let dir = std::path::Path::new(
        workspace
            .target_directory()
            .context("no target directory")?,
    )
    .join("bench");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, serde_json::to_string_pretty(report)?)
        .with_context(|| format!("writing {}", path.display()))?;
    eprintln!("report written to {}", path.display());
    Ok(())
}

/// Organizations and webhooks per organization the load is spread over.
const ORGANIZATIONS: u32 = 10;
const WEBHOOKS_PER_ORGANIZATION: u32 = 20;
/// Connections of the load generator, each with one request in flight.
const CONCURRENCY: &str = "32";
/// Connections for the fixed-rate run: more than the closed loop needs, so a slow answer delays
/// the requests behind it only when the server, not the generator, is the bottleneck.
const RATE_CONCURRENCY: &str = "64";
const WARMUP_SECS: &str = "2";
const MEASURE_SECS: &str = "10";
/// How long a server may take to listen, and to stop after SIGTERM.
const SERVER_DEADLINE: Duration = Duration::from_secs(60);

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

/// `cargo xtask bench ingest`: accepted events per second over loopback at a fixed concurrency
/// against a bare actix-web handler (the ceiling) and webhookd on SQLite and on PostgreSQL, then
/// the latency of each at half of its maximum rate.
pub(crate) fn ingest() -> Result<()> {
    eprintln!("==> building webhookd, webhook-loadgen and the bare handler (release)");
    cmd::run(&mut cmd::cargo([
        "build",
        "--release",
        "-p",
        "webhookd",
        "-p",
        "webhook-loadgen",
    ]))?;
    cmd::run(&mut cmd::cargo([
        "build",
        "--release",
        "-p",
        "webhook-http",
        "--example",
        "bare_accept",
    ]))?;
    let workspace = Workspace::load()?;
    let release = Path::new(
        workspace
            .target_directory()
            .context("no target directory")?,
    )
    .join("release");
    let bench = Bench {
        webhookd: release.join("webhookd"),
        loadgen: release.join("webhook-loadgen"),
        scratch: Scratch::create(&release.join("..").join("bench"))?,
        pinning: Pinning::detect(),
        cpu: CpuTime::detect(),
    };
    eprintln!("{}", bench.pinning.describe());

    let mut rows = Vec::new();
    eprintln!("==> bare actix-web handler (the ceiling)");
    rows.push(bench.bare(&release.join("examples").join("bare_accept"))?);
    eprintln!("==> webhookd on SQLite");
    rows.push(bench.sqlite()?);
    eprintln!("==> webhookd on PostgreSQL");
    rows.push(bench.postgres()?);

    let ceiling = rows[0].accepted_per_sec();
    let table = ingest_table(&rows, ceiling, &bench.pinning)?;
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
        "table": table,
    });
    write_report("ingest", &report)
}

/// The table of `bench ingest`, with a warning line for each run where not every request was
/// accepted.
fn ingest_table(rows: &[IngestRow], ceiling: f64, pinning: &Pinning) -> Result<String> {
    let mut table = String::new();
    writeln!(
        table,
        "{:<10} {:>11} {:>8} {:>8} {:>8} {:>8} {:>7} {:>7} | {:>9} {:>8} {:>8} {:>8}",
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
            "{:<10} {:>11.0} {:>8.2} {:>8.2} {:>8.2} {:>7.0}% {:>7.1} {:>7} | {:>9.0} {:>8.2} {:>8.2} {:>8.2}",
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

/// The built programs, a scratch directory and how processes are pinned.
struct Bench {
    webhookd: PathBuf,
    loadgen: PathBuf,
    scratch: Scratch,
    pinning: Pinning,
    cpu: CpuTime,
}

impl Bench {
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

    fn sqlite(&self) -> Result<IngestRow> {
        let data_dir = self.scratch.path.join("sqlite");
        self.webhookd_row("sqlite", &data_dir, None)
    }

    fn postgres(&self) -> Result<IngestRow> {
        let server = postgres::for_bench()?;
        let database = BenchDatabase::create(server.url())?;
        let data_dir = self.scratch.path.join("postgres");
        let row = self.webhookd_row("postgres", &data_dir, Some(&database.url));
        drop(database);
        drop(server);
        row
    }

    /// Creates the organizations, starts webhookd, provisions the webhooks and measures.
    fn webhookd_row(
        &self,
        target: &'static str,
        data_dir: &Path,
        database_url: Option<&str>,
    ) -> Result<IngestRow> {
        let webhookd = |args: &[&str]| {
            let mut command = Command::new(&self.webhookd);
            command
                .args(args)
                .arg("--data-dir")
                .arg(data_dir)
                .env("RUST_LOG", "warn")
                .env_remove("DATABASE_URL");
            if let Some(url) = database_url {
                command.env("DATABASE_URL", url);
            }
            command
        };
        let mut keys = Vec::new();
        for n in 0..ORGANIZATIONS {
            let name = format!("bench-{n}");
            let output = cmd::read(&mut webhookd(&["org", "create", "--name", &name]))?;
            let created: Value = serde_json::from_str(output.trim())
                .with_context(|| format!("reading `webhookd org create` output: {output}"))?;
            let key = created["api_key"]
                .as_str()
                .context("`webhookd org create` printed no api_key")?;
            keys.push(key.to_owned());
        }
        let port = free_port()?;
        let listen = format!("127.0.0.1:{port}");
        let mut serve = webhookd(&["serve", "--listen", &listen, "--log-format", "json"]);
        let mut pinned = self.pinning.server(serve.get_program());
        pinned.args(serve.get_args());
        for (key, value) in serve.get_envs() {
            match value {
                Some(value) => pinned.env(key, value),
                None => pinned.env_remove(key),
            };
        }
        serve = pinned;
        let server = Server::start("webhookd", serve, port, &self.scratch.path)?;
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
                ])
                .env("WEBHOOKD_API_KEY", key);
            urls.push_str(&cmd::read(&mut provision)?);
        }
        let row = self.measure(target, &urls, &server, database_url.is_some())?;
        server.stop()?;
        Ok(row)
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
        let mut command = self.pinning.generator(&self.loadgen);
        command
            .arg("run")
            .arg("--url-file")
            .arg(url_file)
            .args([
                "--concurrency",
                concurrency,
                "--warmup",
                WARMUP_SECS,
                "--duration",
                MEASURE_SECS,
            ])
            .args(extra);
        eprintln!("$ {}", cmd::display(&command));
        command
    }
}

/// Server on one core, generator on another, when `taskset` and two cores are there.
struct Pinning {
    cores: Option<(usize, usize)>,
    taskset: Option<PathBuf>,
}

impl Pinning {
    fn detect() -> Self {
        let taskset = cmd::find_in_path("taskset");
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Self {
            cores: (taskset.is_some() && cores >= 2).then_some((0, 1)),
            taskset,
        }
    }

    fn describe(&self) -> String {
        match (self.cores, &self.taskset) {
            (Some((server, generator)), _) => format!(
                "server pinned to CPU {server}, load generator to CPU {generator} (taskset); \
                 PostgreSQL itself is not pinned"
            ),
            (None, None) => "not pinned: no taskset".to_owned(),
            (None, Some(_)) => "not pinned: fewer than two CPUs".to_owned(),
        }
    }

    fn server(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        self.on(self.cores.map(|(server, _)| server), program)
    }

    fn generator(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        self.on(self.cores.map(|(_, generator)| generator), program)
    }

    fn on(&self, core: Option<usize>, program: impl AsRef<std::ffi::OsStr>) -> Command {
        match (core, &self.taskset) {
            (Some(core), Some(taskset)) => {
                let mut command = Command::new(taskset);
                command.arg("-c").arg(core.to_string()).arg(program);
                command
            }
            _ => Command::new(program),
        }
    }
}

/// CPU time (user and system, every thread) that processes have used, read from `/proc`.
struct CpuTime {
    ticks_per_second: f64,
}

impl CpuTime {
    fn detect() -> Self {
        let ticks = cmd::read(Command::new("getconf").arg("CLK_TCK"))
            .ok()
            .and_then(|out| out.trim().parse::<f64>().ok())
            .filter(|ticks| *ticks > 0.0);
        Self {
            ticks_per_second: ticks.unwrap_or(100.0),
        }
    }

    /// The process's CPU time so far.
    fn of_process(&self, pid: u32) -> Result<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .with_context(|| format!("reading /proc/{pid}/stat"))?;
        self.of_stat(&stat)
            .map(|(_, time)| time)
            .with_context(|| format!("reading /proc/{pid}/stat: {stat}"))
    }

    /// The CPU time so far of every process whose command name is `name`.
    fn of_named(&self, name: &str) -> Duration {
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Duration::ZERO;
        };
        entries
            .filter_map(|entry| std::fs::read_to_string(entry.ok()?.path().join("stat")).ok())
            .filter_map(|stat| self.of_stat(&stat))
            .filter(|(comm, _)| comm == name)
            .map(|(_, time)| time)
            .sum()
    }

    /// The command name and `utime + stime` of a `/proc/<pid>/stat` line (`pid (comm) state …`;
    /// the name may hold spaces and parentheses, so the fields are counted after the last `)`).
    fn of_stat(&self, stat: &str) -> Option<(String, Duration)> {
        let open = stat.find('(')?;
        let close = stat.rfind(')')?;
        let comm = stat.get(open + 1..close)?.to_owned();
        let mut fields = stat.get(close + 1..)?.split_whitespace();
        // After the name: state is field 3, utime field 14 and stime field 15.
        let utime: f64 = fields.nth(11)?.parse().ok()?;
        let stime: f64 = fields.next()?.parse().ok()?;
        Some((
            comm,
            Duration::from_secs_f64((utime + stime) / self.ticks_per_second),
        ))
    }
}

/// A server process started for one measurement; killed if dropped before [`Server::stop`].
struct Server {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Server {
    /// Starts `command` with its output in a log file and waits until `port` accepts connections.
    fn start(name: &'static str, mut command: Command, port: u16, dir: &Path) -> Result<Self> {
        let log = dir.join(format!("{name}-{port}.log"));
        let file =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        command
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file);
        eprintln!("$ {}", cmd::display(&command));
        let child = command
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        let mut server = Self { name, child, log };
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let deadline = Instant::now() + SERVER_DEADLINE;
        loop {
            if let Some(status) = server.child.try_wait()? {
                bail!(
                    "{name} exited ({status}) before listening: {}",
                    server.log_tail()
                );
            }
            if TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
                return Ok(server);
            }
            if Instant::now() > deadline {
                bail!("{name} did not listen on {address} within {SERVER_DEADLINE:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, then waits for the graceful shutdown.
    fn stop(mut self) -> Result<()> {
        cmd::run(Command::new("kill").args(["-TERM", &self.child.id().to_string()]))?;
        let deadline = Instant::now() + SERVER_DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait()? {
                if !status.success() {
                    bail!("{} exited with {status}: {}", self.name, self.log_tail());
                }
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not stop within {SERVER_DEADLINE:?} of SIGTERM",
                    self.name
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A fresh PostgreSQL database for one run, dropped afterwards.
struct BenchDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl BenchDatabase {
    fn create(admin_url: &str) -> Result<Self> {
        let name = format!(
            "webhookd_bench_{:016x}",
            std::collections::hash_map::RandomState::new().hash_one(std::process::id())
        );
        let database = Self {
            admin_url: admin_url.to_owned(),
            url: with_database(admin_url, &name)?,
            name,
        };
        psql(admin_url, &format!("CREATE DATABASE {}", database.name))?;
        eprintln!("created database {}", database.name);
        Ok(database)
    }
}

impl Drop for BenchDatabase {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        match psql(&self.admin_url, &sql) {
            Ok(()) => eprintln!("dropped database {}", self.name),
            Err(error) => eprintln!("warning: could not drop database {}: {error:#}", self.name),
        }
    }
}

fn psql(url: &str, sql: &str) -> Result<()> {
    let psql = cmd::find_in_path("psql")
        .context("psql is needed to create the benchmark's PostgreSQL database")?;
    cmd::read(
        Command::new(psql)
            .args([
                "-X",
                "-w",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                url,
                "-c",
                sql,
            ])
            .env("PGCONNECT_TIMEOUT", "10"),
    )?;
    Ok(())
}

/// `url` with its database name replaced by `name`, the query kept.
fn with_database(url: &str, name: &str) -> Result<String> {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let after_scheme = base
        .find("://")
        .context("the PostgreSQL URL has no scheme")?
        + 3;
    let host_end = base[after_scheme..]
        .find('/')
        .map_or(base.len(), |slash| after_scheme + slash);
    let mut out = format!("{}/{name}", &base[..host_end]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    Ok(out)
}

/// A port nothing listens on now (the server binds it right after).
fn free_port() -> Result<u16> {
    let listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("finding a free local port")?;
    Ok(listener.local_addr()?.port())
}

/// `target/bench/ingest-<pid>/`, removed when done.
struct Scratch {
    path: PathBuf,
}

impl Scratch {
    fn create(bench_dir: &Path) -> Result<Self> {
        let path = bench_dir.join(format!("ingest-{}", std::process::id()));
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self { path })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_read_from_a_stat_line() {
        let cpu = CpuTime {
            ticks_per_second: 100.0,
        };
        let line = "4242 (web (hook) d) S 1 4242 4242 0 -1 4194560 1523 0 0 0 250 75 0 0 20 0 9 0";
        let (comm, time) = cpu.of_stat(line).unwrap();
        assert_eq!(comm, "web (hook) d");
        assert_eq!(time, Duration::from_millis(3_250));
        assert!(cpu.of_stat("garbage").is_none());
    }

    #[test]
    fn database_name_replaced() {
        let check = |url: &str, expected: &str| {
            assert_eq!(with_database(url, "b").unwrap(), expected, "{url}");
        };
        check(
            "postgres://postgres@127.0.0.1:5432/postgres",
            "postgres://postgres@127.0.0.1:5432/b",
        );
        check(
            "postgres://u:p@h:1/db?sslmode=disable",
            "postgres://u:p@h:1/b?sslmode=disable",
        );
        check("postgres://h", "postgres://h/b");
        check("postgresql://h:5432?x=1", "postgresql://h:5432/b?x=1");
    }
}

//! `webhook-loadgen`: drives webhookd's ingest endpoint (or anything answering
//! `POST /api/webhooks/{id}`) over keep-alive HTTP/1.1 connections and prints one JSON report.
//!
//! - `webhook-loadgen run --url-file FILE --concurrency 32 --duration 10`: a closed loop, each
//!   connection sending its next request as soon as the previous one is answered; the maximum
//!   rate the server sustains at that concurrency.
//! - `… --rate 20000`: an open loop, requests scheduled at a fixed rate and their latency measured
//!   from when they were due, so time spent queueing behind a slow server counts.
//! - `webhook-loadgen provision --base-url URL --api-key KEY --webhooks 20`: raises the
//!   organization's limit, creates a target and webhooks with the limit raised and a secret, and
//!   prints their `URL SECRET SOURCE` lines for `--url-file`. With `--endpoint-url` the target
//!   has that endpoint, and webhookd delivers the events' tasks there.
//! - `webhook-loadgen agent --listen 127.0.0.1:9000 --report FILE`: a delivery target answering
//!   200 at once, recording when each delivery arrived and when webhookd received its event.
//! - `webhook-loadgen metrics --url http://127.0.0.1:8080/metrics`: the samples of a Prometheus
//!   exposition as one JSON object.
#![expect(
    clippy::print_stdout,
    reason = "a command-line tool: its report is printed on stdout"
)]

mod agent;
mod client;
mod load;
mod metrics;
mod provision;
mod stats;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "webhook-loadgen", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Send events and print throughput, status counts and latency percentiles as JSON.
    Run(RunArgs),
    /// Prepare webhooks for a run on a webhookd organization; print `URL SECRET SOURCE` lines.
    Provision(ProvisionArgs),
    /// Answer deliveries 200 at once and record when each arrived and when webhookd received
    /// its event (`source.received_at`); on SIGTERM or Ctrl-C print a summary as JSON. Signatures
    /// are not verified.
    Agent(AgentArgs),
    /// Read a Prometheus text exposition (webhookd's `/metrics`) and print its samples as JSON.
    Metrics(MetricsArgs),
}

#[derive(Debug, Args)]
struct RunArgs {
    /// File of webhook URLs, one a line, each optionally followed by whitespace and the
    /// webhook's secret, and then by its source (`generic`, the default: the secret in
    /// `X-Webhook-Secret`; `github`: the body signed in `X-Hub-Signature-256`); all on one host.
    /// Blank lines and `#` comments are skipped.
    #[arg(long, value_name = "FILE")]
    url_file: PathBuf,
    /// Connections, each with one request in flight at a time.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Seconds to measure (after the warm-up).
    #[arg(long, conflicts_with = "requests")]
    duration: Option<f64>,
    /// Requests to measure (after the warm-up), instead of a duration.
    #[arg(long)]
    requests: Option<u64>,
    /// Seconds of load before measuring, not counted.
    #[arg(long, default_value_t = 0.0)]
    warmup: f64,
    /// Requests per second, scheduled at fixed intervals (open loop); without it every
    /// connection sends as fast as it is answered (closed loop).
    #[arg(long)]
    rate: Option<f64>,
    /// Runtime threads [default: the CPUs this process may run on].
    #[arg(long)]
    threads: Option<usize>,
}

#[derive(Debug, Args)]
struct ProvisionArgs {
    /// webhookd's base URL, e.g. `http://127.0.0.1:8080`.
    #[arg(long)]
    base_url: String,
    /// An admin API key of the organization.
    #[arg(long, env = "WEBHOOKD_API_KEY", hide_env_values = true)]
    api_key: String,
    /// Webhooks to create.
    #[arg(long, default_value_t = 20)]
    webhooks: u32,
    /// The organization's and each webhook's requests per minute.
    #[arg(long, default_value_t = 1_000_000)]
    rate_limit: u32,
    /// The webhooks' source: `generic` (the secret in `X-Webhook-Secret`) or `github` (the
    /// body signed in `X-Hub-Signature-256`).
    #[arg(long, default_value = "generic")]
    source: String,
    /// Where webhookd delivers the target's tasks (an agent's URL, say); without it the target
    /// has no endpoint and its tasks are never dispatched.
    #[arg(long, value_name = "URL")]
    endpoint_url: Option<String>,
}

#[derive(Debug, Args)]
struct AgentArgs {
    /// The address to listen on; port 0 picks a free one (printed at start).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Where to write, at exit, the summary and every delivery's `[arrived, received_at]` in µs
    /// since the Unix epoch (JSON).
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Runtime threads [default: the CPUs this process may run on].
    #[arg(long)]
    threads: Option<usize>,
}

#[derive(Debug, Args)]
struct MetricsArgs {
    /// The exposition's URL, e.g. `http://127.0.0.1:8080/metrics`.
    #[arg(long)]
    url: String,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let threads = match &cli.command {
        Command::Run(args) => args.threads,
        Command::Agent(args) => args.threads,
        Command::Provision(_) | Command::Metrics(_) => Some(1),
    };
    let threads = threads
        .or_else(|| std::thread::available_parallelism().ok().map(Into::into))
        .unwrap_or(1)
        .max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        match cli.command {
            Command::Run(args) => run(args).await,
            Command::Provision(args) => provision::provision(&args).await,
            Command::Agent(args) => agent::agent(&args).await,
            Command::Metrics(args) => metrics::metrics(&args.url).await,
        }
    })
}

async fn run(args: RunArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.url_file)
        .with_context(|| format!("reading {}", args.url_file.display()))?;
    let targets = load::Targets::parse(&text)?;
    if args.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    let measure = match (args.duration, args.requests) {
        (_, Some(0)) => bail!("--requests must be at least 1"),
        (_, Some(requests)) => load::Measure::Requests(requests),
        (duration, None) => load::Measure::For(seconds("--duration", duration.unwrap_or(10.0))?),
    };
    if let Some(rate) = args.rate
        && !(rate.is_finite() && rate > 0.0)
    {
        bail!("--rate must be a positive number of requests per second");
    }
    let plan = load::Plan {
        concurrency: args.concurrency,
        warmup: if args.warmup == 0.0 {
            Duration::ZERO
        } else {
            seconds("--warmup", args.warmup)?
        },
        measure,
        rate: args.rate,
    };
    let report = load::run(targets, &plan).await?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

fn seconds(flag: &str, value: f64) -> Result<Duration> {
    Duration::try_from_secs_f64(value)
        .ok()
        .filter(|duration| !duration.is_zero())
        .with_context(|| format!("{flag} must be a positive number of seconds"))
}

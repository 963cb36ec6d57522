//! `cargo xtask bench`: runs the benchmarks in release mode, prints a table of each beside the
//! baseline measured in the same run, and writes the figures to `target/bench/<name>.json`.
//! `ingest` runs webhookd and a bare actix-web handler as processes and loads them over loopback
//! with `webhook-loadgen`; `pipeline` runs webhookd with dispatch on, delivering to the agent of
//! `webhook-loadgen`; `search` times searches of the invocation log on a million invocations
//! written through each store. This module holds what the benches share: running the store
//! bench programs, reading a JSON report from a program's output and writing one under
//! `target/bench/`.

mod database;
mod dispatch;
mod ingest;
mod pipeline;
mod process;
mod search;
mod store;

use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::{cmd, metadata::Workspace};

pub(crate) use dispatch::dispatch;
pub(crate) use ingest::ingest;
pub(crate) use pipeline::pipeline;
pub(crate) use search::search;
pub(crate) use store::store;

/// Organizations the HTTP benches (`ingest`, `pipeline`) provision, each with this many
/// webhooks (and in `pipeline` one agent target): the same world in both, so their figures
/// compare.
const ORGANIZATIONS: u32 = 10;
const WEBHOOKS_PER_ORGANIZATION: u32 = 20;
/// Connections of the HTTP benches' closed loops, each with one request in flight.
const CONCURRENCY: &str = "32";
/// Seconds of warm-up before each measured run of the HTTP benches, and of the run.
const WARMUP_SECS: &str = "2";
const MEASURE_SECS: &str = "10";

pub(super) fn run_json(command: &mut std::process::Command) -> Result<Value> {
    let output = cmd::read(command)?;
    report_of(command, &output)
}

/// Runs a bench example, `cargo run --release <args>`, against a fresh database of the bench
/// PostgreSQL server, and reads the JSON report it prints.
pub(super) fn run_json_on_postgres(args: &[&str]) -> Result<Value> {
    let database = crate::postgres::for_bench()?;
    let mut command = cmd::cargo(["run", "--release"].iter().chain(args));
    command.env("DATABASE_URL", database.url());
    let report = run_json(&mut command);
    drop(database);
    report
}

/// Runs the SQLite store's bench program `name` with `args`, `cargo bench -p
/// webhook-store-sqlite --bench <name> -- <args>`, and reads the JSON report it prints.
pub(super) fn run_sqlite_bench(name: &str, args: &[&str]) -> Result<Value> {
    let bench = ["bench", "-p", "webhook-store-sqlite", "--bench", name, "--"];
    run_json(&mut cmd::cargo(bench.iter().chain(args)))
}

/// Runs the PostgreSQL store's bench example `name` with `args` against a fresh database of the
/// bench PostgreSQL server, and reads the JSON report it prints.
pub(super) fn run_postgres_bench(name: &str, args: &[&str]) -> Result<Value> {
    let mut example = vec![
        "-p",
        "webhook-store-pg",
        "--features",
        "test-util",
        "--example",
        name,
        "--",
    ];
    example.extend_from_slice(args);
    run_json_on_postgres(&example)
}

/// The JSON report that `command` printed in `output`.
pub(super) fn report_of(command: &Command, output: &str) -> Result<Value> {
    let start = output.find('{').with_context(|| {
        format!(
            "no JSON report in the output of `{}`",
            cmd::display(command)
        )
    })?;
    serde_json::from_str(output[start..].trim())
        .with_context(|| format!("reading the report of `{}`", cmd::display(command)))
}

pub(super) fn number(value: &Value) -> Result<f64> {
    match value.as_f64() {
        Some(n) if n > 0.0 => Ok(n),
        _ => bail!("the bench report lacks a positive number where one was expected: {value}"),
    }
}

pub(super) fn write_report(name: &str, report: &Value) -> Result<()> {
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

//! `cargo xtask bench store`: durable `record_invocation` per second on SQLite and PostgreSQL,
//! beside a plain batched insert on each.

use std::fmt::Write as _;

use anyhow::{Context, Result};
use serde_json::{Value, json};

use super::{number, run_postgres_bench, run_sqlite_bench, write_report};

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
    let sqlite = run_sqlite_bench("record_invocation", &[])?;
    eprintln!("==> PostgreSQL: group commit vs 50 events per INSERT transaction");
    let postgres = run_postgres_bench("bench_record", &[])?;

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

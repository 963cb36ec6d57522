//! `cargo xtask bench dispatch`: deliveries per second to a loopback target, with the memory
//! store as the in-run baseline for the durable stores.

use std::fmt::Write as _;

use anyhow::{Context, Result};
use serde_json::{Value, json};

use super::{number, run_json_on_postgres, write_report};

/// `cargo xtask bench dispatch`: deliveries per second at several concurrency settings, with
/// the memory store's figures as the in-run baseline for the durable stores.
pub(crate) fn dispatch() -> Result<()> {
    let report = run_json_on_postgres(&["-p", "webhook-dispatch", "--example", "bench_dispatch"])?;
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

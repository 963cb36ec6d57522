//! `cargo xtask bench search`: the latency of searches by words of the payload (`q`) on a log
//! of a million invocations, on SQLite and on PostgreSQL. Each store's program fills a new
//! database through the store and times the searches (`webhook_store_contract::search_bench`).

use std::fmt::Write as _;

use anyhow::{Context, Result};
use serde_json::{Value, json};

use super::{run_postgres_bench, run_sqlite_bench, write_report};

/// Invocations in the log: `XTASK_SEARCH_INVOCATIONS`, default 1,000,000.
fn invocations() -> Result<String> {
    match std::env::var("XTASK_SEARCH_INVOCATIONS") {
        Ok(text) => {
            let count: u64 = text
                .parse()
                .context("XTASK_SEARCH_INVOCATIONS must be a whole number")?;
            Ok(count.to_string())
        }
        Err(_) => Ok("1000000".to_owned()),
    }
}

/// `cargo xtask bench search`: fills a log on each store and prints p50/p95 of each kind of
/// search.
pub(crate) fn search() -> Result<()> {
    let count = invocations()?;
    eprintln!("==> SQLite: {count} invocations, then searches");
    let sqlite = run_sqlite_bench("search", &[&count])?;
    eprintln!("==> PostgreSQL: {count} invocations, then searches");
    let postgres = run_postgres_bench("bench_search", &[&count])?;
    let mut table = String::new();
    writeln!(
        table,
        "{:<9} {:<30} {:>9} {:>6} {:>8} {:>8} {:>8}",
        "store", "search", "searches", "items", "p50 ms", "p95 ms", "max ms"
    )?;
    for report in [&sqlite, &postgres] {
        let store = report["store"].as_str().unwrap_or("?");
        let searches = &report["searches"];
        let kinds = searches["kinds"].as_array().cloned().unwrap_or_default();
        for kind in kinds.iter().chain(std::iter::once(&json!({
            "kind": "all",
            "searches": searches["all"]["searches"],
            "p50_ms": searches["all"]["p50_ms"],
            "p95_ms": searches["all"]["p95_ms"],
            "max_ms": searches["all"]["max_ms"],
        }))) {
            let ms = |key: &str| kind[key].as_f64().unwrap_or(f64::NAN);
            writeln!(
                table,
                "{:<9} {:<30} {:>9} {:>6} {:>8.2} {:>8.2} {:>8.2}",
                store,
                kind["kind"].as_str().unwrap_or("?"),
                kind["searches"],
                kind.get("first_page_items").unwrap_or(&Value::Null),
                ms("p50_ms"),
                ms("p95_ms"),
                ms("max_ms"),
            )?;
        }
    }
    writeln!(
        table,
        "{count} invocations of ~1 KiB in one webhook, written through each store (sqlite: {} s, \
         postgres: {} s); first pages of 50 summaries, the four kinds interleaved",
        sqlite["fill_s"], postgres["fill_s"]
    )?;
    print!("{table}");
    write_report(
        "search",
        &json!({"sqlite": sqlite, "postgres": postgres, "table": table}),
    )
}

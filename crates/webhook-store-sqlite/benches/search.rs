//! Search latency on a large log: fills a new database with invocations through the store
//! (`webhook_store_contract::search_bench`), then times searches by words of the payload.
//! Prints one JSON object.
//!
//! `cargo bench -p webhook-store-sqlite --bench search [-- INVOCATIONS]` (default 1,000,000).

#![expect(clippy::print_stdout, reason = "the report is the program's output")]

mod support;

use std::time::Instant;

use webhook_store_contract::bench::arg;
use webhook_store_contract::search_bench::{fill, time_searches};

#[tokio::main]
async fn main() {
    let count: u64 = arg(1, 1_000_000);
    let (store, world) = support::seeded_store("search").await;
    let filled = fill(&store, &world, count, 64).await;
    let started = Instant::now();
    let report = time_searches(&store, &world).await;
    let searching = started.elapsed();
    let size = std::fs::metadata(store.path()).map_or(0, |m| m.len());
    println!(
        r#"{{"store":"sqlite","invocations":{count},"fill_s":{:.1},"search_s":{:.1},"file_bytes":{size},"searches":{report}}}"#,
        filled.as_secs_f64(),
        searching.as_secs_f64(),
    );
    support::discard(store).await;
}

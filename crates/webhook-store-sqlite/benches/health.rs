//! Health reads on a busy log: fills a new database through the store with an organization of
//! 50 webhooks, one of them with `BUSY` invocations in the last 24 hours
//! (`webhook_store_contract::health_bench`), then times the health of a page of them and of
//! the busy one. Prints one JSON object.
//!
//! `cargo bench -p webhook-store-sqlite --bench health [-- BUSY]` (default 100,000).

#![expect(clippy::print_stdout, reason = "the report is the program's output")]

mod support;

use webhook_store_contract::bench::arg;
use webhook_store_contract::health_bench::{fill, time_reads};

#[tokio::main]
async fn main() {
    let busy: u64 = arg(1, 100_000);
    let (store, world) = support::seeded_store("health").await;
    let (health, filled) = fill(&store, &world, busy, 64).await;
    let report = time_reads(&store, &health).await;
    let size = std::fs::metadata(store.path()).map_or(0, |m| m.len());
    println!(
        r#"{{"store":"sqlite","busy_invocations":{busy},"fill_s":{:.1},"file_bytes":{size},"reads":{report}}}"#,
        filled.as_secs_f64(),
    );
    support::discard(store).await;
}

//! Search latency on a large log: fills a fresh database of the server at `DATABASE_URL` with
//! invocations through the store (`webhook_store_contract::search_bench`), lets PostgreSQL
//! vacuum and analyze the log as autovacuum would after such a load, then times searches by
//! words of the payload. Prints one JSON object.
//!
//! `cargo run --release -p webhook-store-pg --features test-util --example bench_search
//! [INVOCATIONS]` (default 1,000,000).

#![expect(clippy::print_stdout, reason = "the report is the program's output")]

mod support;

use std::time::Instant;

use webhook_store_contract::ContractStore as _;
use webhook_store_contract::bench::arg;
use webhook_store_contract::search_bench::{fill, time_searches};

#[tokio::main]
async fn main() {
    let count: u64 = arg(1, 1_000_000);
    let (store, world, filled) = support::filled_store("invocations", async |store, world| {
        fill(store, world, count, 64).await
    })
    .await;
    let started = Instant::now();
    let report = time_searches(&store, &world).await;
    println!(
        r#"{{"store":"postgres","invocations":{count},"fill_s":{:.1},"search_s":{:.1},"searches":{report}}}"#,
        filled.as_secs_f64(),
        started.elapsed().as_secs_f64(),
    );
    store.teardown().await;
}

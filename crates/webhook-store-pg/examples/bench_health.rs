//! Health reads on a busy log: fills a fresh database of the server at `DATABASE_URL` through
//! the store with an organization of 50 webhooks, one of them with `BUSY` invocations in the
//! last 24 hours (`webhook_store_contract::health_bench`), lets PostgreSQL vacuum and analyze
//! as autovacuum would after such a load, then times the health of a page of them and of the
//! busy one. Prints one JSON object.
//!
//! `cargo run --release -p webhook-store-pg --features test-util --example bench_health
//! [BUSY]` (default 100,000).

#![expect(clippy::print_stdout, reason = "the report is the program's output")]

mod support;

use webhook_store_contract::ContractStore as _;
use webhook_store_contract::bench::arg;
use webhook_store_contract::health_bench::{fill, time_reads};

#[tokio::main]
async fn main() {
    let busy: u64 = arg(1, 100_000);
    let (store, _, (health, filled)) =
        support::filled_store("invocations, tasks", async |store, world| {
            fill(store, world, busy, 64).await
        })
        .await;
    let report = time_reads(&store, &health).await;
    println!(
        r#"{{"store":"postgres","busy_invocations":{busy},"fill_s":{:.1},"reads":{report}}}"#,
        filled.as_secs_f64(),
    );
    store.teardown().await;
}

//! Health reads on a busy log: fills a new database through the store with an organization of
//! 50 webhooks, one of them with `BUSY` invocations in the last 24 hours
//! (`webhook_store_contract::health_bench`), then times the health of a page of them and of
//! the busy one. Prints one JSON object.
//!
//! `cargo bench -p webhook-store-sqlite --bench health [-- BUSY]` (default 100,000).

#![expect(clippy::print_stdout, reason = "the report is the program's output")]

mod support;

use webhook_store_contract::fixtures::World;
use webhook_store_contract::health_bench::{fill, time_reads};
use webhook_store_sqlite::{SqliteOptions, SqliteStore};

fn main() {
    let busy: u64 = std::env::args()
        .skip(1)
        .find_map(|arg| arg.parse().ok())
        .unwrap_or(100_000);
    let path = support::temp_path("health");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let store = SqliteStore::open(SqliteOptions::new(path.clone()))
            .await
            .expect("open");
        let world = World::seed(&store).await;
        let (health, filled) = fill(&store, &world, busy, 64).await;
        let report = time_reads(&store, &health).await;
        let size = std::fs::metadata(&path).map_or(0, |m| m.len());
        println!(
            r#"{{"store":"sqlite","busy_invocations":{busy},"fill_s":{:.1},"file_bytes":{size},"reads":{report}}}"#,
            filled.as_secs_f64(),
        );
        store.close().await;
    });
    support::remove(&path);
}

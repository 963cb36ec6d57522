//! Throughput and latency of `record_invocation` (group commit) at 1, 8 and 64 concurrent
//! writers, against a plain batched insert of the same rows on one connection with the same
//! pragmas. Prints one JSON object.
//!
//! `cargo bench -p webhook-store-sqlite --bench record_invocation [-- OPS]` (default 4096
//! operations per run).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use diesel::RunQueryDsl as _;
use diesel::connection::{Connection as _, SimpleConnection as _};
use diesel::sql_types::{BigInt, Binary, Bool, Text};
use diesel::sqlite::SqliteConnection;
use webhook_domain::model::{Invocation, Task, Webhook};
use webhook_store_contract::bench::{arg, percentile, time_record};
use webhook_store_contract::fixtures::{accepted, at_micros};

mod support;

use support::{discard, remove, seeded_store};

#[expect(clippy::cast_precision_loss, reason = "operation counts are small")]
fn per_second(ops: usize, elapsed: Duration) -> f64 {
    ops as f64 / elapsed.as_secs_f64()
}

/// The `n`th event of a run: 100 µs after the one before (10,000 a second), with time-ordered
/// ids as ingest gives them, so that events written together sit together in every index.
fn event(webhook: &Webhook, n: usize) -> (Invocation, Task) {
    accepted(webhook, at_micros(i64::try_from(n).expect("small") * 100))
}

/// `writers` tasks share `ops` `record_invocation` calls, numbered in the order they are made.
async fn group_commit(writers: usize, ops: usize) -> serde_json::Value {
    let (store, world) = seeded_store("record").await;
    let per_writer = ops / writers;
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let handles: Vec<_> = (0..writers)
        .map(|_| {
            let store = store.clone();
            let hook = world.webhook.clone();
            let next = Arc::clone(&next);
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(per_writer);
                for _ in 0..per_writer {
                    let (invocation, task) = event(&hook, next.fetch_add(1, Ordering::Relaxed));
                    latencies.push(time_record(&store, &invocation, &task).await);
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(ops);
    for handle in handles {
        latencies.extend(handle.await.expect("join"));
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    discard(store).await;
    serde_json::json!({
        "writers": writers,
        "ops": latencies.len(),
        "ops_per_sec": per_second(latencies.len(), elapsed),
        "p50_ms": percentile(&latencies, 0.50),
        "p99_ms": percentile(&latencies, 0.99),
    })
}

/// The same rows inserted by one connection, `batch` per `BEGIN IMMEDIATE` transaction.
async fn plain_batched(ops: usize, batch: usize) -> serde_json::Value {
    let (store, world) = seeded_store("record").await;
    store.close().await;
    let path = store.path().to_owned();
    let elapsed = tokio::task::spawn_blocking(move || {
        let mut conn =
            SqliteConnection::establish(path.to_str().expect("utf-8")).expect("connect");
        conn.batch_execute(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
        )
        .expect("pragmas");
        let rows: Vec<_> = (0..ops).map(|n| event(&world.webhook, n)).collect();
        let started = Instant::now();
        for chunk in rows.chunks(batch) {
            conn.immediate_transaction(|conn| {
                for (inv, task) in chunk {
                    diesel::sql_query(
                        "INSERT INTO invocations (id, organization_id, webhook_id, received_at, \
                         source_ip, event_type, payload, outcome, http_status, task_id, \
                         repeat_count, test) VALUES (?, ?, ?, ?, ?, ?, ?, 'accepted', 202, ?, 1, 0)",
                    )
                    .bind::<Binary, _>(inv.id.as_uuid().as_bytes().as_slice())
                    .bind::<Binary, _>(inv.organization_id.as_uuid().as_bytes().as_slice())
                    .bind::<Binary, _>(inv.webhook_id.as_uuid().as_bytes().as_slice())
                    .bind::<BigInt, _>(inv.received_at.unix_micros())
                    .bind::<Text, _>(inv.source_ip.map(|ip| ip.to_string()).unwrap_or_default())
                    .bind::<Text, _>(inv.event_type.clone().unwrap_or_default())
                    .bind::<Text, _>(task.context.as_str())
                    .bind::<Binary, _>(task.id.as_uuid().as_bytes().as_slice())
                    .execute(conn)?;
                    diesel::sql_query(
                        "INSERT INTO tasks (id, organization_id, target_id, webhook_id, \
                         invocation_id, instruction, event_type, status, test, source_verified, \
                         source_received_at, attempts, next_attempt_at, created_at, updated_at) \
                         VALUES (?, ?, ?, ?, ?, ?, ?, 'queued', 0, ?, ?, 0, ?, ?, ?)",
                    )
                    .bind::<Binary, _>(task.id.as_uuid().as_bytes().as_slice())
                    .bind::<Binary, _>(task.organization_id.as_uuid().as_bytes().as_slice())
                    .bind::<Binary, _>(task.target_id.as_uuid().as_bytes().as_slice())
                    .bind::<Binary, _>(task.webhook_id.as_uuid().as_bytes().as_slice())
                    .bind::<Binary, _>(task.invocation_id.as_uuid().as_bytes().as_slice())
                    .bind::<Text, _>(task.instruction.clone().unwrap_or_default())
                    .bind::<Text, _>(task.event_type.clone().unwrap_or_default())
                    .bind::<Bool, _>(task.source.verified)
                    .bind::<BigInt, _>(task.source.received_at.unix_micros())
                    .bind::<BigInt, _>(task.next_attempt_at.unix_micros())
                    .bind::<BigInt, _>(task.created_at.unix_micros())
                    .bind::<BigInt, _>(task.updated_at.unix_micros())
                    .execute(conn)?;
                }
                Ok::<_, diesel::result::Error>(())
            })
            .expect("batch");
        }
        started.elapsed()
    })
    .await
    .expect("join");
    remove(store.path());
    serde_json::json!({
        "batch": batch,
        "ops": ops,
        "ops_per_sec": per_second(ops, elapsed),
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let ops: usize = arg(1, 4096);
    let baseline = plain_batched(ops, 256).await;
    let mut runs = Vec::new();
    for writers in [1, 8, 64] {
        // One writer waits for each fsync in turn: measure it on fewer operations.
        let run_ops = if writers == 1 { ops.min(512) } else { ops };
        runs.push(group_commit(writers, run_ops).await);
    }
    let baseline_rate = baseline["ops_per_sec"].as_f64().unwrap_or(0.0);
    let at_64 = runs
        .last()
        .and_then(|r| r["ops_per_sec"].as_f64())
        .unwrap_or(0.0);
    let report = serde_json::json!({
        "bench": "sqlite.record_invocation",
        "synchronous": "FULL",
        "baseline_plain_batched_insert": baseline,
        "group_commit": runs,
        "ratio_64_writers_to_baseline": if baseline_rate > 0.0 { at_64 / baseline_rate } else { 0.0 },
    });
    #[expect(clippy::print_stdout, reason = "the bench's output is its report")]
    {
        println!("{report:#}");
    }
}

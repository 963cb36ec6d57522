//! Measures `record_invocation` through group commit at 1, 8 and 64 concurrent writers against
//! a batched baseline (50 invocations with their tasks per transaction, plain `INSERT`), on a
//! fresh database of the server at `DATABASE_URL`. Prints one JSON object.
//!
//! `cargo run --release -p webhook-store-pg --features test-util --example bench_record [seconds]
//! [commit writers]`: the second argument sets the store's group-commit writers (default: the
//! store's default).

#![expect(clippy::cast_precision_loss, reason = "rates of counts far below 2^52")]
#![expect(clippy::print_stdout, reason = "the report is the program's output")]

#[expect(
    dead_code,
    reason = "shared with the other benches; this one does not vacuum"
)]
mod support;

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use diesel::sql_types::{Text, Uuid as SqlUuid};
use diesel_async::RunQueryDsl as _;
use webhook_domain::model::Timestamp;
use webhook_store_contract::ContractStore as _;
use webhook_store_contract::bench::{arg, percentile, time_record};
use webhook_store_contract::fixtures::{World, accepted, at_micros};
use webhook_store_pg::PgStoreOptions;
use webhook_store_pg::test_db::fresh_store_with;

/// A time-ordered (v7) UUID, as the service gives invocations and tasks (PostgreSQL before 18
/// has no `uuidv7()`): the clock's milliseconds over the first 48 bits of a random UUID.
const V7: &str = "\
CREATE FUNCTION pg_temp.v7() RETURNS uuid LANGUAGE sql VOLATILE AS $$
SELECT encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid())
    PLACING substring(int8send((extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
    FROM 1 FOR 6), 52, 1), 53, 1), 'hex')::uuid
$$";

const BASELINE: &str = "\
WITH inv AS (
    INSERT INTO invocations (id, organization_id, webhook_id, received_at, payload, outcome,
                             http_status, task_id, repeat_count, test)
    SELECT pg_temp.v7(), $1, $2, now(), $4, 'accepted', 202, pg_temp.v7(), 1, false
    FROM generate_series(1, 50)
    RETURNING id, task_id, received_at
)
INSERT INTO tasks (id, organization_id, target_id, webhook_id, invocation_id, status, test,
                   source_verified, source_received_at, attempts, next_attempt_at, created_at,
                   updated_at)
SELECT task_id, $1, $3, $2, id, 'queued', false, true, received_at, 0, received_at, received_at,
       received_at
FROM inv";

/// When the next event of the run is received: 100 µs after the one before (10,000 a second),
/// in the order the writers make them, so that events written together sit together in every
/// index, as at ingest.
fn next_event_at() -> Timestamp {
    static NEXT: AtomicI64 = AtomicI64::new(0);
    at_micros(NEXT.fetch_add(1, Ordering::Relaxed) * 100)
}

#[tokio::main]
async fn main() {
    let seconds: u64 = arg(1, 5);
    let run_for = Duration::from_secs(seconds);
    let defaults = PgStoreOptions::default();
    let commit_writers = arg(2, defaults.writers);
    let store = fresh_store_with(PgStoreOptions {
        writers: commit_writers,
        ..defaults
    })
    .await;
    let world = World::seed(&store).await;

    let mut results = Vec::new();
    for writers in [1_usize, 8, 64] {
        let deadline = Instant::now() + run_for;
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..writers {
            let (store, world) = (store.clone(), world.clone());
            tasks.spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let (invocation, task) = accepted(&world.webhook, next_event_at());
                    latencies.push(time_record(&store, &invocation, &task).await);
                }
                latencies
            });
        }
        let mut latencies: Vec<Duration> = tasks.join_all().await.concat();
        latencies.sort_unstable();
        results.push(format!(
            "{{\"writers\":{writers},\"ops_per_sec\":{:.0},\"p50_ms\":{:.2},\"p99_ms\":{:.2}}}",
            latencies.len() as f64 / run_for.as_secs_f64(),
            percentile(&latencies, 0.50),
            percentile(&latencies, 0.99)
        ));
    }

    let mut conn = support::connect(&store).await;
    diesel::sql_query(V7)
        .execute(&mut conn)
        .await
        .expect("the v7 function");
    let deadline = Instant::now() + run_for;
    let mut events = 0_u64;
    while Instant::now() < deadline {
        diesel::sql_query(BASELINE)
            .bind::<SqlUuid, _>(*world.organization.id.as_uuid())
            .bind::<SqlUuid, _>(*world.webhook.id.as_uuid())
            .bind::<SqlUuid, _>(*world.target.id.as_uuid())
            .bind::<Text, _>(r#"{"message":"Deploy api","event_type":"deploy.finished"}"#)
            .execute(&mut conn)
            .await
            .expect("baseline batch");
        events += 50;
    }
    drop(conn);
    let baseline = events as f64 / run_for.as_secs_f64();
    println!(
        "{{\"seconds\":{seconds},\"commit_writers\":{commit_writers},\"group_commit\":[{}],\"baseline_batched_50\":{{\"events_per_sec\":{baseline:.0}}}}}",
        results.join(",")
    );
    store.teardown().await;
}

//! Measures delivery throughput: tasks pushed per second to one loopback target answering 200
//! at once, at 1, 16 and 64 deliveries in flight, on the memory store, on a SQLite file and on a
//! fresh database of the PostgreSQL server at `DATABASE_URL`. Prints one JSON object.
//!
//! `cargo run --release -p webhook-dispatch --example bench_dispatch [tasks] [padding]`
//!
//! `padding` (default 0) makes each event's payload that many bytes larger than the fixture's
//! few dozen: a sender's event is often several kilobytes.

#![expect(clippy::cast_precision_loss, reason = "rates of counts far below 2^52")]
#![expect(clippy::print_stdout, reason = "the report is the program's output")]

#[path = "../tests/it/support.rs"]
#[expect(dead_code, reason = "shared with the tests; the bench uses part of it")]
mod support;

use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use webhook_dispatch::{AttemptResult, DispatchConfig};
use webhook_domain::ports::{Clock as _, Store};
use webhook_store_contract::bench::arg;
use webhook_store_mem::MemoryStore;
use webhook_store_pg::test_db::{drop_database, fresh_store};
use webhook_store_sqlite::{SqliteOptions, SqliteStore};

use support::{
    TargetServer, World, clock, delivery_config, dispatch_config, dispatcher, generated_secret,
};

const IN_FLIGHT: [usize; 3] = [1, 16, 64];

/// Seconds to deliver `tasks` queued tasks with `in_flight` deliveries at a time.
async fn measure<S: Store + Clone + 'static>(
    store: S,
    tasks: usize,
    padding: usize,
    in_flight: usize,
) -> f64 {
    let server = TargetServer::ok().await;
    let clock = clock();
    let world = World::seed(&store, &server.url("/"), &generated_secret(1)).await;
    world
        .enqueue_padded(&store, tasks, clock.now(), padding)
        .await;
    let config = DispatchConfig {
        batch_size: u32::try_from(in_flight).unwrap_or(u32::MAX),
        max_in_flight: in_flight,
        max_in_flight_per_target: in_flight,
        ..dispatch_config()
    };
    let dispatcher = dispatcher(store, &clock, delivery_config(), config);
    let metrics = dispatcher.metrics();
    let (stop, stopped) = oneshot::channel::<()>();
    let started = Instant::now();
    let running = tokio::spawn(async move {
        dispatcher
            .run(async {
                let _ = stopped.await;
            })
            .await;
    });
    while metrics.attempts(AttemptResult::Delivered) < tasks as u64 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let _ = stop.send(());
    let _ = running.await;
    seconds
}

fn row(store: &str, tasks: usize, padding: usize, in_flight: usize, seconds: f64) -> String {
    format!(
        r#"{{"store":"{store}","in_flight":{in_flight},"tasks":{tasks},"padding":{padding},"seconds":{seconds:.3},"per_second":{:.0}}}"#,
        tasks as f64 / seconds
    )
}

#[tokio::main]
async fn main() {
    let tasks: usize = arg(1, 2_000);
    let padding: usize = arg(2, 0);
    let mut rows = Vec::new();
    for in_flight in IN_FLIGHT {
        let seconds = measure(MemoryStore::new(), tasks, padding, in_flight).await;
        rows.push(row("memory", tasks, padding, in_flight, seconds));
    }
    for in_flight in IN_FLIGHT {
        let dir =
            std::env::temp_dir().join(format!("webhookd-bench-dispatch-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let store = SqliteStore::open(SqliteOptions::new(dir.join("bench.sqlite")))
            .await
            .expect("open SQLite");
        let seconds = measure(store.clone(), tasks, padding, in_flight).await;
        store.close().await;
        let _ = std::fs::remove_dir_all(&dir);
        rows.push(row("sqlite", tasks, padding, in_flight, seconds));
    }
    for in_flight in IN_FLIGHT {
        let store = fresh_store().await;
        let name = store.test_database().expect("a test database");
        let seconds = measure(store, tasks, padding, in_flight).await;
        drop_database(&name).await;
        rows.push(row("postgres", tasks, padding, in_flight, seconds));
    }
    println!(
        "{{\"bench\":\"dispatch\",\"results\":[{}]}}",
        rows.join(",")
    );
}

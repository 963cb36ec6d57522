//! The running dispatcher's work loop: when it claims, and what happens to a claim that is still
//! in flight when it stops.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use uuid::Uuid;
use webhook_dispatch::DispatchConfig;
use webhook_domain::model::{ClaimRequest, TaskStatus};
use webhook_domain::ports::{Clock as _, Store, TaskQueue as _};
use webhook_store_mem::MemoryStore;
use webhook_store_pg::test_db::{Lock, drop_database, fresh_store, statement_waits_for_lock};

use crate::support::{
    Reply, Running, TargetServer, TestDispatcher, World, clock, delivery_config, dispatcher,
    eventually, generated_secret, limited, metrics_text, queued, stored,
};

/// The value of the metric line `name` (a counter's or a histogram's `_count`), 0 when absent.
fn metric<S: Store + Clone + 'static>(dispatcher: &TestDispatcher<S>, name: &str) -> u64 {
    metrics_text(dispatcher)
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0)
}

const CLAIMS: &str = "webhookd_dispatch_claim_duration_seconds_count";

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_of_wake_ups_costs_one_claim_per_settling_window() {
    // Nothing is due; ingest wakes the dispatcher on every accepted event. Each claim finds
    // nothing, so the next one waits for the settling window, however many wake-ups come.
    let server = TargetServer::ok().await;
    let store = MemoryStore::new();
    let clock = clock();
    World::seed(&store, &server.url("/"), &generated_secret(1)).await;
    let config = DispatchConfig {
        poll_interval: Duration::from_secs(60),
        settle_after_idle: Duration::from_millis(50),
        ..limited(8, 8, 8)
    };
    let dispatcher = dispatcher(store, &clock, delivery_config(), config);
    let waker = dispatcher.waker();
    let running = Running::start(dispatcher.clone());

    let wake_for = Duration::from_secs(1);
    let started = Instant::now();
    let mut wake_ups = 0_u32;
    while started.elapsed() < wake_for {
        waker.notify_one();
        wake_ups += 1;
        tokio::task::yield_now().await;
    }
    running.stop().await;

    let claims = metric(&dispatcher, CLAIMS);
    // One claim at the start, then at most one per 50 ms window (and one more for timing's
    // slack): 22 over the second. Claiming per wake-up would make thousands.
    assert!(wake_ups > 1_000, "only {wake_ups} wake-ups were sent");
    assert!(claims >= 2, "wake-ups must start claims: {claims}");
    assert!(
        claims <= 22,
        "{claims} claims for {wake_ups} wake-ups in {wake_for:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn slots_freed_one_by_one_are_claimed_for_together() {
    // Eight slots, all busy; they free one at a time, 150 ms apart. A claim is worth a quarter
    // of a batch (two tasks here), so the first freed slot waits for the second.
    let arrivals: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let seen = Arc::clone(&arrivals);
    let server = TargetServer::start(move |index, _| {
        seen.lock().expect("lock").push(Instant::now());
        let slow = u64::try_from(index).unwrap_or(0) + 1;
        if index < 8 {
            Reply::status(200).after(Duration::from_millis(150 * slow))
        } else {
            Reply::status(200)
        }
    })
    .await;
    let (store, clock, _, tasks) = queued(&server.url("/"), 2, 10).await;
    let dispatcher = dispatcher(store.clone(), &clock, delivery_config(), limited(8, 8, 8));
    let running = Running::start(dispatcher.clone());
    eventually(Duration::from_secs(10), "every delivery", || async {
        server.count() == tasks.len()
    })
    .await;
    running.stop().await;

    let arrivals = arrivals.lock().expect("lock").clone();
    // No slot frees before 150 ms after the first request, and a second no earlier than
    // 300 ms: the ninth task goes out with the second, not alone with the first.
    let ninth = arrivals[8] - arrivals[0];
    assert!(
        ninth >= Duration::from_millis(280),
        "the ninth task went out after {ninth:?}, before a second slot was free"
    );
    for task in &tasks {
        assert_eq!(stored(&store, task).await.status, TaskStatus::Delivered);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_claim_in_flight_at_shutdown_is_given_back() {
    // The claim waits on a lock another session holds on `tasks`; the dispatcher is told to
    // stop meanwhile. The claim's answer arrives after the stop: its tasks must go back to the
    // queue at once, not stay leased to a node that no longer delivers them.
    let server = TargetServer::ok().await;
    let store = fresh_store().await;
    let name = store.test_database().expect("a test database");
    let clock = clock();
    let world = World::seed(&store, &server.url("/"), &generated_secret(3)).await;
    let tasks = world.enqueue(&store, 4, clock.now()).await;

    let lock = Lock::table(&name, "tasks").await;

    // The lease (a minute) outlasts the test: only a given-back task is claimable again.
    let dispatcher = dispatcher(store.clone(), &clock, delivery_config(), limited(8, 8, 8));
    let running = Running::start(dispatcher.clone());
    eventually(
        Duration::from_secs(10),
        "the claim waits on the lock",
        || async { statement_waits_for_lock(&name, "skip locked").await },
    )
    .await;
    let stopping = tokio::spawn(running.stop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !stopping.is_finished(),
        "the stop waits for the claim's answer"
    );
    lock.release().await;
    stopping.await.expect("the dispatcher stopped");

    assert_eq!(server.count(), 0, "nothing is delivered after the stop");
    assert_eq!(
        metric(&dispatcher, "webhookd_dispatch_claimed_tasks_total"),
        4,
        "the claim took every task"
    );
    assert_eq!(
        metric(&dispatcher, "webhookd_dispatch_leases_released_total"),
        4
    );
    let again = store
        .claim_tasks(ClaimRequest::new(
            clock.now(),
            Duration::from_secs(60),
            Uuid::new_v4(),
            10,
        ))
        .await
        .expect("claim");
    assert_eq!(again.len(), 4, "every task is claimable again at once");
    for task in &tasks {
        assert_eq!(stored(&store, task).await.attempts, 0);
    }
    drop(store);
    drop_database(&name).await;
}

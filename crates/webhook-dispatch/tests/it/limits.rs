//! Concurrency limits and graceful shutdown of the running dispatcher.

use std::time::Duration;

use uuid::Uuid;
use webhook_dispatch::DispatchConfig;
use webhook_domain::model::{ClaimRequest, Task, TaskStatus};
use webhook_domain::ports::{Clock as _, TaskQueue as _};
use webhook_store_mem::MemoryStore;

use crate::support::{
    Reply, Running, TargetServer, World, clock, delivery_config, dispatch_config, dispatcher,
    eventually, generated_secret, limited, metrics_text, one_task, queued, stored,
};

async fn statuses(store: &MemoryStore, tasks: &[Task]) -> Vec<TaskStatus> {
    let mut all = Vec::new();
    for task in tasks {
        all.push(stored(store, task).await.status);
    }
    all
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_target_does_not_hold_up_the_others() {
    let slow = TargetServer::start(|_, _| Reply::status(200).after(Duration::from_secs(3))).await;
    let fast = TargetServer::ok().await;
    let store = MemoryStore::new();
    let clock = clock();
    let slow_world = World::seed(&store, &slow.url("/"), &generated_secret(1)).await;
    let fast_world = World::seed_in(
        &store,
        &slow_world.organization,
        &fast.url("/"),
        &generated_secret(2),
    )
    .await;
    // The slow target's backlog is the oldest, at the head of the queue, and longer than a
    // batch: a claim of the oldest due tasks would return only tasks of the slow target.
    let slow_tasks = slow_world
        .enqueue(&store, 20, clock.now().minus(Duration::from_secs(10)))
        .await;
    let fast_tasks = fast_world.enqueue(&store, 6, clock.now()).await;
    let config = DispatchConfig {
        shutdown_grace: Duration::from_millis(100),
        ..limited(4, 4, 1)
    };
    let dispatcher = dispatcher(store.clone(), &clock, delivery_config(), config);
    let running = Running::start(dispatcher.clone());

    eventually(
        Duration::from_secs(10),
        "the fast target's tasks",
        || async {
            statuses(&store, &fast_tasks)
                .await
                .iter()
                .all(|s| *s == TaskStatus::Delivered)
        },
    )
    .await;
    assert_eq!(slow.max_concurrency(), 1);
    assert!(slow.count() <= 2, "{}", slow.count());

    // Shutdown with a short grace: the slow attempt in progress gives its lease back.
    running.stop().await;
    let queued = statuses(&store, &slow_tasks)
        .await
        .into_iter()
        .filter(|s| *s == TaskStatus::Queued)
        .count();
    assert!(queued >= 19, "{queued}");
    let reclaimed = store
        .claim_tasks(ClaimRequest::new(
            clock.now(),
            Duration::from_secs(60),
            Uuid::from_u128(1),
            100,
        ))
        .await
        .unwrap();
    assert_eq!(reclaimed.len(), queued, "no lease is left behind");
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_lets_attempts_in_progress_finish() {
    let server =
        TargetServer::start(|_, _| Reply::status(200).after(Duration::from_millis(500))).await;
    let (store, clock, _, task) = one_task(&server.url("/"), 3).await;
    let dispatcher = dispatcher(store.clone(), &clock, delivery_config(), dispatch_config());
    let running = Running::start(dispatcher.clone());
    eventually(Duration::from_secs(5), "the attempt to start", || async {
        server.count() == 1
    })
    .await;
    running.stop().await;
    assert_eq!(stored(&store, &task).await.status, TaskStatus::Delivered);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wake_up_claims_before_the_next_poll() {
    let server = TargetServer::ok().await;
    let store = MemoryStore::new();
    let clock = clock();
    let world = World::seed(&store, &server.url("/"), &generated_secret(4)).await;
    let config = DispatchConfig {
        poll_interval: Duration::from_secs(3600),
        ..dispatch_config()
    };
    let dispatcher = dispatcher(store.clone(), &clock, delivery_config(), config);
    let running = Running::start(dispatcher.clone());
    let task = world.enqueue(&store, 1, clock.now()).await.remove(0);
    dispatcher.waker().notify_one();
    eventually(Duration::from_secs(5), "the woken delivery", || async {
        stored(&store, &task).await.status == TaskStatus::Delivered
    })
    .await;
    running.stop().await;
}

/// Waits until every one of `tasks` is delivered.
async fn every_one_delivered(store: &MemoryStore, tasks: &[Task]) {
    eventually(Duration::from_secs(10), "every delivery", || async {
        statuses(store, tasks)
            .await
            .iter()
            .all(|s| *s == TaskStatus::Delivered)
    })
    .await;
}

fn has_line(text: &str, line: &str) -> bool {
    text.lines().any(|l| l == line)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_task_whose_target_is_busy_waits_on_the_node_for_its_slot() {
    // The target takes one delivery at a time, each a while: the claim hands over both tasks,
    // and the second waits for the first instead of going back to the queue.
    let server =
        TargetServer::start(|_, _| Reply::status(200).after(Duration::from_millis(200))).await;
    let (store, clock, _, tasks) = queued(&server.url("/"), 5, 2).await;
    let dispatcher = dispatcher(store.clone(), &clock, delivery_config(), limited(4, 4, 1));
    let running = Running::start(dispatcher.clone());
    every_one_delivered(&store, &tasks).await;
    running.stop().await;
    assert_eq!(server.max_concurrency(), 1);
    let text = metrics_text(&dispatcher);
    for line in [
        "webhookd_dispatch_leases_released_total 0",
        "webhookd_dispatch_claimed_tasks_total 2",
    ] {
        assert!(has_line(&text, line), "{line} missing from\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_task_whose_lease_can_no_longer_hold_an_attempt_goes_back_to_the_queue() {
    let server = TargetServer::start(|index, _| {
        if index == 0 {
            Reply::status(200).after(Duration::from_secs(1))
        } else {
            Reply::status(200)
        }
    })
    .await;
    let (store, clock, _, tasks) = queued(&server.url("/"), 6, 2).await;
    let config = DispatchConfig {
        lease_for: Duration::from_secs(60),
        ..limited(4, 4, 1)
    };
    let dispatcher = dispatcher(store.clone(), &clock, delivery_config(), config);
    let running = Running::start(dispatcher.clone());
    eventually(Duration::from_secs(5), "the first delivery", || async {
        server.count() == 1
    })
    .await;
    // The second task has waited for the busy target so long that its lease could no longer
    // hold a whole attempt and its recording (5 s and a tenth of 60 s): too late to start.
    clock.advance(Duration::from_secs(50));
    eventually(
        Duration::from_secs(5),
        "the waiting task given back",
        || async {
            has_line(
                &metrics_text(&dispatcher),
                "webhookd_dispatch_leases_released_total 1",
            )
        },
    )
    .await;
    // Claimed again under a new lease, it is delivered once its target is free.
    every_one_delivered(&store, &tasks).await;
    running.stop().await;
    assert_eq!(server.count(), 2);
}

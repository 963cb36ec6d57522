//! One batch of the group commit, made on purpose: requests queued behind a writer that waits on
//! a webhook's row lock are written together, by one statement, once the lock is released.

use std::net::{IpAddr, Ipv6Addr};
use std::task::Poll;
use std::time::{Duration, Instant};

use diesel::sql_query;
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl as _};
use webhook_domain::model::{Invocation, InvocationId, TargetResponse, Task, TaskStatus};
use webhook_domain::ports::{InvocationLog as _, StoreError, TaskQueue as _, WebhookStore as _};
use webhook_store_contract::ContractStore as _;
use webhook_store_contract::fixtures::{
    World, accepted, at, last_triggered_at, payload, rejected, webhook,
};
use webhook_store_pg::test_db::{database_url, fresh_store_with};
use webhook_store_pg::{PgStore, PgStoreOptions};

use crate::support::{Count, admin, backends, execute, hold_webhook_row};

/// A store with one writer, so that a batch waits for the one before it.
async fn one_writer() -> PgStore {
    fresh_store_with(PgStoreOptions {
        writers: 1,
        ..PgStoreOptions::default()
    })
    .await
}

/// Records `requests` as one batch and returns each caller's result, in order.
///
/// The writer is first held on `world`'s webhook (another session locks its row, and an
/// accepted invocation of it waits for the lock); the requests are queued meanwhile, and the
/// writer takes them all at once when the lock is released.
async fn one_batch(
    store: &PgStore,
    world: &World,
    requests: &[(Invocation, Option<Task>)],
) -> Vec<Result<(), StoreError>> {
    let database = store.test_database().expect("a test database");
    let mut blocker = hold_webhook_row(&database, world.webhook.id).await;
    let (held, held_task) = accepted(&world.webhook, at(-1));
    let holder = {
        let store = store.clone();
        tokio::spawn(async move { store.record_invocation(&held, Some(&held_task)).await })
    };
    let mut admin = admin().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while backends(&mut admin, &database, "wait_event_type = 'Lock'").await != 1 {
        assert!(Instant::now() < deadline, "the writer never waited");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let mut calls: Vec<_> = requests
        .iter()
        .map(|(invocation, task)| Box::pin(store.record_invocation(invocation, task.as_ref())))
        .collect();
    for call in &mut calls {
        // The first poll queues the request; the answer comes after the commit.
        std::future::poll_fn(|cx| {
            assert!(
                call.as_mut().poll(cx).is_pending(),
                "answered before commit"
            );
            Poll::Ready(())
        })
        .await;
    }
    execute(&mut blocker, "ROLLBACK").await;
    holder
        .await
        .expect("the holder ran")
        .expect("the holder's write");
    let mut results = Vec::with_capacity(calls.len());
    for call in calls {
        results.push(call.await);
    }
    results
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_writes_every_column() {
    let store = one_writer().await;
    let world = World::seed(&store).await;
    let org = world.organization.id;

    let (plain, plain_task) = accepted(&world.webhook, at(1));
    let (answered, answered_task) = accepted(&world.webhook, at(2));
    let answered = Invocation {
        source_ip: Some(IpAddr::V6(Ipv6Addr::LOCALHOST)),
        payload: Some(payload("Roll back api")),
        test: true,
        repeat_count: 3,
        target_response: Some(TargetResponse {
            status_code: Some(503),
            body_excerpt: Some("busy".to_owned()),
            latency_ms: 1_250,
            error: Some("the target answered 503".to_owned()),
            at: at(3),
            succeeded: false,
        }),
        ..answered
    };
    // A context of its own (not the payload), and a task past its first round.
    let answered_task = Task {
        instruction: None,
        context: payload("Something else"),
        event_type: None,
        status: TaskStatus::Failed,
        test: true,
        attempts: 7,
        attempts_before_round: 5,
        next_attempt_at: at(9),
        last_error: Some("the target answered 503".to_owned()),
        updated_at: at(4),
        ..answered_task
    };
    let (delivered, delivered_task) = accepted(&world.webhook, at(1));
    let delivered = Invocation {
        target_response: Some(TargetResponse {
            status_code: Some(204),
            body_excerpt: None,
            latency_ms: 12,
            error: None,
            at: at(2),
            succeeded: true,
        }),
        ..delivered
    };
    let refused = rejected(&world.webhook, at(3));
    let results = one_batch(
        &store,
        &world,
        &[
            (plain.clone(), Some(plain_task.clone())),
            (answered.clone(), Some(answered_task.clone())),
            (delivered.clone(), Some(delivered_task.clone())),
            (refused.clone(), None),
        ],
    )
    .await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");

    for invocation in [&plain, &answered, &delivered, &refused] {
        assert_eq!(
            &store.invocation(org, invocation.id).await.expect("read"),
            invocation
        );
    }
    for task in [&plain_task, &answered_task, &delivered_task] {
        assert_eq!(&store.task(org, task.id).await.expect("read"), task);
    }
    assert_eq!(
        last_triggered_at(&store, &world.webhook).await,
        Some(at(2)),
        "the latest accepted invocation of the batch"
    );
    // A context equal to the payload is not stored twice.
    let url = database_url(&store.test_database().expect("a test database"));
    let mut conn = AsyncPgConnection::establish(&url).await.expect("connect");
    let own_contexts = sql_query("SELECT count(*) AS n FROM tasks WHERE context IS NOT NULL")
        .get_result::<Count>(&mut conn)
        .await
        .expect("count");
    assert_eq!(own_contexts.n, 1, "only the task whose context is its own");
    drop(conn);
    store.teardown().await;
}

/// Foreign keys are checked when the statement ends: a task finds its invocation written by the
/// same statement, and a row whose parent is absent fails its caller alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_keys_hold_within_one_batch() {
    let store = one_writer().await;
    let world = World::seed(&store).await;
    let org = world.organization.id;

    let (first, first_task) = accepted(&world.webhook, at(1));
    let (orphan, orphan_task) = accepted(&world.webhook, at(2));
    let orphan_task = Task {
        invocation_id: InvocationId::from_uuid(uuid::Uuid::now_v7()),
        ..orphan_task
    };
    let unknown_webhook = webhook(&world.target, at(0));
    let (stray, stray_task) = accepted(&unknown_webhook, at(3));
    let (last, last_task) = accepted(&world.webhook, at(4));
    let results = one_batch(
        &store,
        &world,
        &[
            (first.clone(), Some(first_task.clone())),
            (orphan.clone(), Some(orphan_task.clone())),
            (stray.clone(), Some(stray_task.clone())),
            (last.clone(), Some(last_task.clone())),
        ],
    )
    .await;

    assert!(results[0].is_ok(), "{:?}", results[0]);
    assert!(
        matches!(results[1], Err(StoreError::NotFound)),
        "a task of no invocation: {:?}",
        results[1]
    );
    assert!(
        matches!(results[2], Err(StoreError::NotFound)),
        "an invocation of no webhook: {:?}",
        results[2]
    );
    assert!(results[3].is_ok(), "{:?}", results[3]);
    assert_stored(&store, &[(&first, &first_task), (&last, &last_task)]).await;
    for (invocation, task) in [(&orphan, &orphan_task), (&stray, &stray_task)] {
        assert_not_found(&store.invocation(org, invocation.id).await);
        assert_not_found(&store.task(org, task.id).await);
    }
    assert_not_found(&store.webhook(unknown_webhook.id).await);
    store.teardown().await;
}

/// An id already stored, or twice in one batch, is a `Conflict` for that caller only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_id_fails_only_its_caller() {
    let store = one_writer().await;
    let world = World::seed(&store).await;
    let org = world.organization.id;
    let (stored, stored_task) = world.accept(&store, at(1)).await;

    let (before, before_task) = accepted(&world.webhook, at(2));
    let (again, again_task) = accepted(&world.webhook, at(3));
    let again = Invocation {
        id: stored.id,
        ..again
    };
    let again_task = Task {
        invocation_id: stored.id,
        ..again_task
    };
    let (twin, twin_task) = accepted(&world.webhook, at(4));
    let twin_task = Task {
        id: before_task.id,
        ..twin_task
    };
    let twin = Invocation {
        task_id: Some(twin_task.id),
        ..twin
    };
    let (after, after_task) = accepted(&world.webhook, at(5));
    let results = one_batch(
        &store,
        &world,
        &[
            (before.clone(), Some(before_task.clone())),
            (again.clone(), Some(again_task.clone())),
            (twin.clone(), Some(twin_task.clone())),
            (after.clone(), Some(after_task.clone())),
        ],
    )
    .await;

    assert!(results[0].is_ok(), "{:?}", results[0]);
    assert!(
        matches!(results[1], Err(StoreError::Conflict(_))),
        "a stored invocation id: {:?}",
        results[1]
    );
    assert!(
        matches!(results[2], Err(StoreError::Conflict(_))),
        "a task id earlier in the batch: {:?}",
        results[2]
    );
    assert!(results[3].is_ok(), "{:?}", results[3]);
    assert_eq!(
        store.invocation(org, stored.id).await.expect("read"),
        stored
    );
    assert_eq!(
        store.task(org, stored_task.id).await.expect("read"),
        stored_task
    );
    assert_not_found(&store.task(org, again_task.id).await);
    assert_not_found(&store.invocation(org, twin.id).await);
    assert_eq!(
        store.task(org, before_task.id).await.expect("read"),
        before_task
    );
    assert_stored(&store, &[(&before, &before_task), (&after, &after_task)]).await;
    assert_eq!(last_triggered_at(&store, &world.webhook).await, Some(at(5)));
    store.teardown().await;
}

/// Each invocation and its task read back as written.
async fn assert_stored(store: &PgStore, written: &[(&Invocation, &Task)]) {
    for &(invocation, task) in written {
        let org = invocation.organization_id;
        assert_eq!(
            &store.invocation(org, invocation.id).await.expect("read"),
            invocation
        );
        assert_eq!(&store.task(org, task.id).await.expect("read"), task);
    }
}

fn assert_not_found<T: std::fmt::Debug>(result: &Result<T, StoreError>) {
    assert!(matches!(result, Err(StoreError::NotFound)), "{result:?}");
}

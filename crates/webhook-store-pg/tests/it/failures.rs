//! A database that goes away: writes report `Unavailable` and leave nothing half-written.

use std::time::{Duration, Instant};

use webhook_domain::model::{Invocation, Task};
use webhook_domain::ports::{InvocationLog as _, StoreError, TaskQueue as _, WebhookStore as _};
use webhook_store_contract::ContractStore as _;
use webhook_store_contract::fixtures::{World, accepted, at, last_triggered_at};
use webhook_store_pg::test_db::{Lock, fresh_store, fresh_store_with};
use webhook_store_pg::{PgStore, PgStoreOptions};

use crate::support::{admin, backends, execute};

/// Recording `invocation` and `task` fails for want of the database.
async fn record_fails(store: &PgStore, invocation: &Invocation, task: &Task) {
    let result = store.record_invocation(invocation, Some(task)).await;
    // When the batch went out before the client saw its connection terminated, the store cannot
    // tell whether it committed, and the database refuses the read-back: `OutcomeUnknown` is
    // then the honest answer. Either way nothing was written, as the callers check.
    assert!(
        matches!(
            result,
            Err(StoreError::Unavailable(_) | StoreError::OutcomeUnknown(_))
        ),
        "{result:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_port_is_unavailable() {
    let url = "postgres://postgres@127.0.0.1:1/webhookd";
    assert!(
        PgStore::connect(url, PgStoreOptions::default())
            .await
            .is_err()
    );
    let store = PgStore::open(url, PgStoreOptions::default()).unwrap();
    let world_store = fresh_store().await;
    let world = World::seed(&world_store).await;
    let (invocation, task) = accepted(&world.webhook, at(1));
    record_fails(&store, &invocation, &task).await;
    assert!(matches!(
        store.webhook(world.webhook.id).await,
        Err(StoreError::Unavailable(_))
    ));
    world_store.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminated_backends_make_the_write_unavailable_and_write_nothing() {
    let store = fresh_store().await;
    let database = store.test_database().unwrap();
    let world = World::seed(&store).await;
    let mut admin = admin().await;

    // Refuse new connections and end the open ones: the pool has nothing left to use.
    execute(
        &mut admin,
        &format!("ALTER DATABASE {database} ALLOW_CONNECTIONS false"),
    )
    .await;
    execute(
        &mut admin,
        &format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{database}'"
        ),
    )
    .await;
    let (invocation, task) = accepted(&world.webhook, at(1));
    record_fails(&store, &invocation, &task).await;

    // Back up: the write is absent, and the store recovers on its own.
    execute(
        &mut admin,
        &format!("ALTER DATABASE {database} ALLOW_CONNECTIONS true"),
    )
    .await;
    // Pooled connections that the server closed fail once each; the pool then replaces them.
    let found = until_available(|| store.invocation(world.organization.id, invocation.id)).await;
    assert!(matches!(found, Err(StoreError::NotFound)), "{found:?}");
    let found = until_available(|| store.task(world.organization.id, task.id)).await;
    assert!(matches!(found, Err(StoreError::NotFound)), "{found:?}");
    until_available(|| store.record_invocation(&invocation, Some(&task)))
        .await
        .unwrap();
    store.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_terminated_mid_transaction_leaves_nothing_half_written() {
    let options = PgStoreOptions {
        writers: 1,
        ..PgStoreOptions::default()
    };
    let store = fresh_store_with(options).await;
    let database = store.test_database().unwrap();
    let world = World::seed(&store).await;

    // Hold the webhook's row `FOR UPDATE`: the writer's statement inserts the invocation, then
    // its foreign-key check waits for a key-share lock on the row, inside its transaction.
    let blocker = Lock::webhook_row(&database, *world.webhook.id.as_uuid()).await;

    let (invocation, task) = accepted(&world.webhook, at(1));
    let writer = {
        let store = store.clone();
        let (invocation, task) = (invocation.clone(), task.clone());
        tokio::spawn(async move { store.record_invocation(&invocation, Some(&task)).await })
    };
    let mut admin = admin().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while backends(&mut admin, &database, "wait_event_type = 'Lock'").await != 1 {
        assert!(
            Instant::now() < deadline,
            "the writer never waited on the lock"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    execute(
        &mut admin,
        &format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = '{database}' AND wait_event_type = 'Lock'"
        ),
    )
    .await;
    let result = writer.await.unwrap();
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{result:?}"
    );
    blocker.release().await;

    let found = store.invocation(world.organization.id, invocation.id).await;
    assert!(matches!(found, Err(StoreError::NotFound)), "{found:?}");
    let found = store.task(world.organization.id, task.id).await;
    assert!(matches!(found, Err(StoreError::NotFound)), "{found:?}");
    assert_eq!(last_triggered_at(&store, &world.webhook).await, None);
    store.teardown().await;
}

/// Repeats `operation` while it reports `Unavailable`, for at most ten seconds.
async fn until_available<T, F, Fut>(mut operation: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match operation().await {
            Err(StoreError::Unavailable(_)) if Instant::now() < deadline => {}
            other => return other,
        }
    }
}

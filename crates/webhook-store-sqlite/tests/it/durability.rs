//! What SQLite adds to the contract: acknowledged writes survive reopening the file, a store
//! that cannot write answers `Unavailable` and leaves nothing behind, and concurrent writes
//! grouped into one commit still each get their own result.

use std::fmt::Debug;
use std::time::Duration;

use diesel::connection::{Connection as _, SimpleConnection as _};
use diesel::sqlite::SqliteConnection;
use webhook_domain::ports::{InvocationLog, StoreError, TaskQueue, WebhookStore};
use webhook_store_contract::fixtures::{World, accepted, at, at_micros, last_triggered_at};
use webhook_store_sqlite::{SqliteOptions, SqliteStore, Synchronous};

use crate::support::{open_temp, remove_database, temp_path};

/// The length of the store's database file, or of its WAL by `suffix` `-wal`; 0 when absent.
fn file_len(store: &SqliteStore, suffix: &str) -> u64 {
    let mut file = store.path().to_owned().into_os_string();
    file.push(suffix);
    std::fs::metadata(file).map_or(0, |m| m.len())
}

fn remove(store: &SqliteStore) {
    remove_database(store.path());
}

/// Closes `store` and removes its files.
async fn close_and_remove(store: SqliteStore) {
    store.close().await;
    remove(&store);
}

#[track_caller]
fn assert_not_found<T: Debug>(result: Result<T, StoreError>) {
    match result {
        Err(StoreError::NotFound) => {}
        other => panic!("expected NotFound, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_close_and_reopen() {
    let options = SqliteOptions::new(temp_path());
    let store = SqliteStore::open(options.clone()).await.expect("open");
    let world = World::seed(&store).await;
    let (invocation, task) = world.accept(&store, at(1)).await;
    store.close().await;
    drop(store);

    let reopened = SqliteStore::open(options).await.expect("reopen");
    let org = world.organization.id;
    let stored = reopened.invocation(org, invocation.id).await;
    assert_eq!(stored.expect("invocation"), invocation);
    assert_eq!(reopened.task(org, task.id).await.expect("task"), task);
    assert_eq!(
        last_triggered_at(&reopened, &world.webhook).await,
        Some(at(1))
    );
    close_and_remove(reopened).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn normal_synchronous_mode_opens_and_writes() {
    let options = SqliteOptions {
        synchronous: Synchronous::Normal,
        ..SqliteOptions::new(temp_path())
    };
    let store = SqliteStore::open(options).await.expect("open");
    let world = World::seed(&store).await;
    let (invocation, _) = world.accept(&store, at(1)).await;
    let org = world.organization.id;
    let stored = store.invocation(org, invocation.id).await;
    assert_eq!(stored.expect("invocation"), invocation);
    close_and_remove(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_file_answers_unavailable_and_writes_nothing() {
    let options = SqliteOptions {
        busy_timeout: Duration::from_millis(50),
        ..SqliteOptions::new(temp_path())
    };
    let store = SqliteStore::open(options.clone()).await.expect("open");
    let world = World::seed(&store).await;
    let org = world.organization.id;

    // Another process takes the write lock and keeps it.
    let path = options.path.to_str().expect("utf-8 path").to_owned();
    let mut other = SqliteConnection::establish(&path).expect("second connection");
    other.batch_execute("BEGIN EXCLUSIVE;").expect("lock");

    let writes: Vec<_> = (0..8)
        .map(|n| {
            let store = store.clone();
            let (invocation, task) = accepted(&world.webhook, at_micros(n));
            tokio::spawn(async move {
                let result = store.record_invocation(&invocation, Some(&task)).await;
                (invocation, result)
            })
        })
        .collect();
    let mut failed = Vec::new();
    for write in writes {
        let (invocation, result) = write.await.expect("join");
        assert!(
            matches!(result, Err(StoreError::Unavailable(_))),
            "{result:?}"
        );
        failed.push(invocation);
    }

    other.batch_execute("ROLLBACK;").expect("unlock");
    for invocation in &failed {
        assert_not_found(store.invocation(org, invocation.id).await);
    }
    // Once the lock is gone, the store writes again.
    let (invocation, _) = world.accept(&store, at(2)).await;
    assert!(store.invocation(org, invocation.id).await.is_ok());
    close_and_remove(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_writer_answers_unavailable_and_reads_go_on() {
    let store = open_temp().await;
    let world = World::seed(&store).await;
    let clone = store.clone();
    store.close().await;

    let (invocation, task) = accepted(&world.webhook, at(1));
    let result = clone.record_invocation(&invocation, Some(&task)).await;
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{result:?}"
    );
    assert_not_found(clone.invocation(world.organization.id, invocation.id).await);
    assert_eq!(
        clone.webhook(world.webhook.id).await.expect("read"),
        world.webhook
    );
    remove(&store);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grouped_writes_each_get_their_own_result() {
    let store = open_temp().await;
    let world = World::seed(&store).await;
    let org = world.organization.id;
    let (taken, taken_task) = world.accept(&store, at(1)).await;

    // 64 writers at once; every fourth reuses an invocation id that is already stored.
    let writes: Vec<_> = (0..64)
        .map(|n| {
            let store = store.clone();
            let (mut invocation, mut task) = accepted(&world.webhook, at_micros(2_000_000 + n));
            let duplicate = n % 4 == 0;
            if duplicate {
                invocation.id = taken.id;
                task.invocation_id = taken.id;
            }
            tokio::spawn(async move {
                let result = store.record_invocation(&invocation, Some(&task)).await;
                (duplicate, invocation, task, result)
            })
        })
        .collect();
    for write in writes {
        let (duplicate, invocation, task, result) = write.await.expect("join");
        if duplicate {
            assert!(matches!(result, Err(StoreError::Conflict(_))), "{result:?}");
            assert_not_found(store.task(org, task.id).await);
        } else {
            result.expect("a distinct write commits");
            let stored = store.invocation(org, invocation.id).await;
            assert_eq!(stored.expect("stored"), invocation);
            assert_eq!(store.task(org, task.id).await.expect("stored"), task);
        }
    }
    let first = store.task(org, taken_task.id).await;
    assert_eq!(first.expect("the first write stands"), taken_task);
    close_and_remove(store).await;
}

/// Committed pages reach the database file while the store runs, copied from the WAL by the
/// checkpointer (the writer's own checkpoint waits for 16 MiB of WAL), and closing the store
/// leaves an empty WAL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_is_checkpointed_in_the_background_and_emptied_on_close() {
    let store = open_temp().await;
    let world = World::seed(&store).await;
    let before = file_len(&store, "");
    let writes: Vec<_> = (0..200)
        .map(|n| {
            let store = store.clone();
            let (invocation, task) = accepted(&world.webhook, at_micros(1_000_000 + n * 100));
            tokio::spawn(async move { store.record_invocation(&invocation, Some(&task)).await })
        })
        .collect();
    for write in writes {
        write.await.expect("join").expect("write");
    }
    assert!(file_len(&store, "-wal") > 0, "the writes went to the WAL");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while file_len(&store, "") <= before {
        assert!(
            std::time::Instant::now() < deadline,
            "no page reached the database file"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    store.close().await;
    assert_eq!(file_len(&store, "-wal"), 0, "the WAL is left with frames");
    remove(&store);
}

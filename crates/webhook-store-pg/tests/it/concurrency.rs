//! Many callers on one database: claimers never share a task, group commit isolates failures.

use std::collections::HashSet;
use std::sync::atomic::{AtomicI64, Ordering};

use tokio::task::JoinSet;
use uuid::Uuid;
use webhook_domain::model::ClaimRequest;
use webhook_domain::ports::{InvocationLog as _, StoreError, TaskQueue as _, WebhookStore as _};
use webhook_store_contract::ContractStore as _;
use webhook_store_contract::fixtures::{
    LONG_LEASE, World, accepted, at, at_micros, last_triggered_at, webhook,
};
use webhook_store_pg::PgStoreOptions;
use webhook_store_pg::test_db::{fresh_store, fresh_store_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claimers_never_get_the_same_task() {
    let store = fresh_store().await;
    let world = World::seed(&store).await;
    let mut writes = JoinSet::new();
    for n in 0..200 {
        let (store, world) = (store.clone(), world.clone());
        writes.spawn(async move { world.accept(&store, at(n)).await });
    }
    writes.join_all().await;

    let mut claimers = JoinSet::new();
    for _ in 0..4 {
        let store = store.clone();
        claimers.spawn(async move {
            let token = Uuid::new_v4();
            let mut mine = Vec::new();
            loop {
                let claimed = store
                    .claim_tasks(ClaimRequest::new(at(1_000), LONG_LEASE, token, 7))
                    .await
                    .unwrap();
                if claimed.is_empty() {
                    return mine;
                }
                mine.extend(claimed.into_iter().map(|c| c.task.id));
            }
        });
    }
    let mut seen = HashSet::new();
    for claimed in claimers.join_all().await {
        for id in claimed {
            assert!(seen.insert(id), "task {id} was claimed twice");
        }
    }
    assert_eq!(seen.len(), 200);
    store.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_gives_each_caller_its_own_result() {
    let store = fresh_store().await;
    let world = World::seed(&store).await;
    let (duplicate, duplicate_task) = world.accept(&store, at(1)).await;

    let mut writes = JoinSet::new();
    for n in 0..100_i64 {
        let store = store.clone();
        let (mut invocation, mut task) = accepted(&world.webhook, at(10 + n));
        if n == 50 {
            // Same invocation id as one stored: only this caller may fail.
            invocation.id = duplicate.id;
            task.invocation_id = duplicate.id;
        }
        writes.spawn(async move {
            let result = store.record_invocation(&invocation, Some(&task)).await;
            (n, invocation.id, result)
        });
    }
    let mut written = 0;
    for (n, id, result) in writes.join_all().await {
        if n == 50 {
            assert!(matches!(result, Err(StoreError::Conflict(_))), "{result:?}");
        } else {
            result.unwrap();
            store.invocation(world.organization.id, id).await.unwrap();
            written += 1;
        }
    }
    assert_eq!(written, 99);
    // The stored invocation is untouched, and the webhook saw the latest accepted one.
    let stored = store
        .task(world.organization.id, duplicate_task.id)
        .await
        .unwrap();
    assert_eq!(stored, duplicate_task);
    assert_eq!(
        last_triggered_at(&store, &world.webhook).await,
        Some(at(109))
    );
    store.teardown().await;
}

/// Many writers committing events of the same few webhooks at once: their foreign-key checks
/// share every webhook row, and none may be chosen as a deadlock victim (which would answer a
/// whole batch `Unavailable`); each webhook's `last_triggered_at` is then its latest event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_batches_on_shared_webhooks_never_deadlock() {
    let store = fresh_store_with(PgStoreOptions {
        writers: 8,
        ..PgStoreOptions::default()
    })
    .await;
    let world = World::seed(&store).await;
    let mut hooks = vec![world.webhook.clone()];
    for _ in 0..2 {
        let hook = webhook(&world.target, at(0));
        store.insert_webhook(&hook).await.unwrap();
        hooks.push(hook);
    }

    let next = std::sync::Arc::new(AtomicI64::new(0));
    let mut callers = JoinSet::new();
    for _ in 0..64 {
        let (store, hooks, next) = (store.clone(), hooks.clone(), next.clone());
        callers.spawn(async move {
            for _ in 0..100 {
                let n = next.fetch_add(1, Ordering::Relaxed);
                // Three events in four for the first webhook, so that every batch has some;
                // the rest alternate between the others.
                let hook = if n % 4 == 3 {
                    &hooks[1 + usize::try_from(n / 4 % 2).unwrap()]
                } else {
                    &hooks[0]
                };
                let (invocation, task) = accepted(hook, at_micros(n * 100));
                store
                    .record_invocation(&invocation, Some(&task))
                    .await
                    .unwrap();
            }
        });
    }
    callers.join_all().await;
    let last = next.load(Ordering::Relaxed) - 1;
    let mut latest = Vec::new();
    for hook in &hooks {
        latest.push(last_triggered_at(&store, hook).await);
    }
    latest.sort();
    assert_eq!(
        latest.last().copied().flatten(),
        Some(at_micros(last * 100))
    );
    store.teardown().await;
}

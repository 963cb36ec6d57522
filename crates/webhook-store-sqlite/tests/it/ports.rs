//! The SQLite store's port behaviour beyond organizations: pagination, the `failed` filter,
//! the delivery queue and purging. (The shared contract suite covers the same ground for every
//! store as its cases land.)

use std::time::Duration;

use uuid::Uuid;
use webhook_domain::model::{OutcomeFilter, TaskFilter, TaskStatus, WebhookStatus};
use webhook_domain::ports::{
    AttemptVerdict, InvocationLog, StoreError, TargetStore, TaskQueue, WebhookStore,
};
use webhook_store_contract::ContractStore as _;
use webhook_store_contract::fixtures::{
    LONG_LEASE, World, answered, at, board_target, ignored, page, rejected, timed_out, webhook,
};

use crate::support::open_temp;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invocation_pages_are_newest_first_and_filter_failed() {
    let store = open_temp().await;
    let world = World::seed(&store).await;
    let org = world.organization.id;
    let (ok_inv, ok_task) = world.accept(&store, at(1)).await;
    let (bad_inv, bad_task) = world.accept(&store, at(2)).await;
    let rejected_inv = rejected(&world.webhook, at(3));
    store
        .record_invocation(&rejected_inv, None)
        .await
        .expect("rejected");
    let ignored_inv = ignored(&world.webhook, at(4));
    store
        .record_invocation(&ignored_inv, None)
        .await
        .expect("ignored");

    let claimed = store
        .claim_tasks(at(10), LONG_LEASE, Uuid::new_v4(), 10)
        .await
        .expect("claim");
    assert_eq!(
        claimed.iter().map(|c| c.task.id).collect::<Vec<_>>(),
        vec![ok_task.id, bad_task.id]
    );
    for claim in &claimed {
        if claim.task.id == ok_task.id {
            let done = store
                .finish_attempt(
                    &claim.lease,
                    &answered(&ok_task, 1, 200, at(11)),
                    AttemptVerdict::Delivered,
                )
                .await
                .expect("delivered");
            assert_eq!(done.status, TaskStatus::Delivered);
        } else {
            let retry = store
                .finish_attempt(
                    &claim.lease,
                    &timed_out(&bad_task, 1, at(11)),
                    AttemptVerdict::RetryAt(at(60)),
                )
                .await
                .expect("retry");
            assert_eq!(
                (retry.status, retry.attempts, retry.next_attempt_at),
                (TaskStatus::Queued, 1, at(60))
            );
            assert_eq!(retry.last_error.as_deref(), Some("timeout"));
            // The lease is gone: finishing again conflicts.
            assert!(matches!(
                store.release_lease(&claim.lease).await,
                Err(StoreError::Conflict(_))
            ));
        }
    }

    let all = store
        .invocations(org, world.webhook.id, None, page(2))
        .await
        .expect("page 1");
    assert_eq!(
        all.items.iter().map(|i| i.id).collect::<Vec<_>>(),
        vec![ignored_inv.id, rejected_inv.id]
    );
    let rest = store
        .invocations(org, world.webhook.id, None, page(2).after(all.next))
        .await
        .expect("page 2");
    assert_eq!(
        rest.items.iter().map(|i| i.id).collect::<Vec<_>>(),
        vec![bad_inv.id, ok_inv.id]
    );
    assert_eq!(rest.next, None);

    let failed = store
        .invocations(org, world.webhook.id, Some(OutcomeFilter::Failed), page(10))
        .await
        .expect("failed");
    assert_eq!(
        failed.items.iter().map(|i| i.id).collect::<Vec<_>>(),
        vec![rejected_inv.id, bad_inv.id]
    );
    assert_eq!(
        failed.items[1]
            .target_response
            .as_ref()
            .map(|r| r.succeeded),
        Some(false)
    );
    let attempts = store
        .delivery_attempts(org, bad_task.id)
        .await
        .expect("attempts");
    assert_eq!(attempts, vec![timed_out(&bad_task, 1, at(11))]);

    // Not due before its retry time.
    assert!(
        store
            .claim_tasks(at(59), LONG_LEASE, Uuid::new_v4(), 10)
            .await
            .expect("claim")
            .is_empty()
    );
    let again = store
        .claim_tasks(at(60), Duration::from_secs(1), Uuid::new_v4(), 10)
        .await
        .expect("claim");
    assert_eq!(again.len(), 1);
    // An expired lease can be claimed by another.
    let stolen = store
        .claim_tasks(at(62), LONG_LEASE, Uuid::new_v4(), 10)
        .await
        .expect("claim");
    assert_eq!(stolen.len(), 1);
    assert!(matches!(
        store
            .finish_attempt(
                &again[0].lease,
                &timed_out(&bad_task, 2, at(62)),
                AttemptVerdict::Failed
            )
            .await,
        Err(StoreError::Conflict(_))
    ));
    store.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn board_tasks_filter_and_purge_keeps_open_work() {
    let store = open_temp().await;
    let world = World::seed(&store).await;
    let org = world.organization.id;
    let team = board_target(&world.organization, at(0));
    store.insert_target(&team).await.expect("team");
    let team_hook = webhook(&team, at(0));
    store.insert_webhook(&team_hook).await.expect("hook");
    let team_world = World {
        target: team.clone(),
        webhook: team_hook.clone(),
        ..world.clone()
    };
    let (_, open) = team_world.accept(&store, at(1)).await;
    let (done_inv, done) = team_world.accept(&store, at(2)).await;
    let (_, other) = world.accept(&store, at(3)).await;

    // Board targets are never claimed.
    let claimed = store
        .claim_tasks(at(5), LONG_LEASE, Uuid::new_v4(), 10)
        .await
        .expect("claim");
    assert_eq!(
        claimed.iter().map(|c| c.task.id).collect::<Vec<_>>(),
        vec![other.id]
    );

    for (from, to) in [
        (TaskStatus::Queued, TaskStatus::Delivered),
        (TaskStatus::Delivered, TaskStatus::InProgress),
        (TaskStatus::InProgress, TaskStatus::Completed),
    ] {
        store
            .set_task_status(org, done.id, from, to, at(4))
            .await
            .expect("move");
    }
    assert!(matches!(
        store
            .set_task_status(
                org,
                done.id,
                TaskStatus::Queued,
                TaskStatus::Delivered,
                at(4)
            )
            .await,
        Err(StoreError::Conflict(_))
    ));
    let filter = TaskFilter {
        target_id: Some(team.id),
        status: None,
    };
    let board = store.tasks(org, filter, page(10)).await.expect("board");
    assert_eq!(
        board.items.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![done.id, open.id]
    );
    let filter = TaskFilter {
        target_id: None,
        status: Some(TaskStatus::Queued),
    };
    let queued = store.tasks(org, filter, page(10)).await.expect("queued");
    assert_eq!(
        queued.items.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![other.id, open.id]
    );
    assert_eq!(queued.items[1], open);

    // The team cannot go while its webhook lives; once the webhook is deleted it can.
    assert!(matches!(
        store.delete_target(org, team.id).await,
        Err(StoreError::Conflict(_))
    ));
    let mut deleted = team_hook.clone();
    deleted.status = WebhookStatus::Deleted;
    store
        .update_webhook(&deleted)
        .await
        .expect("delete webhook");
    assert!(matches!(
        store.update_webhook(&deleted).await,
        Err(StoreError::Conflict(_))
    ));
    store
        .delete_target(org, team.id)
        .await
        .expect("delete target");
    assert!(matches!(
        store.target(org, team.id).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.task(org, open.id).await.expect("task stays"), open);

    assert_eq!(store.purge_invocations(at(100)).await.expect("purge"), 1);
    assert!(matches!(
        store.invocation(org, done_inv.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.task(org, done.id).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(
        store.task(org, open.id).await.expect("open work stays"),
        open
    );
    store.teardown().await;
}

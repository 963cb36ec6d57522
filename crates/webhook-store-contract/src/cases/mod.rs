//! The contract cases: `pub async fn <case>(store)`, one per obligation of the store ports.
//! Each gets a fresh, empty store and panics when the store breaks the obligation.
//!
//! Adding a case: write the function in one of these modules and add its name to
//! [`crate::for_each_case!`] (a unit test fails until both agree).

use std::fmt::Debug;

use webhook_domain::model::{
    DeliveryAttempt, Invocation, InvocationFilter, OrganizationId, Page, PageRequest, Task, TaskId,
    TaskStatus, Timestamp, Webhook, WebhookStatus,
};
use webhook_domain::ports::{Store, StoreError};

use crate::fixtures::{World, at, board_target, status_change};

mod health;
mod invocations;
mod key_check;
mod organizations;
mod records;
mod search;
mod sources;
mod summaries;
mod targets;
mod tasks;
mod webhooks;

pub use health::*;
pub use invocations::*;
pub use key_check::*;
pub use organizations::*;
pub use records::*;
pub use search::*;
pub use sources::*;
pub use summaries::*;
pub use targets::*;
pub use tasks::*;
pub use webhooks::*;

/// Every item of a listing, read with `read` a page at a time from `first` on, following the
/// cursors; no page holds more than its limit.
async fn every_page<T, F, Fut>(first: PageRequest, mut read: F) -> Vec<T>
where
    F: FnMut(PageRequest) -> Fut,
    Fut: Future<Output = Result<Page<T>, StoreError>>,
{
    let mut seen = Vec::new();
    let mut request = first;
    for _ in 0..crate::fixtures::MAX_PAGES {
        let Page { items, next } = read(request).await.expect("page");
        assert!(
            items.len() <= request.limit() as usize,
            "a page over its limit"
        );
        seen.extend(items);
        match next {
            Some(cursor) => request = request.after(Some(cursor)),
            None => return seen,
        }
    }
    panic!("the pages never end");
}

#[track_caller]
fn assert_not_found<T: Debug>(result: Result<T, StoreError>, what: &str) {
    match result {
        Err(StoreError::NotFound) => {}
        other => panic!("{what}: expected NotFound, got {other:?}"),
    }
}

/// Moves the queued `task` to `to` at `at`, as an agent or the API would.
async fn move_queued<S: Store>(
    store: &S,
    org: OrganizationId,
    task: TaskId,
    to: TaskStatus,
    at: Timestamp,
) -> Task {
    store
        .set_task_status(org, task, status_change(TaskStatus::Queued, to, at))
        .await
        .expect("move a queued task")
}

/// Deletes `webhook` as the management API does: its tombstone stays.
async fn delete_webhook<S: Store>(store: &S, webhook: &Webhook) {
    delete_webhook_at(store, webhook, webhook.updated_at).await;
}

/// Deletes `webhook` at `at` as the management API does; returns its tombstone, which stays.
async fn delete_webhook_at<S: Store>(store: &S, webhook: &Webhook, at: Timestamp) -> Webhook {
    let tombstone = Webhook {
        status: WebhookStatus::Deleted,
        updated_at: at,
        ..webhook.clone()
    };
    store
        .update_webhook(&tombstone)
        .await
        .expect("delete webhook");
    tombstone
}

/// The world of a team of `world`'s organization, stored with its webhook: a target without an
/// endpoint, whose tasks stay on its board.
async fn board_world<S: Store>(store: &S, world: &World) -> World {
    world
        .with_target(store, board_target(&world.organization, at(0)))
        .await
}

/// One page of the unfiltered log of `world`'s webhook, as `request` asks.
async fn log_page<S: Store>(store: &S, world: &World, request: PageRequest) -> Page<Invocation> {
    store
        .invocations(
            world.organization.id,
            world.webhook.id,
            &InvocationFilter::default(),
            request,
        )
        .await
        .expect("a page of the log")
}

/// The agent takes the delivered `task` in hand, then reports `outcome` (`Completed` or
/// `Failed`) at `at`.
async fn agent_reports<S: Store>(
    store: &S,
    org: OrganizationId,
    task: TaskId,
    outcome: TaskStatus,
    at: Timestamp,
) {
    for (from, to) in [
        (TaskStatus::Delivered, TaskStatus::InProgress),
        (TaskStatus::InProgress, outcome),
    ] {
        store
            .set_task_status(org, task, status_change(from, to, at))
            .await
            .expect("the agent reports progress");
    }
}

/// The delivery attempts of `task`, oldest first.
async fn attempts<S: Store>(store: &S, org: OrganizationId, task: TaskId) -> Vec<DeliveryAttempt> {
    store.delivery_attempts(org, task).await.expect("attempts")
}

#[track_caller]
fn assert_conflict<T: Debug>(result: Result<T, StoreError>, what: &str) {
    match result {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("{what}: expected Conflict, got {other:?}"),
    }
}

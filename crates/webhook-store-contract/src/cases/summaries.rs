//! Cases of the list reads that summarize: `InvocationLog::invocation_summaries` and
//! `TaskQueue::task_summaries`.

use std::collections::HashMap;

use uuid::Uuid;
use webhook_domain::model::{
    AttemptVerdict, ClaimRequest, DeliveryStatus, InvocationFilter, InvocationSummary, Lease,
    MESSAGE_PREVIEW_CHARS, PAYLOAD_EXCERPT_BYTES, Payload, TaskFilter, TaskId, TaskStatus,
    TaskSummary,
};
use webhook_domain::ports::Store;

use super::{agent_reports, every_page, move_queued};
use crate::ContractStore;
use crate::fixtures::{
    LONG_LEASE, World, accepted, answered, at, ignored, page, rejected, timed_out,
};

/// Every summary of the world's webhook, a page of `limit` at a time.
async fn all_summaries<S: Store>(store: &S, world: &World, limit: u32) -> Vec<InvocationSummary> {
    let (org, webhook) = (world.organization.id, world.webhook.id);
    let filter = InvocationFilter::default();
    every_page(page(limit), |request| {
        store.invocation_summaries(org, webhook, &filter, request)
    })
    .await
}

/// A list carries the first bytes of each payload (cut on a character boundary) and the first
/// characters of its `message` when that is a string, never the whole payload.
pub async fn invocation_summaries_carry_prefixes_not_payloads<S: ContractStore>(store: S) {
    let world = World::seed(&store).await;
    // The space makes the excerpt's last whole character end at byte 1023: a cut at 1024 would
    // split an `é`.
    let message = "é".repeat(1_000);
    let big = format!(
        r#"{{"message": "{message}","pad":"{}"}}"#,
        "x".repeat(1 << 20)
    );
    let (mut acc, mut task) = accepted(&world.webhook, at(1));
    acc.payload = Some(Payload::from_stored(big.clone()));
    task.context = Payload::from_stored(big.clone());
    store
        .record_invocation(&acc, Some(&task))
        .await
        .expect("accepted");
    let mut other = ignored(&world.webhook, at(2));
    other.payload = Some(Payload::from_stored(
        r#"{"message":{"text":"not a string"}}"#.to_owned(),
    ));
    store
        .record_invocation(&other, None)
        .await
        .expect("ignored");
    let rej = rejected(&world.webhook, at(3));
    store.record_invocation(&rej, None).await.expect("rejected");

    let listed = all_summaries(&store, &world, 2).await;
    let ids: Vec<_> = listed.iter().map(|s| s.invocation.id).collect();
    assert_eq!(
        ids,
        vec![rej.id, other.id, acc.id],
        "newest first, every page"
    );

    let [rejected_entry, ignored_entry, accepted_entry] = &listed[..] else {
        unreachable!("three entries");
    };
    let mut expected = acc.clone();
    expected.payload = None;
    assert_eq!(
        accepted_entry.invocation, expected,
        "everything but the payload"
    );
    let excerpt = accepted_entry
        .payload_excerpt
        .as_deref()
        .expect("an excerpt of the payload");
    assert_eq!(
        excerpt.len(),
        PAYLOAD_EXCERPT_BYTES - 1,
        "cut before a split character"
    );
    assert!(big.starts_with(excerpt), "a prefix of the payload");
    assert_eq!(
        accepted_entry.message_preview.as_deref(),
        Some("é".repeat(MESSAGE_PREVIEW_CHARS).as_str())
    );
    assert_eq!(accepted_entry.delivery_status, Some(DeliveryStatus::Queued));

    assert_eq!(
        ignored_entry.payload_excerpt.as_deref(),
        Some(r#"{"message":{"text":"not a string"}}"#)
    );
    assert_eq!(ignored_entry.message_preview, None, "not a string");
    assert_eq!(ignored_entry.delivery_status, None, "no task");
    assert_eq!(ignored_entry.invocation.payload, None);

    assert_eq!(rejected_entry.payload_excerpt, None, "no payload");
    assert_eq!(rejected_entry.message_preview, None);
    assert_eq!(rejected_entry.delivery_status, None);
}

/// A summary says where an accepted invocation's task stands in delivery, as
/// [`DeliveryStatus::of`] maps the task's status and its latest attempt.
pub async fn invocation_summaries_say_where_delivery_stands<S: ContractStore>(store: S) {
    let world = World::seed(&store).await;
    let org = world.organization.id;
    let (queued, _) = world.accept(&store, at(1)).await;
    let (retrying, retrying_task) = world.accept(&store, at(2)).await;
    let (delivered, delivered_task) = world.accept(&store, at(3)).await;
    let (failed, failed_task) = world.accept(&store, at(4)).await;
    let (completed, completed_task) = world.accept(&store, at(5)).await;
    let now = at(10);
    let leases: HashMap<TaskId, Lease> = store
        .claim_tasks(ClaimRequest::new(now, LONG_LEASE, Uuid::new_v4(), 10))
        .await
        .expect("claim")
        .into_iter()
        .map(|claimed| (claimed.task.id, claimed.lease))
        .collect();
    for (task, attempt, verdict) in [
        (
            &retrying_task,
            timed_out(&retrying_task, 1, now),
            AttemptVerdict::RetryAt(at(60)),
        ),
        (
            &delivered_task,
            answered(&delivered_task, 1, 200, now),
            AttemptVerdict::Delivered,
        ),
        (
            &failed_task,
            answered(&failed_task, 1, 410, now),
            AttemptVerdict::Failed,
        ),
        (
            &completed_task,
            answered(&completed_task, 1, 200, now),
            AttemptVerdict::Delivered,
        ),
    ] {
        store
            .finish_attempt(&leases[&task.id], &attempt, verdict)
            .await
            .expect("finish the attempt");
    }
    agent_reports(&store, org, completed_task.id, TaskStatus::Completed, now).await;

    let listed = all_summaries(&store, &world, 10).await;
    let state = |id| {
        listed
            .iter()
            .find(|s| s.invocation.id == id)
            .expect("listed")
            .delivery_status
    };
    assert_eq!(state(queued.id), Some(DeliveryStatus::Queued));
    assert_eq!(state(retrying.id), Some(DeliveryStatus::Retrying));
    assert_eq!(state(delivered.id), Some(DeliveryStatus::Delivered));
    assert_eq!(state(failed.id), Some(DeliveryStatus::Failed));
    assert_eq!(state(completed.id), Some(DeliveryStatus::Delivered));
}

/// The board's list holds the same tasks, filtered and paged alike, without their contexts.
pub async fn task_summaries_are_the_tasks_without_context<S: ContractStore>(store: S) {
    let world = World::seed(&store).await;
    let org = world.organization.id;
    let mut tasks = Vec::new();
    for second in 1..=5 {
        tasks.push(world.accept(&store, at(second)).await.1);
    }
    move_queued(&store, org, tasks[1].id, TaskStatus::Failed, at(6)).await;
    for filter in [
        TaskFilter::default(),
        TaskFilter {
            status: Some(TaskStatus::Queued),
            target_id: Some(world.webhook.target_id),
        },
    ] {
        let mut whole = Vec::new();
        let mut summaries = Vec::new();
        let mut request = page(2);
        loop {
            let full = store.tasks(org, filter, request).await.expect("tasks");
            let listed = store
                .task_summaries(org, filter, request)
                .await
                .expect("summaries");
            assert_eq!(listed.next, full.next, "the same cursor");
            whole.extend(full.items);
            summaries.extend(listed.items);
            match full.next {
                Some(cursor) => request = request.after(Some(cursor)),
                None => break,
            }
        }
        let expected: Vec<TaskSummary> = whole.iter().map(TaskSummary::from).collect();
        assert_eq!(summaries, expected, "{filter:?}");
        assert!(!summaries.is_empty());
    }
}

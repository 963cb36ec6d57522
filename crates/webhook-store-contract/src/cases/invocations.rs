//! Cases of `InvocationLog`: the one write that accepts an event, the log's pages and filters,
//! the purge, and the write check behind readiness.

use std::net::{IpAddr, Ipv6Addr};

use uuid::Uuid;
use webhook_domain::model::{AttemptVerdict, ClaimRequest, DeliveryAttempt, QueueStats};
use webhook_domain::model::{
    Invocation, InvocationFilter, InvocationId, OutcomeFilter, PageRequest, TaskId, TaskStatus,
    WebhookFilter,
};
use webhook_domain::ports::{Store, StoreError};

use super::{
    agent_reports, assert_conflict, assert_not_found, attempts, every_page, log_page, move_queued,
};
use crate::fixtures::{
    LONG_LEASE, World, accepted, accepted_test, answered, at, at_micros, ignored,
    last_triggered_at, page, rejected, status_change, stored_organization, timed_out, webhook,
};
use crate::{CommitFault, ContractStore};

/// Every page of a webhook's invocations, following the cursors.
async fn all_pages<S: Store>(
    store: &S,
    world: &World,
    filter: Option<OutcomeFilter>,
    request: PageRequest,
) -> Vec<Invocation> {
    let filter = filter.map(InvocationFilter::outcome).unwrap_or_default();
    let (org, webhook) = (world.organization.id, world.webhook.id);
    every_page(request, |request| {
        store.invocations(org, webhook, &filter, request)
    })
    .await
}

fn ids(invocations: &[Invocation]) -> Vec<InvocationId> {
    invocations.iter().map(|i| i.id).collect()
}

/// Invocations of every outcome, and their tasks, read back exactly as written.
pub async fn record_invocation_round_trips<S: ContractStore>(store: S) {
    let world = World::seed(&store).await;
    let org = world.organization.id;
    let (mut acc, mut task) = accepted_test(&world.webhook, at_micros(1_000_001));
    acc.source_ip = Some(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)));
    task.source.source_ip = acc.source_ip;
    task.source.verified = false;
    task.instruction = None;
    task.event_type = None;
    acc.event_type = None;
    store
        .record_invocation(&acc, Some(&task))
        .await
        .expect("accepted");
    let ign = ignored(&world.webhook, at(2));
    store.record_invocation(&ign, None).await.expect("ignored");
    let rej = Invocation {
        source_ip: None,
        repeat_count: 17,
        http_status: 429,
        error_code: Some("rate_limited".to_owned()),
        event_type: None,
        ..rejected(&world.webhook, at(3))
    };
    store.record_invocation(&rej, None).await.expect("rejected");

    for invocation in [&acc, &ign, &rej] {
        assert_eq!(
            &store.invocation(org, invocation.id).await.expect("read"),
            invocation
        );
    }
    assert_eq!(store.task(org, task.id).await.expect("task"), task);
    assert!(attempts(&store, org, task.id).await.is_empty());
}

/// Recording an invocation whose id exists is a `Conflict` and writes nothing.
pub async fn record_invocation_twice_conflicts<S: ContractStore>(store: S) {
    let world = World::seed(&store).await;
    let org = world.organization.id;
    let first = world.reject(&store, at(1)).await;
    let (acc, task) = accepted(&world.webhook, at(2));
    let again = Invocation {
        id: first.id,
        ..acc
    };
    assert_conflict(
        store.record_invocation(&again, Some(&task)).await,
        "same invocation id",
    );
    assert_eq!(store.invocation(org, first.id).await.expect("read"), first);
    assert_not_found(store.task(org, task.id).await, "the task was not written");
    assert!(
        last_triggered_at(&store, &world.webhook).await.is_none(),
        "last_triggered_at was not set"
    );
}

/// An accepted invocation whose task id exists is a `Conflict`, and neither the invocation nor
/// anything else is written.
pub async fn record_invocation_is_all_or_nothing<S: ContractStore>(store: S) {
    let world = World::seed(&store).await;
    let org = world.organization.id;
    let (_, first_task) = world.accept(&store, at(1)).await;
    let (acc, task) = accepted(&world.webhook, at(5));
    let clash = webhook_domain::model::Task {
        id: first_task.id,
        ..task
    };
    let acc = Invocation {
        task_id: Some(first_task.id),
        ..acc
    };
    assert_conflict(
        store.record_invocation(&acc, Some(&clash)).await,
        "same task id",
    );
    assert_not_found(store.invocation(org, acc.id).await, "invocation written");
    assert_eq!(
        store.task(org, first_task.id).await.expect("first task"),
        first_task
    );
    assert_eq!(
        last_triggered_at(&store, &world.webhook).await,
        Some(at(1)),
        "last_triggered_at moved"
    );
    assert_eq!(all_pages(&store, &world, None, page(10)).await.len(), 1);
}

/// A connection lost during the commit does not make the store answer `Unavailable` for a
/// write that is durable: while the database is reachable it finds out, and answers `Ok` when
/// the write committed and `Unavailable` (with nothing written) when it did not. Never
/// `OutcomeUnknown` here: the database answers well within any deadline.
pub async fn record_invocation_with_a_lost_commit_answers_what_is_stored<S: ContractStore>(
    store: S,
) {
    let world = World::seed(&store).await;
    let org = world.organization.id;
    for (n, fault) in [CommitFault::AfterCommit, CommitFault::BeforeCommit]
        .into_iter()
        .enumerate()
    {
        if !store.break_next_commit(fault) {
            return;
        }
        let (acc, task) = accepted(&world.webhook, at(10 + i64::try_from(n).expect("small")));
        let result = store.record_invocation(&acc, Some(&task)).await;
        let invocation = store.invocation(org, acc.id).await;
        let stored_task = store.task(org, task.id).await;
        match (fault, result) {
            (CommitFault::AfterCommit, Ok(())) => {
                assert_eq!(invocation.expect("the committed invocation"), acc);
                assert_eq!(stored_task.expect("the committed task"), task);
            }
            (CommitFault::BeforeCommit, Err(StoreError::Unavailable(_))) => {
                assert_not_found(invocation, "invocation written");
                assert_not_found(stored_task, "task written");
            }
            (fault, result) => panic!(
                "{fault:?}: answered {result:?} while the invocation reads back as {invocation:?}"
            ),
        }
    }
}

/// An invocation that names a webhook of another organization is `NotFound`, accepted or
/// not, and nothing is written: neither the invocation, nor its task, nor `last_triggered_at`.
pub async fn invocation_for_another_organizations_webhook_is_not_found<S: ContractStore>(store: S) {
    let world = World::seed(&store).await;
    let other = stored_organization(&store).await;
    let (acc, task) = accepted(&world.webhook, at(5));
    let acc = Invocation {
        organization_id: other.id,
        ..acc
    };
    let task = webhook_domain::model::Task {
        organization_id: other.id,
        ..task
    };
    assert_not_found(store.record_invocation(&acc, Some(&task)).await, "accepted");
    let ign = Invocation {
        organization_id: other.id,
        ..ignored(&world.webhook, at(6))
    };
    assert_not_found(store.record_invocation(&ign, None).await, "ignored");
    for (org, id) in [
        (other.id, acc.id),
        (world.organization.id, acc.id),
        (other.id, ign.id),
    ] {
        assert_not_found(store.invocation(org, id).await, "invocation written");
    }
    assert_not_found(store.task(other.id, task.id).await, "task written");
    assert_eq!(
        last_triggered_at(&store, &world.webhook).await,
        None,
        "last_triggered_at moved"
    );
}

/// An accepted invocation sets its webhook's `last_triggered_at` when it is later; other
/// outcomes leave it, and so does an update of the webhook.
pub async fn accepted_invocation_sets_last_triggered_at<S: ContractStore>(store: S) {
    let world = World::seed(&store).await;
    let last = || async { last_triggered_at(&store, &world.webhook).await };
    store
        .record_invocation(&ignored(&world.webhook, at(1)), None)
        .await
        .expect("ignored");
    world.reject(&store, at(2)).await;
    assert_eq!(last().await, None);
    world.accept(&store, at_micros(10_000_003)).await;
    assert_eq!(last().await, Some(at_micros(10_000_003)));
    world.accept(&store, at(5)).await;
    assert_eq!(last().await, Some(at_micros(10_000_003)), "an earlier one");
    world.accept(&store, at(20)).await;
    assert_eq!(last().await, Some(at(20)));
    store
        .record_invocation(&ignored(&world.webhook, at(30)), None)
        .await
        .expect("ignored");
    assert_eq!(last().await, Some(at(20)));
    let mut stale = world.webhook.clone();
    stale.updated_at = at(40);
    store.update_webhook(&stale).await.expect("update");
    assert_eq!(
        last().await,
        Some(at(20)),
        "an update from a stale read moved last_triggered_at"
    );
}

/// A webhook's `last_triggered_at` stays where it was when the purge deletes its latest
/// accepted invocation, in the webhook and in the list of webhooks, while an earlier accepted
/// invocation is kept (its task is not finished).
pub async fn last_triggered_at_outlives_the_purge<S: ContractStore>(store: S) {
    let world = World::seed(&store).await;
    let org = world.organization.id;
    world.accept(&store, at(3)).await;
    let (_, finished) = world.accept(&store, at(5)).await;
    move_queued(&store, org, finished.id, TaskStatus::Failed, at(6)).await;
    world.reject(&store, at(7)).await;

    assert_eq!(store.purge_invocations(at(50)).await.expect("purge"), 2);
    assert_eq!(last_triggered_at(&store, &world.webhook).await, Some(at(5)));
    let listed = store
        .webhooks(org, WebhookFilter::default(), page(10))
        .await
        .expect("list");
    assert_eq!(listed.items.len(), 1);
    assert_eq!(listed.items[0].last_triggered_at, Some(at(5)));

    world.accept(&store, at(60)).await;
    assert_eq!(
        last_triggered_at(&store, &world.webhook).await,
        Some(at(60))
    );
}

/// Another organization's invocation is `NotFound`, and so is a missing one.
pub async fn invocation_of_another_organization_is_not_found<S: ContractStore>(store: S) {
    let world = World::seed(&store).await;
    let other = stored_organization(&store).await;
    let (invocation, _) = world.accept(&store, at(1)).await;
    assert_not_found(store.invocation(other.id, invocation.id).await, "other org");
    assert_not_found(
        store
            .invocation(
                world.organization.id,
                InvocationId::from_uuid(Uuid::new_v4()),
            )
            .await,
        "missing",
    );
    let page = store
        .invocations(
            other.id,
            world.webhook.id,
            &InvocationFilter::default(),
            page(10),
        )
        .await
        .expect("list");
    assert!(page.items.is_empty(), "listed to another organization");
}

/// A webhook's invocations come newest first by (`received_at`, id), a page at a time, and
/// only that webhook's.
pub async fn invocations_are_paged_newest_first<S: ContractStore>(store: S) {
    let world = World::seed(&store).await;
    let sibling = webhook(&world.target, at(0));
    store.insert_webhook(&sibling).await.expect("insert");
    let mut all = Vec::new();
    for i in 0..7 {
        for _ in 0..2 {
            all.push(world.reject(&store, at_micros(i)).await);
        }
        store
            .record_invocation(&rejected(&sibling, at_micros(i)), None)
            .await
            .expect("record sibling");
    }
    all.sort_by_key(|i| std::cmp::Reverse((i.received_at, i.id)));
    for limit in [1, 3, 14, 500] {
        assert_eq!(all_pages(&store, &world, None, page(limit)).await, all);
    }
    let first = log_page(&store, &world, page(14)).await;
    assert_eq!(first.next, None, "exactly one full page has no next");
}

/// Paging on while new invocations arrive neither repeats nor skips an item.
pub async fn invocation_pages_are_stable_under_concurrent_inserts<S: ContractStore>(store: S) {
    let world = World::seed(&store).await;
    let mut before = Vec::new();
    for i in 0..20 {
        before.push(world.reject(&store, at(i)).await);
    }
    before.sort_by_key(|i| std::cmp::Reverse((i.received_at, i.id)));

    let writer = {
        let store = store.clone();
        let webhook = world.webhook.clone();
        tokio::spawn(async move {
            for i in 0..40 {
                let invocation = rejected(&webhook, at(100 + i));
                store
                    .record_invocation(&invocation, None)
                    .await
                    .expect("record");
                tokio::task::yield_now().await;
            }
        })
    };
    let mut seen = Vec::new();
    let first = log_page(&store, &world, page(3)).await;
    let cutoff = first.items.first().map(|i| (i.received_at, i.id));
    seen.extend(first.items);
    let mut request = page(3).after(first.next);
    let mut pages = 0;
    while request.after.is_some() {
        pages += 1;
        assert!(pages <= crate::fixtures::MAX_PAGES, "the pages never end");
        let got = log_page(&store, &world, request).await;
        seen.extend(got.items);
        request = request.after(got.next);
        tokio::task::yield_now().await;
    }
    writer.await.expect("writer");
    // Everything at or before the first item of the first page, each once, in order.
    let expected: Vec<Invocation> = all_pages(&store, &world, None, page(500))
        .await
        .into_iter()
        .filter(|i| Some((i.received_at, i.id)) <= cutoff)
        .collect();
    assert_eq!(ids(&seen), ids(&expected));
    assert!(expected.len() >= before.len());
    let seen_old: Vec<_> = seen.iter().filter(|i| i.received_at < at(100)).collect();
    assert_eq!(seen_old.len(), before.len(), "an old item was skipped");
}

/// The outcome filters `accepted`, `ignored` and `rejected` select by outcome.
pub async fn invocations_filter_by_outcome<S: ContractStore>(store: S) {
    let world = World::seed(&store).await;
    let (acc, _) = world.accept(&store, at(1)).await;
    let ign = ignored(&world.webhook, at(2));
    let rej = rejected(&world.webhook, at(3));
    for i in [&ign, &rej] {
        store.record_invocation(i, None).await.expect("record");
    }
    let check = |filter, expected: Vec<InvocationId>| {
        let store = store.clone();
        let world = world.clone();
        async move {
            let got = all_pages(&store, &world, filter, page(1)).await;
            assert_eq!(ids(&got), expected, "{filter:?}");
        }
    };
    check(None, vec![rej.id, ign.id, acc.id]).await;
    check(Some(OutcomeFilter::Accepted), vec![acc.id]).await;
    check(Some(OutcomeFilter::Ignored), vec![ign.id]).await;
    check(Some(OutcomeFilter::Rejected), vec![rej.id]).await;
}

/// The ids of a log with an entry in every state the `failed` filter tells apart, made by
/// [`log_every_delivery_state`].
pub(super) struct DeliveryStates {
    pub(super) rejected: InvocationId,
    /// Accepted; its latest attempt timed out and a retry is pending.
    pub(super) retrying: InvocationId,
    /// Accepted; a 503, then delivered on the retry.
    pub(super) recovered: InvocationId,
    /// Accepted; delivery gave up after a 410.
    pub(super) given_up: InvocationId,
    /// Accepted and delivered; the agent then reported failure.
    pub(super) reported: InvocationId,
}

/// Logs, for `world`'s webhook, a second apart from `start` + 1 s on: a rejected invocation,
/// an ignored one, an accepted one never attempted, and one accepted in each state of
/// [`DeliveryStates`] in the order of its fields; runs their deliveries at `start` + 10 s and
/// + 11 s. Claims every due task of the store.
pub(super) async fn log_every_delivery_state<S: Store>(
    store: &S,
    world: &World,
    start: i64,
) -> DeliveryStates {
    use AttemptVerdict::{Delivered, Failed, RetryAt};

    let org = world.organization.id;
    let rej = world.reject(store, at(start + 1)).await;
    let ign = ignored(&world.webhook, at(start + 2));
    store.record_invocation(&ign, None).await.expect("ignored");
    world.accept(store, at(start + 3)).await;
    let (retrying, retrying_task) = world.accept(store, at(start + 4)).await;
    let (recovered, recovered_task) = world.accept(store, at(start + 5)).await;
    let (given_up, given_up_task) = world.accept(store, at(start + 6)).await;
    let (reported, reported_task) = world.accept(store, at(start + 7)).await;

    let now = at(start + 10);
    let claimed = store
        .claim_tasks(ClaimRequest::new(now, LONG_LEASE, Uuid::new_v4(), 10))
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 5);
    let lease = |task_id: TaskId| {
        claimed
            .iter()
            .find(|c| c.task.id == task_id)
            .expect("claimed")
            .lease
    };
    let finish = async |attempt: DeliveryAttempt, verdict: AttemptVerdict| {
        store
            .finish_attempt(&lease(attempt.task_id), &attempt, verdict)
            .await
            .expect("finish");
    };
    finish(timed_out(&retrying_task, 1, now), RetryAt(at(start + 60))).await;
    finish(answered(&recovered_task, 1, 503, now), RetryAt(now)).await;
    finish(answered(&given_up_task, 1, 410, now), Failed).await;
    finish(answered(&reported_task, 1, 200, now), Delivered).await;
    let later = at(start + 11);
    let again = store
        .claim_tasks(ClaimRequest::new(later, LONG_LEASE, Uuid::new_v4(), 10))
        .await
        .expect("claim again");
    let recovered_lease = again
        .iter()
        .find(|c| c.task.id == recovered_task.id)
        .expect("due again")
        .lease;
    store
        .finish_attempt(
            &recovered_lease,
            &answered(&recovered_task, 2, 204, later),
            AttemptVerdict::Delivered,
        )
        .await
        .expect("deliver");
    agent_reports(store, org, reported_task.id, TaskStatus::Failed, later).await;
    DeliveryStates {
        rejected: rej.id,
        retrying: retrying.id,
        recovered: recovered.id,
        given_up: given_up.id,
        reported: reported.id,
    }
}

/// `failed` selects rejected invocations and accepted ones whose latest delivery attempt failed
/// (even with a retry pending) or whose task failed.
pub async fn invocations_filter_failed<S: ContractStore>(store: S) {
    let world = World::seed(&store).await;
    let org = world.organization.id;
    let log = log_every_delivery_state(&store, &world, 0).await;

    let failed = all_pages(&store, &world, Some(OutcomeFilter::Failed), page(2)).await;
    assert_eq!(
        ids(&failed),
        vec![log.reported, log.given_up, log.retrying, log.rejected]
    );
    let recovered_now = store.invocation(org, log.recovered).await.expect("read");
    assert!(
        recovered_now
            .target_response
            .as_ref()
            .is_some_and(|r| r.succeeded && r.status_code == Some(204)),
        "the latest response is kept: {recovered_now:?}"
    );
}

/// Records an accepted invocation and fails its task after one attempt.
async fn fail_after_one_attempt<S: Store>(
    store: &S,
    world: &World,
    received_at: webhook_domain::model::Timestamp,
) -> (Invocation, webhook_domain::model::Task) {
    let (invocation, task) = world.accept(store, received_at).await;
    let claimed = store
        .claim_tasks(ClaimRequest::new(
            received_at,
            LONG_LEASE,
            Uuid::new_v4(),
            100,
        ))
        .await
        .expect("claim");
    for c in &claimed {
        if c.task.id == task.id {
            store
                .finish_attempt(
                    &c.lease,
                    &answered(&task, 1, 400, received_at),
                    AttemptVerdict::Failed,
                )
                .await
                .expect("fail");
        } else {
            store.release_lease(&c.lease).await.expect("release");
        }
    }
    (invocation, task)
}

/// The purge deletes invocations received before the cutoff whose task is absent, completed or
/// failed, with their tasks and attempts, and nothing else.
pub async fn purge_removes_old_finished_invocations_only<S: ContractStore>(store: S) {
    let world = World::seed(&store).await;
    let org = world.organization.id;
    let old_rejected = rejected(&world.webhook, at(1));
    let old_ignored = ignored(&world.webhook, at(2));
    for i in [&old_rejected, &old_ignored] {
        store.record_invocation(i, None).await.expect("record");
    }
    let (old_queued, old_queued_task) = world.accept(&store, at(3)).await;
    let mut statuses = Vec::new();
    for (n, path) in [
        vec![TaskStatus::Delivered],
        vec![TaskStatus::Delivered, TaskStatus::InProgress],
        vec![
            TaskStatus::Delivered,
            TaskStatus::InProgress,
            TaskStatus::Completed,
        ],
        vec![TaskStatus::Failed],
    ]
    .into_iter()
    .enumerate()
    {
        let (invocation, task) = world
            .accept(&store, at(4 + i64::try_from(n).expect("small")))
            .await;
        let mut from = TaskStatus::Queued;
        for to in path {
            store
                .set_task_status(org, task.id, status_change(from, to, at(9)))
                .await
                .expect("move");
            from = to;
        }
        statuses.push((invocation, task, from));
    }
    // A task that failed after an attempt, received before the cutoff.
    let (attempted, attempted_task) = fail_after_one_attempt(&store, &world, at(8)).await;
    // Newer than the cutoff, finished or not.
    let new_rejected = rejected(&world.webhook, at(50));
    store
        .record_invocation(&new_rejected, None)
        .await
        .expect("record");
    let (new_done, new_done_task) = world.accept(&store, at(51)).await;
    move_queued(&store, org, new_done_task.id, TaskStatus::Failed, at(52)).await;

    let purged = store.purge_invocations(at(50)).await.expect("purge");
    assert_eq!(purged, 5, "2 without task, 1 completed, 2 failed");

    let (delivered, _, _) = &statuses[0];
    let (in_progress, _, _) = &statuses[1];
    let (completed, completed_task, _) = &statuses[2];
    let (failed, failed_task, _) = &statuses[3];
    for gone in [&old_rejected, &old_ignored, completed, failed, &attempted] {
        assert_not_found(store.invocation(org, gone.id).await, "purged invocation");
    }
    for task in [completed_task, failed_task, &attempted_task] {
        assert_not_found(store.task(org, task.id).await, "purged task");
        assert_not_found(
            store.delivery_attempts(org, task.id).await,
            "purged attempts",
        );
    }
    for kept in [
        &old_queued,
        delivered,
        in_progress,
        &new_rejected,
        &new_done,
    ] {
        store.invocation(org, kept.id).await.expect("kept");
    }
    store
        .task(org, old_queued_task.id)
        .await
        .expect("kept task");
    let listed = all_pages(&store, &world, None, page(50)).await;
    assert_eq!(listed.len(), 5);
    assert_eq!(store.purge_invocations(at(50)).await.expect("again"), 0);
}

/// The write check succeeds on a working store and leaves nothing to read.
pub async fn check_writable_leaves_nothing_visible<S: ContractStore>(store: S) {
    store
        .check_writable()
        .await
        .expect("a working store can write");
    store.check_writable().await.expect("and again");
    assert_eq!(store.count_organizations().await.expect("count"), 0);
    assert!(store.organizations().await.expect("list").is_empty());
    assert_eq!(
        store.queue_stats(at(0)).await.expect("queue stats"),
        QueueStats::default()
    );
}

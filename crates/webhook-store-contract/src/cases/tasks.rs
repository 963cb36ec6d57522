//! Cases of `TaskQueue`: the board, compare-and-set status changes, and the delivery queue with
//! its leases.

use std::collections::HashSet;
use std::time::Duration;

use uuid::Uuid;
use webhook_domain::model::{
    AttemptVerdict, ClaimFloor, ClaimRequest, ClaimedTask, DeliveryAttempt, FinishedAttempt, Lease,
    QueueStats,
};
use webhook_domain::model::{
    DeliveryRound, Task, TaskFilter, TaskId, TaskStatus, TaskStatusChange,
};
use webhook_domain::ports::Store;

use super::{
    assert_conflict, assert_not_found, attempts, board_world, delete_webhook, every_page,
    move_queued,
};
use crate::ContractStore;
use crate::fixtures::{
    LONG_LEASE, World, answered, at, at_micros, manual_retry, page, status_change,
    stored_organization, target, timed_out,
};

/// Every page of the board with `filter`, following the cursors.
async fn board<S: Store>(store: &S, world: &World, filter: TaskFilter, limit: u32) -> Vec<Task> {
    let org = world.organization.id;
    every_page(page(limit), move |request| {
        store.tasks(org, filter, request)
    })
    .await
}

fn task_ids(tasks: &[Task]) -> Vec<TaskId> {
    tasks.iter().map(|t| t.id).collect()
}

fn claimed_ids(claimed: &[ClaimedTask]) -> Vec<TaskId> {
    claimed.iter().map(|c| c.task.id).collect()
}

/// Claims everything due at `now` with a new token.
async fn claim_all<S: Store>(store: &S, now: webhook_domain::model::Timestamp) -> Vec<ClaimedTask> {
    store
        .claim_tasks(ClaimRequest::new(now, LONG_LEASE, Uuid::new_v4(), 100))
        .await
        .expect("claim")
}

/// Claims the one due task at `at(seconds)` and fails its attempt `number` with a 404 a second
/// later; returns the failed task and the lease it was claimed with.
async fn fail_attempt<S: Store>(
    store: &S,
    task: &Task,
    number: u32,
    seconds: i64,
) -> (Task, Lease) {
    let lease = claim_all(store, at(seconds)).await.remove(0).lease;
    let failed = store
        .finish_attempt(
            &lease,
            &answered(task, number, 404, at(seconds + 1)),
            AttemptVerdict::Failed,
        )
        .await
        .expect("fail");
    (failed, lease)
}

/// The board lists tasks newest first by (`created_at`, id), filtered by target and status.
pub async fn tasks_are_paged_newest_first_and_filtered<S: ContractStore>(store: S) {
    let world = World::seed(&store).await;
    let org = world.organization.id;
    let team = board_world(&store, &world).await;
    let other = World::seed(&store).await;
    other.accept(&store, at(1)).await;

    let mut all = Vec::new();
    for i in 0..4 {
        for hooked in [&world, &team] {
            all.push(hooked.accept(&store, at_micros(i)).await.1);
        }
    }
    let moved = all[2].id;
    move_queued(&store, org, moved, TaskStatus::Delivered, at(5)).await;
    let all_now: Vec<Task> = {
        let mut v = Vec::new();
        for t in &all {
            v.push(store.task(org, t.id).await.expect("read"));
        }
        v.sort_by_key(|t| std::cmp::Reverse((t.created_at, t.id)));
        v
    };
    assert_eq!(
        board(&store, &world, TaskFilter::default(), 3).await,
        all_now
    );
    let of_team = board(
        &store,
        &world,
        TaskFilter {
            target_id: Some(team.target.id),
            status: None,
        },
        2,
    )
    .await;
    assert_eq!(
        task_ids(&of_team),
        task_ids(
            &all_now
                .iter()
                .filter(|t| t.target_id == team.target.id)
                .cloned()
                .collect::<Vec<_>>()
        )
    );
    let delivered = board(
        &store,
        &world,
        TaskFilter {
            target_id: Some(world.target.id),
            status: Some(TaskStatus::Delivered),
        },
        2,
    )
    .await;
    assert_eq!(task_ids(&delivered), vec![moved]);
}

/// Another organization's task is `NotFound` to read, change and list attempts of.
pub async fn task_of_another_organization_is_not_found<S: ContractStore>(store: S) {
    let world = World::seed(&store).await;
    let other = stored_organization(&store).await;
    let (_, task) = world.accept(&store, at(1)).await;
    assert_not_found(store.task(other.id, task.id).await, "read");
    assert_not_found(
        store
            .set_task_status(
                other.id,
                task.id,
                status_change(TaskStatus::Queued, TaskStatus::Failed, at(2)),
            )
            .await,
        "set status",
    );
    assert_not_found(store.delivery_attempts(other.id, task.id).await, "attempts");
    let missing = TaskId::from_uuid(Uuid::new_v4());
    assert_not_found(store.task(world.organization.id, missing).await, "missing");
    assert!(
        store
            .tasks(other.id, TaskFilter::default(), page(10))
            .await
            .expect("list")
            .items
            .is_empty()
    );
    let org = world.organization.id;
    assert_eq!(store.task(org, task.id).await.expect("read"), task);
}

/// A status changes only from the expected one: a stale `from` is a `Conflict` that changes
/// nothing.
pub async fn set_task_status_is_compare_and_set<S: ContractStore>(store: S) {
    let world = World::seed(&store).await;
    let org = world.organization.id;
    let (_, task) = world.accept(&store, at(1)).await;
    let delivered = move_queued(&store, org, task.id, TaskStatus::Delivered, at(2)).await;
    assert_eq!(delivered.status, TaskStatus::Delivered);
    assert_eq!(store.task(org, task.id).await.expect("read"), delivered);
    assert_conflict(
        store
            .set_task_status(
                org,
                task.id,
                status_change(TaskStatus::Queued, TaskStatus::Failed, at(3)),
            )
            .await,
        "stale from",
    );
    assert_eq!(store.task(org, task.id).await.expect("read"), delivered);

    // Two concurrent changes from the same status: exactly one wins.
    let racers: Vec<_> = [TaskStatus::Completed, TaskStatus::Failed]
        .into_iter()
        .map(|to| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .set_task_status(
                        org,
                        task.id,
                        status_change(TaskStatus::Delivered, to, at(4)),
                    )
                    .await
            })
        })
        .collect();
    let mut wins = 0;
    for racer in racers {
        match racer.await.expect("join") {
            Ok(_) => wins += 1,
            Err(webhook_domain::ports::StoreError::Conflict(_)) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(wins, 1);
}

/// `finish_attempt` stores what the attempt says: `attempts` becomes its number (not the old
/// count plus one) and `last_error` its error, absent when it carries none.
pub async fn finished_attempt_is_taken_as_given<S: ContractStore>(store: S) {
    let world = World::seed(&store).await;
    let (_, task) = world.accept(&store, at(1)).await;
    let lease = claim_all(&store, at(1)).await.remove(0).lease;
    let mut attempt = answered(&task, 5, 503, at(2));
    attempt.response.error = None;
    let finished = store
        .finish_attempt(&lease, &attempt, AttemptVerdict::RetryAt(at(10)))
        .await
        .expect("finish");
    assert_eq!(finished.attempts, 5);
    assert_eq!(finished.last_error, None);
    let org = world.organization.id;
    assert_eq!(store.task(org, task.id).await.expect("read"), finished);
}

/// A failed task set back to queued is due at the given time, with no lease, and is claimed
/// again.
pub async fn retry_requeues_failed_task<S: ContractStore>(store: S) {
    let world = World::seed(&store).await;
    let org = world.organization.id;
    let (_, task) = world.accept(&store, at(1)).await;
    let (failed, lease) = fail_attempt(&store, &task, 1, 1).await;
    assert_eq!(failed.status, TaskStatus::Failed);
    assert!(
        claim_all(&store, at(3)).await.is_empty(),
        "a failed task is claimed"
    );

    let requeued = store
        .set_task_status(org, task.id, manual_retry(failed.attempts, at(30)))
        .await
        .expect("retry");
    assert_eq!(requeued.status, TaskStatus::Queued);
    assert_eq!(requeued.next_attempt_at, at(30));
    assert_eq!(store.task(org, task.id).await.expect("read"), requeued);
    assert!(
        claim_all(&store, at(29)).await.is_empty(),
        "claimed before due"
    );
    let again = claim_all(&store, at(30)).await;
    assert_eq!(claimed_ids(&again), vec![task.id]);
    // The old lease is gone for good.
    assert_conflict(store.release_lease(&lease).await, "the old lease");
}

/// A manual retry (failed → queued) starts a new delivery round: the round starts after the
/// attempts made so far, the last error is cleared and the task is due at once; the claimed
/// task carries the round, attempts go on being numbered after the earlier ones, and finishing
/// them leaves the round as it is until the next retry.
pub async fn retry_starts_a_new_round_and_numbering_goes_on<S: ContractStore>(store: S) {
    let world = World::seed(&store).await;
    let org = world.organization.id;
    let (_, task) = world.accept(&store, at(1)).await;
    assert_eq!(
        store
            .task(org, task.id)
            .await
            .expect("read")
            .attempts_before_round,
        0,
        "a new task is in its first round"
    );

    // The first round: a retry, then the last attempt the policy allowed fails the task.
    let lease = claim_all(&store, at(1)).await.remove(0).lease;
    let first = answered(&task, 1, 503, at(2));
    store
        .finish_attempt(&lease, &first, AttemptVerdict::RetryAt(at(10)))
        .await
        .expect("retry");
    let lease = claim_all(&store, at(10)).await.remove(0).lease;
    let second = timed_out(&task, 2, at(11));
    let exhausted = store
        .finish_attempt(&lease, &second, AttemptVerdict::Failed)
        .await
        .expect("fail");
    assert_eq!(exhausted.status, TaskStatus::Failed);
    assert_eq!(
        (exhausted.attempts, exhausted.attempts_before_round),
        (2, 0)
    );
    assert_eq!(exhausted.last_error, second.response.error);

    // Retried by hand: the second round starts after attempt 2.
    let requeued = store
        .set_task_status(org, task.id, manual_retry(exhausted.attempts, at(50)))
        .await
        .expect("retry by hand");
    assert_eq!(requeued.status, TaskStatus::Queued);
    assert_eq!((requeued.attempts, requeued.attempts_before_round), (2, 2));
    assert_eq!(requeued.last_error, None);
    assert_eq!(requeued.next_attempt_at, at(50));
    assert_eq!(requeued.updated_at, at(50));
    assert_eq!(store.task(org, task.id).await.expect("read"), requeued);

    let claimed = claim_all(&store, at(50)).await.remove(0);
    assert_eq!(claimed.task, requeued);
    let third = answered(&task, 3, 500, at(51));
    let retrying = store
        .finish_attempt(&claimed.lease, &third, AttemptVerdict::RetryAt(at(60)))
        .await
        .expect("retry in the second round");
    assert_eq!((retrying.attempts, retrying.attempts_before_round), (3, 2));
    assert_eq!(retrying.last_error, third.response.error);
    let claimed = claim_all(&store, at(60)).await.remove(0);
    assert_eq!(claimed.task, retrying);
    let fourth = answered(&task, 4, 502, at(61));
    let failed = store
        .finish_attempt(&claimed.lease, &fourth, AttemptVerdict::Failed)
        .await
        .expect("fail the second round");
    assert_eq!((failed.attempts, failed.attempts_before_round), (4, 2));
    assert_eq!(store.task(org, task.id).await.expect("read"), failed);

    // Every attempt of both rounds is in the log, numbered once each.
    assert_eq!(
        attempts(&store, org, task.id).await,
        vec![first, second, third, fourth]
    );

    // A third round starts after attempt 4.
    let again = store
        .set_task_status(org, task.id, manual_retry(failed.attempts, at(90)))
        .await
        .expect("retry by hand again");
    assert_eq!((again.attempts, again.attempts_before_round), (4, 4));
    assert_eq!(again.last_error, None);
    assert_eq!(store.task(org, task.id).await.expect("read"), again);
}

/// A status change is persisted as it is given: a new round takes the given due time and round
/// start (not the change's time), and a change without a round keeps the task's due time, round
/// and last error; either way the lease ends.
pub async fn set_task_status_persists_the_change_as_given<S: ContractStore>(store: S) {
    let world = World::seed(&store).await;
    let org = world.organization.id;
    let (_, task) = world.accept(&store, at(1)).await;
    let lease = claim_all(&store, at(1)).await.remove(0).lease;
    let first = answered(&task, 1, 503, at(2));
    let retrying = store
        .finish_attempt(&lease, &first, AttemptVerdict::RetryAt(at(10)))
        .await
        .expect("retry");
    let lease = claim_all(&store, at(10)).await.remove(0).lease;

    // Given up while leased, with no new round.
    let failed = move_queued(&store, org, task.id, TaskStatus::Failed, at(11)).await;
    assert_eq!(failed.status, TaskStatus::Failed);
    assert_eq!(failed.updated_at, at(11));
    assert_eq!(failed.next_attempt_at, retrying.next_attempt_at);
    assert_eq!((failed.attempts, failed.attempts_before_round), (1, 0));
    assert_eq!(failed.last_error, first.response.error);
    assert_conflict(
        store.release_lease(&lease).await,
        "the lease of a changed task",
    );

    // Retried with a round that is due later than the change is made.
    let round = DeliveryRound {
        attempts_before: 1,
        due_at: at(70),
    };
    let change = TaskStatusChange {
        from: TaskStatus::Failed,
        to: TaskStatus::Queued,
        at: at(50),
        round: Some(round),
    };
    let requeued = store
        .set_task_status(org, task.id, change)
        .await
        .expect("retry by hand");
    assert_eq!(requeued.status, TaskStatus::Queued);
    assert_eq!(requeued.updated_at, at(50));
    assert_eq!(requeued.next_attempt_at, at(70));
    assert_eq!((requeued.attempts, requeued.attempts_before_round), (1, 1));
    assert_eq!(requeued.last_error, None);
    assert_eq!(store.task(org, task.id).await.expect("read"), requeued);
    assert!(
        claim_all(&store, at(69)).await.is_empty(),
        "claimed before the round is due"
    );
    assert_eq!(claimed_ids(&claim_all(&store, at(70)).await), vec![task.id]);
}

/// A new round computed from a stale read (the task's `attempts` moved on since: another round
/// ran meanwhile) is a `Conflict` that changes nothing, even though the status is `from` again.
pub async fn set_task_status_round_after_another_round_conflicts<S: ContractStore>(store: S) {
    let world = World::seed(&store).await;
    let org = world.organization.id;
    let (_, task) = world.accept(&store, at(1)).await;
    let (failed, _) = fail_attempt(&store, &task, 1, 1).await;
    let stale = manual_retry(failed.attempts, at(5));

    // Another caller retries first, and the second round fails too.
    store
        .set_task_status(org, task.id, manual_retry(failed.attempts, at(3)))
        .await
        .expect("the other retry");
    let (failed_again, _) = fail_attempt(&store, &task, 2, 3).await;
    assert_eq!(failed_again.status, TaskStatus::Failed);

    assert_conflict(
        store.set_task_status(org, task.id, stale).await,
        "a round after another round",
    );
    assert_eq!(store.task(org, task.id).await.expect("read"), failed_again);
}

/// A claim leases due tasks oldest due first, up to the limit, with their target's endpoint and
/// signing secret; tasks not yet due, not queued or leased are left.
pub async fn claim_returns_due_tasks_oldest_first<S: ContractStore>(store: S) {
    let world = World::seed(&store).await;
    let org = world.organization.id;
    let mut tasks = world.accept_at(&store, [3, 1, 2, 4, 0]).await;
    let (_, future) = world.accept(&store, at(30)).await;
    let (_, delivered) = world.accept(&store, at(-5)).await;
    move_queued(&store, org, delivered.id, TaskStatus::Delivered, at(0)).await;
    tasks.sort_by_key(|t| t.next_attempt_at);

    let now = at(10);
    let token = Uuid::new_v4();
    let lease_for = Duration::from_secs(30);
    let first = store
        .claim_tasks(ClaimRequest::new(now, lease_for, token, 3))
        .await
        .expect("claim");
    assert_eq!(claimed_ids(&first), task_ids(&tasks[..3]));
    for (claimed, task) in first.iter().zip(&tasks) {
        assert_eq!(&claimed.task, task);
        assert_eq!(
            claimed.lease,
            Lease {
                task_id: task.id,
                token,
                until: now.plus(lease_for),
            }
        );
        assert_eq!(
            Some(&claimed.endpoint_url),
            world.target.endpoint_url.as_ref()
        );
        assert_eq!(claimed.signing_secret, world.target.signing_secret);
    }
    let rest = claim_all(&store, now).await;
    assert_eq!(claimed_ids(&rest), task_ids(&tasks[3..]));
    assert!(claim_all(&store, now).await.is_empty());
    assert!(
        store
            .claim_tasks(ClaimRequest::new(at(1000), lease_for, token, 0))
            .await
            .expect("claim none")
            .is_empty()
    );
    assert_eq!(
        claimed_ids(&claim_all(&store, at(30)).await),
        vec![future.id]
    );
}

/// Tasks of a target without an endpoint, or of a deleted target, are never claimed; once the
/// target gets an endpoint they are.
pub async fn claim_skips_targets_without_endpoint<S: ContractStore>(store: S) {
    let world = World::seed(&store).await;
    let org = world.organization.id;
    let team = board_world(&store, &world).await;
    let (_, team_task) = team.accept(&store, at(1)).await;

    let doomed = world
        .with_target(&store, target(&world.organization, at(0)))
        .await;
    doomed.accept(&store, at(2)).await;
    delete_webhook(&store, &doomed.webhook).await;
    store
        .delete_target(org, doomed.target.id)
        .await
        .expect("delete target");

    assert!(claim_all(&store, at(10)).await.is_empty());

    let pushed = webhook_domain::model::Target {
        endpoint_url: world.target.endpoint_url.clone(),
        updated_at: at(11),
        ..team.target
    };
    store
        .update_target(&pushed)
        .await
        .expect("give an endpoint");
    let claimed = claim_all(&store, at(12)).await;
    assert_eq!(claimed_ids(&claimed), vec![team_task.id]);
    assert_eq!(Some(&claimed[0].endpoint_url), pushed.endpoint_url.as_ref());
}

/// A world with five tasks due at 0–4 s and a second target of its organization with tasks
/// due at each second of `others_at`: the world and its tasks, the other and its tasks.
async fn two_targets_queued<S: ContractStore>(
    store: &S,
    others_at: std::ops::Range<i64>,
) -> (World, Vec<Task>, World, Vec<Task>) {
    let world = World::seed(store).await;
    let other = world
        .with_target(store, target(&world.organization, at(0)))
        .await;
    let tasks = world.accept_at(store, 0..5).await;
    let others = other.accept_at(store, others_at).await;
    (world, tasks, other, others)
}

/// Tasks of the targets a claim skips are passed over, however old: the other targets' due
/// tasks are claimed instead, oldest first; without skips the oldest come first again.
pub async fn claim_passes_over_skipped_targets<S: ContractStore>(store: S) {
    let (busy, backlog, other, others) = two_targets_queued(&store, 10..12).await;

    let now = at(20);
    let skipping = store
        .claim_tasks(
            ClaimRequest::new(now, LONG_LEASE, Uuid::new_v4(), 3).skipping(&[busy.target.id]),
        )
        .await
        .expect("claim skipping the busy target");
    assert_eq!(claimed_ids(&skipping), task_ids(&others));
    assert!(
        store
            .claim_tasks(
                ClaimRequest::new(now, LONG_LEASE, Uuid::new_v4(), 3)
                    .skipping(&[busy.target.id, other.target.id])
            )
            .await
            .expect("claim skipping both")
            .is_empty()
    );
    let oldest = store
        .claim_tasks(ClaimRequest::new(now, LONG_LEASE, Uuid::new_v4(), 3))
        .await
        .expect("claim");
    assert_eq!(claimed_ids(&oldest), task_ids(&backlog[..3]));
}

/// A claim from floors returns every due task at or after its target's floor, oldest first,
/// and targets without a floor as it would without floors; it may pass over a target's tasks
/// due before its floor, and a claim without floors reaches them.
pub async fn claim_from_floors_reaches_every_task_from_them<S: ContractStore>(store: S) {
    let (floored, backlog, _, others) = two_targets_queued(&store, 1..3).await;

    let now = at(20);
    let floors = [ClaimFloor {
        target_id: floored.target.id,
        due_at: at(3),
    }];
    let from_floors = store
        .claim_tasks(ClaimRequest::new(now, LONG_LEASE, Uuid::new_v4(), 10).from_floors(&floors))
        .await
        .expect("claim from floors");
    let from_floor: Vec<TaskId> = claimed_ids(&from_floors)
        .into_iter()
        .filter(|id| !task_ids(&backlog[..3]).contains(id))
        .collect();
    assert_eq!(
        from_floor,
        vec![others[0].id, others[1].id, backlog[3].id, backlog[4].id]
    );
    let rest = store
        .claim_tasks(ClaimRequest::new(now, LONG_LEASE, Uuid::new_v4(), 10))
        .await
        .expect("claim without floors");
    let mut before_floor = claimed_ids(&from_floors);
    before_floor.retain(|id| !from_floor.contains(id));
    before_floor.extend(claimed_ids(&rest));
    before_floor.sort_unstable();
    let mut expected = task_ids(&backlog[..3]);
    expected.sort_unstable();
    assert_eq!(before_floor, expected, "every task is claimed once");
}

/// Concurrent claimers never get the same task, and together they get every due task.
pub async fn two_claimers_never_get_the_same_task<S: ContractStore>(store: S) {
    let world = World::seed(&store).await;
    let mut all = HashSet::new();
    for i in 0..40 {
        all.insert(world.accept(&store, at_micros(i)).await.1.id);
    }
    let claimers: Vec<_> = (0..2)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let token = Uuid::new_v4();
                let mut mine = Vec::new();
                // 40 tasks by 3 need at most 14 rounds; more means tasks come back.
                for _ in 0..20 {
                    let got = store
                        .claim_tasks(ClaimRequest::new(at(10), LONG_LEASE, token, 3))
                        .await
                        .expect("claim");
                    if got.is_empty() {
                        return mine;
                    }
                    assert!(got.iter().all(|c| c.lease.token == token));
                    mine.extend(claimed_ids(&got));
                    tokio::task::yield_now().await;
                }
                panic!("leased tasks keep being claimed");
            })
        })
        .collect();
    let mut seen = HashSet::new();
    for claimer in claimers {
        for id in claimer.await.expect("join") {
            assert!(seen.insert(id), "task {id:?} was claimed twice");
        }
    }
    assert_eq!(seen, all);
}

/// When a lease expires the task is claimable again, and the first holder lost it.
pub async fn expired_lease_is_claimable_again<S: ContractStore>(store: S) {
    let world = World::seed(&store).await;
    let (_, task) = world.accept(&store, at(1)).await;
    let lease_for = Duration::from_secs(60);
    let first = store
        .claim_tasks(ClaimRequest::new(at(2), lease_for, Uuid::new_v4(), 10))
        .await
        .expect("claim");
    assert_eq!(claimed_ids(&first), vec![task.id]);
    let holding = store
        .claim_tasks(ClaimRequest::new(at(61), lease_for, Uuid::new_v4(), 10))
        .await
        .expect("claim");
    assert!(holding.is_empty(), "claimed while the lease lasts");
    let second = store
        .claim_tasks(ClaimRequest::new(at(62), lease_for, Uuid::new_v4(), 10))
        .await
        .expect("claim");
    assert_eq!(claimed_ids(&second), vec![task.id]);
    assert_eq!(second[0].lease.until, at(122));
    assert_conflict(
        store.release_lease(&first[0].lease).await,
        "release a lost lease",
    );
    store
        .release_lease(&second[0].lease)
        .await
        .expect("the new holder releases");
}

/// A delivered attempt records the attempt, the invocation's target response, the task's
/// attempts and status, and releases the lease.
pub async fn finish_attempt_records_attempt_and_target_response<S: ContractStore>(store: S) {
    let world = World::seed(&store).await;
    let org = world.organization.id;
    let (invocation, task) = world.accept(&store, at(1)).await;
    let lease = claim_all(&store, at(2)).await.remove(0).lease;
    let attempt = answered(&task, 1, 202, at_micros(2_500_001));
    let finished = store
        .finish_attempt(&lease, &attempt, AttemptVerdict::Delivered)
        .await
        .expect("finish");
    assert_eq!(finished.status, TaskStatus::Delivered);
    assert_eq!(finished.attempts, 1);
    assert_eq!(store.task(org, task.id).await.expect("read"), finished);
    assert_eq!(attempts(&store, org, task.id).await, vec![attempt.clone()]);
    let logged = store.invocation(org, invocation.id).await.expect("read");
    assert_eq!(logged.target_response, Some(attempt.response));
    assert_conflict(store.release_lease(&lease).await, "the lease was released");
    assert!(
        claim_all(&store, at(3)).await.is_empty(),
        "a delivered task is claimed"
    );
}

/// A retry verdict keeps the task queued, due at the given time, with the attempt's error; a
/// failed verdict fails it. Attempts are listed oldest first.
pub async fn finish_attempt_retries_then_fails<S: ContractStore>(store: S) {
    let world = World::seed(&store).await;
    let org = world.organization.id;
    let (invocation, task) = world.accept(&store, at(1)).await;
    let lease = claim_all(&store, at(1)).await.remove(0).lease;
    let first = timed_out(&task, 1, at(2));
    let retrying = store
        .finish_attempt(&lease, &first, AttemptVerdict::RetryAt(at(40)))
        .await
        .expect("retry");
    assert_eq!(retrying.status, TaskStatus::Queued);
    assert_eq!(retrying.next_attempt_at, at(40));
    assert_eq!(retrying.attempts, 1);
    assert_eq!(retrying.last_error, first.response.error);
    assert_eq!(store.task(org, task.id).await.expect("read"), retrying);
    assert!(
        claim_all(&store, at(39)).await.is_empty(),
        "claimed before due"
    );

    let lease = claim_all(&store, at(40)).await.remove(0).lease;
    let second = answered(&task, 2, 500, at(41));
    let failed = store
        .finish_attempt(&lease, &second, AttemptVerdict::Failed)
        .await
        .expect("fail");
    assert_eq!(failed.status, TaskStatus::Failed);
    assert_eq!(failed.attempts, 2);
    assert_eq!(failed.last_error, second.response.error);
    assert_eq!(
        attempts(&store, org, task.id).await,
        vec![first, second.clone()]
    );
    assert_eq!(
        store
            .invocation(org, invocation.id)
            .await
            .expect("read")
            .target_response,
        Some(second.response)
    );
    assert!(claim_all(&store, at(1000)).await.is_empty());
}

/// The one task due at `at(1)`, claimed then for 10 s (the stale lease) and claimed again at
/// `at(20)`, once that lease has expired (the fresh one).
async fn stale_and_fresh_leases<S: Store>(store: &S) -> (Lease, Lease) {
    let lease_for = Duration::from_secs(10);
    let claim = async |seconds| {
        store
            .claim_tasks(ClaimRequest::new(at(seconds), lease_for, Uuid::new_v4(), 1))
            .await
            .expect("claim")
            .remove(0)
            .lease
    };
    (claim(1).await, claim(20).await)
}

/// Finishing under a lease that was lost (expired and claimed by another, or the task is no
/// longer queued) is a `Conflict` that records nothing.
pub async fn finish_attempt_with_lost_lease_conflicts_and_records_nothing<S: ContractStore>(
    store: S,
) {
    let world = World::seed(&store).await;
    let org = world.organization.id;
    let (invocation, task) = world.accept(&store, at(1)).await;
    let (stale, fresh) = stale_and_fresh_leases(&store).await;
    let before = store.task(org, task.id).await.expect("read");
    for verdict in [
        AttemptVerdict::Delivered,
        AttemptVerdict::RetryAt(at(30)),
        AttemptVerdict::Failed,
    ] {
        assert_conflict(
            store
                .finish_attempt(&stale, &answered(&task, 1, 200, at(21)), verdict)
                .await,
            "finish under a lost lease",
        );
    }
    let forged = Lease {
        token: Uuid::new_v4(),
        ..fresh
    };
    assert_conflict(
        store
            .finish_attempt(
                &forged,
                &answered(&task, 1, 200, at(21)),
                AttemptVerdict::Delivered,
            )
            .await,
        "finish under a forged lease",
    );
    assert_eq!(store.task(org, task.id).await.expect("read"), before);
    assert!(attempts(&store, org, task.id).await.is_empty());
    assert_eq!(
        store.invocation(org, invocation.id).await.expect("read"),
        invocation
    );

    // The agent moved the task on meanwhile: the holder's lease no longer counts.
    move_queued(&store, org, task.id, TaskStatus::Delivered, at(22)).await;
    assert_conflict(
        store
            .finish_attempt(
                &fresh,
                &answered(&task, 1, 200, at(23)),
                AttemptVerdict::Delivered,
            )
            .await,
        "finish on a task that is not queued",
    );
    assert_conflict(
        store.release_lease(&fresh).await,
        "release on a task not queued",
    );
    assert!(attempts(&store, org, task.id).await.is_empty());
}

/// An attempt to record with `finish_attempts`.
fn finished(lease: Lease, attempt: DeliveryAttempt, verdict: AttemptVerdict) -> FinishedAttempt {
    FinishedAttempt {
        lease,
        attempt,
        verdict,
    }
}

/// Attempts finished together are each recorded as `finish_attempt` records them, and each
/// gets its own answer: a lost lease, a forged one or the same lease used twice conflicts and
/// records nothing, and leaves the others recorded.
pub async fn finish_attempts_answer_each_attempt<S: ContractStore>(store: S) {
    let world = World::seed(&store).await;
    let org = world.organization.id;
    let mut accepted = Vec::new();
    for second in 1..=4 {
        accepted.push(world.accept(&store, at(second)).await);
    }
    let claimed = claim_all(&store, at(5)).await;
    let lease = |task: &Task| {
        claimed
            .iter()
            .find(|c| c.task.id == task.id)
            .expect("claimed")
            .lease
    };
    let [
        (first_inv, first),
        (second_inv, second),
        (third_inv, third),
        (fourth_inv, fourth),
    ] = <[_; 4]>::try_from(accepted).expect("four tasks");
    let delivered = answered(&first, 1, 200, at(6));
    let retried = timed_out(&second, 1, at(6));
    let forged = answered(&third, 1, 200, at(6));
    let failed = answered(&fourth, 1, 410, at(6));
    let batch = [
        finished(lease(&first), delivered.clone(), AttemptVerdict::Delivered),
        finished(
            lease(&second),
            retried.clone(),
            AttemptVerdict::RetryAt(at(40)),
        ),
        finished(
            Lease {
                token: Uuid::new_v4(),
                ..lease(&third)
            },
            forged,
            AttemptVerdict::Delivered,
        ),
        finished(lease(&fourth), failed.clone(), AttemptVerdict::Failed),
        finished(
            lease(&first),
            answered(&first, 2, 200, at(7)),
            AttemptVerdict::Delivered,
        ),
    ];
    let mut answers = store.finish_attempts(&batch).await.into_iter();
    assert_eq!(answers.len(), batch.len(), "one answer per attempt");
    answers.next().expect("first").expect("delivered");
    answers.next().expect("second").expect("retried");
    assert_conflict(answers.next().expect("third"), "a forged lease");
    answers.next().expect("fourth").expect("failed");
    assert_conflict(answers.next().expect("fifth"), "a lease used twice");

    for (task, status, attempt) in [
        (&first, TaskStatus::Delivered, &delivered),
        (&second, TaskStatus::Queued, &retried),
        (&fourth, TaskStatus::Failed, &failed),
    ] {
        let stored = store.task(org, task.id).await.expect("read");
        assert_eq!((stored.status, stored.attempts), (status, 1));
        assert_eq!(stored.last_error, attempt.response.error);
        assert_eq!(attempts(&store, org, task.id).await, vec![attempt.clone()]);
    }
    let stored = store.task(org, second.id).await.expect("read");
    assert_eq!(
        stored.next_attempt_at,
        at(40),
        "the retry is due when asked"
    );
    let stored = store.task(org, third.id).await.expect("read");
    assert_eq!(stored, third, "a forged lease records nothing");
    assert!(attempts(&store, org, third.id).await.is_empty());
    for (invocation, expected) in [
        (&first_inv, Some(delivered.response)),
        (&second_inv, Some(retried.response)),
        (&third_inv, None),
        (&fourth_inv, Some(failed.response)),
    ] {
        let logged = store.invocation(org, invocation.id).await.expect("read");
        assert_eq!(logged.target_response, expected);
    }
    // The leases were released: the retried task is claimable when due, the third still held.
    assert!(claim_all(&store, at(39)).await.is_empty(), "nothing due");
    assert_eq!(
        claimed_ids(&claim_all(&store, at(40)).await),
        vec![second.id]
    );
    store
        .finish_attempts(&[finished(
            lease(&third),
            answered(&third, 1, 200, at(41)),
            AttemptVerdict::Delivered,
        )])
        .await
        .remove(0)
        .expect("the lease the forged one copied still holds");
}

/// Attempts of one task in one batch are taken in order: under an expired lease and then under
/// the lease that took the task over, the first conflicts and the second is recorded. An empty
/// batch answers nothing.
pub async fn finish_attempts_take_repeated_tasks_in_order<S: ContractStore>(store: S) {
    assert!(
        store.finish_attempts(&[]).await.is_empty(),
        "an empty batch"
    );
    let world = World::seed(&store).await;
    let org = world.organization.id;
    let (_, task) = world.accept(&store, at(1)).await;
    let (stale, fresh) = stale_and_fresh_leases(&store).await;
    let late = answered(&task, 1, 200, at(21));
    let attempt = answered(&task, 1, 200, at(22));
    let answers = store
        .finish_attempts(&[
            finished(stale, late, AttemptVerdict::Delivered),
            finished(fresh, attempt.clone(), AttemptVerdict::Delivered),
        ])
        .await;
    let mut answers = answers.into_iter();
    assert_conflict(answers.next().expect("first"), "the expired lease");
    answers.next().expect("second").expect("the fresh lease");
    assert_eq!(
        store.task(org, task.id).await.expect("read").status,
        TaskStatus::Delivered
    );
    assert_eq!(attempts(&store, org, task.id).await, vec![attempt]);
}

/// A released task is claimable again at once, untouched; releasing twice is a `Conflict`.
pub async fn release_lease_gives_the_task_back<S: ContractStore>(store: S) {
    let world = World::seed(&store).await;
    let org = world.organization.id;
    let (_, task) = world.accept(&store, at(1)).await;
    let claimed = claim_all(&store, at(2)).await.remove(0);
    store.release_lease(&claimed.lease).await.expect("release");
    assert_conflict(store.release_lease(&claimed.lease).await, "release twice");
    assert_eq!(store.task(org, task.id).await.expect("read"), task);
    let again = claim_all(&store, at(2)).await;
    assert_eq!(claimed_ids(&again), vec![task.id]);
    assert_eq!(again[0].task, task);
}

/// Queue stats count the tasks waiting for delivery (queued, of a live target with an
/// endpoint), leased or not; `due` those whose attempt has come; an empty queue is the default.
pub async fn queue_stats_count_tasks_waiting_for_delivery<S: ContractStore>(store: S) {
    assert_eq!(
        store.queue_stats(at(10)).await.expect("stats of nothing"),
        QueueStats::default()
    );
    let world = World::seed(&store).await;
    let org = world.organization.id;
    let team = board_world(&store, &world).await;
    team.accept(&store, at(-20)).await;
    let (_, delivered) = world.accept(&store, at(-10)).await;
    move_queued(&store, org, delivered.id, TaskStatus::Delivered, at(-9)).await;
    let (_, first) = world.accept(&store, at(1)).await;
    world.accept(&store, at(2)).await;
    world.accept(&store, at(30)).await;

    let now = at(10);
    let expected = QueueStats {
        queued: 3,
        due: 2,
        oldest_queued_at: Some(at(1)),
    };
    assert_eq!(store.queue_stats(now).await.expect("stats"), expected);
    assert_eq!(
        store.queue_stats(at(30)).await.expect("stats").due,
        3,
        "a task whose attempt is exactly now is due"
    );

    let claimed = store
        .claim_tasks(ClaimRequest::new(now, LONG_LEASE, Uuid::new_v4(), 1))
        .await
        .expect("claim");
    assert_eq!(claimed_ids(&claimed), vec![first.id]);
    assert_eq!(
        store.queue_stats(now).await.expect("stats"),
        expected,
        "a leased task still waits"
    );
    store
        .finish_attempt(
            &claimed[0].lease,
            &timed_out(&first, 1, now),
            AttemptVerdict::RetryAt(at(100)),
        )
        .await
        .expect("retry later");
    assert_eq!(
        store.queue_stats(now).await.expect("stats"),
        QueueStats { due: 1, ..expected },
        "a task in backoff waits but is not due"
    );
}

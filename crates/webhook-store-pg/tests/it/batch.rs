//! One batch of the group commit, made on purpose: requests queued behind a writer that waits on
//! a webhook's row lock are written together, by one statement, once the lock is released.
//! Claims of delivery ids in a batch settle each caller alone, as they would one by one.

use std::net::{IpAddr, Ipv6Addr};
use std::task::Poll;
use std::time::{Duration, Instant};

use diesel::sql_query;
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl as _};
use webhook_domain::model::{
    ClaimOutcome, DeliveryClaim, Invocation, InvocationId, Task, TaskStatus,
};
use webhook_domain::ports::{InvocationLog as _, StoreError, TaskQueue as _, WebhookStore as _};
use webhook_store_contract::ContractStore as _;
use webhook_store_contract::fixtures::{
    World, accepted, at, ignored, last_triggered_at, payload, rejected, webhook,
};
use webhook_store_pg::test_db::{Lock, database_url, fresh_store_with};
use webhook_store_pg::{PgStore, PgStoreOptions};

use crate::support::{Count, admin, backends};

/// A store with one writer, so that a batch waits for the one before it, and a world seeded in
/// it.
async fn one_writer() -> (PgStore, World) {
    let store = fresh_store_with(PgStoreOptions {
        writers: 1,
        ..PgStoreOptions::default()
    })
    .await;
    let world = World::seed(&store).await;
    (store, world)
}

/// Records `requests` as one batch and returns each caller's result, in order.
async fn one_batch(
    store: &PgStore,
    world: &World,
    requests: &[(&Invocation, Option<&Task>)],
) -> Vec<Result<(), StoreError>> {
    let requests: Vec<_> = requests
        .iter()
        .map(|&(invocation, task)| (invocation, task, None))
        .collect();
    one_claiming_batch(store, world, &requests)
        .await
        .into_iter()
        .map(|result| result.map(|outcome| assert_eq!(outcome, ClaimOutcome::Recorded)))
        .collect()
}

/// A request of a batch: an invocation, its task, and the delivery id it claims, if any.
type Request<'a> = (&'a Invocation, Option<&'a Task>, Option<DeliveryClaim>);

/// Records `requests` as one batch, each with its claim when it has one, and returns each
/// caller's result, in order.
///
/// The writer is first held on `world`'s webhook (another session locks its row, and an
/// accepted invocation of it waits for the lock); the requests are queued meanwhile, and the
/// writer takes them all at once when the lock is released.
async fn one_claiming_batch(
    store: &PgStore,
    world: &World,
    requests: &[Request<'_>],
) -> Vec<Result<ClaimOutcome, StoreError>> {
    let database = store.test_database().expect("a test database");
    let blocker = Lock::webhook_row(&database, *world.webhook.id.as_uuid()).await;
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
        .map(|(invocation, task, claim)| {
            let store = store.clone();
            Box::pin(async move {
                match claim {
                    Some(claim) => store.record_claimed(invocation, *task, claim).await,
                    None => store
                        .record_invocation(invocation, *task)
                        .await
                        .map(|()| ClaimOutcome::Recorded),
                }
            })
        })
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
    blocker.release().await;
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
    let (store, world) = one_writer().await;
    let org = world.organization.id;

    let (plain, plain_task) = accepted(&world.webhook, at(1));
    let (answered, answered_task) = accepted(&world.webhook, at(2));
    let answered = Invocation {
        source_ip: Some(IpAddr::V6(Ipv6Addr::LOCALHOST)),
        payload: Some(payload("Roll back api")),
        test: true,
        repeat_count: 3,
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
    // Received in the same microsecond as `plain`.
    let (simultaneous, simultaneous_task) = accepted(&world.webhook, at(1));
    let refused = rejected(&world.webhook, at(3));
    let results = one_batch(
        &store,
        &world,
        &[
            (&plain, Some(&plain_task)),
            (&answered, Some(&answered_task)),
            (&simultaneous, Some(&simultaneous_task)),
            (&refused, None),
        ],
    )
    .await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");

    for invocation in [&plain, &answered, &simultaneous, &refused] {
        assert_eq!(
            &store.invocation(org, invocation.id).await.expect("read"),
            invocation
        );
    }
    for task in [&plain_task, &answered_task, &simultaneous_task] {
        assert_eq!(&store.task(org, task.id).await.expect("read"), task);
    }
    assert_eq!(
        last_triggered_at(&store, &world.webhook).await,
        Some(at(2)),
        "the latest accepted invocation of the batch"
    );
    // A context equal to the payload is not stored twice.
    assert_eq!(
        count(&store, "tasks WHERE context IS NOT NULL").await,
        1,
        "only the task whose context is its own"
    );
    store.teardown().await;
}

/// A task is written as the task of the invocation it comes with, both rows naming each other,
/// whatever invocation its value named (no foreign key checks the pair; the purge relies on
/// it). The invocation's foreign key is checked when the statement ends: one whose webhook is
/// absent fails its caller alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_name_their_invocations_and_foreign_keys_hold_within_one_batch() {
    let (store, world) = one_writer().await;
    let org = world.organization.id;

    let (first, first_task) = accepted(&world.webhook, at(1));
    let (misnamed, misnamed_task) = accepted(&world.webhook, at(2));
    let misnamed_task = Task {
        invocation_id: InvocationId::from_uuid(uuid::Uuid::now_v7()),
        ..misnamed_task
    };
    let unknown_webhook = webhook(&world.target, at(0));
    let (stray, stray_task) = accepted(&unknown_webhook, at(3));
    let (last, last_task) = accepted(&world.webhook, at(4));
    let results = one_batch(
        &store,
        &world,
        &[
            (&first, Some(&first_task)),
            (&misnamed, Some(&misnamed_task)),
            (&stray, Some(&stray_task)),
            (&last, Some(&last_task)),
        ],
    )
    .await;

    assert!(results[0].is_ok(), "{:?}", results[0]);
    assert!(results[1].is_ok(), "{:?}", results[1]);
    assert!(
        matches!(results[2], Err(StoreError::NotFound)),
        "an invocation of no webhook: {:?}",
        results[2]
    );
    assert!(results[3].is_ok(), "{:?}", results[3]);
    let named = Task {
        invocation_id: misnamed.id,
        ..misnamed_task
    };
    assert_stored(
        &store,
        &[
            (&first, &first_task),
            (&misnamed, &named),
            (&last, &last_task),
        ],
    )
    .await;
    assert_not_found(&store.invocation(org, stray.id).await);
    assert_not_found(&store.task(org, stray_task.id).await);
    assert_not_found(&store.webhook(unknown_webhook.id).await);
    store.teardown().await;
}

/// An id already stored, or twice in one batch, is a `Conflict` for that caller only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_id_fails_only_its_caller() {
    let (store, world) = one_writer().await;
    let org = world.organization.id;
    let (stored, stored_task) = world.accept(&store, at(1)).await;

    let (before, before_task) = accepted(&world.webhook, at(2));
    let (again, again_task) = under_id_of(&stored, accepted(&world.webhook, at(3)));
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
            (&before, Some(&before_task)),
            (&again, Some(&again_task)),
            (&twin, Some(&twin_task)),
            (&after, Some(&after_task)),
        ],
    )
    .await;

    assert!(results[0].is_ok(), "{:?}", results[0]);
    assert_conflict(&results[1], "a stored invocation id");
    assert_conflict(&results[2], "a task id earlier in the batch");
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

#[track_caller]
fn assert_conflict<T: std::fmt::Debug>(result: &Result<T, StoreError>, what: &str) {
    assert!(
        matches!(result, Err(StoreError::Conflict(_))),
        "{what}: {result:?}"
    );
}

/// `accepted`, an invocation and its task, moved under the id of the invocation `stored`.
fn under_id_of(stored: &Invocation, (invocation, task): (Invocation, Task)) -> (Invocation, Task) {
    let invocation = Invocation {
        id: stored.id,
        ..invocation
    };
    let task = Task {
        invocation_id: stored.id,
        ..task
    };
    (invocation, task)
}

/// The number of rows of `rows` (a table, and a `WHERE` clause if need be) in `store`'s
/// database.
async fn count(store: &PgStore, rows: &str) -> i64 {
    let url = database_url(&store.test_database().expect("a test database"));
    let mut conn = AsyncPgConnection::establish(&url).await.expect("connect");
    sql_query(format!("SELECT count(*) AS n FROM {rows}"))
        .get_result::<Count>(&mut conn)
        .await
        .expect("count")
        .n
}

fn claim(delivery_id: &str, window_start: i64) -> DeliveryClaim {
    DeliveryClaim {
        delivery_id: delivery_id.to_owned(),
        window_start: at(window_start),
    }
}

fn duplicate_of(invocation: &Invocation, task: Option<&Task>) -> ClaimOutcome {
    ClaimOutcome::Duplicate {
        invocation_id: invocation.id,
        task_id: task.map(|t| t.id),
    }
}

/// A batch settles each claim as if its requests came one by one: a claim held before the
/// batch, or by an earlier request of it, makes a duplicate that writes nothing, while the rest
/// of the batch is written; a lapsed claim is taken over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_in_one_batch_settle_each_caller_alone() {
    let (store, world) = one_writer().await;
    let org = world.organization.id;
    let (held, held_task) = accepted(&world.webhook, at(1));
    let (lapsed, lapsed_task) = accepted(&world.webhook, at(2));
    for (invocation, task, delivery_id) in [
        (&held, &held_task, "held"),
        (&lapsed, &lapsed_task, "lapsed"),
    ] {
        let outcome = store
            .record_claimed(invocation, Some(task), &claim(delivery_id, 0))
            .await
            .expect("claim before the batch");
        assert_eq!(outcome, ClaimOutcome::Recorded);
    }

    let (repeat, repeat_task) = accepted(&world.webhook, at(10));
    let (plain, plain_task) = accepted(&world.webhook, at(11));
    let (fresh, fresh_task) = accepted(&world.webhook, at(12));
    let (fresh_again, fresh_again_task) = accepted(&world.webhook, at(13));
    let quiet = ignored(&world.webhook, at(14));
    let quiet_again = ignored(&world.webhook, at(15));
    let (late, late_task) = accepted(&world.webhook, at(16));
    let (repeat_again, repeat_again_task) = accepted(&world.webhook, at(17));
    let requests = [
        (&repeat, Some(&repeat_task), Some(claim("held", 0))),
        (&plain, Some(&plain_task), None),
        (&fresh, Some(&fresh_task), Some(claim("fresh", 0))),
        (
            &fresh_again,
            Some(&fresh_again_task),
            Some(claim("fresh", 0)),
        ),
        (&quiet, None, Some(claim("quiet", 0))),
        (&quiet_again, None, Some(claim("quiet", 0))),
        (&late, Some(&late_task), Some(claim("lapsed", 5))),
        (
            &repeat_again,
            Some(&repeat_again_task),
            Some(claim("held", 0)),
        ),
    ];
    let results = one_claiming_batch(&store, &world, &requests).await;
    let outcomes: Vec<_> = results
        .into_iter()
        .map(|r| r.expect("every request is settled"))
        .collect();
    assert_eq!(
        outcomes,
        [
            duplicate_of(&held, Some(&held_task)),
            ClaimOutcome::Recorded,
            ClaimOutcome::Recorded,
            duplicate_of(&fresh, Some(&fresh_task)),
            ClaimOutcome::Recorded,
            duplicate_of(&quiet, None),
            ClaimOutcome::Recorded,
            duplicate_of(&held, Some(&held_task)),
        ]
    );

    assert_stored(
        &store,
        &[
            (&held, &held_task),
            (&lapsed, &lapsed_task),
            (&plain, &plain_task),
            (&fresh, &fresh_task),
            (&late, &late_task),
        ],
    )
    .await;
    assert_eq!(store.invocation(org, quiet.id).await.expect("read"), quiet);
    for (invocation, task) in [
        (&repeat, &repeat_task),
        (&fresh_again, &fresh_again_task),
        (&repeat_again, &repeat_again_task),
    ] {
        assert_not_found(&store.invocation(org, invocation.id).await);
        assert_not_found(&store.task(org, task.id).await);
    }
    assert_not_found(&store.invocation(org, quiet_again.id).await);

    // The lapsed claim now belongs to the late request: a repeat within its window names it.
    let (after, after_task) = accepted(&world.webhook, at(20));
    let outcome = store
        .record_claimed(&after, Some(&after_task), &claim("lapsed", 5))
        .await
        .expect("repeat of the taken-over claim");
    assert_eq!(outcome, duplicate_of(&late, Some(&late_task)));
    store.teardown().await;
}

/// A request that fails in a batch with claims fails alone: the others are written one by one,
/// and a later claim of an id whose first claim failed is written in its place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_claim_in_a_batch_leaves_the_id_to_the_next_claim() {
    let (store, world) = one_writer().await;
    let org = world.organization.id;
    let (stored, _) = world.accept(&store, at(0)).await;

    let (first, first_task) = accepted(&world.webhook, at(1));
    let (second, second_task) = accepted(&world.webhook, at(2));
    // An invocation id already stored: a `Conflict`, which writes nothing, its claim included.
    let (clash, clash_task) = under_id_of(&stored, accepted(&world.webhook, at(3)));
    let (plain, plain_task) = accepted(&world.webhook, at(4));
    let (next, next_task) = accepted(&world.webhook, at(5));
    let (next_again, next_again_task) = accepted(&world.webhook, at(6));
    let requests = [
        (&first, Some(&first_task), Some(claim("one", 0))),
        (&second, Some(&second_task), Some(claim("one", 0))),
        (&clash, Some(&clash_task), Some(claim("retried", 0))),
        (&plain, Some(&plain_task), None),
        (&next, Some(&next_task), Some(claim("retried", 0))),
        (
            &next_again,
            Some(&next_again_task),
            Some(claim("retried", 0)),
        ),
    ];
    let results = one_claiming_batch(&store, &world, &requests).await;

    assert_eq!(results[0].as_ref().ok(), Some(&ClaimOutcome::Recorded));
    assert_eq!(
        results[1].as_ref().ok(),
        Some(&duplicate_of(&first, Some(&first_task)))
    );
    assert_conflict(&results[2], "a stored invocation id");
    assert_eq!(results[3].as_ref().ok(), Some(&ClaimOutcome::Recorded));
    assert_eq!(
        results[4].as_ref().ok(),
        Some(&ClaimOutcome::Recorded),
        "the id whose first claim failed is free"
    );
    assert_eq!(
        results[5].as_ref().ok(),
        Some(&duplicate_of(&next, Some(&next_task)))
    );
    assert_stored(
        &store,
        &[
            (&first, &first_task),
            (&plain, &plain_task),
            (&next, &next_task),
        ],
    )
    .await;
    for task in [&second_task, &clash_task, &next_again_task] {
        assert_not_found(&store.task(org, task.id).await);
    }
    for invocation in [&second, &next_again] {
        assert_not_found(&store.invocation(org, invocation.id).await);
    }
    assert_eq!(
        count(&store, "delivery_claims").await,
        2,
        "\"one\" and \"retried\""
    );
    store.teardown().await;
}

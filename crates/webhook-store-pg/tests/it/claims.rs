//! Delivery-id claims where only a shared server shows them: several nodes claiming one id at
//! once, and a claim whose commit's answer was lost.

use tokio::task::JoinSet;
use webhook_domain::model::{ClaimOutcome, DeliveryClaim, Invocation, Task, Timestamp};
use webhook_domain::ports::{InvocationLog as _, StoreError, TaskQueue as _};
use webhook_store_contract::fixtures::{World, accepted, all_ok, at, check_one_recorded};
use webhook_store_contract::{CommitFault, ContractStore as _};
use webhook_store_pg::test_db::{database_url, fresh_store};
use webhook_store_pg::{PgStore, PgStoreOptions};

fn claim(delivery_id: &str) -> DeliveryClaim {
    DeliveryClaim {
        delivery_id: delivery_id.to_owned(),
        window_start: at(0),
    }
}

/// Claims `delivery_id` for an invocation accepted at `received_at` while the commit fails as
/// `fault` says: the store answers `Unavailable`. Returns the invocation and its task, for the
/// sender's retry.
async fn claim_lost(
    store: &PgStore,
    world: &World,
    received_at: Timestamp,
    fault: CommitFault,
    delivery_id: &str,
) -> (Invocation, Task) {
    let (invocation, task) = accepted(&world.webhook, received_at);
    assert!(store.break_next_commit(fault));
    let result = store
        .record_claimed(&invocation, Some(&task), &claim(delivery_id))
        .await;
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{result:?}"
    );
    (invocation, task)
}

/// Four nodes on one database, each with its own pool and writers, receive the same delivery
/// 16 times each at once: exactly one request records it, and every other names that one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_claiming_one_id_at_once_record_it_once() {
    let store = fresh_store().await;
    let world = World::seed(&store).await;
    let url = database_url(&store.test_database().expect("a test database"));
    let nodes: Vec<PgStore> = (0..4)
        .map(|_| PgStore::open(&url, PgStoreOptions::default()).expect("a node"))
        .collect();
    let mut requests = JoinSet::new();
    for n in 0..64 {
        let node = nodes[usize::try_from(n % 4).expect("small")].clone();
        let (invocation, task) = accepted(&world.webhook, at(10 + n));
        requests.spawn(async move {
            node.record_claimed(&invocation, Some(&task), &claim("burst"))
                .await
                .map(|outcome| (outcome, invocation.id, task.id))
        });
    }
    let outcomes = all_ok(requests, "claim").await;
    check_one_recorded(&store, &world, &outcomes).await;
    drop(nodes);
    store.teardown().await;
}

/// A claim whose commit's answer is lost answers what is stored: `Recorded` when it committed;
/// `Unavailable` when nothing was written, also when the claim was found held (a duplicate
/// writes nothing: the sender's retry is answered as a duplicate); and an id whose claim never
/// reached the database stays free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_with_a_lost_commit_answers_what_is_stored() {
    let store = fresh_store().await;
    let world = World::seed(&store).await;
    let org = world.organization.id;

    let (first, first_task) = accepted(&world.webhook, at(1));
    assert!(store.break_next_commit(CommitFault::AfterCommit));
    let outcome = store
        .record_claimed(&first, Some(&first_task), &claim("after"))
        .await
        .expect("committed");
    assert_eq!(outcome, ClaimOutcome::Recorded);
    assert_eq!(store.invocation(org, first.id).await.expect("read"), first);

    let (repeat, repeat_task) =
        claim_lost(&store, &world, at(2), CommitFault::AfterCommit, "after").await;
    assert!(matches!(
        store.invocation(org, repeat.id).await,
        Err(StoreError::NotFound)
    ));
    let retried = store
        .record_claimed(&repeat, Some(&repeat_task), &claim("after"))
        .await
        .expect("the sender's retry");
    assert_eq!(
        retried,
        ClaimOutcome::Duplicate {
            invocation_id: first.id,
            task_id: Some(first_task.id),
        }
    );

    let (other, other_task) =
        claim_lost(&store, &world, at(3), CommitFault::BeforeCommit, "before").await;
    let retried = store
        .record_claimed(&other, Some(&other_task), &claim("before"))
        .await
        .expect("the sender's retry");
    assert_eq!(retried, ClaimOutcome::Recorded);
    assert_eq!(
        store.task(org, other_task.id).await.expect("read"),
        other_task
    );
    store.teardown().await;
}

//! What PostgreSQL's claim does beyond the contract: it starts each target's walk at its floor
//! and takes no more of one target than the claim allows.

use uuid::Uuid;
use webhook_domain::model::{ClaimFloor, ClaimRequest, Task, TaskId};
use webhook_domain::ports::TaskQueue as _;
use webhook_store_contract::ContractStore as _;
use webhook_store_contract::fixtures::{LONG_LEASE, World, at, target};
use webhook_store_pg::test_db::fresh_store;

fn ids(tasks: &[Task]) -> Vec<TaskId> {
    tasks.iter().map(|task| task.id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_from_a_floor_passes_over_the_tasks_before_it() {
    let store = fresh_store().await;
    let world = World::seed(&store).await;
    let tasks = world.accept_at(&store, 0..5).await;
    let floors = [ClaimFloor {
        target_id: world.target.id,
        due_at: at(3),
    }];
    let claim =
        |floors| ClaimRequest::new(at(20), LONG_LEASE, Uuid::new_v4(), 10).from_floors(floors);
    let from_floor = store.claim_tasks(claim(&floors)).await.expect("claim");
    let from_floor: Vec<TaskId> = from_floor.iter().map(|c| c.task.id).collect();
    assert_eq!(from_floor, ids(&tasks[3..]));
    let rest = store.claim_tasks(claim(&[])).await.expect("claim");
    let rest: Vec<TaskId> = rest.iter().map(|c| c.task.id).collect();
    assert_eq!(rest, ids(&tasks[..3]));
    store.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_takes_at_most_its_share_of_one_target() {
    let store = fresh_store().await;
    let busy = World::seed(&store).await;
    let other = busy
        .with_target(&store, target(&busy.organization, at(0)))
        .await;
    let backlog = busy.accept_at(&store, 0..5).await;
    let others = other.accept_at(&store, 5..8).await;
    let claim = ClaimRequest::new(at(20), LONG_LEASE, Uuid::new_v4(), 4).at_most_per_target(2);
    let claimed = store.claim_tasks(claim).await.expect("claim");
    let claimed: Vec<TaskId> = claimed.iter().map(|c| c.task.id).collect();
    assert_eq!(
        claimed,
        [&backlog[..2], &others[..2]]
            .concat()
            .iter()
            .map(|t| t.id)
            .collect::<Vec<_>>(),
        "the oldest two of each target"
    );
    store.teardown().await;
}

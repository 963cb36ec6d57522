//! The sources' columns on every read path of this store: each path selects its own columns.

use std::time::Duration;

use uuid::Uuid;
use webhook_domain::model::{ClaimRequest, InvocationFilter, Source, TaskFilter};
use webhook_domain::ports::{InvocationLog as _, TaskQueue as _};
use webhook_store_contract::ContractStore as _;
use webhook_store_contract::fixtures::{World, at, page};

use crate::support::open_temp;

/// A task's provider and its invocation's delivery id and template note are read back by the
/// task, the board, the board's summaries, the invocation summaries and a delivery claim.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_read_path_carries_the_sources_columns() {
    let store = open_temp().await;
    let world = World::seed(&store).await;
    let org = world.organization.id;
    let (invocation, task) = world.accept_from(&store, at(1), Source::Pagerduty).await;

    assert_eq!(store.task(org, task.id).await.expect("task"), task);
    let board = store
        .tasks(org, TaskFilter::default(), page(10))
        .await
        .expect("board");
    assert_eq!(board.items, vec![task.clone()]);
    let summaries = store
        .task_summaries(org, TaskFilter::default(), page(10))
        .await
        .expect("summaries");
    assert_eq!(summaries.items[0].source.provider, Source::Pagerduty);
    let logged = store
        .invocation_summaries(
            org,
            world.webhook.id,
            &InvocationFilter::default(),
            page(10),
        )
        .await
        .expect("invocation summaries");
    let summary = &logged.items[0].invocation;
    assert_eq!(summary.delivery_id, invocation.delivery_id);
    assert_eq!(
        summary.instruction_fallback,
        invocation.instruction_fallback
    );
    let claimed = store
        .claim_tasks(ClaimRequest::new(
            at(2),
            Duration::from_secs(60),
            Uuid::new_v4(),
            10,
        ))
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].task, task);

    store.teardown().await;
}

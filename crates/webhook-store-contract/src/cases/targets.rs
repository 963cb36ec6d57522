//! Cases of `TargetStore`.

use webhook_domain::model::{EndpointUrl, Target, TargetKind, TaskFilter};

use super::{assert_conflict, assert_not_found, delete_webhook, delete_webhook_at, every_page};
use crate::ContractStore;
use crate::fixtures::{
    World, at, at_micros, board_target, name, page, sealed, stored_organization, target, webhook,
};

/// A target reads back as written; an update replaces kind, name, endpoint, signing secret and
/// `updated_at`.
pub async fn target_round_trip_and_update<S: ContractStore>(store: S) {
    let org = stored_organization(&store).await;
    let mut pushed = target(&org, at(1));
    let board = board_target(&org, at(2));
    for t in [&pushed, &board] {
        store.insert_target(t).await.expect("insert target");
        assert_eq!(&store.target(org.id, t.id).await.expect("read"), t);
    }
    pushed.kind = TargetKind::Team;
    pushed.name = name("Release team");
    pushed.endpoint_url = None;
    pushed.signing_secret = sealed(9);
    pushed.updated_at = at_micros(3_000_007);
    store.update_target(&pushed).await.expect("update");
    assert_eq!(store.target(org.id, pushed.id).await.expect("read"), pushed);

    let mut board = board;
    board.endpoint_url = Some(EndpointUrl::parse("http://10.0.0.5:9000/tasks").expect("url"));
    store.update_target(&board).await.expect("update");
    assert_eq!(store.target(org.id, board.id).await.expect("read"), board);
}

/// Inserting a target whose id exists is a `Conflict`.
pub async fn insert_target_twice_conflicts<S: ContractStore>(store: S) {
    let org = stored_organization(&store).await;
    let t = target(&org, at(1));
    store.insert_target(&t).await.expect("insert");
    let again = Target {
        name: name("Impostor"),
        ..t.clone()
    };
    assert_conflict(store.insert_target(&again).await, "second insert");
    assert_eq!(store.target(org.id, t.id).await.expect("read"), t);
}

/// Another organization's target is `NotFound` to read, update and delete.
pub async fn target_of_another_organization_is_not_found<S: ContractStore>(store: S) {
    let org = stored_organization(&store).await;
    let other = stored_organization(&store).await;
    let t = target(&org, at(1));
    store.insert_target(&t).await.expect("insert");
    assert_not_found(store.target(other.id, t.id).await, "read");
    let moved = Target {
        organization_id: other.id,
        name: name("Hijacked"),
        ..t.clone()
    };
    assert_not_found(store.update_target(&moved).await, "update");
    assert_not_found(store.delete_target(other.id, t.id).await, "delete");
    assert_eq!(store.target(org.id, t.id).await.expect("unchanged"), t);
    assert_not_found(
        store.target(org.id, target(&org, at(1)).id).await,
        "missing target",
    );
}

/// Live targets are listed newest first by (`created_at`, id), a page at a time.
pub async fn targets_are_paged_newest_first<S: ContractStore>(store: S) {
    let org = stored_organization(&store).await;
    let other = stored_organization(&store).await;
    let mut all = Vec::new();
    for i in 0..5 {
        // Two targets share each instant: the id breaks the tie.
        for _ in 0..2 {
            let t = target(&org, at_micros(i));
            store.insert_target(&t).await.expect("insert");
            all.push(t);
        }
    }
    store
        .insert_target(&target(&other, at(1)))
        .await
        .expect("insert other");
    all.sort_by_key(|t| std::cmp::Reverse((t.created_at, t.id)));

    let seen = every_page(page(3), |request| store.targets(org.id, request)).await;
    assert_eq!(seen, all);
}

/// A deleted target is gone from lookups and lists, its tasks stay on the board, and deleting
/// it again is `NotFound`.
pub async fn delete_target_hides_it_and_keeps_its_tasks<S: ContractStore>(store: S) {
    let world = World::seed(&store).await;
    let org = world.organization.id;
    let (_, task) = world.accept(&store, at(1)).await;
    delete_webhook_at(&store, &world.webhook, at(2)).await;

    store
        .delete_target(org, world.target.id)
        .await
        .expect("delete target");
    assert_not_found(store.target(org, world.target.id).await, "read deleted");
    assert!(
        store
            .targets(org, page(10))
            .await
            .expect("list")
            .items
            .is_empty()
    );
    assert_not_found(store.update_target(&world.target).await, "update deleted");
    assert_not_found(
        store.delete_target(org, world.target.id).await,
        "delete twice",
    );
    assert_eq!(store.task(org, task.id).await.expect("task stays"), task);
    let board = store
        .tasks(org, TaskFilter::default(), page(10))
        .await
        .expect("board");
    assert_eq!(board.items, vec![task]);
    assert_conflict(
        store.insert_target(&world.target).await,
        "reinsert a deleted target's id",
    );
}

/// A target cannot be deleted while a webhook that is not deleted points at it.
pub async fn delete_target_with_live_webhook_conflicts<S: ContractStore>(store: S) {
    let world = World::seed(&store).await;
    let org = world.organization.id;
    let mut disabled = webhook(&world.target, at(1));
    disabled.status = webhook_domain::model::WebhookStatus::Disabled;
    store.insert_webhook(&disabled).await.expect("insert");

    assert_conflict(
        store.delete_target(org, world.target.id).await,
        "active webhook points at it",
    );
    delete_webhook(&store, &world.webhook).await;
    assert_conflict(
        store.delete_target(org, world.target.id).await,
        "disabled webhook points at it",
    );
    delete_webhook(&store, &disabled).await;
    store
        .delete_target(org, world.target.id)
        .await
        .expect("only tombstones point at it");
}

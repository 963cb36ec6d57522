//! Cases of `WebhookStore`, tombstones included.

use webhook_domain::model::{EventTypes, Target, Webhook, WebhookFilter, WebhookStatus};
use webhook_domain::ports::Store;

use super::{assert_conflict, assert_not_found, delete_webhook_at, every_page};
use crate::ContractStore;
use crate::fixtures::{
    World, at, at_micros, board_target, name, page, rate, sealed, stored_organization, target,
    webhook,
};

/// Checks that `webhook` reads back as it is.
async fn assert_reads_back<S: Store>(store: &S, webhook: &Webhook) {
    assert_eq!(&store.webhook(webhook.id).await.expect("read"), webhook);
}

/// A target of another organization, stored with its organization.
async fn foreign_target<S: Store>(store: &S) -> Target {
    let other = stored_organization(store).await;
    let foreign = target(&other, at(0));
    store.insert_target(&foreign).await.expect("insert target");
    foreign
}

/// A webhook reads back as written; an update replaces every field but id, organization and
/// `created_at`.
pub async fn webhook_round_trip_and_update<S: ContractStore>(store: S) {
    let world = World::seed(&store).await;
    assert_reads_back(&store, &world.webhook).await;
    let other_target = board_target(&world.organization, at(1));
    store
        .insert_target(&other_target)
        .await
        .expect("insert target");
    let open = Webhook {
        secret: None,
        event_types: EventTypes::all(),
        ..webhook(&world.target, at(1))
    };
    store.insert_webhook(&open).await.expect("insert");
    assert_eq!(store.webhook(open.id).await.expect("read"), open);

    let updated = Webhook {
        name: name("Alerts"),
        target_id: other_target.id,
        event_types: EventTypes::parse(&["alert.fired"]).expect("patterns"),
        secret: Some(sealed(7)),
        rate_limit_per_minute: rate(7),
        status: WebhookStatus::Disabled,
        updated_at: at_micros(9_000_003),
        ..world.webhook.clone()
    };
    store.update_webhook(&updated).await.expect("update");
    assert_eq!(store.webhook(updated.id).await.expect("read"), updated);

    let reactivated = Webhook {
        status: WebhookStatus::Active,
        secret: None,
        ..updated.clone()
    };
    store.update_webhook(&reactivated).await.expect("update");
    assert_eq!(store.webhook(updated.id).await.expect("read"), reactivated);

    let sneaky = Webhook {
        created_at: at(-100),
        ..reactivated.clone()
    };
    store.update_webhook(&sneaky).await.expect("update");
    assert_eq!(
        store.webhook(updated.id).await.expect("read").created_at,
        world.webhook.created_at,
        "created_at never changes"
    );
}

/// Inserting a webhook whose id exists is a `Conflict`.
pub async fn insert_webhook_twice_conflicts<S: ContractStore>(store: S) {
    let world = World::seed(&store).await;
    let again = Webhook {
        name: name("Impostor"),
        ..world.webhook.clone()
    };
    assert_conflict(store.insert_webhook(&again).await, "second insert");
    assert_reads_back(&store, &world.webhook).await;
}

/// A webhook whose target is missing, deleted or of another organization is `NotFound`.
pub async fn insert_webhook_without_its_target_is_not_found<S: ContractStore>(store: S) {
    let world = World::seed(&store).await;
    let foreign = foreign_target(&store).await;

    let missing = webhook(&target(&world.organization, at(0)), at(1));
    assert_not_found(store.insert_webhook(&missing).await, "missing target");

    let cross = Webhook {
        organization_id: world.organization.id,
        ..webhook(&foreign, at(1))
    };
    assert_not_found(
        store.insert_webhook(&cross).await,
        "target of another organization",
    );

    let doomed = board_target(&world.organization, at(0));
    store.insert_target(&doomed).await.expect("insert target");
    store
        .delete_target(world.organization.id, doomed.id)
        .await
        .expect("delete target");
    assert_not_found(
        store.insert_webhook(&webhook(&doomed, at(1))).await,
        "deleted target",
    );
    for id in [missing.id, cross.id] {
        assert_not_found(store.webhook(id).await, "nothing was inserted");
    }
}

/// A deleted webhook stays readable as a tombstone, never changes, leaves the list, and its id
/// is never reused.
pub async fn webhook_tombstone_is_found_and_never_reused<S: ContractStore>(store: S) {
    let world = World::seed(&store).await;
    let tombstone = delete_webhook_at(&store, &world.webhook, at(5)).await;
    assert_eq!(
        store.webhook(world.webhook.id).await.expect("tombstone"),
        tombstone
    );
    for status in [
        WebhookStatus::Active,
        WebhookStatus::Disabled,
        WebhookStatus::Deleted,
    ] {
        let revived = Webhook {
            status,
            name: name("Revived"),
            ..tombstone.clone()
        };
        assert_conflict(store.update_webhook(&revived).await, "update a tombstone");
    }
    assert_conflict(
        store.insert_webhook(&world.webhook).await,
        "reuse a deleted webhook's id",
    );
    assert_eq!(
        store.webhook(world.webhook.id).await.expect("tombstone"),
        tombstone
    );
    let listed = store
        .webhooks(world.organization.id, WebhookFilter::default(), page(10))
        .await
        .expect("list");
    assert!(listed.items.is_empty(), "tombstones are not listed");
    let deleted = WebhookFilter {
        status: Some(WebhookStatus::Deleted),
    };
    let listed = store
        .webhooks(world.organization.id, deleted, page(10))
        .await
        .expect("list");
    assert_eq!(listed.items, vec![tombstone], "unless asked for");
    assert_not_found(
        store.webhook(webhook(&world.target, at(0)).id).await,
        "an id never used",
    );
}

/// Updating a webhook of another organization, or a missing one, is `NotFound`.
pub async fn update_webhook_of_another_organization_is_not_found<S: ContractStore>(store: S) {
    let world = World::seed(&store).await;
    let other = stored_organization(&store).await;
    let hijacked = Webhook {
        organization_id: other.id,
        name: name("Hijacked"),
        ..world.webhook.clone()
    };
    assert_not_found(store.update_webhook(&hijacked).await, "other organization");
    assert_not_found(
        store.update_webhook(&webhook(&world.target, at(1))).await,
        "missing webhook",
    );
    assert_reads_back(&store, &world.webhook).await;
}

/// The organization's webhooks that are not deleted are listed newest first by
/// (`created_at`, id), a page at a time.
pub async fn webhooks_are_paged_newest_first<S: ContractStore>(store: S) {
    let world = World::seed(&store).await;
    let foreign_target = foreign_target(&store).await;
    store
        .insert_webhook(&webhook(&foreign_target, at(3)))
        .await
        .expect("insert foreign");

    let mut all = vec![world.webhook.clone()];
    for i in 1..=4 {
        for _ in 0..2 {
            let mut w = webhook(&world.target, at_micros(i));
            if i == 2 {
                w.status = WebhookStatus::Disabled;
            }
            store.insert_webhook(&w).await.expect("insert");
            all.push(w);
        }
    }
    let gone = Webhook {
        status: WebhookStatus::Deleted,
        ..all.remove(3)
    };
    store.update_webhook(&gone).await.expect("delete one");
    all.sort_by_key(|w| std::cmp::Reverse((w.created_at, w.id)));

    let org = world.organization.id;
    let seen = every_page(page(2), |request| {
        store.webhooks(org, WebhookFilter::default(), request)
    })
    .await;
    assert_eq!(seen, all);
}

/// A status filter lists the organization's webhooks with that status only, tombstones
/// included when asked for, newest first and a page at a time; without one, those that are
/// not deleted.
pub async fn webhooks_filter_by_status<S: ContractStore>(store: S) {
    let world = World::seed(&store).await;
    let foreign_target = foreign_target(&store).await;
    let foreign = Webhook {
        status: WebhookStatus::Deleted,
        ..webhook(&foreign_target, at(3))
    };
    store
        .insert_webhook(&foreign)
        .await
        .expect("insert foreign");

    let mut all = vec![world.webhook.clone()];
    for (i, status) in [
        WebhookStatus::Disabled,
        WebhookStatus::Active,
        WebhookStatus::Deleted,
        WebhookStatus::Disabled,
        WebhookStatus::Deleted,
        WebhookStatus::Active,
        WebhookStatus::Deleted,
    ]
    .into_iter()
    .enumerate()
    {
        let created = webhook(
            &world.target,
            at_micros(i64::try_from(i / 2).expect("small")),
        );
        store.insert_webhook(&created).await.expect("insert");
        let stored = Webhook {
            status,
            updated_at: at(10),
            ..created
        };
        store.update_webhook(&stored).await.expect("set status");
        all.push(stored);
    }
    all.sort_by_key(|w| std::cmp::Reverse((w.created_at, w.id)));

    let org = world.organization.id;
    for status in [
        None,
        Some(WebhookStatus::Active),
        Some(WebhookStatus::Disabled),
        Some(WebhookStatus::Deleted),
    ] {
        let filter = WebhookFilter { status };
        let expected: Vec<Webhook> = all
            .iter()
            .filter(|w| filter.admits(w.status))
            .cloned()
            .collect();
        let seen = every_page(page(2), |request| store.webhooks(org, filter, request)).await;
        assert_eq!(seen, expected, "{status:?}");
    }
}

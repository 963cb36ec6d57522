//! Cases of `InvocationLog::webhook_health`: a window of each webhook's log, counted as the log's
//! filters select it.

use webhook_domain::model::{
    Invocation, InvocationFilter, OutcomeFilter, TaskStatus, Timestamp, WebhookHealth, WebhookId,
};
use webhook_domain::ports::Store;

use super::invocations::log_every_delivery_state;
use super::sources::duplicate_of;
use super::{board_world, delete_webhook_at, every_page, move_queued};
use crate::ContractStore;
use crate::fixtures::{World, at, at_micros, page, rejected, stored_organization};

/// What the log itself says of `webhook` from `since` on: its accepted invocations, the
/// requests of the entries `outcome=failed` lists, and the newest of those.
async fn as_the_log_says<S: Store>(
    store: &S,
    world: &World,
    webhook: WebhookId,
    since: Timestamp,
) -> WebhookHealth {
    let org = world.organization.id;
    let listed = async |outcome| {
        let filter = InvocationFilter {
            since: Some(since),
            ..InvocationFilter::outcome(outcome)
        };
        every_page(page(3), |request| {
            store.invocations(org, webhook, &filter, request)
        })
        .await
    };
    let failed: Vec<Invocation> = listed(OutcomeFilter::Failed).await;
    WebhookHealth {
        accepted: u64::try_from(listed(OutcomeFilter::Accepted).await.len()).expect("a count"),
        failed: failed.iter().map(|i| u64::from(i.repeat_count)).sum(),
        last_failure_at: failed.iter().map(|i| i.received_at).max(),
    }
}

/// A webhook's health from `since` on counts exactly what the log lists with the same `since`:
/// the accepted invocations, and the requests of the entries `outcome=failed` selects
/// (rejected, or accepted with a failed latest attempt or a failed task; a coalesced entry
/// counts each request), with the newest failure's time. What came before `since` is not
/// counted, an invocation received at `since` is, and a deleted webhook counts as before.
pub async fn webhook_health_counts_the_window_as_the_log_filters_it<S: ContractStore>(store: S) {
    let world = World::seed(&store).await;
    let hook = world.webhook.id;
    let org = world.organization.id;
    let since = at(100);
    // Every delivery state, received from 101 s on.
    log_every_delivery_state(&store, &world, 100).await;
    world.accept(&store, at(50)).await;
    world.reject(&store, at_micros(100_000_000 - 1)).await;
    world.reject(&store, since).await;
    // Accepted at the window's start, then given up on: a failure by its task alone.
    let (_, edge_task) = world.accept(&store, since).await;
    move_queued(&store, org, edge_task.id, TaskStatus::Failed, at(140)).await;
    let flood = Invocation {
        repeat_count: 5,
        ..rejected(&world.webhook, at(120))
    };
    store.record_invocation(&flood, None).await.expect("flood");
    let (first, _) = world.accept(&store, at(130)).await;
    store
        .record_invocation(&duplicate_of(&world.webhook, &first, 131), None)
        .await
        .expect("duplicate");

    let health = |ids: Vec<WebhookId>, since: Timestamp| {
        let store = store.clone();
        async move {
            store
                .webhook_health(org, &ids, since)
                .await
                .expect("health")
        }
    };
    let expected = WebhookHealth {
        // the one at `since`, pending, retrying, recovered, given up, reported, the one at 130 s.
        accepted: 7,
        // the two at `since`, the rejected one, retrying, given up, reported, 5 of the flood.
        failed: 11,
        last_failure_at: Some(at(120)),
    };
    assert_eq!(health(vec![hook], since).await, vec![expected]);
    assert_eq!(
        as_the_log_says(&store, &world, hook, since).await,
        expected,
        "the log's filters list what health counts"
    );
    assert_eq!(
        health(vec![hook], at(121)).await,
        vec![WebhookHealth {
            accepted: 1,
            failed: 0,
            last_failure_at: None,
        }],
        "a window after the last failure"
    );

    delete_webhook_at(&store, &world.webhook, at(200)).await;
    assert_eq!(
        health(vec![hook], since).await,
        vec![expected],
        "a tombstone's log counts as before"
    );
}

/// Health is read for many webhooks at once, one answer per id in the order asked: each
/// webhook counts its own log only, and a webhook of another organization, an unknown id or a
/// webhook without invocations in the window has nothing counted. No ids, no answers.
pub async fn webhook_health_answers_each_id_in_order<S: ContractStore>(store: S) {
    let world = World::seed(&store).await;
    let org = world.organization.id;
    let neighbour = board_world(&store, &world).await;
    let quiet = board_world(&store, &world).await;
    let stranger = World::seed(&store).await;
    world.accept(&store, at(10)).await;
    world.accept(&store, at(11)).await;
    neighbour.reject(&store, at(12)).await;
    stranger.reject(&store, at(13)).await;
    stranger.accept(&store, at(14)).await;
    quiet.reject(&store, at(1)).await;
    let other_org = stored_organization(&store).await;

    let unknown = crate::fixtures::webhook(&world.target, at(0)).id;
    let ids = [
        neighbour.webhook.id,
        stranger.webhook.id,
        unknown,
        world.webhook.id,
        quiet.webhook.id,
    ];
    let health = store
        .webhook_health(org, &ids, at(5))
        .await
        .expect("health");
    let none = WebhookHealth::default();
    assert_eq!(
        health,
        vec![
            WebhookHealth {
                accepted: 0,
                failed: 1,
                last_failure_at: Some(at(12)),
            },
            none,
            none,
            WebhookHealth {
                accepted: 2,
                failed: 0,
                last_failure_at: None,
            },
            none,
        ]
    );
    assert_eq!(
        store
            .webhook_health(other_org.id, &[world.webhook.id], at(5))
            .await
            .expect("health"),
        vec![none],
        "another organization's webhook"
    );
    assert_eq!(
        store.webhook_health(org, &[], at(5)).await.expect("health"),
        Vec::<WebhookHealth>::new()
    );
}

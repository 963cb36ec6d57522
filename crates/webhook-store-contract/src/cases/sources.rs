//! Cases of what the senders' dialects add to the stores: a webhook's source settings, allowlist
//! and rotation overlap; the delivery id, duplicate and template note of an invocation; a
//! task's provider; and the delivery-id claims that make deduplication exact.

use std::time::Duration;

use futures::future::join_all;
use webhook_domain::model::{
    CidrList, ClaimOutcome, DeliveryClaim, FieldRef, InstructionTemplate, Invocation,
    InvocationFilter, InvocationOutcome, OutcomeFilter, Source, SourceSettings, Task, Verification,
    Webhook,
};

use super::assert_not_found;
use crate::ContractStore;
use crate::fixtures::{World, accepted, at, check_one_recorded, ignored, page, sealed, webhook};

fn claim(delivery_id: &str, window_start: i64) -> DeliveryClaim {
    DeliveryClaim {
        delivery_id: delivery_id.to_owned(),
        window_start: at(window_start),
    }
}

/// Records an accepted invocation of `world`'s webhook received at `received_at` whose sender
/// claims `delivery_id` from `window_start` on: the invocation, its task and the store's answer.
async fn claim_accepted<S: ContractStore>(
    store: &S,
    world: &World,
    received_at: i64,
    (delivery_id, window_start): (&str, i64),
) -> (Invocation, Task, ClaimOutcome) {
    let (invocation, task) = accepted(&world.webhook, at(received_at));
    let outcome = store
        .record_claimed(&invocation, Some(&task), &claim(delivery_id, window_start))
        .await
        .unwrap_or_else(|e| panic!("claim of {delivery_id:?} at {received_at}: {e}"));
    (invocation, task, outcome)
}

/// The answer to a claim held by `first` (with its task, if it has one).
fn duplicate_answer(first: &Invocation, task: Option<&Task>) -> ClaimOutcome {
    ClaimOutcome::Duplicate {
        invocation_id: first.id,
        task_id: task.map(|t| t.id),
    }
}

/// A duplicate's log entry on `webhook`: what ingest writes for repeats of `first`.
pub(super) fn duplicate_of(webhook: &Webhook, first: &Invocation, received_at: i64) -> Invocation {
    Invocation {
        outcome: InvocationOutcome::Duplicate,
        http_status: 200,
        duplicate_of: Some(first.id),
        repeat_count: 3,
        payload: None,
        ..ignored(webhook, at(received_at))
    }
}

/// A webhook's source, overrides, allowlist and previous secret are read back as written, on
/// insert and on update, and cleared by an update.
pub async fn webhook_source_settings_round_trip<S: ContractStore>(store: S) {
    let world = World::seed(&store).await;
    let mut hook = webhook(&world.target, at(1));
    hook.source = SourceSettings::new(
        Source::Generic,
        Some(Verification::Bearer),
        Some(FieldRef::parse("header:X-Kind").expect("reference")),
        Some(FieldRef::parse("/event/id").expect("pointer")),
        Some(InstructionTemplate::parse("Deploy {{ service }}").expect("template")),
    )
    .expect("settings");
    hook.allowed_source_ips =
        CidrList::parse(&["192.0.2.0/24", "2001:db8::/32", "198.51.100.7"]).expect("networks");
    store.insert_webhook(&hook).await.expect("insert");
    assert_eq!(store.webhook(hook.id).await.expect("read"), hook);

    hook.source = SourceSettings::of(Source::StandardWebhooks);
    hook.previous_secret = Some(sealed(9));
    hook.previous_secret_expires_at = Some(at(3_600));
    hook.updated_at = at(2);
    store.update_webhook(&hook).await.expect("update");
    assert_eq!(store.webhook(hook.id).await.expect("read"), hook);

    hook.source = SourceSettings::default();
    hook.allowed_source_ips = CidrList::default();
    hook.previous_secret = None;
    hook.previous_secret_expires_at = None;
    hook.updated_at = at(3);
    store.update_webhook(&hook).await.expect("update");
    assert_eq!(store.webhook(hook.id).await.expect("read"), hook);
}

/// An invocation's delivery id, duplicate reference and template note, and a task's provider,
/// are read back as written.
pub async fn source_fields_of_invocations_and_tasks_round_trip<S: ContractStore>(store: S) {
    let world = World::seed(&store).await;
    let org = world.organization.id;
    let (first, task) = world.accept_from(&store, at(1), Source::Github).await;
    let repeat = duplicate_of(&world.webhook, &first, 2);
    store
        .record_invocation(&repeat, None)
        .await
        .expect("duplicate");

    assert_eq!(store.invocation(org, first.id).await.expect("read"), first);
    assert_eq!(
        store.invocation(org, repeat.id).await.expect("read"),
        repeat
    );
    assert_eq!(store.task(org, task.id).await.expect("task"), task);
}

/// `outcome=duplicate` lists the duplicates only, and `failed` does not count them.
pub async fn invocations_filter_duplicates<S: ContractStore>(store: S) {
    let world = World::seed(&store).await;
    let (first, _) = world.accept(&store, at(1)).await;
    let repeat = duplicate_of(&world.webhook, &first, 2);
    store
        .record_invocation(&repeat, None)
        .await
        .expect("duplicate");
    let listed = |filter| {
        let store = store.clone();
        let world = world.clone();
        async move {
            store
                .invocations(
                    world.organization.id,
                    world.webhook.id,
                    &InvocationFilter::outcome(filter),
                    page(50),
                )
                .await
                .expect("list")
                .items
                .into_iter()
                .map(|i| i.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(listed(OutcomeFilter::Duplicate).await, vec![repeat.id]);
    assert!(listed(OutcomeFilter::Failed).await.is_empty());
    assert_eq!(listed(OutcomeFilter::Accepted).await, vec![first.id]);
}

/// The first claim of a delivery id records; a second within the window writes nothing and
/// names the first invocation and its task.
pub async fn a_claimed_delivery_id_answers_the_first_claim<S: ContractStore>(store: S) {
    let world = World::seed(&store).await;
    let org = world.organization.id;
    let (first, first_task, outcome) = claim_accepted(&store, &world, 10, ("delivery-1", 0)).await;
    assert_eq!(outcome, ClaimOutcome::Recorded);

    let (second, second_task, outcome) =
        claim_accepted(&store, &world, 20, ("delivery-1", 5)).await;
    assert_eq!(outcome, duplicate_answer(&first, Some(&first_task)));
    assert_not_found(
        store.invocation(org, second.id).await,
        "the duplicate's invocation",
    );
    assert_not_found(
        store.task(org, second_task.id).await,
        "the duplicate's task",
    );

    // An ignored event claims its id too, with no task.
    let ignored_first = ignored(&world.webhook, at(30));
    let outcome = store
        .record_claimed(&ignored_first, None, &claim("delivery-2", 0))
        .await
        .expect("ignored claim");
    assert_eq!(outcome, ClaimOutcome::Recorded);
    let ignored_again = ignored(&world.webhook, at(31));
    let outcome = store
        .record_claimed(&ignored_again, None, &claim("delivery-2", 0))
        .await
        .expect("repeat of an ignored event");
    assert_eq!(outcome, duplicate_answer(&ignored_first, None));
}

/// Delivery ids are per webhook: the same id on another webhook is another claim.
pub async fn delivery_ids_are_claimed_per_webhook<S: ContractStore>(store: S) {
    let world = World::seed(&store).await;
    let other = webhook(&world.target, at(0));
    store.insert_webhook(&other).await.expect("other webhook");
    let (first, first_task) = accepted(&world.webhook, at(10));
    let (second, second_task) = accepted(&other, at(11));
    for (invocation, task) in [(&first, &first_task), (&second, &second_task)] {
        let outcome = store
            .record_claimed(invocation, Some(task), &claim("shared-id", 0))
            .await
            .expect("claim");
        assert_eq!(outcome, ClaimOutcome::Recorded);
    }
}

/// A claim made before the window's start has lapsed: the next request with the id records
/// and holds the claim from then on.
pub async fn a_lapsed_claim_is_taken_over<S: ContractStore>(store: S) {
    let world = World::seed(&store).await;
    claim_accepted(&store, &world, 10, ("delivery-1", 0)).await;
    let (later, later_task, outcome) =
        claim_accepted(&store, &world, 100_000, ("delivery-1", 11)).await;
    assert_eq!(outcome, ClaimOutcome::Recorded);
    let (_, _, outcome) = claim_accepted(&store, &world, 100_001, ("delivery-1", 11)).await;
    assert_eq!(outcome, duplicate_answer(&later, Some(&later_task)));
}

/// Of 64 requests claiming one id at once, exactly one records; the others name it.
pub async fn concurrent_claims_record_exactly_one<S: ContractStore>(store: S) {
    let world = World::seed(&store).await;
    let requests: Vec<_> = (0..64)
        .map(|i| accepted(&world.webhook, at(10).plus(Duration::from_micros(i))))
        .collect();
    let outcomes = join_all(requests.iter().map(|(invocation, task)| {
        let store = store.clone();
        let invocation = invocation.clone();
        let task = task.clone();
        tokio::spawn(async move {
            store
                .record_claimed(&invocation, Some(&task), &claim("burst", 0))
                .await
                .map(|outcome| (outcome, invocation.id, task.id))
        })
    }))
    .await;
    let outcomes: Vec<_> = outcomes
        .into_iter()
        .map(|joined| joined.expect("task").expect("claim"))
        .collect();
    check_one_recorded(&store, &world, &outcomes).await;
}

/// The purge removes claims made before its time, and only those.
pub async fn purge_delivery_claims_removes_lapsed_claims<S: ContractStore>(store: S) {
    let world = World::seed(&store).await;
    claim_accepted(&store, &world, 10, ("old", 0)).await;
    claim_accepted(&store, &world, 50, ("new", 0)).await;
    assert_eq!(store.purge_delivery_claims(at(20)).await.expect("purge"), 1);
    // With the window reaching back to 0, "old" would still be a duplicate had it survived.
    let (_, _, outcome) = claim_accepted(&store, &world, 60, ("old", 0)).await;
    assert_eq!(outcome, ClaimOutcome::Recorded);
    let (_, _, outcome) = claim_accepted(&store, &world, 61, ("new", 0)).await;
    assert!(matches!(outcome, ClaimOutcome::Duplicate { .. }));
}

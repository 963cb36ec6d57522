//! Cases of the request records the invocation log keeps: headers, what of the body was kept,
//! the problem answered, the subscriptions an ignored event was matched against, and the
//! invocation a replay sent again.

use uuid::Uuid;
use webhook_domain::model::{
    AnsweredProblem, AttemptVerdict, ClaimRequest, DeliveryClaim, Invocation, REDACTED,
    RequestRecord,
};

use super::{attempts, log_page};
use crate::ContractStore;
use crate::fixtures::{LONG_LEASE, World, accepted, answered, at, ignored, page, rejected};

/// A record with headers (one redacted, one with quotes and non-ASCII text), `omitted` headers
/// left out.
fn headers_record(omitted: u32) -> RequestRecord {
    RequestRecord {
        headers: [
            ("content-type", "application/json"),
            ("x-webhook-secret", REDACTED),
            ("user-agent", "ci \"runner\" ü/1.0"),
        ]
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect(),
        headers_omitted: omitted,
        ..RequestRecord::default()
    }
}

/// An invocation's request record and `replay_of` are read back as written, by `invocation`
/// and in `invocations`, whatever they hold: a payload kept whole, a refused body kept as text
/// with its problem, the subscriptions of an ignored event; and a later delivery attempt
/// leaves the record as it is.
pub async fn request_records_round_trip<S: ContractStore>(store: S) {
    let world = World::seed(&store).await;
    let org = world.organization.id;
    let (first, _) = world.accept(&store, at(1)).await;

    let (mut replay, replay_task) = accepted(&world.webhook, at(2));
    replay.request = Some(headers_record(0).with_payload());
    replay.replay_of = Some(first.id);
    let refused = Invocation {
        request: Some(
            headers_record(3)
                .with_body_text(b"{\"broken\": \xff")
                .with_problem(AnsweredProblem {
                    status: 400,
                    code: "invalid_payload".to_owned(),
                    title: "Invalid payload".to_owned(),
                    detail: "the body is not valid JSON: expected value at line 1 column 12"
                        .to_owned(),
                }),
        ),
        ..rejected(&world.webhook, at(3))
    };
    let mut subscriptions = headers_record(0).with_payload();
    subscriptions.subscriptions = Some(vec!["deploy.*".to_owned(), "build.finished".to_owned()]);
    let ignored = Invocation {
        request: Some(subscriptions),
        ..ignored(&world.webhook, at(4))
    };
    store
        .record_invocation(&replay, Some(&replay_task))
        .await
        .expect("record the replay");
    for invocation in [&refused, &ignored] {
        store
            .record_invocation(invocation, None)
            .await
            .expect("record");
    }
    for invocation in [&first, &replay, &refused, &ignored] {
        let read = store.invocation(org, invocation.id).await.expect("read");
        assert_eq!(&read, invocation);
    }
    let listed = log_page(&store, &world, page(10)).await;
    assert_eq!(listed.items, vec![ignored, refused, replay.clone(), first]);

    // An attempt writes the target's response, never over the record.
    let lease = store
        .claim_tasks(ClaimRequest::new(at(5), LONG_LEASE, Uuid::new_v4(), 100))
        .await
        .expect("claim")
        .into_iter()
        .find(|claimed| claimed.task.id == replay_task.id)
        .expect("the replay's task is due")
        .lease;
    let attempt = answered(&replay_task, 1, 200, at(6));
    store
        .finish_attempt(&lease, &attempt, AttemptVerdict::Delivered)
        .await
        .expect("finish");
    let read = store.invocation(org, replay.id).await.expect("read");
    assert_eq!(read.request, replay.request);
    assert_eq!(read.replay_of, replay.replay_of);
    assert_eq!(read.target_response, Some(attempt.response.clone()));
    assert_eq!(attempts(&store, org, replay_task.id).await, vec![attempt]);
}

/// A record written with a delivery id's claim reads back as written.
pub async fn request_records_ride_in_claimed_writes<S: ContractStore>(store: S) {
    let world = World::seed(&store).await;
    let (mut invocation, task) = accepted(&world.webhook, at(1));
    invocation.delivery_id = Some("delivery-1".to_owned());
    invocation.request = Some(headers_record(1).with_payload());
    let claim = DeliveryClaim {
        delivery_id: "delivery-1".to_owned(),
        window_start: at(0),
    };
    store
        .record_claimed(&invocation, Some(&task), &claim)
        .await
        .expect("record");
    let read = store
        .invocation(world.organization.id, invocation.id)
        .await
        .expect("read");
    assert_eq!(read, invocation);
}

//! Cases of the invocation log's filters: event type, source address, time, test flag, and the
//! words of the payload (`q`), whose meaning every store shares (`webhook_domain::model`'s
//! `indexed_words`); each combines with the others, the outcome and the cursor.

use std::net::IpAddr;

use webhook_domain::model::{
    Invocation, InvocationFilter, InvocationId, OutcomeFilter, Payload, SearchWords, Timestamp,
    Webhook,
};
use webhook_domain::ports::Store;

use super::every_page;
use crate::ContractStore;
use crate::fixtures::{
    World, accepted, accepted_test, at, at_micros, ignored, page, rejected, webhook,
};

/// An ignored invocation of `webhook` received at `received_at` with the JSON `body`.
fn with_body(webhook: &Webhook, received_at: Timestamp, body: &str) -> Invocation {
    Invocation {
        payload: Some(json(body)),
        ..ignored(webhook, received_at)
    }
}

fn json(body: &str) -> Payload {
    Payload::parse_object(body.as_bytes())
        .expect("case payloads are JSON objects")
        .0
}

async fn record<S: Store>(store: &S, invocations: &[&Invocation]) {
    for invocation in invocations {
        store
            .record_invocation(invocation, None)
            .await
            .expect("record");
    }
}

/// The ids of every page of `filter`'s listing, `limit` at a time, following the cursors, and
/// the same of the summaries: both reads must agree.
async fn listed<S: Store>(
    store: &S,
    world: &World,
    filter: &InvocationFilter,
    limit: u32,
) -> Vec<InvocationId> {
    let (org, hook) = (world.organization.id, world.webhook.id);
    let full: Vec<InvocationId> = every_page(page(limit), |request| {
        store.invocations(org, hook, filter, request)
    })
    .await
    .iter()
    .map(|i| i.id)
    .collect();
    let summaries: Vec<InvocationId> = every_page(page(limit), |request| {
        store.invocation_summaries(org, hook, filter, request)
    })
    .await
    .iter()
    .map(|s| s.invocation.id)
    .collect();
    assert_eq!(full, summaries, "the list and its summaries disagree");
    full
}

/// Checks that each filter lists exactly its expected ids, newest first, when read the given
/// number at a time.
async fn check_listed<S: Store>(
    store: &S,
    world: &World,
    cases: &[(InvocationFilter, u32, Vec<InvocationId>)],
) {
    for (filter, limit, expected) in cases {
        assert_eq!(
            &listed(store, world, filter, *limit).await,
            expected,
            "{filter:?}"
        );
    }
}

fn words(q: &str) -> InvocationFilter {
    InvocationFilter {
        words: Some(SearchWords::parse(q).expect("a valid search")),
        ..InvocationFilter::default()
    }
}

/// Newest first, as lists are.
fn newest_first(invocations: &[&Invocation]) -> Vec<InvocationId> {
    let mut sorted = invocations.to_vec();
    sorted.sort_by_key(|i| std::cmp::Reverse((i.received_at, i.id)));
    sorted.iter().map(|i| i.id).collect()
}

/// `event_type` keeps the invocations of exactly that event type.
pub async fn invocations_filter_by_event_type<S: ContractStore>(store: S) {
    let world = World::seed(&store).await;
    let deploy = Invocation {
        event_type: Some("deploy.finished".to_owned()),
        ..ignored(&world.webhook, at(1))
    };
    let prefix = Invocation {
        event_type: Some("deploy".to_owned()),
        ..ignored(&world.webhook, at(2))
    };
    let upper = Invocation {
        event_type: Some("Deploy.Finished".to_owned()),
        ..ignored(&world.webhook, at(3))
    };
    let none = Invocation {
        event_type: None,
        ..rejected(&world.webhook, at(4))
    };
    record(&store, &[&deploy, &prefix, &upper, &none]).await;
    let filter = |event_type: &str| InvocationFilter {
        event_type: Some(event_type.to_owned()),
        ..InvocationFilter::default()
    };
    check_listed(
        &store,
        &world,
        &[
            (filter("deploy.finished"), 1, vec![deploy.id]),
            (filter("deploy"), 10, vec![prefix.id]),
            (filter("deploy.*"), 10, vec![]),
        ],
    )
    .await;
}

/// `source_ip` keeps the invocations sent from exactly that address.
pub async fn invocations_filter_by_source_ip<S: ContractStore>(store: S) {
    let world = World::seed(&store).await;
    let address = |text: &str| Some(text.parse::<IpAddr>().expect("an address"));
    let v4 = Invocation {
        source_ip: address("203.0.113.7"),
        ..ignored(&world.webhook, at(1))
    };
    let other = Invocation {
        source_ip: address("203.0.113.70"),
        ..ignored(&world.webhook, at(2))
    };
    let v6 = Invocation {
        source_ip: address("2001:db8::1"),
        ..rejected(&world.webhook, at(3))
    };
    let unknown = Invocation {
        source_ip: None,
        ..ignored(&world.webhook, at(4))
    };
    record(&store, &[&v4, &other, &v6, &unknown]).await;
    let filter = |text: &str| InvocationFilter {
        source_ip: address(text),
        ..InvocationFilter::default()
    };
    check_listed(
        &store,
        &world,
        &[
            (filter("203.0.113.7"), 10, vec![v4.id]),
            // The same address however it was written.
            (filter("2001:0db8:0:0::0001"), 10, vec![v6.id]),
            (filter("198.51.100.1"), 10, vec![]),
        ],
    )
    .await;
}

/// `since` keeps invocations received at or after it, `until` those received before it.
pub async fn invocations_filter_by_time<S: ContractStore>(store: S) {
    let world = World::seed(&store).await;
    let mut all = Vec::new();
    for micros in [0, 999_999, 1_000_000, 1_000_001, 2_000_000] {
        all.push(world.reject(&store, at_micros(micros)).await);
    }
    let window = |since: Option<i64>, until: Option<i64>| InvocationFilter {
        since: since.map(at_micros),
        until: until.map(at_micros),
        ..InvocationFilter::default()
    };
    let ids = |picked: &[usize]| -> Vec<InvocationId> {
        let picked: Vec<&Invocation> = picked.iter().map(|&i| &all[i]).collect();
        newest_first(&picked)
    };
    check_listed(
        &store,
        &world,
        &[
            (window(Some(1_000_000), None), 2, ids(&[2, 3, 4])),
            (window(None, Some(1_000_000)), 2, ids(&[0, 1])),
            (window(Some(999_999), Some(1_000_001)), 2, ids(&[1, 2])),
            (window(Some(2_000_001), None), 2, vec![]),
        ],
    )
    .await;
}

/// `test` keeps the invocations sent by the test endpoint, or the others.
pub async fn invocations_filter_by_test<S: ContractStore>(store: S) {
    let world = World::seed(&store).await;
    let (tested, task) = accepted_test(&world.webhook, at(1));
    store
        .record_invocation(&tested, Some(&task))
        .await
        .expect("record");
    let (real, _) = world.accept(&store, at(2)).await;
    let rej = world.reject(&store, at(3)).await;
    let filter = |test: bool| InvocationFilter {
        test: Some(test),
        ..InvocationFilter::default()
    };
    check_listed(
        &store,
        &world,
        &[
            (filter(true), 10, vec![tested.id]),
            (filter(false), 1, vec![rej.id, real.id]),
        ],
    )
    .await;
}

/// A search keeps the invocations whose payload has every word, in any order and any case, in
/// any string value or number, and only those of this webhook that have a payload.
pub async fn search_keeps_payloads_with_every_word<S: ContractStore>(store: S) {
    let world = World::seed(&store).await;
    let sibling = webhook(&world.target, at(0));
    store.insert_webhook(&sibling).await.expect("insert");
    let both = with_body(
        &world.webhook,
        at(1),
        r#"{"message":"Deploy of API finished","env":{"name":"prod"},"build":4711}"#,
    );
    let one = with_body(&world.webhook, at(2), r#"{"message":"deploy started"}"#);
    let nested = with_body(
        &world.webhook,
        at(3),
        r#"{"steps":[{"s":"API"},{"d":"DEPLOY"}]}"#,
    );
    let elsewhere = with_body(&sibling, at(4), r#"{"message":"deploy api"}"#);
    let without = rejected(&world.webhook, at(5));
    record(&store, &[&both, &one, &nested, &elsewhere, &without]).await;
    let check = async |q: &str, expected: &[&Invocation]| {
        assert_eq!(
            listed(&store, &world, &words(q), 1).await,
            newest_first(expected),
            "{q}"
        );
    };
    check("deploy", &[&both, &one, &nested]).await;
    check("DEPLOY Api", &[&both, &nested]).await;
    check("api deploy", &[&both, &nested]).await;
    check("prod", &[&both]).await;
    check("4711 deploy", &[&both]).await;
    check("deploy staging", &[]).await;
    check("nothing", &[]).await;
}

/// A word is a run of letters and digits, lowercased: punctuation separates words, member
/// names and literals are not searched, escapes are read, accents count, and only whole words
/// match.
pub async fn search_words_are_the_domains<S: ContractStore>(store: S) {
    let world = World::seed(&store).await;
    let dotted = with_body(
        &world.webhook,
        at(1),
        r#"{"event_type":"deploy.finished","user_id":"a-b_c@d.io","ok":true}"#,
    );
    let escaped = with_body(
        &world.webhook,
        at(2),
        r#"{"m":"line1\nLINE2 \u00c9t\u00e9 \"q\""}"#,
    );
    let unicode = with_body(&world.webhook, at(3), r#"{"m":"Café 東京 Größe 😀x ½"}"#);
    let number = with_body(&world.webhook, at(4), r#"{"n":-12.5e3,"z":null}"#);
    record(&store, &[&dotted, &escaped, &unicode, &number]).await;
    let check = async |q: &str, expected: &[&Invocation]| {
        assert_eq!(
            listed(&store, &world, &words(q), 10).await,
            newest_first(expected),
            "{q}"
        );
    };
    check("deploy.finished", &[&dotted]).await;
    check("finished deploy", &[&dotted]).await;
    check("a b c d io", &[&dotted]).await;
    check("user", &[]).await;
    check("event_type", &[]).await;
    check("true", &[]).await;
    check("null", &[]).await;
    check("deplo", &[]).await;
    check("line1 line2 été q", &[&escaped]).await;
    check("nline2", &[]).await;
    check("u00c9t", &[]).await;
    check("CAFÉ 東京 größe x ½", &[&unicode]).await;
    check("cafe", &[]).await;
    check("12 5e3", &[&number]).await;
}

/// A search goes on page after page, newest first by (time, id) also among invocations of the
/// same microsecond, and combines with every other filter and the outcome.
pub async fn search_pages_combine_with_filters<S: ContractStore>(store: S) {
    let world = World::seed(&store).await;
    let mut all: Vec<(Invocation, bool)> = Vec::new();
    for n in 0..60_i64 {
        // Three invocations per microsecond; every second one has the word, every third is a
        // test, every fifth is accepted.
        let received = at_micros(n / 3);
        let straw = if n % 2 == 0 { "needle" } else { "hay" };
        let body = format!(r#"{{"message":"{straw} {n}"}}"#);
        let mut invocation = with_body(&world.webhook, received, &body);
        invocation.test = n % 3 == 0;
        if n % 5 == 0 {
            let (mut acc, mut task) = accepted(&world.webhook, received);
            acc.payload = Some(json(&body));
            acc.test = invocation.test;
            task.context = json(&body);
            task.test = invocation.test;
            store
                .record_invocation(&acc, Some(&task))
                .await
                .expect("record");
            all.push((acc, true));
        } else {
            store
                .record_invocation(&invocation, None)
                .await
                .expect("record");
            all.push((invocation, false));
        }
    }
    let keep = |pick: &dyn Fn(&Invocation, bool) -> bool| -> Vec<InvocationId> {
        let kept: Vec<&Invocation> = all
            .iter()
            .filter(|(i, accepted)| pick(i, *accepted))
            .map(|(i, _)| i)
            .collect();
        newest_first(&kept)
    };
    let needle = |i: &Invocation| {
        i.payload
            .as_ref()
            .is_some_and(|p| p.as_str().contains("needle"))
    };
    for limit in [1, 2, 7, 500] {
        assert_eq!(
            listed(&store, &world, &words("needle"), limit).await,
            keep(&|i, _| needle(i)),
            "limit {limit}"
        );
    }
    let combined = InvocationFilter {
        outcome: Some(OutcomeFilter::Accepted),
        ..words("NEEDLE")
    };
    assert_eq!(
        listed(&store, &world, &combined, 1).await,
        keep(&|i, accepted| needle(i) && accepted)
    );
    let windowed = InvocationFilter {
        since: Some(at_micros(4)),
        until: Some(at_micros(15)),
        test: Some(false),
        ..words("needle")
    };
    assert_eq!(
        listed(&store, &world, &windowed, 2).await,
        keep(&|i, _| {
            needle(i) && !i.test && i.received_at >= at_micros(4) && i.received_at < at_micros(15)
        })
    );
    let numbered = InvocationFilter {
        event_type: Some("push".to_owned()),
        ..words("needle 58")
    };
    let last = &all[58].0;
    assert_eq!(listed(&store, &world, &numbered, 3).await, [last.id]);
}

/// Purged invocations leave the search with their rows.
pub async fn search_forgets_purged_invocations<S: ContractStore>(store: S) {
    let world = World::seed(&store).await;
    let old = with_body(&world.webhook, at(1), r#"{"message":"old needle"}"#);
    let new = with_body(&world.webhook, at(100), r#"{"message":"new needle"}"#);
    record(&store, &[&old, &new]).await;
    assert_eq!(
        listed(&store, &world, &words("needle"), 10).await,
        [new.id, old.id]
    );
    assert_eq!(store.purge_invocations(at(50)).await.expect("purge"), 1);
    assert_eq!(listed(&store, &world, &words("needle"), 10).await, [new.id]);
    assert!(listed(&store, &world, &words("old"), 10).await.is_empty());
    // Another invocation of the purged one's microsecond is found.
    let again = with_body(&world.webhook, at(1), r#"{"message":"old again"}"#);
    record(&store, &[&again]).await;
    assert_eq!(listed(&store, &world, &words("old"), 10).await, [again.id]);
}

//! The shared rate limiter: several limiters (as on several nodes) on one database never admit
//! more than a quota in any minute whatever node each request reaches (reserved slots count as
//! charges), decide exactly as the domain's rule on one set of windows when they reserve
//! nothing (one slot per charge), admit a stream at high quotas and refuse a flood with a few
//! statements, and answer "unavailable" when the database cannot be reached.

use std::collections::HashMap;
use std::time::Duration;

use diesel::sql_types::{BigInt, SmallInt, Uuid as SqlUuid};
use diesel::{QueryableByName, sql_query};
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl as _};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use uuid::Uuid;
use webhook_domain::model::{OrganizationId, RatePerMinute, RateRequest, Timestamp, WebhookId};
use webhook_domain::ports::RateLimiter as _;
use webhook_domain::rules::{self, RateDecision, RateScope, SlidingWindow};
use webhook_store_contract::ContractStore as _;
use webhook_store_pg::test_db::{database_url, fresh_store, unreachable_store};
use webhook_store_pg::{PgRateLimiter, PgStore, PgStoreOptions, RateLimiterOptions};

/// Nodes sharing the database in the property tests.
const NODES: usize = 3;
/// A start in 2026, in microseconds since the Unix epoch.
const START: i64 = 1_796_000_000_000_000;
const MINUTE_US: i64 = 60_000_000;

/// `NODES` limiters, each on a store of its own (its own pool and batcher), all on one fresh
/// database; and the first store, for teardown.
async fn cluster() -> (PgStore, Vec<PgRateLimiter>) {
    cluster_with(RateLimiterOptions::default()).await
}

/// [`cluster`] with limiters built with `options`.
async fn cluster_with(options: RateLimiterOptions) -> (PgStore, Vec<PgRateLimiter>) {
    let first = fresh_store().await;
    let url = database_url(&first.test_database().expect("a test database"));
    let mut limiters = vec![first.rate_limiter(options)];
    for _ in 1..NODES {
        let store = PgStore::open(&url, PgStoreOptions::default()).expect("the pool builds");
        limiters.push(store.rate_limiter(options));
    }
    (first, limiters)
}

/// Options under which every pair may reserve slots, whatever its quotas.
fn reserving() -> RateLimiterOptions {
    RateLimiterOptions {
        reserve_from_quota: 1,
        ..RateLimiterOptions::default()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
}

fn rate(n: u32) -> RatePerMinute {
    RatePerMinute::new(n).expect("a valid quota")
}

/// One organization and its webhooks, fresh for each case (the database is shared by all).
struct Keys {
    organization: OrganizationId,
    webhooks: Vec<WebhookId>,
}

impl Keys {
    fn new(webhooks: usize) -> Self {
        Self {
            organization: OrganizationId::from_uuid(Uuid::new_v4()),
            webhooks: (0..webhooks)
                .map(|_| WebhookId::from_uuid(Uuid::new_v4()))
                .collect(),
        }
    }

    fn request(&self, webhook: usize, quotas: (u32, u32), now: i64) -> RateRequest {
        RateRequest {
            webhook_id: self.webhooks[webhook],
            webhook_quota: rate(quotas.0),
            organization_id: self.organization,
            organization_quota: rate(quotas.1),
            now: Timestamp::from_unix_micros(now),
        }
    }
}

/// Gaps in milliseconds between steps: none, sub-second, seconds, and beyond a window.
fn gap() -> impl Strategy<Value = u32> {
    prop_oneof![Just(0u32), 0..50u32, 0..3_000u32, 0..70_000u32]
}

/// The most timestamps of `times` (sorted) in any 60-second interval.
fn max_in_any_minute(times: &[i64]) -> usize {
    let mut max = 0;
    let mut start = 0;
    for end in 0..times.len() {
        while times[end] - times[start] >= MINUTE_US {
            start += 1;
        }
        max = max.max(end - start + 1);
    }
    max
}

/// [`rules::decide`] or [`rules::peek`].
type Rule = fn(
    &mut SlidingWindow,
    RatePerMinute,
    &mut SlidingWindow,
    RatePerMinute,
    Timestamp,
) -> RateDecision;

/// One request of a sequential run: the gap before it, its webhook, the node it reaches, and
/// whether it is a peek.
type Step = (u32, usize, usize, bool);

/// Requests one after the other, each to any node, decide exactly as the domain's rule on one
/// set of windows: same verdict, scope, retry-after and status. A peek's refusal is the rule's
/// refusal; a peek may admit optimistically. (Quotas below `reserve_from_quota`: every charge
/// is one slot, so the path is the rule's.)
#[test]
fn sequential_decisions_on_any_node_match_the_rule_on_one_set_of_windows() {
    let runtime = runtime();
    let (first, limiters) = runtime.block_on(cluster());
    let steps = prop::collection::vec((gap(), 0..3usize, 0..NODES, any::<bool>()), 1..80);
    let mut runner = TestRunner::new(Config {
        cases: 48,
        ..Config::default()
    });
    let result = runner.run(
        &(steps, 1u32..8, 1u32..12),
        |(steps, webhook_quota, organization_quota): (Vec<Step>, u32, u32)| {
            runtime.block_on(sequential_case(
                &limiters,
                &steps,
                (webhook_quota, organization_quota),
            ))
        },
    );
    runtime.block_on(first.teardown());
    result.unwrap();
}

async fn sequential_case(
    limiters: &[PgRateLimiter],
    steps: &[Step],
    quotas: (u32, u32),
) -> Result<(), TestCaseError> {
    let keys = Keys::new(3);
    let start = Timestamp::from_unix_micros(START);
    let mut webhook_windows: HashMap<usize, SlidingWindow> = HashMap::new();
    let mut organization_window = SlidingWindow::new(start);
    let mut now = START;
    for (i, &(gap_ms, webhook, node, peek)) in steps.iter().enumerate() {
        now += i64::from(gap_ms) * 1000;
        let request = keys.request(webhook, quotas, now);
        let window = webhook_windows
            .entry(webhook)
            .or_insert_with(|| SlidingWindow::new(request.now));
        let rule: Rule = if peek { rules::peek } else { rules::decide };
        let expected = rule(
            window,
            request.webhook_quota,
            &mut organization_window,
            request.organization_quota,
            request.now,
        );
        let limiter = &limiters[node];
        if peek {
            let got = limiter.peek(request).await.expect("the database is up");
            if let RateDecision::Denied { .. } = got {
                prop_assert_eq!(got, expected, "peek {} on node {}", i, node);
            }
        } else {
            let got = limiter.acquire(request).await.expect("the database is up");
            prop_assert_eq!(got, expected, "request {} on node {}", i, node);
        }
    }
    Ok(())
}

/// A step of a concurrent run: the gap before it, then requests sent at once, each with its
/// webhook and node.
type Burst = (u32, Vec<(usize, usize)>);

/// Requests sent at once to several nodes, as a balancer spreads them: in any 60-second
/// interval no webhook and no organization admits more than its quota, every admitted request
/// is charged to both windows and every refused one to neither, and every refusal is
/// justified by a full window.
#[test]
fn concurrent_requests_across_nodes_never_exceed_a_quota_in_any_minute() {
    concurrent_property(RateLimiterOptions::default(), 1u32..10, 1u32..15);
}

/// The same with reservations at every quota: still no minute admits more than a quota, and
/// both windows are charged the same slots, at least the admitted requests (the unused
/// reserved slots stay counted).
#[test]
fn concurrent_requests_with_reservations_never_exceed_a_quota_in_any_minute() {
    concurrent_property(reserving(), 16u32..120, 16u32..200);
}

fn concurrent_property(
    options: RateLimiterOptions,
    webhook_quotas: std::ops::Range<u32>,
    organization_quotas: std::ops::Range<u32>,
) {
    let runtime = runtime();
    let (first, limiters) = runtime.block_on(cluster_with(options));
    let exact = options.reserve_from_quota > webhook_quotas.end;
    let url = database_url(&first.test_database().expect("a test database"));
    let bursts = prop::collection::vec(
        (gap(), prop::collection::vec((0..2usize, 0..NODES), 1..12)),
        1..40,
    );
    let mut runner = TestRunner::new(Config {
        cases: 48,
        ..Config::default()
    });
    let result = runner.run(
        &(bursts, webhook_quotas, organization_quotas),
        |(bursts, webhook_quota, organization_quota): (Vec<Burst>, u32, u32)| {
            runtime.block_on(concurrent_case(
                &limiters,
                &url,
                &bursts,
                (webhook_quota, organization_quota),
                exact,
            ))
        },
    );
    runtime.block_on(first.teardown());
    result.expect("no minute admits more than a quota");
    if !exact {
        let reserved: u64 = limiters
            .iter()
            .map(PgRateLimiter::reserved_admissions)
            .sum();
        assert!(reserved > 0, "no request was admitted from a reservation");
    }
}

#[derive(QueryableByName)]
struct WindowRow {
    #[diesel(sql_type = SmallInt)]
    scope: i16,
    #[diesel(sql_type = SqlUuid)]
    key: Uuid,
    #[diesel(sql_type = BigInt)]
    newest: i64,
    #[diesel(sql_type = diesel::sql_types::Array<diesel::sql_types::Integer>)]
    counts: Vec<i32>,
}

impl WindowRow {
    /// The seconds of the window, oldest first, with the requests charged in each.
    fn seconds(&self) -> impl Iterator<Item = (i64, i32)> + '_ {
        (self.newest - 60..=self.newest).map(|second| {
            let slot = usize::try_from(second.rem_euclid(61)).expect("a slot");
            (second, self.counts[slot])
        })
    }
}

/// The stored windows of `keys`.
async fn windows(url: &str, keys: &[Uuid]) -> Vec<WindowRow> {
    let mut conn = AsyncPgConnection::establish(url).await.expect("connect");
    sql_query(
        "SELECT scope, key, newest, counts FROM rate_limit_counters WHERE key = ANY($1) \
         ORDER BY scope, key",
    )
    .bind::<diesel::sql_types::Array<SqlUuid>, _>(keys.to_vec())
    .load(&mut conn)
    .await
    .expect("the windows are readable")
}

/// The stored windows of `keys`' webhook `webhook` and of its organization, in `store`'s
/// database.
async fn pair_windows(store: &PgStore, keys: &Keys, webhook: usize) -> Vec<WindowRow> {
    let url = database_url(&store.test_database().expect("a test database"));
    windows(
        &url,
        &[
            *keys.webhooks[webhook].as_uuid(),
            *keys.organization.as_uuid(),
        ],
    )
    .await
}

/// What `limiter` shows in `/metrics`.
fn metrics(limiter: &PgRateLimiter) -> String {
    let mut registry = prometheus_client::registry::Registry::default();
    limiter.register(&mut registry);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encodes");
    text
}

/// Asserts that `text`, what a limiter shows in `/metrics`, holds the counter `name` at `value`.
#[track_caller]
fn assert_counter(text: &str, name: &str, value: u64) {
    assert!(text.contains(&format!("{name} {value}\n")), "{text}");
}

#[track_caller]
fn assert_admitted<E: std::fmt::Debug>(decision: Result<RateDecision, E>) {
    match decision {
        Ok(RateDecision::Admitted(_)) => {}
        other => panic!("expected an admission, got {other:?}"),
    }
}

async fn concurrent_case(
    limiters: &[PgRateLimiter],
    url: &str,
    bursts: &[Burst],
    quotas: (u32, u32),
    exact: bool,
) -> Result<(), TestCaseError> {
    let keys = Keys::new(2);
    let mut now = START;
    let mut admitted: [Vec<i64>; 2] = [Vec::new(), Vec::new()];
    let mut refused: Vec<(usize, i64, RateScope)> = Vec::new();
    for (gap_ms, requests) in bursts {
        now += i64::from(*gap_ms) * 1000;
        let decisions = futures_join(requests.iter().map(|&(webhook, node)| {
            let request = keys.request(webhook, quotas, now);
            let limiter = limiters[node].clone();
            async move { (webhook, limiter.acquire(request).await) }
        }))
        .await;
        for (webhook, decision) in decisions {
            match decision.expect("the database is up") {
                RateDecision::Admitted(_) => admitted[webhook].push(now),
                RateDecision::Denied { scope, .. } => refused.push((webhook, now, scope)),
            }
        }
    }
    let mut all: Vec<i64> = admitted.concat();
    all.sort_unstable();
    for (webhook, times) in admitted.iter().enumerate() {
        prop_assert!(
            max_in_any_minute(times) <= quotas.0 as usize,
            "webhook {} admitted {} in a minute, quota {}",
            webhook,
            max_in_any_minute(times),
            quotas.0
        );
    }
    prop_assert!(
        max_in_any_minute(&all) <= quotas.1 as usize,
        "the organization admitted {} in a minute, quota {}",
        max_in_any_minute(&all),
        quotas.1
    );
    // A refusal names a window that held its quota in the 61 buckets up to the refusal (the
    // admissions decided before it are among all those counted here).
    let in_window = |times: &[i64], at: i64| {
        let bucket = at.div_euclid(1_000_000);
        times
            .iter()
            .filter(|t| (bucket - 60..=bucket).contains(&t.div_euclid(1_000_000)))
            .count()
    };
    // (With reservations, unused slots fill windows too: a refusal is then justified by the
    // charges, which the checks below bound from below by the admissions.)
    for &(webhook, at, scope) in refused.iter().filter(|_| exact) {
        let (held, quota) = match scope {
            RateScope::Webhook => (in_window(&admitted[webhook], at), quotas.0),
            RateScope::Organization => (in_window(&all, at), quotas.1),
        };
        prop_assert!(
            held >= quota as usize,
            "a refusal by the {:?} quota while its window held {} of {}",
            scope,
            held,
            quota
        );
    }
    check_charges(url, &keys, &admitted, exact).await
}

/// Both or neither: in every second still in the windows, each webhook's window was charged
/// exactly its admitted requests (`admitted[webhook]`), the organization's exactly all of them;
/// with reservations, each webhook's window at least those, and the organization's exactly what
/// its webhooks' were.
async fn check_charges(
    url: &str,
    keys: &Keys,
    admitted: &[Vec<i64>; 2],
    exact: bool,
) -> Result<(), TestCaseError> {
    let all: Vec<i64> = admitted.concat();
    let rows = windows(
        url,
        &[
            *keys.organization.as_uuid(),
            *keys.webhooks[0].as_uuid(),
            *keys.webhooks[1].as_uuid(),
        ],
    )
    .await;
    let window = |scope: i16, key: Uuid| rows.iter().find(|r| r.scope == scope && r.key == key);
    let organization = window(1, *keys.organization.as_uuid());
    let webhooks: Vec<Option<&WindowRow>> = (0..2)
        .map(|w| window(0, *keys.webhooks[w].as_uuid()))
        .collect();
    let charged_in = |row: Option<&WindowRow>, second: i64| {
        row.and_then(|r| r.seconds().find(|s| s.0 == second))
            .map(|s| i64::from(s.1))
    };
    let admitted_in = |times: &[i64], second: i64| {
        i64::try_from(
            times
                .iter()
                .filter(|t| t.div_euclid(1_000_000) == second)
                .count(),
        )
        .expect("few requests")
    };
    for (webhook, row) in webhooks.iter().enumerate() {
        for (second, count) in row.iter().flat_map(|r| r.seconds()) {
            let admitted_then = admitted_in(&admitted[webhook], second);
            if exact {
                prop_assert_eq!(i64::from(count), admitted_then, "second {}", second);
            } else {
                prop_assert!(i64::from(count) >= admitted_then, "second {}", second);
            }
        }
    }
    for (second, count) in organization.iter().flat_map(|r| r.seconds()) {
        // Seconds that left a webhook's window are no longer counted in it.
        let from_webhooks: Option<i64> = webhooks
            .iter()
            .map(|row| match row {
                None => Some(0),
                Some(_) => charged_in(*row, second),
            })
            .sum();
        if let Some(from_webhooks) = from_webhooks {
            prop_assert_eq!(i64::from(count), from_webhooks, "second {}", second);
        }
        if exact {
            prop_assert_eq!(
                i64::from(count),
                admitted_in(&all, second),
                "second {}",
                second
            );
        }
    }
    Ok(())
}

/// Runs `futures` concurrently and returns their outputs in order.
async fn futures_join<F: Future + Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut outputs = Vec::with_capacity(handles.len());
    for handle in handles {
        outputs.push(handle.await.expect("the request task ends"));
    }
    outputs
}

/// A flood over two minutes on three nodes, 200 requests per node and second to a webhook at 5
/// per minute: the database sees a few statements per node and minute, not one per request;
/// the rest is refused from the remembered refusals, and the counters show in `/metrics`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_flood_costs_statements_per_node_and_second_not_per_request() {
    const SECONDS: i64 = 120;
    const PER_NODE_AND_SECOND: usize = 200;
    let (first, limiters) = cluster().await;
    let keys = Keys::new(1);
    let mut admitted = 0;
    for second in 0..SECONDS {
        let now = START + second * 1_000_000;
        let decisions = futures_join(limiters.iter().flat_map(|limiter| {
            let request = keys.request(0, (5, 1000), now);
            (0..PER_NODE_AND_SECOND).map(move |_| {
                let limiter = limiter.clone();
                async move { limiter.acquire(request).await }
            })
        }))
        .await;
        for decision in decisions {
            if let RateDecision::Admitted(_) = decision.expect("the database is up") {
                admitted += 1;
            }
        }
    }
    // Two windows' worth: at the start, and once the first admissions left the window.
    assert_eq!(admitted, 10);
    let requests = SECONDS as u64 * PER_NODE_AND_SECOND as u64;
    for (node, limiter) in limiters.iter().enumerate() {
        let statements = limiter.statements();
        // A node asks when it knows no refusal: at the start and when a remembered refusal
        // ends; each time, at most one statement per slot left and one that is refused,
        // however many requests are waiting.
        assert!(
            (1..=12).contains(&statements),
            "node {node} sent {statements} statements for {requests} requests"
        );
        assert!(
            limiter.local_refusals() >= requests - statements * PER_NODE_AND_SECOND as u64,
            "node {node} refused only {} locally",
            limiter.local_refusals()
        );
    }
    let text = metrics(&limiters[0]);
    assert_counter(
        &text,
        "webhookd_rate_limit_statements_total",
        limiters[0].statements(),
    );
    assert!(
        text.contains("webhookd_rate_limit_local_refusals_total "),
        "{text}"
    );
    first.teardown().await;
}

/// A remembered refusal ends when its retry-after does: the next request asks the database and
/// is admitted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remembered_refusal_ends_with_its_retry_after() {
    let (first, limiters) = cluster().await;
    let keys = Keys::new(1);
    let limiter = &limiters[0];
    let at = |offset_ms: i64| keys.request(0, (2, 100), START + offset_ms * 1000);
    for _ in 0..2 {
        assert_admitted(limiter.acquire(at(0)).await);
    }
    let RateDecision::Denied {
        scope, retry_after, ..
    } = limiter.acquire(at(500)).await.unwrap()
    else {
        panic!("a third request in the minute was admitted");
    };
    assert_eq!(scope, RateScope::Webhook);
    assert_eq!(retry_after, Duration::from_millis(60_500));
    let statements = limiter.statements();
    // Another node has not heard of the refusal; this one refuses alone, to peeks too.
    assert!(matches!(
        limiter.peek(at(30_000)).await.unwrap(),
        RateDecision::Denied {
            scope: RateScope::Webhook,
            ..
        }
    ));
    assert!(matches!(
        limiter.acquire(at(60_999)).await.unwrap(),
        RateDecision::Denied { .. }
    ));
    assert_eq!(limiter.statements(), statements);
    assert_eq!(limiter.local_refusals(), 2);
    assert_eq!(
        limiter.forget_expired(Timestamp::from_unix_micros(START)),
        0
    );
    // A raised quota is not refused from a refusal under the lower one.
    assert_admitted(
        limiter
            .acquire(keys.request(0, (3, 100), START + 1_000_000))
            .await,
    );
    assert_admitted(limiter.acquire(at(61_000)).await);
    assert_eq!(
        limiter.forget_expired(Timestamp::from_unix_micros(START + 61_000_000)),
        1
    );
    first.teardown().await;
}

/// The windows of keys whose every charge left them (with the margin for lagging clocks) are
/// deleted, the others kept, whatever their older seconds held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_windows_are_deleted_and_recent_ones_kept() {
    let (first, limiters) = cluster().await;
    let (idle, active) = (Keys::new(1), Keys::new(1));
    limiters[0]
        .acquire(idle.request(0, (100, 1000), START))
        .await
        .unwrap();
    for offset_s in [0, 100, 400] {
        let request = active.request(0, (100, 1000), START + offset_s * 1_000_000);
        limiters[0].acquire(request).await.unwrap();
    }
    let now = Timestamp::from_unix_micros(START + 400 * 1_000_000);
    // Kept: windows charged within 60 + 300 seconds of now.
    let deleted = limiters[1].delete_old_windows(now).await.unwrap();
    assert_eq!(deleted, 2, "the idle webhook's and organization's windows");
    assert_eq!(limiters[1].delete_old_windows(now).await.unwrap(), 0);
    let kept = pair_windows(&first, &active, 0).await;
    assert_eq!(kept.len(), 2);
    // A deleted window starts again empty.
    assert_admitted(
        limiters[0]
            .acquire(idle.request(0, (1, 1000), START + 401 * 1_000_000))
            .await,
    );
    first.teardown().await;
}

/// A database that cannot be reached: every charge answers "unavailable" (ingest answers 503),
/// within the pool's wait; a peek that knows no refusal reads nothing and admits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_answers_unavailable() {
    let store = unreachable_store(Duration::from_secs(2));
    let limiter = store.rate_limiter(RateLimiterOptions::default());
    let keys = Keys::new(1);
    let started = std::time::Instant::now();
    let answers = futures_join((0..10).map(|i| {
        let limiter = limiter.clone();
        let request = keys.request(0, (100, 1000), START + i);
        async move { limiter.acquire(request).await }
    }))
    .await;
    for answer in answers {
        let error = answer.expect_err("nothing can be decided");
        let chain = std::iter::successors(Some(&error as &dyn std::error::Error), |e| e.source())
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(": ");
        assert!(
            chain.starts_with("the rate limiter is unavailable"),
            "{chain}"
        );
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_admitted(limiter.peek(keys.request(0, (100, 1000), START)).await);
}

/// The seconds of `keys`' first webhook and its organization that hold charges: (scope,
/// second, count).
async fn buckets(store: &PgStore, keys: &Keys) -> Vec<(i16, i64, i32)> {
    let rows = pair_windows(store, keys, 0).await;
    rows.iter()
        .flat_map(|row| {
            row.seconds()
                .filter(|s| s.1 > 0)
                .map(|(second, count)| (row.scope, second, count))
        })
        .collect()
}

/// A stream of admitted requests at high quotas, 2000 a second for three seconds on each of
/// three nodes: the database sees a few statements per node and second, not one per request
/// (the nodes admit from the slots it reserved them); both windows are charged the same slots,
/// at least every admitted request, and each node's counters add up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admitted_stream_at_high_quotas_costs_few_statements() {
    const SECONDS: i64 = 3;
    const PER_NODE_AND_SECOND: i64 = 2000;
    let (first, limiters) = cluster().await;
    let keys = Keys::new(1);
    for second in 0..SECONDS {
        for i in 0..PER_NODE_AND_SECOND {
            let now = START + second * 1_000_000 + i * (1_000_000 / PER_NODE_AND_SECOND);
            for limiter in &limiters {
                assert_admitted(
                    limiter
                        .acquire(keys.request(0, (1_000_000, 1_000_000), now))
                        .await,
                );
            }
        }
    }
    let per_node = u64::try_from(SECONDS * PER_NODE_AND_SECOND).expect("positive");
    let mut statements = 0;
    for (node, limiter) in limiters.iter().enumerate() {
        assert_eq!(
            limiter.statements() + limiter.reserved_admissions(),
            per_node,
            "node {node}: every request was admitted by a statement or from a reservation"
        );
        // The first second grows the reservations from 1 by doubling (about log2 of the
        // demand), the next ones ask for the previous second's demand at once.
        assert!(
            limiter.statements() <= 30,
            "node {node} sent {} statements for {per_node} requests",
            limiter.statements()
        );
        statements += limiter.statements();
    }
    let rows = buckets(&first, &keys).await;
    let charged = |scope: i16| -> i64 {
        rows.iter()
            .filter(|r| r.0 == scope)
            .map(|r| i64::from(r.2))
            .sum()
    };
    let nodes = i64::try_from(NODES).expect("a few nodes");
    let admitted = SECONDS * PER_NODE_AND_SECOND * nodes;
    assert_eq!(charged(0), charged(1));
    assert!(
        charged(0) >= admitted,
        "{} charged for {admitted}",
        charged(0)
    );
    // The waste is bounded by the reservations' sizes: at most one reservation's worth per
    // node and second here.
    assert!(
        charged(0) <= admitted + 1024 * SECONDS * nodes,
        "{} charged for {admitted}",
        charged(0)
    );
    assert_counter(
        &metrics(&limiters[0]),
        "webhookd_rate_limit_reserved_admissions_total",
        limiters[0].reserved_admissions(),
    );
    eprintln!("{admitted} admitted requests cost {statements} statements");
    first.teardown().await;
}

/// A statement also reserves, ahead of their requests, for this node's other pairs that will
/// need slots in its second: at a new second, one statement serves every busy pair, and both
/// windows count what was reserved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_reserves_ahead_for_the_other_busy_pairs() {
    let (first, limiters) = cluster().await;
    let keys = Keys::new(2);
    let limiter = &limiters[0];
    let quotas = (1_000_000, 1_000_000);
    // 50 requests of each webhook in the first second.
    for i in 0..50 {
        for webhook in 0..2 {
            let request = keys.request(webhook, quotas, START + i * 10_000);
            assert_admitted(limiter.acquire(request).await);
        }
    }
    let statements = limiter.statements();
    // The next second: webhook 0's first request asks the database, which reserves for
    // webhook 1's expected 50 as well.
    let next = START + 1_000_000;
    assert_admitted(limiter.acquire(keys.request(0, quotas, next)).await);
    assert_eq!(limiter.statements(), statements + 1);
    let reserved_before = limiter.reserved_admissions();
    for i in 0..50 {
        let request = keys.request(1, quotas, next + i * 10_000);
        assert_admitted(limiter.acquire(request).await);
    }
    assert_eq!(
        limiter.statements(),
        statements + 1,
        "webhook 1 was admitted from the slots reserved ahead"
    );
    assert_eq!(limiter.reserved_admissions(), reserved_before + 50);
    let rows = pair_windows(&first, &keys, 1).await;
    let second = next / 1_000_000;
    let in_second = |scope: i16| {
        rows.iter()
            .find(|r| r.scope == scope)
            .and_then(|r| r.seconds().find(|s| s.0 == second))
            .map_or(0, |s| s.1)
    };
    // Webhook 1's expected 50 and half again; webhook 0's own request reserved its demand.
    assert_eq!(in_second(0), 75, "webhook 1's reservation");
    assert_eq!(in_second(1), 50 + 75, "both webhooks' reservations");
    first.teardown().await;
}

/// A reservation is counted in the bucket of the second it was charged in, so it admits in that
/// second only: the next second's first request asks the database (and is charged in its own
/// bucket), though slots of the last reservation are left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reservation_never_carries_into_the_next_second() {
    let (first, limiters) = cluster().await;
    let keys = Keys::new(1);
    let limiter = &limiters[0];
    let at = |offset_ms: i64| keys.request(0, (1_000_000, 1_000_000), START + offset_ms * 1000);
    // Requests 1, 2, 4, ..., 64 ask the database, for as many slots as arrived this second;
    // the 64 slots charged at the 64th cover it and up to the 127th.
    for i in 0..100 {
        assert_admitted(limiter.acquire(at(i)).await);
    }
    assert_eq!(limiter.statements(), 7);
    assert_admitted(limiter.acquire(at(999)).await);
    assert_eq!(limiter.statements(), 7, "the reservation has slots left");
    assert_eq!(limiter.reserved_admissions(), 94);
    let RateDecision::Admitted(status) = limiter.acquire(at(1000)).await.unwrap() else {
        panic!("refused at a quota of a million");
    };
    assert_eq!(limiter.statements(), 8, "the next second asks the database");
    assert_eq!(status.limit, 1_000_000);
    let second = START / 1_000_000;
    let rows = buckets(&first, &keys).await;
    for scope in 0..2 {
        let in_second = |bucket: i64| {
            rows.iter()
                .find(|r| r.0 == scope && r.1 == bucket)
                .map_or(0, |r| r.2)
        };
        // 1 + 1 + 2 + 4 + ... + 64 slots in the first second, for 101 requests.
        assert_eq!(in_second(second), 127);
        // The new second's charge is its own: a reservation the size of the previous
        // second's demand.
        assert_eq!(in_second(second + 1), 101);
    }
    // Its slots admit in that second, not in the one after.
    for i in 1..=100 {
        assert_admitted(limiter.acquire(at(1000 + i)).await);
    }
    assert_eq!(limiter.statements(), 8);
    limiter.acquire(at(2000)).await.unwrap();
    assert_eq!(limiter.statements(), 9);
    first.teardown().await;
}

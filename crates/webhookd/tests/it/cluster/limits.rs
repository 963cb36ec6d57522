//! Rate limits across nodes: with requests spread round-robin over three nodes, no webhook and
//! no organization accepts more than its quota in any 60-second window (read back from the
//! invocation log), refusals name the quota that refused, and a flood that is being refused
//! costs each node a few statements, not one per request.

use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::task::JoinSet;
use webhook_domain::model::Timestamp;

use super::{Cluster, metric};
use crate::{get, send_event, webhook_with_rate};

/// Requests in flight at once.
const CONCURRENCY: u8 = 8;
const MINUTE: Duration = Duration::from_secs(60);

/// The webhook id at the end of a webhook URL.
fn webhook_id(url: &str) -> &str {
    url.rsplit('/').next().expect("a webhook URL")
}

/// Sends `count` events to `url` (as handed out), round-robin over the cluster's nodes starting
/// at `first`, `CONCURRENCY` at a time. Returns, per request, its status and the refusal's
/// scope.
async fn send_round_robin(
    cluster: &Cluster,
    url: &str,
    secret: &str,
    first: usize,
    count: usize,
) -> Vec<(u16, Option<String>)> {
    let mut answers = Vec::with_capacity(count);
    let mut in_flight = JoinSet::new();
    for n in 0..count {
        if in_flight.len() == usize::from(CONCURRENCY) {
            answers.push(in_flight.join_next().await.unwrap().unwrap());
        }
        let target = cluster.ingest_url(cluster.round_robin(first + n), url);
        let secret = secret.to_owned();
        in_flight.spawn(async move {
            let (status, body) = send_event(&target, &secret).await;
            (status, body["scope"].as_str().map(str::to_owned))
        });
    }
    answers.extend(in_flight.join_all().await);
    answers
}

/// The times the invocation log gives the accepted events of webhook `id`, oldest first.
async fn accepted_times(cluster: &Cluster, key: &str, id: &str) -> Vec<Timestamp> {
    let mut times = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            None => format!("/api/v1/webhooks/{id}/invocations?outcome=accepted&limit=500"),
            Some(cursor) => format!(
                "/api/v1/webhooks/{id}/invocations?outcome=accepted&limit=500&cursor={cursor}"
            ),
        };
        let page = get(cluster.node(0), key, &path).await;
        for item in page["items"].as_array().expect("items") {
            let at = item["received_at"].as_str().expect("received_at");
            times.push(Timestamp::parse_rfc3339(at).expect("an RFC 3339 time"));
        }
        match &page["next_cursor"] {
            Value::String(next) => cursor = Some(next.clone()),
            _ => break,
        }
    }
    times.sort_unstable();
    times
}

/// The most of `times` (sorted) in any 60-second interval.
fn max_in_any_minute(times: &[Timestamp]) -> usize {
    let mut max = 0;
    let mut start = 0;
    for end in 0..times.len() {
        while times[end].since(times[start]) >= MINUTE {
            start += 1;
        }
        max = max.max(end - start + 1);
    }
    max
}

fn count(answers: &[(u16, Option<String>)], status: u16, scope: Option<&str>) -> usize {
    answers
        .iter()
        .filter(|(s, sc)| *s == status && sc.as_deref() == scope)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotas_hold_across_three_nodes_and_refusals_name_their_quota() {
    let cluster = Cluster::start(3, &[]).await;
    let key = cluster.admin_key().to_owned();
    let started = Instant::now();
    // Eleven webhooks at 100 a minute in an organization at 1000 (the defaults): ten fill the
    // organization's quota, the eleventh finds it full.
    let mut webhooks = Vec::new();
    for _ in 0..11 {
        webhooks.push(webhook_with_rate(cluster.node(0), &key, 100).await);
    }

    let (url, secret) = &webhooks[0];
    let answers = send_round_robin(&cluster, url, secret, 0, 110).await;
    assert_eq!(count(&answers, 202, None), 100, "{answers:?}");
    assert_eq!(count(&answers, 429, Some("webhook")), 10, "{answers:?}");

    for (i, (url, secret)) in webhooks[1..10].iter().enumerate() {
        let answers = send_round_robin(&cluster, url, secret, i, 100).await;
        assert_eq!(
            count(&answers, 202, None),
            100,
            "webhook {}: {answers:?}",
            i + 1
        );
    }
    let (url, secret) = &webhooks[10];
    let answers = send_round_robin(&cluster, url, secret, 0, 20).await;
    assert_eq!(
        count(&answers, 429, Some("organization")),
        20,
        "{answers:?}"
    );
    // The first webhook's window is full as well: its quota, checked first, is named.
    let answers = send_round_robin(&cluster, &webhooks[0].0, &webhooks[0].1, 1, 6).await;
    assert_eq!(count(&answers, 429, Some("webhook")), 6, "{answers:?}");

    let mut all = Vec::new();
    for (url, _) in &webhooks {
        let times = accepted_times(&cluster, &key, webhook_id(url)).await;
        assert!(
            max_in_any_minute(&times) <= 100,
            "webhook {url} accepted {} in a minute",
            max_in_any_minute(&times)
        );
        all.extend(times);
    }
    all.sort_unstable();
    assert_eq!(all.len(), 1000, "every accepted event is in the log");
    assert!(max_in_any_minute(&all) <= 1000);
    eprintln!(
        "three nodes decided 1136 requests in {:?}",
        started.elapsed()
    );
    cluster.stop().await;
}

/// The statements every node sent for rate limits, and the requests it refused itself.
async fn limiter_counts(cluster: &Cluster) -> (f64, f64) {
    let mut statements = 0.0;
    let mut local = 0.0;
    for (_, daemon) in cluster.live() {
        statements += metric(daemon, "webhookd_rate_limit_statements_total")
            .await
            .expect("a shared limiter's statements");
        local += metric(daemon, "webhookd_rate_limit_local_refusals_total")
            .await
            .expect("a shared limiter's local refusals");
    }
    (statements, local)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_refusals_costs_statements_per_node_and_second_not_per_request() {
    const FLOOD: u32 = 900;
    let cluster = Cluster::start(3, &[]).await;
    let key = cluster.admin_key().to_owned();
    let (url, secret) = webhook_with_rate(cluster.node(0), &key, 5).await;
    let answers = send_round_robin(&cluster, &url, &secret, 0, 5).await;
    assert_eq!(count(&answers, 202, None), 5, "{answers:?}");

    let (statements_before, local_before) = limiter_counts(&cluster).await;
    let started = Instant::now();
    let answers = send_round_robin(&cluster, &url, &secret, 0, FLOOD as usize).await;
    let seconds = started.elapsed().as_secs_f64().ceil();
    assert_eq!(count(&answers, 429, Some("webhook")), FLOOD as usize);
    let (statements_after, local_after) = limiter_counts(&cluster).await;
    let statements = statements_after - statements_before;
    // Each node asks once, then refuses from the refusal it remembers (for about a minute);
    // a few requests may reach the database together before the first refusal is known.
    let nodes = 3.0;
    assert!(
        statements <= nodes * 2.0,
        "{statements} statements for {FLOOD} refused requests in {seconds} s"
    );
    assert!(
        local_after - local_before >= f64::from(FLOOD) - statements * f64::from(CONCURRENCY),
        "only {} of {FLOOD} refused without a statement",
        local_after - local_before
    );
    eprintln!("{FLOOD} refusals over {seconds} s cost {statements} statements on {nodes} nodes");
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_set_to_memory_limits_alone_and_shows_no_shared_counters() {
    let cluster = Cluster::start(1, &["--rate-limiter", "memory"]).await;
    let text = crate::metrics(cluster.node(0)).await;
    assert!(!text.contains("webhookd_rate_limit_statements"), "{text}");
    cluster.stop().await;
}

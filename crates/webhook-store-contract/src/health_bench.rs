//! The health bench every durable store runs: an organization of 50 webhooks, one of them busy
//! (`busy` invocations in the last 24 hours, and as many on each of the two days before, so
//! that the window is a third of its log), one as busy but that never failed, and 48 with a
//! thousand invocations each in the last 24 hours, all written through the store; then [`InvocationLog::webhook_health`] timed as the API calls it: for a
//! page of all 50 webhooks (a list) and for the busy one alone (a read).
//!
//! Of every 100 invocations, 85 are accepted (with ~1 KiB payloads, as the search bench's; one
//! of them with a failed latest attempt, one with a failed task), 10 ignored and 5 rejected (one
//! of those a coalesced entry standing for 7 requests). The webhook that never failed has
//! accepted invocations only.
//!
//! It also times what `last_failure_at` over the whole retained log would cost instead of over
//! the window: the newest failure of the webhook that never failed, read as the log's first
//! `outcome=failed` entry, which walks its whole log to find there is none.

#![expect(
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    reason = "counts, indexes and microseconds of a day, far below 2^52"
)]

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use webhook_domain::model::{
    HEALTH_WINDOW, Invocation, InvocationFilter, OutcomeFilter, PageRequest, TargetResponse, Task,
    TaskStatus, Timestamp, Webhook, WebhookFilter, WebhookHealth, WebhookId,
};
use webhook_domain::ports::Store;

use crate::bench::{log_concurrently, percentile};
use crate::fixtures::{World, accepted, at, ignored, rejected, webhook};
use crate::search_bench::Payloads;

/// Webhooks in the organization: one page of the list.
pub const WEBHOOKS: usize = 50;
/// Invocations in the last 24 hours of each quiet webhook.
const QUIET_INVOCATIONS: u64 = 1_000;
/// Timed reads per kind.
const READS_PER_KIND: usize = 20;

/// The organization the bench fills, and when it reads.
#[derive(Debug, Clone)]
pub struct HealthWorld {
    pub world: World,
    /// The busy webhook first, then the one that never failed, then the quiet ones.
    pub webhooks: Vec<Webhook>,
    /// The time of the reads: the last 24 hours end here.
    pub now: Timestamp,
}

impl HealthWorld {
    /// The busy webhook.
    pub fn busy(&self) -> WebhookId {
        self.webhooks[0].id
    }

    /// The webhook that never failed.
    pub fn healthy(&self) -> WebhookId {
        self.webhooks[1].id
    }

    fn since(&self) -> Timestamp {
        self.now.minus(HEALTH_WINDOW)
    }
}

/// One invocation to write: which webhook, when, and its number (which decides its kind).
#[derive(Debug, Clone, Copy)]
struct Planned {
    webhook: usize,
    received_at: Timestamp,
    n: u64,
    /// Accepted only, never failed.
    healthy: bool,
}

/// The invocations to write, in order: `busy` for the busy webhook and for the one that never
/// failed in the last 24 hours and on each of the two days before; the quiet ones'. Each day's
/// invocations are spread evenly over it but for a second at each end, so that none is near
/// the window's start.
fn plan(busy: u64, now: Timestamp) -> Vec<Planned> {
    let second = Duration::from_secs(1);
    let spread_over = HEALTH_WINDOW.as_micros() as i64 - 2 * second.as_micros() as i64;
    let spread = |count: u64, day_start: Timestamp, webhook: usize, healthy: bool| {
        let start = day_start.plus(second).unix_micros();
        (0..count).map(move |n| Planned {
            webhook,
            received_at: Timestamp::from_unix_micros(
                start + (n as i64 * spread_over) / count as i64,
            ),
            n,
            healthy,
        })
    };
    let since = now.minus(HEALTH_WINDOW);
    let mut planned: Vec<Planned> = Vec::new();
    for (webhook, healthy) in [(0, false), (1, true)] {
        for days_before in 0..3 {
            let day_start = since.minus(HEALTH_WINDOW * days_before);
            planned.extend(spread(busy, day_start, webhook, healthy));
        }
    }
    for webhook in 2..WEBHOOKS {
        planned.extend(spread(QUIET_INVOCATIONS, since, webhook, false));
    }
    planned
}

/// The invocation `planned` stands for, and the task it makes if it is accepted.
fn entry(world: &HealthWorld, planned: Planned, payloads: &Payloads) -> (Invocation, Option<Task>) {
    let hook = &world.webhooks[planned.webhook];
    let kind = if planned.healthy { 0 } else { planned.n % 100 };
    let received = planned.received_at;
    match kind {
        95..=99 => {
            let invocation = Invocation {
                repeat_count: if kind == 99 { 7 } else { 1 },
                ..rejected(hook, received)
            };
            (invocation, None)
        }
        85..=94 => {
            let invocation = Invocation {
                payload: Some(payloads.get(planned.n)),
                ..ignored(hook, received)
            };
            (invocation, None)
        }
        _ => {
            let (mut invocation, mut task) = accepted(hook, received);
            let body = payloads.get(planned.n);
            invocation.payload = Some(body.clone());
            task.context = body;
            if kind == 83 {
                invocation.target_response = Some(TargetResponse {
                    status_code: Some(503),
                    body_excerpt: Some("busy".to_owned()),
                    latency_ms: 12,
                    error: Some("the target answered 503".to_owned()),
                    at: received,
                    succeeded: false,
                });
            }
            if kind == 84 {
                task.status = TaskStatus::Failed;
            }
            (invocation, Some(task))
        }
    }
}

/// Stores `world`'s organization's other 49 webhooks and logs every webhook's invocations
/// through `store` with `writers` writing at once; returns the world and how long it took.
pub async fn fill<S: Store + Clone + 'static>(
    store: &S,
    world: &World,
    busy: u64,
    writers: u64,
) -> (HealthWorld, Duration) {
    let now = at(3 * 24 * 60 * 60);
    let mut webhooks = vec![world.webhook.clone()];
    for i in 1..WEBHOOKS {
        let hook = webhook(&world.target, at(i as i64));
        store.insert_webhook(&hook).await.expect("insert webhook");
        webhooks.push(hook);
    }
    let health = HealthWorld {
        world: world.clone(),
        webhooks,
        now,
    };
    let planned = Arc::new(plan(busy, now));
    let payloads = Arc::new(Payloads::new());
    let count = planned.len() as u64;
    let filled = log_concurrently(store, writers, count, |_| {
        let (health, planned, payloads) = (health.clone(), planned.clone(), payloads.clone());
        move |n| entry(&health, planned[n as usize], &payloads)
    })
    .await;
    (health, filled)
}

/// Times, interleaved, the health of a page of the 50 webhooks, the listing of that page with
/// its health (as `GET /api/v1/webhooks` reads the store), the health of the busy webhook
/// alone, and the newest failure in the whole log of the webhook that never failed. Returns
/// the report, JSON: p50, p95 and max in ms per kind, and what the busy webhook's health was.
pub async fn time_reads<S: Store>(store: &S, health: &HealthWorld) -> String {
    let org = health.world.organization.id;
    let since = health.since();
    let ids: Vec<WebhookId> = health.webhooks.iter().map(|w| w.id).collect();
    let busy = health.busy();
    let never_failed = InvocationFilter::outcome(OutcomeFilter::Failed);
    let one = PageRequest::first(1).expect("a page of one");
    let page = PageRequest::first(WEBHOOKS as u32).expect("a page of the list");
    let kinds = [
        "health of a page of 50 webhooks",
        "list of 50 webhooks with health",
        "health of the busy webhook",
        "newest failure of the whole log",
    ];
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); kinds.len()];
    let mut busy_health = WebhookHealth::default();
    for _ in 0..READS_PER_KIND {
        let started = Instant::now();
        let all = store
            .webhook_health(org, &ids, since)
            .await
            .expect("health");
        times[0].push(started.elapsed());
        assert_eq!(all.len(), WEBHOOKS);

        let started = Instant::now();
        let listed = store
            .webhooks(org, WebhookFilter::default(), page)
            .await
            .expect("list");
        let listed: Vec<WebhookId> = listed.items.iter().map(|w| w.id).collect();
        store
            .webhook_health(org, &listed, since)
            .await
            .expect("health");
        times[1].push(started.elapsed());

        let started = Instant::now();
        busy_health = store
            .webhook_health(org, &[busy], since)
            .await
            .expect("health")[0];
        times[2].push(started.elapsed());

        let started = Instant::now();
        let newest = store
            .invocation_summaries(org, health.healthy(), &never_failed, one)
            .await
            .expect("log");
        times[3].push(started.elapsed());
        assert!(newest.items.is_empty(), "that webhook never failed");
    }
    let mut report = String::from("{\"kinds\":[");
    for (i, name) in kinds.iter().enumerate() {
        times[i].sort_unstable();
        if i > 0 {
            report.push(',');
        }
        let _ = write!(
            report,
            r#"{{"kind":"{name}","reads":{},"p50_ms":{:.2},"p95_ms":{:.2},"max_ms":{:.2}}}"#,
            times[i].len(),
            percentile(&times[i], 0.5),
            percentile(&times[i], 0.95),
            percentile(&times[i], 1.0),
        );
    }
    let _ = write!(
        report,
        r#"],"busy_health":{{"accepted":{},"failed":{}}}}}"#,
        busy_health.accepted, busy_health.failed,
    );
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_puts_a_third_of_busy_logs_in_the_window() {
        let now = at(3 * 24 * 60 * 60);
        let since = now.minus(HEALTH_WINDOW);
        let planned = plan(100_000, now);
        let in_window = |webhook: usize| {
            planned
                .iter()
                .filter(|p| p.webhook == webhook && p.received_at >= since)
                .count()
        };
        assert_eq!(in_window(0), 100_000);
        assert_eq!(in_window(1), 100_000);
        assert_eq!(in_window(2), QUIET_INVOCATIONS as usize);
        assert_eq!(planned.len(), 2 * 300_000 + 48 * QUIET_INVOCATIONS as usize);
        assert!(planned.iter().all(|p| p.received_at < now));
    }
}

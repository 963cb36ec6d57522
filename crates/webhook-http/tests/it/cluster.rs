//! Two nodes on one PostgreSQL database, each built with `Node::build` and listening for route
//! changes: a change made through one node's API reaches the other within a second (disable,
//! delete, secret rotation, an organization's limit). A node whose listening connection is cut
//! says so in `/metrics`, serves its cached routes meanwhile (their TTL, which the tests' clock
//! never reaches), and drops them all once it listens again.
//!
//! The nodes' clocks stand still, so a cached route never expires here: only an announcement
//! makes the other node read a change.

#![expect(clippy::unwrap_used, reason = "tests: a panic is how a test fails")]

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::watch;
use webhook_domain::model::{WebhookId, WebhookStatus};
use webhook_domain::ports::WebhookResolver as _;
use webhook_store_pg::test_db::{
    allow_connections, cut_change_listeners, database_url, drop_database, fresh_store,
};
use webhook_store_pg::{PgStore, PgStoreOptions};

use crate::api::{ApiApp, Org};
use crate::helpers::{Options, problem};

/// How late a change may reach the other node.
const WITHIN: Duration = Duration::from_secs(1);
const BODY: &str = r#"{"message":"deployed"}"#;

/// Nodes A and B on one fresh database, both listening for route changes.
struct Cluster {
    a: ApiApp<PgStore>,
    b: ApiApp<PgStore>,
    database: String,
    stop: watch::Sender<bool>,
    listeners: Vec<tokio::task::JoinHandle<()>>,
}

impl Cluster {
    async fn start() -> Self {
        let first = fresh_store().await;
        let database = first.test_database().unwrap();
        let url = database_url(&database);
        let second = PgStore::open(&url, PgStoreOptions::default()).unwrap();
        let options = Options {
            database_url: Some(url),
            ..Options::default()
        };
        let a = ApiApp::start_on_with(first, options.clone());
        let b = ApiApp::start_on_with(second, options);
        let (stop, stopped) = watch::channel(false);
        let listeners = [&a, &b]
            .map(|app| app.node.follow_route_changes(stopped.clone()).unwrap())
            .into();
        let cluster = Self {
            a,
            b,
            database,
            stop,
            listeners,
        };
        for app in [&cluster.a, &cluster.b] {
            wait_for_metric(app, CONNECTED, 1).await;
        }
        cluster
    }

    /// An organization of A's with a webhook that has a secret, and that secret.
    async fn webhook(&self) -> (Org, Value, String) {
        let org = self.a.org().await;
        let target = self.a.target(&org.admin).await;
        let webhook = self.a.webhook(&org.admin, &target).await;
        let secret = webhook["secret"].as_str().unwrap().to_owned();
        (org, webhook, secret)
    }

    /// A webhook made on A whose route B remembers, having accepted one event on it (which
    /// counts one request against the webhook's and the organization's quotas on B).
    async fn webhook_known_to_b(&self) -> (Org, Value, String) {
        let (org, webhook, secret) = self.webhook().await;
        assert_eq!(
            self.b.send(&webhook, Some(&secret), BODY).await.status(),
            202
        );
        (org, webhook, secret)
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        for listener in self.listeners {
            listener.await.unwrap();
        }
        drop((self.a, self.b));
        drop_database(&self.database).await;
    }
}

/// The body of a webhook patch that sets its status.
fn status(status: &str) -> Value {
    json!({ "status": status })
}

const CONNECTED: &str = "webhookd_route_listener_connected";
const HEARD: &str = "webhookd_route_notifications_total";

/// The value of the metric `name` on `app`'s `/metrics`.
async fn metric(app: &ApiApp<PgStore>, name: &str) -> u64 {
    let text = app
        .request("get", "/metrics", None)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{name} in {text}"))
        .parse()
        .unwrap()
}

async fn wait_for_metric(app: &ApiApp<PgStore>, name: &str, value: u64) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while metric(app, name).await != value {
        assert!(Instant::now() < deadline, "{name} never became {value}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Sends to `webhook` on `app` every few milliseconds until the answer has `status` (and,
/// for a problem, `code`); how long after `since` that was. Fails past [`WITHIN`].
async fn answers_within(
    since: Instant,
    app: &ApiApp<PgStore>,
    webhook: &Value,
    secret: &str,
    status: u16,
    code: Option<(&str, &str)>,
) -> Duration {
    loop {
        let answer = app.send(webhook, Some(secret), BODY).await;
        let got = answer.status().as_u16();
        if got == status {
            if let Some((member, value)) = code {
                let problem = problem(answer).await;
                assert_eq!(problem.body[member], value, "{}", problem.body);
            }
            return since.elapsed();
        }
        assert!(
            since.elapsed() < WITHIN,
            "still {got}, not {status}, {:?} after the change",
            since.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn disable_rotation_and_delete_reach_the_other_node_within_a_second() {
    let c = Cluster::start().await;
    let (org, webhook, secret) = c.webhook_known_to_b().await;
    let hook = format!("/api/v1/webhooks/{}", webhook["id"].as_str().unwrap());

    c.a.expect(200, "patch", &hook, &org.admin, Some(status("disabled")))
        .await;
    let since = Instant::now();
    let code = Some(("code", "webhook_disabled"));
    answers_within(since, &c.b, &webhook, &secret, 403, code).await;

    c.a.expect(200, "patch", &hook, &org.admin, Some(status("active")))
        .await;
    answers_within(Instant::now(), &c.b, &webhook, &secret, 202, None).await;

    let rotated =
        c.a.expect(
            200,
            "post",
            &format!("{hook}/rotate-secret"),
            &org.admin,
            None,
        )
        .await;
    let since = Instant::now();
    let code = Some(("code", "invalid_secret"));
    answers_within(since, &c.b, &webhook, &secret, 401, code).await;
    let new = rotated["secret"].as_str().unwrap();
    assert_eq!(c.b.send(&webhook, Some(new), BODY).await.status(), 202);

    c.a.expect(204, "delete", &hook, &org.admin, None).await;
    let since = Instant::now();
    let code = Some(("code", "webhook_deleted"));
    answers_within(since, &c.b, &webhook, new, 410, code).await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_organization_limit_change_reaches_the_other_node_within_a_second() {
    let c = Cluster::start().await;
    // B remembers the route, with the organization's quota of 1000, and counts one request.
    let (org, webhook, secret) = c.webhook_known_to_b().await;

    let limit = Some(json!({ "rate_limit_per_minute": 1 }));
    c.a.expect(200, "patch", "/api/v1/organization", &org.admin, limit)
        .await;
    let since = Instant::now();
    let scope = Some(("scope", "organization"));
    answers_within(since, &c.b, &webhook, &secret, 429, scope).await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cut_listener_says_so_and_drops_every_route_once_back() {
    let c = Cluster::start().await;
    let (org, webhook, secret) = c.webhook_known_to_b().await;
    let hook = format!("/api/v1/webhooks/{}", webhook["id"].as_str().unwrap());
    let heard = metric(&c.b, HEARD).await;

    // No new connection is allowed and the listening ones are cut: both nodes say so.
    allow_connections(&c.database, false).await;
    cut_change_listeners(&c.database).await;
    wait_for_metric(&c.b, CONNECTED, 0).await;
    wait_for_metric(&c.a, CONNECTED, 0).await;

    // A change made meanwhile (on a connection A's pool holds) cannot be announced to B while
    // its listener is away. (Whether B still serves its cached route then depends on when
    // the cut reached it, so only what follows is asserted.)
    c.a.expect(200, "patch", &hook, &org.admin, Some(status("disabled")))
        .await;

    // Back: listening again drops every cached route, so the change shows at once.
    allow_connections(&c.database, true).await;
    wait_for_metric(&c.b, CONNECTED, 1).await;
    let answer = problem(c.b.send(&webhook, Some(&secret), BODY).await).await;
    assert_eq!((answer.status, answer.code()), (403, "webhook_disabled"));

    // And changes are heard again.
    c.a.expect(200, "patch", &hook, &org.admin, Some(status("active")))
        .await;
    answers_within(Instant::now(), &c.b, &webhook, &secret, 202, None).await;
    assert!(metric(&c.b, HEARD).await > heard);
    c.stop().await;
}

/// How late 50 changes made through A reached B's cached routes: from A's answer (the change
/// committed), and from A's request. Run with `--no-capture` to read the figures.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_changes_reach_the_other_node_within_a_second() {
    const CHANGES: usize = 50;
    let c = Cluster::start().await;
    let (org, webhook, _) = c.webhook().await;
    let id: WebhookId = webhook["id"].as_str().unwrap().parse().unwrap();
    let hook = format!("/api/v1/webhooks/{id}");
    let resolver = &c.b.node.ingest.resolver;
    let mut from_answer = Vec::with_capacity(CHANGES);
    let mut from_request = Vec::with_capacity(CHANGES);
    for n in 0..CHANGES {
        let (status, expected) = if n % 2 == 0 {
            ("disabled", WebhookStatus::Disabled)
        } else {
            ("active", WebhookStatus::Active)
        };
        // B remembers the route as it is before the change.
        assert_ne!(
            resolver.resolve(id).await.unwrap().unwrap().status,
            expected
        );
        let requested = Instant::now();
        c.a.expect(
            200,
            "patch",
            &hook,
            &org.admin,
            Some(json!({ "status": status })),
        )
        .await;
        let answered = Instant::now();
        while resolver.resolve(id).await.unwrap().unwrap().status != expected {
            assert!(
                answered.elapsed() < WITHIN,
                "change {n} not seen within 1 s"
            );
            tokio::task::yield_now().await;
        }
        from_answer.push(answered.elapsed());
        from_request.push(requested.elapsed());
    }
    report("from A's answer", &mut from_answer);
    report("from A's request", &mut from_request);
    c.stop().await;
}

#[expect(
    clippy::print_stderr,
    reason = "the measured delays are the test's report"
)]
fn report(what: &str, delays: &mut [Duration]) {
    delays.sort_unstable();
    let p50 = delays[delays.len() / 2];
    let max = delays[delays.len() - 1];
    eprintln!(
        "invalidation delay over {} changes, {what}: p50 {:.2} ms, max {:.2} ms",
        delays.len(),
        p50.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3
    );
}

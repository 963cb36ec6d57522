//! The design's ingest table, row by row, on the ingest use case of a node built as the binary
//! builds it, over the in-memory store and a manual clock (and once with the shared rate limiter
//! on a database that cannot be reached).

#![expect(
    clippy::unwrap_used,
    reason = "the harness's helpers are test code: a panic is how a test fails"
)]

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use uuid::Uuid;
use webhook_dispatch::{OutboundGuard, OutboundPolicy};
use webhook_domain::model::PublicUrl;
use webhook_domain::model::{
    EventTypes, Invocation, InvocationFilter, InvocationOutcome, OutcomeFilter, PageRequest,
    RatePerMinute, Secret, Task, TaskFilter, TaskStatus, Webhook, WebhookStatus,
};
use webhook_domain::ports::{InvocationLog, SecretSealer, TaskQueue, WebhookStore};
use webhook_domain::rules::RateScope;
use webhook_domain::service::{BodyRead, IngestBody, IngestHead, IngestOutcome, IngestRejection};
use webhook_runtime::CacheConfig;
use webhook_store_contract::fixtures::{World, at, last_triggered_at, logged, rate, webhook};
use webhook_store_mem::MemoryStore;
use webhook_store_pg::RateLimiterOptions;
use webhook_store_pg::test_db::unreachable_store;
use webhook_system::{ManualClock, MasterKey, RingSealer};
use webhookd::config::Config;
use webhookd::{Node, NodeAdapters, NodeLimiter, NodeParts};

const SECRET: &str = "s3cret-of-the-ci-pipeline";
const BODY: &[u8] = br#"{"message":"Deploy api to prod","event_type":"deploy.finished"}"#;
const SOURCE: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 23));
const BODY_LIMIT: usize = 256;

struct Harness {
    node: Node<NodeAdapters<MemoryStore, ManualClock>>,
    store: MemoryStore,
    clock: ManualClock,
    world: World,
}

/// Who sends a request: a generic sender with the `X-Webhook-Secret` it presents, or the test
/// endpoint.
#[derive(Clone, Copy)]
enum Sender<'a> {
    Http { secret: Option<&'a [u8]> },
    TestEndpoint,
}

/// What one request looks like; `Default` is a correct request from an outside system.
#[derive(Clone, Copy)]
struct Request<'a> {
    webhook_id: Option<&'a str>,
    sender: Sender<'a>,
    event_type: Option<&'a str>,
    json: bool,
    body: BodyRead<'a>,
}

impl Default for Request<'_> {
    fn default() -> Self {
        Self {
            webhook_id: None,
            sender: Sender::Http {
                secret: Some(SECRET.as_bytes()),
            },
            event_type: None,
            json: true,
            body: BodyRead::Complete(BODY),
        }
    }
}

fn master_key() -> MasterKey {
    MasterKey::from_bytes([7; 32])
}

fn sealer() -> RingSealer {
    RingSealer::new(&master_key())
}

impl Harness {
    /// An organization, a target and an active webhook with [`SECRET`], subscribed to
    /// `deploy.*`, with the default quotas.
    async fn new() -> Self {
        Self::with_quotas(
            RatePerMinute::WEBHOOK_DEFAULT.get(),
            RatePerMinute::ORGANIZATION_DEFAULT.get(),
        )
        .await
    }

    /// As [`Harness::new`], with these quotas.
    async fn with_quotas(webhook_quota: u32, organization_quota: u32) -> Self {
        Self::with_limiter(webhook_quota, organization_quota, NodeLimiter::memory()).await
    }

    /// As [`Harness::with_quotas`], with `limiter`'s rate-limit windows.
    async fn with_limiter(
        webhook_quota: u32,
        organization_quota: u32,
        limiter: NodeLimiter,
    ) -> Self {
        let store = MemoryStore::new();
        let sealer = sealer();
        let mut world = World::seed(&store).await;
        world.webhook.secret = Some(sealer.seal(&Secret::parse(SECRET).unwrap()));
        world.webhook.event_types = EventTypes::parse(&["deploy.*"]).unwrap();
        world.webhook.rate_limit_per_minute = rate(webhook_quota);
        store.update_webhook(&world.webhook).await.unwrap();
        world.organization.rate_limit_per_minute = rate(organization_quota);
        webhook_domain::ports::OrganizationStore::update_organization(&store, &world.organization)
            .await
            .unwrap();

        let clock = ManualClock::new(at(1000));
        let config = Config {
            body_limit: BODY_LIMIT,
            ..Config::default()
        };
        let parts = NodeParts {
            store: store.clone(),
            clock: clock.clone(),
            endpoints: OutboundGuard(OutboundPolicy::default()),
            master_key: master_key(),
            public_url: PublicUrl::parse("http://127.0.0.1:8080").unwrap(),
        };
        let node = Node::build_with_limiter(&config, parts, limiter).unwrap();
        Self {
            node,
            store,
            clock,
            world,
        }
    }

    fn id(&self) -> String {
        self.world.webhook.id.to_string()
    }

    async fn post(&self, request: Request<'_>) -> IngestOutcome {
        let id = self.id();
        let mut headers: Vec<(String, Vec<u8>)> = Vec::new();
        let sender = match request.sender {
            Sender::Http { secret } => {
                if let Some(secret) = secret {
                    headers.push(("x-webhook-secret".to_owned(), secret.to_vec()));
                }
                webhook_domain::service::Sender::Http
            }
            Sender::TestEndpoint => webhook_domain::service::Sender::TestEndpoint,
        };
        if let Some(event_type) = request.event_type {
            headers.push(("x-event-type".to_owned(), event_type.as_bytes().to_vec()));
        }
        let head = IngestHead {
            webhook_id: request.webhook_id.unwrap_or(&id),
            source_ip: Some(SOURCE),
            sender,
        };
        let content_type: &[u8] = if request.json {
            b"application/json"
        } else {
            b"text/plain"
        };
        match self.node.ingest.begin(head, &headers).await {
            Ok(admission) => {
                let body = IngestBody {
                    content_type: Some(content_type),
                    body: request.body,
                };
                self.node.ingest.finish(admission, &headers, body).await
            }
            Err(outcome) => outcome,
        }
    }

    /// Posts and returns the answer's status and code.
    async fn answer(&self, request: Request<'_>) -> (u16, &'static str) {
        answer_of(&self.post(request).await)
    }

    /// Changes the stored webhook and drops it from the route cache, as management does.
    /// A harness whose webhook has `status`.
    async fn with_status(status: WebhookStatus) -> Self {
        let mut h = Self::new().await;
        h.change_webhook(|w| w.status = status).await;
        h
    }

    async fn change_webhook(&mut self, change: impl FnOnce(&mut Webhook)) {
        change(&mut self.world.webhook);
        self.store
            .update_webhook(&self.world.webhook)
            .await
            .unwrap();
        self.node.routes.invalidate(self.world.webhook.id);
    }

    async fn log(&self) -> Vec<Invocation> {
        self.log_of(&self.world.webhook).await
    }

    async fn log_of(&self, webhook: &Webhook) -> Vec<Invocation> {
        logged(&self.store, webhook).await
    }

    async fn tasks(&self) -> Vec<Task> {
        self.store
            .tasks(
                self.world.organization.id,
                TaskFilter::default(),
                PageRequest::first(500).unwrap(),
            )
            .await
            .unwrap()
            .items
    }
}

fn answer_of(outcome: &IngestOutcome) -> (u16, &'static str) {
    match outcome {
        IngestOutcome::Accepted { .. } => (202, "accepted"),
        IngestOutcome::Ignored { .. } => (200, "ignored"),
        IngestOutcome::Duplicate { .. } => (200, "duplicate"),
        IngestOutcome::Handshake { .. } => (200, "handshake"),
        IngestOutcome::Rejected { rejection, .. } => (rejection.http_status(), rejection.code()),
    }
}

fn wrong_secret<'a>() -> Sender<'a> {
    Sender::Http {
        secret: Some(b"not-the-secret-at-all"),
    }
}

#[tokio::test]
async fn unknown_or_malformed_id_is_404_and_not_logged() {
    let h = Harness::new().await;
    let unknown = Uuid::new_v4().to_string();
    // The webhook's own id in every form but the canonical one: one URL is one webhook.
    let id = h.world.webhook.id.as_uuid();
    let other_forms = [
        id.hyphenated().to_string().to_uppercase(),
        id.simple().to_string(),
        id.braced().to_string(),
        id.urn().to_string(),
        format!(" {}", id.hyphenated()),
    ];
    for id in [
        unknown.as_str(),
        "nope",
        "",
        "{67e55044-10b1-426f-9247-bb680e5fe0c8}",
    ]
    .into_iter()
    .chain(other_forms.iter().map(String::as_str))
    {
        let request = Request {
            webhook_id: Some(id),
            ..Request::default()
        };
        assert_eq!(
            h.answer(request).await,
            (404, "webhook_not_found"),
            "{id:?}"
        );
    }
    assert!(h.log().await.is_empty());
    assert!(h.tasks().await.is_empty());
    // Nothing was counted for a later coalesced entry either.
    assert_eq!(h.node.rejections.flush_into(&h.store).await.unwrap(), 0);
    assert!(h.log().await.is_empty());
    // The canonical form reaches the webhook.
    assert_eq!(h.answer(Request::default()).await, (202, "accepted"));
}

#[tokio::test]
async fn deleted_webhook_is_410_before_any_other_check() {
    let h = Harness::with_status(WebhookStatus::Deleted).await;
    for request in [
        Request::default(),
        Request {
            sender: wrong_secret(),
            body: BodyRead::TooLarge,
            ..Request::default()
        },
    ] {
        assert_eq!(h.answer(request).await, (410, "webhook_deleted"));
    }
    assert!(h.tasks().await.is_empty());
}

#[tokio::test]
async fn disabled_webhook_is_403_even_with_a_wrong_secret_and_is_coalesced() {
    let h = Harness::with_status(WebhookStatus::Disabled).await;
    assert_eq!(
        h.answer(Request::default()).await,
        (403, "webhook_disabled")
    );
    h.clock.advance(Duration::from_millis(1));
    let request = Request {
        sender: wrong_secret(),
        ..Request::default()
    };
    assert_eq!(h.answer(request).await, (403, "webhook_disabled"));
    assert!(h.log().await.is_empty(), "written one by one");

    let written = h.node.rejections.flush_into(&h.store).await.unwrap();
    assert_eq!(written, 1);
    let log = h.log().await;
    assert_eq!(log.len(), 1);
    let entry = &log[0];
    assert_eq!(entry.outcome, InvocationOutcome::Rejected);
    assert_eq!(
        (entry.http_status, entry.error_code.as_deref()),
        (403, Some("webhook_disabled"))
    );
    assert_eq!(entry.repeat_count, 2);
    assert_eq!(entry.received_at, at(1000), "the first rejection's time");
    assert_eq!(entry.source_ip, Some(SOURCE));
    assert!(h.tasks().await.is_empty());
}

#[tokio::test]
async fn over_the_webhook_quota_is_429_even_with_a_wrong_secret() {
    let h = Harness::with_quotas(5, 8).await;
    for _ in 0..5 {
        assert_eq!(h.answer(Request::default()).await, (202, "accepted"));
    }
    for sender in [
        Sender::Http {
            secret: Some(SECRET.as_bytes()),
        },
        wrong_secret(),
    ] {
        let outcome = h
            .post(Request {
                sender,
                ..Request::default()
            })
            .await;
        assert_eq!(answer_of(&outcome), (429, "rate_limited"));
        let IngestOutcome::Rejected {
            rejection:
                IngestRejection::RateLimited {
                    scope,
                    retry_after,
                    status,
                },
            ..
        } = outcome
        else {
            panic!("not rate limited: {outcome:?}");
        };
        assert_eq!(scope, RateScope::Webhook);
        assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_secs(61));
        assert_eq!((status.limit, status.remaining), (5, 0));
    }
    // The window refills after a minute.
    h.clock.advance(Duration::from_secs(61));
    assert_eq!(h.answer(Request::default()).await, (202, "accepted"));
}

#[tokio::test]
async fn organization_quota_holds_across_two_webhooks() {
    let h = Harness::with_quotas(5, 8).await;
    let second = Webhook {
        secret: None,
        event_types: EventTypes::all(),
        ..webhook(&h.world.target, at(1))
    };
    h.store.insert_webhook(&second).await.unwrap();
    let second_id = second.id.to_string();
    let to_second = Request {
        webhook_id: Some(&second_id),
        sender: Sender::Http { secret: None },
        ..Request::default()
    };
    for _ in 0..5 {
        assert_eq!(h.answer(Request::default()).await, (202, "accepted"));
    }
    for _ in 0..3 {
        assert_eq!(h.answer(to_second).await, (202, "accepted"));
    }
    let outcome = h.post(to_second).await;
    assert!(
        matches!(
            outcome,
            IngestOutcome::Rejected {
                rejection: IngestRejection::RateLimited {
                    scope: RateScope::Organization,
                    ..
                },
                ..
            }
        ),
        "{outcome:?}"
    );
    assert_eq!(h.tasks().await.len(), 8);
}

#[tokio::test]
async fn coalesced_429s_become_one_invocation_with_a_repeat_count() {
    let h = Harness::with_quotas(5, 8).await;
    for _ in 0..5 {
        h.answer(Request::default()).await;
    }
    for _ in 0..7 {
        h.clock.advance(Duration::from_millis(10));
        assert_eq!(h.answer(Request::default()).await, (429, "rate_limited"));
    }
    assert_eq!(h.log().await.len(), 5, "429s are not written one by one");

    // A flush while the store is down writes nothing and loses nothing.
    h.store.set_unavailable(true);
    assert!(h.node.rejections.flush_into(&h.store).await.is_err());
    h.store.set_unavailable(false);
    assert_eq!(h.log().await.len(), 5);

    assert_eq!(h.node.rejections.flush_into(&h.store).await.unwrap(), 1);
    let limited = h
        .store
        .invocations(
            h.world.organization.id,
            h.world.webhook.id,
            &InvocationFilter::outcome(OutcomeFilter::Rejected),
            PageRequest::first(10).unwrap(),
        )
        .await
        .unwrap()
        .items;
    assert_eq!(limited.len(), 1);
    let entry = &limited[0];
    assert_eq!(
        (
            entry.http_status,
            entry.error_code.as_deref(),
            entry.repeat_count
        ),
        (429, Some("rate_limited"), 7)
    );
    assert_eq!(entry.received_at, at(1000).plus(Duration::from_millis(10)));
    assert!(entry.payload.is_none());
    assert_eq!(h.node.rejections.flush_into(&h.store).await.unwrap(), 0);
}

#[tokio::test]
async fn missing_or_wrong_secret_is_401_and_logged() {
    let h = Harness::new().await;
    for sender in [Sender::Http { secret: None }, wrong_secret()] {
        let request = Request {
            sender,
            ..Request::default()
        };
        assert_eq!(h.answer(request).await, (401, "invalid_secret"));
    }
    // The secret is checked before the body: a wrong secret with a too-large body is 401.
    let request = Request {
        sender: wrong_secret(),
        body: BodyRead::TooLarge,
        json: false,
        ..Request::default()
    };
    assert_eq!(h.answer(request).await, (401, "invalid_secret"));
    // Counted, not written one by one: one entry stands for the three requests.
    assert!(h.log().await.is_empty());
    h.node.rejections.flush_into(&h.store).await.unwrap();
    let log = h.log().await;
    assert_eq!(log.len(), 1);
    for entry in &log {
        assert_eq!(entry.outcome, InvocationOutcome::Rejected);
        assert_eq!(
            (entry.http_status, entry.error_code.as_deref()),
            (401, Some("invalid_secret"))
        );
        assert!(entry.payload.is_none() && entry.task_id.is_none());
        assert_eq!(entry.repeat_count, 3);
    }
    assert!(h.tasks().await.is_empty());
}

#[tokio::test]
async fn body_checks_in_order_413_415_400() {
    let h = Harness::new().await;
    let big = vec![b' '; BODY_LIMIT + 1];
    let check = |body, json, expected: (u16, &'static str)| {
        let request = Request {
            json,
            body,
            ..Request::default()
        };
        let h = &h;
        async move {
            assert_eq!(h.answer(request).await, expected);
        }
    };
    check(BodyRead::TooLarge, true, (413, "payload_too_large")).await;
    check(BodyRead::Complete(&big), true, (413, "payload_too_large")).await;
    check(BodyRead::TooLarge, false, (413, "payload_too_large")).await;
    check(
        BodyRead::Complete(BODY),
        false,
        (415, "unsupported_media_type"),
    )
    .await;
    check(
        BodyRead::Complete(b"nope"),
        false,
        (415, "unsupported_media_type"),
    )
    .await;
    for body in [&b"nope"[..], b"{", b"[1,2]", b"\"text\"", b"", b"\xff"] {
        check(BodyRead::Complete(body), true, (400, "invalid_payload")).await;
    }
    let log = h.log().await;
    assert_eq!(log.len(), 11);
    assert!(
        log.iter()
            .all(|i| i.outcome == InvocationOutcome::Rejected && i.payload.is_none())
    );
    assert!(h.tasks().await.is_empty());
}

#[tokio::test]
async fn unsubscribed_event_is_ignored_logged_and_makes_no_task() {
    let h = Harness::new().await;
    let untyped = br#"{"message":"hello"}"#;
    for (header, body) in [
        (Some("push"), BODY),
        (None, &br#"{"message":"x","event_type":"push"}"#[..]),
        (None, &untyped[..]),
        // The header beats the payload.
        (Some("push"), &br#"{"event_type":"deploy.finished"}"#[..]),
    ] {
        let request = Request {
            event_type: header,
            body: BodyRead::Complete(body),
            ..Request::default()
        };
        assert_eq!(h.answer(request).await, (200, "ignored"));
    }
    let log = h.log().await;
    assert_eq!(log.len(), 4);
    for entry in &log {
        assert_eq!(entry.outcome, InvocationOutcome::Ignored);
        assert_eq!(entry.http_status, 200);
        assert!(entry.task_id.is_none());
        assert!(
            entry.payload.is_some(),
            "an ignored event keeps its payload"
        );
    }
    assert!(h.tasks().await.is_empty());
    assert_eq!(last_triggered_at(&h.store, &h.world.webhook).await, None);
}

#[tokio::test]
async fn accepted_event_commits_invocation_and_task() {
    let h = Harness::new().await;
    let outcome = h
        .post(Request {
            event_type: Some("deploy.started"),
            ..Request::default()
        })
        .await;
    let IngestOutcome::Accepted {
        invocation_id,
        task_id,
        rate,
    } = outcome
    else {
        panic!("not accepted: {outcome:?}");
    };
    assert_eq!((rate.limit, rate.remaining), (100, 99));
    let org = h.world.organization.id;
    let invocation = h.store.invocation(org, invocation_id).await.unwrap();
    let task = h.store.task(org, task_id).await.unwrap();
    assert_eq!(invocation.outcome, InvocationOutcome::Accepted);
    assert_eq!(invocation.http_status, 202);
    assert_eq!(invocation.task_id, Some(task_id));
    assert_eq!(invocation.received_at, at(1000));
    assert_eq!(invocation.source_ip, Some(SOURCE));
    assert_eq!(
        invocation.payload.as_ref().map(|p| p.as_str().as_bytes()),
        Some(BODY)
    );
    assert_eq!(
        invocation.event_type.as_deref(),
        Some("deploy.started"),
        "the header beats the payload"
    );
    assert!(!invocation.test);

    assert_eq!(task.invocation_id, invocation_id);
    assert_eq!(task.instruction.as_deref(), Some("Deploy api to prod"));
    assert_eq!(task.context.as_str().as_bytes(), BODY);
    assert_eq!(task.event_type.as_deref(), Some("deploy.started"));
    assert_eq!(task.status, TaskStatus::Queued);
    assert_eq!(task.target_id, h.world.target.id);
    assert!(task.source.verified, "the secret was checked");
    assert_eq!(task.source.source_ip, Some(SOURCE));
    assert_eq!(task.next_attempt_at, at(1000));
    assert!(!task.test);
    assert_eq!(
        last_triggered_at(&h.store, &h.world.webhook).await,
        Some(at(1000))
    );

    // Without a header, the payload's event type counts.
    let outcome = h.post(Request::default()).await;
    let IngestOutcome::Accepted { task_id, .. } = outcome else {
        panic!("not accepted: {outcome:?}");
    };
    let task = h.store.task(org, task_id).await.unwrap();
    assert_eq!(task.event_type.as_deref(), Some("deploy.finished"));
}

#[tokio::test]
async fn webhook_without_a_secret_accepts_unverified_events() {
    let mut h = Harness::new().await;
    h.change_webhook(|w| {
        w.secret = None;
        w.event_types = EventTypes::all();
    })
    .await;
    let outcome = h
        .post(Request {
            sender: Sender::Http {
                secret: Some(b"whatever"),
            },
            body: BodyRead::Complete(br#"{"message":{"nested":true}}"#),
            ..Request::default()
        })
        .await;
    let IngestOutcome::Accepted { task_id, .. } = outcome else {
        panic!("not accepted: {outcome:?}");
    };
    let task = h
        .store
        .task(h.world.organization.id, task_id)
        .await
        .unwrap();
    assert!(!task.source.verified);
    assert_eq!(task.instruction.as_deref(), Some(r#"{"nested":true}"#));
    assert_eq!(task.event_type, None);
}

#[tokio::test]
async fn test_sender_is_marked_test_and_verified() {
    let h = Harness::new().await;
    let outcome = h
        .post(Request {
            sender: Sender::TestEndpoint,
            ..Request::default()
        })
        .await;
    let IngestOutcome::Accepted {
        invocation_id,
        task_id,
        ..
    } = outcome
    else {
        panic!("not accepted: {outcome:?}");
    };
    let org = h.world.organization.id;
    assert!(h.store.invocation(org, invocation_id).await.unwrap().test);
    let task = h.store.task(org, task_id).await.unwrap();
    assert!(task.test);
    assert!(task.source.verified);
}

#[tokio::test]
async fn store_unavailable_is_503_and_writes_nothing() {
    let h = Harness::new().await;
    // The route is cached; the store goes down before the commit.
    assert_eq!(h.answer(Request::default()).await, (202, "accepted"));
    h.store.set_unavailable(true);
    let outcome = h.post(Request::default()).await;
    assert_eq!(answer_of(&outcome), (503, "store_unavailable"));
    // A rejection that cannot be logged is still answered, and says it was not logged.
    let outcome = h
        .post(Request {
            json: false,
            ..Request::default()
        })
        .await;
    assert_eq!(answer_of(&outcome), (415, "unsupported_media_type"));
    assert!(matches!(
        outcome,
        IngestOutcome::Rejected {
            unlogged: Some(_),
            ..
        }
    ));
    // Nothing cached: the lookup itself fails.
    h.node.routes.clear();
    assert_eq!(
        h.answer(Request::default()).await,
        (503, "store_unavailable")
    );
    h.store.set_unavailable(false);
    assert_eq!(h.log().await.len(), 1);
    assert_eq!(h.tasks().await.len(), 1);
}

#[tokio::test]
async fn an_unreachable_shared_limiter_is_503_and_writes_nothing() {
    // The store answers; the database holding the shared windows does not.
    let windows = unreachable_store(Duration::from_secs(1));
    let limiter = NodeLimiter::Shared(windows.rate_limiter(RateLimiterOptions::default()));
    let h = Harness::with_limiter(100, 1000, limiter).await;
    assert_eq!(
        h.answer(Request::default()).await,
        (503, "store_unavailable")
    );
    assert!(h.tasks().await.is_empty());
    assert!(
        h.log()
            .await
            .iter()
            .all(|i| i.outcome != InvocationOutcome::Accepted),
        "nothing is accepted without its charge"
    );
}

#[tokio::test]
async fn cached_routes_see_changes_on_invalidation_or_after_the_ttl() {
    let h = Harness::new().await;
    assert_eq!(h.answer(Request::default()).await, (202, "accepted"));
    // Another node disables the webhook: this node sees it once the cache entry expires.
    let disabled = Webhook {
        status: WebhookStatus::Disabled,
        ..h.world.webhook.clone()
    };
    h.store.update_webhook(&disabled).await.unwrap();
    assert_eq!(h.answer(Request::default()).await, (202, "accepted"));
    h.clock.advance(CacheConfig::default().ttl);
    assert_eq!(
        h.answer(Request::default()).await,
        (403, "webhook_disabled")
    );

    // This node re-enables it and invalidates: seen at once.
    h.store.update_webhook(&h.world.webhook).await.unwrap();
    h.node.routes.invalidate(h.world.webhook.id);
    assert_eq!(h.answer(Request::default()).await, (202, "accepted"));

    // A new organization limit is seen once the organization is invalidated.
    let mut org = h.world.organization.clone();
    org.rate_limit_per_minute = RatePerMinute::new(3).unwrap();
    webhook_domain::ports::OrganizationStore::update_organization(&h.store, &org)
        .await
        .unwrap();
    h.node.routes.invalidate_organization(org.id);
    assert_eq!(h.answer(Request::default()).await, (429, "rate_limited"));
}

#[tokio::test]
async fn a_secret_sealed_under_another_key_never_admits() {
    let mut h = Harness::new().await;
    let foreign = RingSealer::new(&MasterKey::from_bytes([8; 32]));
    let sealed = foreign.seal(&Secret::parse(SECRET).unwrap());
    h.change_webhook(|w| w.secret = Some(sealed)).await;
    // The route cannot be built: the store holds something this node cannot read.
    assert_eq!(h.answer(Request::default()).await, (500, "internal_error"));
    assert!(h.tasks().await.is_empty());
    assert!(h.log().await.is_empty());
}

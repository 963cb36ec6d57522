//! The real app on a loopback port over a store backend, with fixtures and a client.

#![expect(clippy::unwrap_used, reason = "tests: a panic is how a test fails")]

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use ipnet::IpNet;
use uuid::Uuid;
use webhook_dispatch::{OutboundGuard, OutboundPolicy};
use webhook_domain::model::PublicUrl;
use webhook_domain::model::{CidrList, SourceSettings};
use webhook_domain::model::{
    EventTypes, Invocation, Name, Organization, OrganizationId, RatePerMinute, Secret, Target,
    TargetId, TargetKind, Timestamp, Webhook, WebhookId, WebhookStatus,
};
use webhook_domain::ports::{EndpointGuard, SecretSealer as _, Store};
use webhook_domain::service::IngestConfig;
use webhook_runtime::CoalescingCounter;
use webhook_system::{ManualClock, MasterKey, RingSealer, SystemEntropy};
use webhookd::config::Config;
use webhookd::{Node, NodeAdapters, NodeParts};

/// A store the ingest tests run on, and a way to make it fail.
pub(crate) trait Backend: Store + Clone + Send + Sync + 'static {
    /// Whether reads still work while the store is down (to check nothing was written).
    const READS_WHILE_DOWN: bool;
    /// Whether the store can be brought back after [`Backend::go_down`].
    const COMES_BACK: bool;

    /// Makes every later write fail as an unreachable store would.
    fn go_down(&self) -> impl Future<Output = ()>;

    /// Undoes [`Backend::go_down`], when [`Backend::COMES_BACK`].
    fn come_back(&self) -> impl Future<Output = ()>;

    /// Releases what the store holds outside the process, after a case.
    fn teardown(self) -> impl Future<Output = ()> {
        async {}
    }
}

impl Backend for webhook_store_mem::MemoryStore {
    const READS_WHILE_DOWN: bool = false;
    const COMES_BACK: bool = true;

    async fn go_down(&self) {
        self.set_unavailable(true);
    }

    async fn come_back(&self) {
        self.set_unavailable(false);
    }
}

impl Backend for webhook_store_sqlite::SqliteStore {
    const READS_WHILE_DOWN: bool = true;
    const COMES_BACK: bool = false;

    /// The writer stops, as when the file cannot be written.
    async fn go_down(&self) {
        self.close().await;
    }

    async fn come_back(&self) {
        unreachable!("a closed SQLite store stays closed");
    }
}

impl Backend for webhook_store_pg::PgStore {
    const READS_WHILE_DOWN: bool = false;
    const COMES_BACK: bool = false;

    /// The database disappears under the running store, its connections cut.
    async fn go_down(&self) {
        let name = self.test_database().expect("a test database");
        webhook_store_pg::test_db::drop_database(&name).await;
    }

    async fn come_back(&self) {
        unreachable!("a dropped database does not come back");
    }

    async fn teardown(self) {
        if let Some(name) = self.test_database() {
            webhook_store_pg::test_db::drop_database(&name).await;
        }
    }
}

/// A fresh SQLite store in a temporary directory that lives as long as the process.
pub(crate) async fn fresh_sqlite() -> webhook_store_sqlite::SqliteStore {
    let dir = tempfile::tempdir().expect("a temporary directory").keep();
    webhook_store_sqlite::SqliteStore::open(webhook_store_sqlite::SqliteOptions::new(
        dir.join("webhookd.db"),
    ))
    .await
    .expect("the SQLite store opens")
}

/// How to start an app.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) body_limit: usize,
    pub(crate) trusted_proxies: Vec<IpNet>,
    pub(crate) body_timeout: Duration,
    /// The PostgreSQL database the node's store uses, for the nodes that listen for changes.
    pub(crate) database_url: Option<String>,
    /// Whether delivery may reach loopback and private addresses (an agent on loopback).
    pub(crate) allow_private_targets: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            body_limit: IngestConfig::default().body_limit,
            trusted_proxies: Vec::new(),
            body_timeout: Config::default().body_timeout,
            database_url: None,
            allow_private_targets: false,
        }
    }
}

/// A node of the binary's composition over `store`, with a manual clock, serving on a loopback
/// port with two workers; its address and the handle that stops it.
pub(crate) fn serve_node<S: Backend, G: EndpointGuard + 'static>(
    parts: NodeParts<S, ManualClock, G>,
    options: Options,
) -> (
    SocketAddr,
    Node<NodeAdapters<S, ManualClock, G>>,
    ServerHandle,
) {
    let config = Config {
        body_limit: options.body_limit,
        trusted_proxies: options.trusted_proxies,
        body_timeout: options.body_timeout,
        database_url: options.database_url,
        allow_private_targets: options.allow_private_targets,
        workers: 2,
        ..Config::default()
    };
    let node = Node::build(&config, parts).expect("the node builds");
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).expect("bind a loopback port");
    let address = listener.local_addr().expect("a local address");
    let server = node.http_server(listener).expect("the server starts");
    let handle = server.handle();
    tokio::spawn(server);
    (address, node, handle)
}

/// The app serving on `127.0.0.1:{port}`, stopped when dropped.
pub(crate) struct TestApp<S: Backend> {
    pub(crate) address: SocketAddr,
    pub(crate) store: S,
    pub(crate) clock: ManualClock,
    pub(crate) node: Node<NodeAdapters<S, ManualClock>>,
    pub(crate) sealer: RingSealer,
    pub(crate) client: reqwest::Client,
    handle: ServerHandle,
}

impl<S: Backend> Drop for TestApp<S> {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

/// 2026-01-01T00:00:00.123457Z plus `seconds`: the app's clock starts at `at(0)`.
pub(crate) fn at(seconds: i64) -> Timestamp {
    Timestamp::from_unix_micros(1_767_225_600_123_457 + seconds * 1_000_000)
}

fn name(text: &str) -> Name {
    Name::parse(text).unwrap()
}

/// The secret of webhooks made by [`TestApp::webhook`].
pub(crate) const SECRET: &str = "whsec_test-secret-0123456789";

fn master_key() -> MasterKey {
    MasterKey::from_bytes([7; 32])
}

impl<S: Backend> TestApp<S> {
    /// Starts the app over `store` with default options.
    pub(crate) fn start(store: S) -> Self {
        Self::start_with(store, Options::default())
    }

    /// Starts the app over `store`.
    pub(crate) fn start_with(store: S, options: Options) -> Self {
        let clock = ManualClock::new(at(0));
        let parts = NodeParts {
            store: store.clone(),
            clock: clock.clone(),
            endpoints: OutboundGuard(OutboundPolicy::default()),
            master_key: master_key(),
            public_url: PublicUrl::parse("http://127.0.0.1").unwrap(),
        };
        let (address, node, handle) = serve_node(parts, options);
        Self {
            address,
            store,
            clock,
            node,
            sealer: RingSealer::new(&master_key()),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("build a client"),
            handle,
        }
    }

    /// The rejections counted, not yet written.
    pub(crate) fn rejections(&self) -> &CoalescingCounter<SystemEntropy> {
        &self.node.rejections
    }

    /// `http://127.0.0.1:{port}{path}`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// The ingest URL of `webhook`.
    pub(crate) fn ingest_url(&self, webhook: &Webhook) -> String {
        self.url(&format!("/api/webhooks/{}", webhook.id))
    }

    /// A new organization with `rate` requests per minute.
    pub(crate) async fn organization(&self, rate: u32) -> Organization {
        let organization = Organization {
            id: OrganizationId::from_uuid(Uuid::new_v4()),
            name: name("Acme"),
            rate_limit_per_minute: RatePerMinute::new(rate).unwrap(),
            created_at: at(-100),
            updated_at: at(-100),
        };
        self.store.insert_organization(&organization).await.unwrap();
        organization
    }

    /// A new target of `organization`.
    pub(crate) async fn target(&self, organization: &Organization) -> Target {
        let target = Target {
            id: TargetId::from_uuid(Uuid::new_v4()),
            organization_id: organization.id,
            kind: TargetKind::Team,
            name: name("ops team"),
            endpoint_url: None,
            signing_secret: self
                .sealer
                .seal(&Secret::parse("whsig_signing-secret-0123").unwrap()),
            created_at: at(-100),
            updated_at: at(-100),
        };
        self.store.insert_target(&target).await.unwrap();
        target
    }

    /// A new active webhook with [`SECRET`], subscribed to `deploy.*` and `build.finished`,
    /// `rate` requests per minute, in a new organization allowing `org_rate`.
    pub(crate) async fn webhook_with(&self, rate: u32, org_rate: u32, secret: bool) -> Webhook {
        let organization = self.organization(org_rate).await;
        let target = self.target(&organization).await;
        let webhook = Webhook {
            id: WebhookId::from_uuid(Uuid::new_v4()),
            organization_id: organization.id,
            name: name("CI pipeline"),
            target_id: target.id,
            event_types: EventTypes::parse(&["deploy.*", "build.finished"]).unwrap(),
            secret: secret.then(|| self.sealer.seal(&Secret::parse(SECRET).unwrap())),
            previous_secret: None,
            previous_secret_expires_at: None,
            source: SourceSettings::default(),
            allowed_source_ips: CidrList::default(),
            rate_limit_per_minute: RatePerMinute::new(rate).unwrap(),
            status: WebhookStatus::Active,
            created_at: at(-100),
            updated_at: at(-100),
            last_triggered_at: None,
        };
        self.store.insert_webhook(&webhook).await.unwrap();
        webhook
    }

    /// A new webhook with default limits and [`SECRET`].
    pub(crate) async fn webhook(&self) -> Webhook {
        self.webhook_with(100, 1000, true).await
    }

    /// A new webhook subscribed to every event type, of `source` with `secret`.
    pub(crate) async fn webhook_of(&self, source: SourceSettings, secret: &str) -> Webhook {
        let mut webhook = self.webhook().await;
        webhook.event_types = EventTypes::all();
        webhook.source = source;
        // As the store reads it back: a provider's documented secret may hold spaces, which
        // the API would refuse.
        let secret = Secret::from_unsealed(secret.to_owned());
        webhook.secret = Some(self.sealer.seal(&secret));
        self.store.update_webhook(&webhook).await.unwrap();
        self.node.routes.invalidate(webhook.id);
        webhook
    }

    /// Saves `webhook` as changed and forgets its cached route, as management does.
    pub(crate) async fn save(&self, webhook: &Webhook) {
        self.store.update_webhook(webhook).await.unwrap();
        self.node.routes.invalidate(webhook.id);
    }

    /// A new webhook subscribed to every event type.
    pub(crate) async fn webhook_for_all(&self) -> Webhook {
        let mut webhook = self.webhook().await;
        webhook.event_types = EventTypes::all();
        self.store.update_webhook(&webhook).await.unwrap();
        webhook
    }

    /// Sets `webhook`'s status in the store and forgets its cached route, as management does.
    pub(crate) async fn set_status(&self, webhook: &mut Webhook, status: WebhookStatus) {
        webhook.status = status;
        webhook.updated_at = at(-50);
        self.store.update_webhook(webhook).await.unwrap();
        self.node.routes.invalidate(webhook.id);
    }

    /// A correctly authenticated JSON POST of `body` to `webhook`.
    pub(crate) fn post(&self, webhook: &Webhook, body: &str) -> reqwest::RequestBuilder {
        self.client
            .post(self.ingest_url(webhook))
            .header("content-type", "application/json")
            .header("x-webhook-secret", SECRET)
            .body(body.to_owned())
    }

    /// `webhook`'s logged invocations, newest first.
    pub(crate) async fn invocations(&self, webhook: &Webhook) -> Vec<Invocation> {
        webhook_store_contract::fixtures::logged(&self.store, webhook).await
    }

    /// Moves the clock on.
    pub(crate) fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }
}

/// A problem+json answer, checked for its shape.
#[derive(Debug)]
pub(crate) struct ProblemAnswer {
    pub(crate) status: u16,
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) body: serde_json::Value,
}

impl ProblemAnswer {
    pub(crate) fn code(&self) -> &str {
        self.body["code"].as_str().unwrap()
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

/// Reads an answer that must be problem+json with `type`, `title`, `status`, `detail`, `code`.
pub(crate) async fn problem(response: reqwest::Response) -> ProblemAnswer {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    assert_eq!(
        headers.get("content-type").unwrap(),
        "application/problem+json",
        "status {status}"
    );
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], status, "{body}");
    let code = body["code"].as_str().expect("a code");
    assert_eq!(
        body["type"],
        format!("urn:webhookd:problem:{code}"),
        "{body}"
    );
    assert!(
        body["title"].as_str().is_some_and(|t| !t.is_empty()),
        "{body}"
    );
    assert!(
        body["detail"].as_str().is_some_and(|t| !t.is_empty()),
        "{body}"
    );
    ProblemAnswer {
        status,
        headers,
        body,
    }
}

/// The peer address every loopback request comes from.
pub(crate) fn loopback() -> IpAddr {
    IpAddr::from([127, 0, 0, 1])
}

/// Reads `stream` until the server closes it, within 10 seconds, and checks that what it
/// answered is a 408 `request_timeout` problem.
pub(crate) async fn assert_timed_out(stream: &mut tokio::net::TcpStream) {
    let mut answer = String::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        tokio::io::AsyncReadExt::read_to_string(stream, &mut answer),
    )
    .await
    .expect("an answer and a closed connection within the deadline")
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    assert!(answer.contains(r#""code":"request_timeout""#), "{answer}");
}

//! Test support: a real HTTP target on loopback that records what it receives, seeded stores
//! and dispatchers driven step by step.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{HeaderMap, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use webhook_dispatch::{DeliveryConfig, DispatchConfig, Dispatcher, HttpDelivery, OutboundPolicy};
use webhook_domain::model::{
    EndpointUrl, Organization, Payload, Secret, Target, Task, Timestamp, Webhook,
};
use webhook_domain::ports::{Clock as _, SecretSealer as _, Store};
use webhook_domain::rules::RetryPolicy;
use webhook_store_contract::fixtures;
use webhook_store_mem::MemoryStore;
use webhook_system::{ManualClock, MasterKey, RingSealer, SystemClock, SystemEntropy};
use webhookd::NodeAdapters;

/// What the target answers to one request.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) body: String,
    pub(crate) delay: Duration,
}

impl Reply {
    pub(crate) fn status(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: format!("{{\"status\":{status}}}"),
            delay: Duration::ZERO,
        }
    }

    pub(crate) fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }

    pub(crate) fn body(mut self, body: String) -> Self {
        self.body = body;
        self
    }

    pub(crate) fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// One request as the target received it.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub(crate) path: String,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Received {
    pub(crate) fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }

    pub(crate) fn task_id(&self) -> String {
        self.header("webhook-id").to_owned()
    }
}

type Responder = dyn Fn(usize, &Received) -> Reply + Send + Sync;

#[derive(Default)]
struct Record {
    received: Mutex<Vec<Received>>,
    active: AtomicUsize,
    max_active: AtomicUsize,
}

/// An HTTP/1.1 server on a loopback port, answering with `responder(request index, request)`.
pub(crate) struct TargetServer {
    pub(crate) addr: SocketAddr,
    record: Arc<Record>,
    accept: JoinHandle<()>,
}

impl TargetServer {
    pub(crate) async fn start(
        responder: impl Fn(usize, &Received) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local address");
        let record = Arc::new(Record::default());
        let responder: Arc<Responder> = Arc::new(responder);
        let shared = Arc::clone(&record);
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let record = Arc::clone(&shared);
                let responder = Arc::clone(&responder);
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let record = Arc::clone(&record);
                        let responder = Arc::clone(&responder);
                        async move { Ok::<_, Infallible>(answer(&record, &*responder, request).await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            record,
            accept,
        }
    }

    /// Answers 200 to everything.
    pub(crate) async fn ok() -> Self {
        Self::start(|_, _| Reply::status(200)).await
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub(crate) fn received(&self) -> Vec<Received> {
        self.record.received.lock().expect("lock").clone()
    }

    pub(crate) fn count(&self) -> usize {
        self.record.received.lock().expect("lock").len()
    }

    /// Most requests it was answering at the same time.
    pub(crate) fn max_concurrency(&self) -> usize {
        self.record.max_active.load(Ordering::SeqCst)
    }
}

impl Drop for TargetServer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn answer(
    record: &Record,
    responder: &Responder,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let active = record.active.fetch_add(1, Ordering::SeqCst) + 1;
    record.max_active.fetch_max(active, Ordering::SeqCst);
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(http_body_util::Collected::to_bytes)
        .unwrap_or_default();
    let received = Received {
        path: parts.uri.path().to_owned(),
        headers: parts.headers,
        body,
    };
    let reply = {
        let mut all = record.received.lock().expect("lock");
        let reply = responder(all.len(), &received);
        all.push(received);
        reply
    };
    // The target being slow is what these replies simulate.
    tokio::time::sleep(reply.delay).await;
    record.active.fetch_sub(1, Ordering::SeqCst);
    let mut response = Response::new(Full::new(Bytes::from(reply.body)));
    *response.status_mut() = StatusCode::from_u16(reply.status).expect("valid status");
    for (name, value) in reply.headers {
        response
            .headers_mut()
            .insert(name, value.parse().expect("valid header value"));
    }
    response
}

/// A port on loopback where nothing listens.
pub(crate) async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("local address").port()
}

/// Waits until `check` holds, failing the test after `limit`.
pub(crate) async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub(crate) const MASTER_KEY: [u8; 32] = [7; 32];

pub(crate) fn sealer() -> RingSealer {
    RingSealer::new(&MasterKey::from_bytes(MASTER_KEY))
}

/// A clock at the real time, so signature timestamps are current, moved only by the test.
pub(crate) fn clock() -> ManualClock {
    ManualClock::new(SystemClock.now())
}

/// A generated signing secret, as the management API makes them.
pub(crate) fn generated_secret(byte: u8) -> Secret {
    Secret::signing_key_from_random(&[byte; Secret::GENERATED_BYTES])
}

/// A memory store holding a world whose target is pushed to `endpoint` and signs with
/// [`generated_secret`]`(secret)`, with `count` tasks due now on the clock returned beside it,
/// oldest first.
pub(crate) async fn queued(
    endpoint: &str,
    secret: u8,
    count: usize,
) -> (MemoryStore, ManualClock, World, Vec<Task>) {
    let store = MemoryStore::new();
    let clock = clock();
    let world = World::seed(&store, endpoint, &generated_secret(secret)).await;
    let tasks = world.enqueue(&store, count, clock.now()).await;
    (store, clock, world, tasks)
}

/// [`queued`] with one task.
pub(crate) async fn one_task(
    endpoint: &str,
    secret: u8,
) -> (MemoryStore, ManualClock, World, Task) {
    let (store, clock, world, mut tasks) = queued(endpoint, secret, 1).await;
    (store, clock, world, tasks.remove(0))
}

/// An organization, a target pushed to `endpoint` and a webhook, stored.
#[derive(Debug, Clone)]
pub(crate) struct World {
    pub(crate) organization: Organization,
    pub(crate) target: Target,
    pub(crate) webhook: Webhook,
}

impl World {
    pub(crate) async fn seed(store: &impl Store, endpoint: &str, secret: &Secret) -> Self {
        let now = SystemClock.now();
        let organization = fixtures::organization(now);
        store
            .insert_organization(&organization)
            .await
            .expect("insert organization");
        Self::seed_in(store, &organization, endpoint, secret).await
    }

    /// Another target and webhook in `organization`.
    pub(crate) async fn seed_in(
        store: &impl Store,
        organization: &Organization,
        endpoint: &str,
        secret: &Secret,
    ) -> Self {
        let now = SystemClock.now();
        let target = Target {
            endpoint_url: Some(EndpointUrl::parse(endpoint).expect("endpoint URL")),
            signing_secret: sealer().seal(secret),
            ..fixtures::target(organization, now)
        };
        store.insert_target(&target).await.expect("insert target");
        let webhook = fixtures::webhook(&target, now);
        store
            .insert_webhook(&webhook)
            .await
            .expect("insert webhook");
        Self {
            organization: organization.clone(),
            target,
            webhook,
        }
    }

    /// Queues `count` tasks, received (and due) a little before `now`, oldest first.
    pub(crate) async fn enqueue(
        &self,
        store: &impl Store,
        count: usize,
        now: Timestamp,
    ) -> Vec<Task> {
        self.enqueue_padded(store, count, now, 0).await
    }

    /// As [`Self::enqueue`], each payload (and so each task's context) padded with `padding`
    /// bytes more.
    pub(crate) async fn enqueue_padded(
        &self,
        store: &impl Store,
        count: usize,
        now: Timestamp,
        padding: usize,
    ) -> Vec<Task> {
        let padded = (padding > 0).then(|| {
            let text = format!(
                r#"{{"message":"Deploy api","padding":"{}"}}"#,
                "x".repeat(padding)
            );
            Payload::parse_object(text.as_bytes())
                .expect("a JSON object")
                .0
        });
        let mut tasks = Vec::with_capacity(count);
        for i in 0..count {
            let back = Duration::from_millis(u64::try_from(count - i).unwrap_or(0) + 1000);
            let (mut invocation, mut task) = fixtures::accepted(&self.webhook, now.minus(back));
            if let Some(payload) = &padded {
                invocation.payload = Some(payload.clone());
                task.context = payload.clone();
            }
            store
                .record_invocation(&invocation, Some(&task))
                .await
                .expect("record accepted invocation");
            tasks.push(task);
        }
        tasks
    }
}

/// Deliveries that may reach loopback, with short timeouts.
pub(crate) fn delivery_config() -> DeliveryConfig {
    DeliveryConfig {
        connect_timeout: Duration::from_secs(2),
        timeout: Duration::from_secs(5),
        policy: OutboundPolicy {
            allow_private_targets: true,
        },
    }
}

pub(crate) fn dispatch_config() -> DispatchConfig {
    DispatchConfig {
        batch_size: 16,
        max_in_flight: 16,
        max_in_flight_per_target: 16,
        lease_for: Duration::from_secs(60),
        attempt_timeout: delivery_config().timeout,
        poll_interval: Duration::from_millis(20),
        shutdown_grace: Duration::from_secs(5),
        retry: RetryPolicy {
            max_attempts: 3,
            base: Duration::from_secs(10),
            max_delay: Duration::from_secs(60),
        },
        queue_stats_every: Duration::from_millis(20),
        settle_after_idle: Duration::from_millis(1),
    }
}

/// [`dispatch_config`] claiming `batch_size` tasks at a time, delivering at most
/// `max_in_flight` at once and `per_target` of them to one target.
pub(crate) fn limited(batch_size: u32, max_in_flight: usize, per_target: usize) -> DispatchConfig {
    DispatchConfig {
        batch_size,
        max_in_flight,
        max_in_flight_per_target: per_target,
        ..dispatch_config()
    }
}

/// A dispatcher of the binary's composition over store `S` with a manual clock.
pub(crate) type TestDispatcher<S> = Dispatcher<NodeAdapters<S, ManualClock>>;

pub(crate) fn dispatcher<S: Store + Clone + 'static>(
    store: S,
    clock: &ManualClock,
    delivery: DeliveryConfig,
    config: DispatchConfig,
) -> TestDispatcher<S> {
    Dispatcher::new(
        store,
        HttpDelivery::new(delivery).expect("HTTP client"),
        sealer(),
        clock.clone(),
        SystemEntropy::new(),
        config,
    )
}

/// The dispatcher's metrics as `/metrics` shows them.
pub(crate) fn metrics_text<S: Store + Clone + 'static>(dispatcher: &TestDispatcher<S>) -> String {
    let mut text = String::new();
    dispatcher.metrics().render(&mut text);
    text
}

/// The task as stored now.
pub(crate) async fn stored(store: &impl Store, task: &Task) -> Task {
    store
        .task(task.organization_id, task.id)
        .await
        .expect("the task exists")
}

pub(crate) fn task_ids(tasks: &[Task]) -> Vec<String> {
    tasks.iter().map(|t| t.id.to_string()).collect()
}

/// A dispatcher running in the background until [`Running::stop`].
pub(crate) struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Running {
    pub(crate) fn start<S: Store + Clone + 'static>(dispatcher: TestDispatcher<S>) -> Self {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            dispatcher
                .run(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Self { stop, task }
    }

    /// Asks for the graceful shutdown and waits until the dispatcher has stopped.
    pub(crate) async fn stop(self) {
        self.stop.send(()).expect("the dispatcher is running");
        self.task.await.expect("the dispatcher did not panic");
    }
}

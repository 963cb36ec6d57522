// Embedding webhookd's domain in a Rust service: choose one adapter per port in an `Adapters`
// bundle, build the use cases over it, accept one event and read its task back from the store.
//
// The store here is the in-memory one (`webhook-store-mem`); a service that must keep its data
// uses `webhook-store-sqlite` or `webhook-store-pg` instead, and nothing else changes.

use std::sync::Arc;
use std::time::Duration;

use webhook_domain::model::{
    DeliveryFailure, DeliveryReport, EndpointUrl, PublicUrl, Secret, Task, TaskStatus, Timestamp,
};
use webhook_domain::ports::{Adapters, EndpointGuard, EndpointRefused, TargetDelivery, TaskQueue};
use webhook_domain::service::manage::{
    ManageError, Management, NewTarget, NewWebhook, SourceFields,
};
use webhook_domain::service::{
    BodyRead, Bootstrap, Ingest, IngestBody, IngestConfig, IngestHead, IngestOutcome, Sender,
    StoreResolver,
};
use webhook_runtime::{
    CacheConfig, CachedResolver, CoalescingCounter, MemoryRateLimiter, NodeNotifier,
};
use webhook_store_mem::MemoryStore;
use webhook_system::{
    MasterKey, MiniJinjaTemplates, RingMac, RingSealer, Sha256KeyHasher, SystemClock, SystemEntropy,
};

/// Saves only `https` endpoints. (A node's guard also resolves the host and refuses private
/// addresses; `webhook-dispatch` has it.)
struct HttpsOnly;

impl EndpointGuard for HttpsOnly {
    async fn check(&self, url: &EndpointUrl) -> Result<(), EndpointRefused> {
        if url.as_str().starts_with("https://") {
            Ok(())
        } else {
            Err(EndpointRefused {
                reason: "only https endpoints are allowed".to_owned(),
            })
        }
    }
}

/// A service that pushes no tasks (its targets poll the board): every attempt is reported as a
/// connection that could not be made, so the retry policy decides what happens next.
struct NoPush;

impl TargetDelivery for NoPush {
    async fn deliver(
        &self,
        endpoint: &EndpointUrl,
        _signing_secret: &Secret,
        _task: &Task,
        _now: Timestamp,
    ) -> DeliveryReport {
        DeliveryReport::Failed {
            failure: DeliveryFailure::Connection(format!(
                "{}: this service pushes no tasks",
                endpoint.as_str()
            )),
            latency: Duration::ZERO,
        }
    }
}

/// The service's bundle: one adapter per port, named once.
struct Embedded;

impl Adapters for Embedded {
    type Store = MemoryStore;
    type Clock = SystemClock;
    type Entropy = SystemEntropy;
    type Sealer = RingSealer;
    type Hasher = Sha256KeyHasher;
    type Limiter = MemoryRateLimiter;
    type Rejections = CoalescingCounter<SystemEntropy>;
    type Resolver = CachedResolver<StoreResolver<MemoryStore, RingSealer>, SystemClock>;
    type Endpoints = HttpsOnly;
    type Delivery = NoPush;
    type Notifier = NodeNotifier;
    type Mac = RingMac;
    type Templates = MiniJinjaTemplates;
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = MemoryStore::new();
    // A fixed key keeps the example short; a service loads its own with
    // `MasterKey::load_or_create`.
    let master_key = MasterKey::from_bytes([7; 32]);
    let resolver = CachedResolver::new(
        StoreResolver::new(store.clone(), RingSealer::new(&master_key)),
        SystemClock,
        CacheConfig::default(),
    );
    // Wakes a dispatcher (none here) when a task is committed; drops stale cached routes.
    let wake = Arc::new(tokio::sync::Notify::new());
    let notifier = NodeNotifier::new(wake, resolver.cache().clone());
    let management = Management::<Embedded> {
        store: store.clone(),
        sealer: RingSealer::new(&master_key),
        hasher: Sha256KeyHasher,
        clock: SystemClock,
        entropy: SystemEntropy::new(),
        endpoints: HttpsOnly,
        notifier: notifier.clone(),
        templates: MiniJinjaTemplates::new(),
        public_url: PublicUrl::parse("https://hooks.example.com")?,
    };
    let ingest = Ingest::<Embedded> {
        resolver,
        limiter: MemoryRateLimiter::new(),
        store: store.clone(),
        rejections: CoalescingCounter::new(SystemEntropy::new()),
        clock: SystemClock,
        entropy: SystemEntropy::new(),
        notifier,
        mac: RingMac,
        templates: MiniJinjaTemplates::new(),
        config: IngestConfig::default(),
    };

    // An organization with its admin key, a target (the guard refuses a plain-http endpoint)
    // and a webhook that hands its events to the target.
    let organization = Bootstrap::new(&management)
        .create_organization("Acme")
        .await?;
    let admin = management
        .authenticate(organization.api_key().expose())
        .await?;
    let target = |endpoint_url: Option<&str>| NewTarget {
        kind: "team".to_owned(),
        name: "Ops".to_owned(),
        endpoint_url: endpoint_url.map(str::to_owned),
    };
    let refused = management
        .create_target(&admin, target(Some("http://ops.example.com/hook")))
        .await;
    assert!(matches!(refused, Err(ManageError::Invalid(_))));
    let ops = management.create_target(&admin, target(None)).await?;
    let webhook = management
        .create_webhook(
            &admin,
            NewWebhook {
                name: "Deploys".to_owned(),
                target_id: ops.target.id.to_string(),
                event_types: Vec::new(),
                secret: None,
                generate_secret: true,
                rate_limit_per_minute: None,
                source: SourceFields::default(),
            },
        )
        .await?;
    let secret = webhook.secret.ok_or("the webhook has a generated secret")?;

    // One event, as an HTTP adapter hands it over: the head first (refused before the body is
    // read when it fails a check), then the body. The webhook's source (`generic` here) says
    // which headers carry the secret, the event type and the delivery id.
    let webhook_id = webhook.view.webhook.id.to_string();
    let head = IngestHead {
        webhook_id: &webhook_id,
        source_ip: None,
        sender: Sender::Http,
    };
    let headers: Vec<(String, Vec<u8>)> = vec![
        ("x-webhook-secret".to_owned(), secret.expose().into()),
        ("x-event-type".to_owned(), b"deploy".to_vec()),
        ("idempotency-key".to_owned(), b"deploy-v1.2".to_vec()),
    ];
    let admission = match ingest.begin(head, &headers).await {
        Ok(admission) => admission,
        Err(outcome) => return Err(format!("the head was refused: {outcome:?}").into()),
    };
    let body = br#"{"message": "Deploy v1.2 to production"}"#;
    let request = IngestBody {
        content_type: Some(b"application/json"),
        body: BodyRead::Complete(body),
    };
    let outcome = ingest.finish(admission, &headers, request).await;
    let IngestOutcome::Accepted { task_id, .. } = outcome else {
        return Err(format!("the event was not accepted: {outcome:?}").into());
    };

    // The task is on the target's board, queued for delivery.
    let task = store.task(organization.organization.id, task_id).await?;
    assert_eq!(task.status, TaskStatus::Queued);
    assert_eq!(task.target_id, ops.target.id);
    assert_eq!(task.event_type.as_deref(), Some("deploy"));
    assert_eq!(
        task.instruction.as_deref(),
        Some("Deploy v1.2 to production")
    );
    Ok(())
}

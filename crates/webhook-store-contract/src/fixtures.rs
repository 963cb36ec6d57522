//! Entity builders for the contract cases: valid entities with fresh random ids and the given
//! timestamps, which carry microsecond digits so that a store that loses precision is caught.

use std::fmt::Debug;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use tokio::task::JoinSet;
use uuid::Uuid;
use webhook_domain::model::{
    ApiKey, ApiKeyHash, ApiKeyId, ClaimOutcome, DeliveryAttempt, EndpointUrl, EventTypes,
    Invocation, InvocationId, InvocationOutcome, Name, Organization, OrganizationId, PageRequest,
    Payload, RatePerMinute, Role, SealedSecret, Target, TargetId, TargetKind, TargetResponse, Task,
    TaskFilter, TaskId, TaskStatus, TaskStatusChange, Timestamp, Webhook, WebhookId, WebhookStatus,
};
use webhook_domain::model::{CidrList, InvocationFilter, Source, SourceSettings};
use webhook_domain::ports::{InvocationLog, Store, TaskQueue, WebhookStore};
use webhook_domain::rules::task_status_change;

/// 2026-01-01T00:00:00.123457Z: the instant every case's timeline starts from.
pub const BASE_MICROS: i64 = 1_767_225_600_123_457;

/// `seconds` after [`BASE_MICROS`] (negative: before).
pub fn at(seconds: i64) -> Timestamp {
    Timestamp::from_unix_micros(BASE_MICROS + seconds * 1_000_000)
}

/// A status change `from → to` at `at` that starts no delivery round (an agent's report, or
/// the queue giving up).
pub fn status_change(from: TaskStatus, to: TaskStatus, at: Timestamp) -> TaskStatusChange {
    TaskStatusChange {
        from,
        to,
        at,
        round: None,
    }
}

/// A manual retry at `at` of a failed task that made `attempts` attempts, as the domain's rule
/// decides it: a new round after those attempts, due at `at`.
pub fn manual_retry(attempts: u32, at: Timestamp) -> TaskStatusChange {
    task_status_change(TaskStatus::Failed, attempts, TaskStatus::Queued, at)
        .expect("a failed task may be retried")
}

/// `micros` after [`BASE_MICROS`].
pub fn at_micros(micros: i64) -> Timestamp {
    Timestamp::from_unix_micros(BASE_MICROS + micros)
}

/// A time-ordered (v7) id for `at`, as the service gives invocations and tasks.
fn time_ordered(at: Timestamp) -> Uuid {
    let millis = u64::try_from(at.unix_micros().div_euclid(1_000)).unwrap_or(0);
    let mut random = [0; 10];
    random.copy_from_slice(&Uuid::new_v4().as_bytes()[..10]);
    uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid()
}

/// A valid name.
pub fn name(text: &str) -> Name {
    Name::parse(text).expect("fixture names are valid")
}

/// A valid rate.
pub fn rate(per_minute: u32) -> RatePerMinute {
    RatePerMinute::new(per_minute).expect("fixture rates are valid")
}

/// A page request for `limit` items.
pub fn page(limit: u32) -> PageRequest {
    PageRequest::first(limit).expect("fixture page limits are valid")
}

/// A random hash, as a key hasher would produce for a random key.
pub fn random_hash() -> ApiKeyHash {
    let mut bytes = [0u8; 32];
    bytes[..16].copy_from_slice(Uuid::new_v4().as_bytes());
    bytes[16..].copy_from_slice(Uuid::new_v4().as_bytes());
    ApiKeyHash::from_bytes(bytes)
}

/// Opaque sealed bytes; stores keep them as they are.
pub fn sealed(tag: u8) -> SealedSecret {
    SealedSecret::from_bytes(vec![tag, 0, 255, 17, tag, 42, 7, 0])
}

/// A JSON payload with a `message`.
pub fn payload(message: &str) -> Payload {
    let text = format!(r#"{{"message":"{message}","n":[1,{{"k":null}}]}}"#);
    Payload::parse_object(text.as_bytes())
        .expect("fixture payloads are JSON objects")
        .0
}

/// An organization created at `created_at`.
pub fn organization(created_at: Timestamp) -> Organization {
    Organization {
        id: OrganizationId::from_uuid(Uuid::new_v4()),
        name: name("Acme"),
        rate_limit_per_minute: RatePerMinute::ORGANIZATION_DEFAULT,
        created_at,
        updated_at: created_at,
    }
}

/// An organization created at [`at`]`(0)`, stored.
pub async fn stored_organization<S: Store>(store: &S) -> Organization {
    let organization = organization(at(0));
    store
        .insert_organization(&organization)
        .await
        .expect("insert organization");
    organization
}

/// An admin key of `organization` with a random hash.
pub fn api_key(organization: &Organization, created_at: Timestamp) -> ApiKey {
    ApiKey {
        id: ApiKeyId::from_uuid(Uuid::new_v4()),
        organization_id: organization.id,
        name: name("deploy key"),
        role: Role::Admin,
        hash: random_hash(),
        created_at,
    }
}

/// An agent of `organization` with an endpoint, so its tasks are pushed.
pub fn target(organization: &Organization, created_at: Timestamp) -> Target {
    Target {
        id: TargetId::from_uuid(Uuid::new_v4()),
        organization_id: organization.id,
        kind: TargetKind::Agent,
        name: name("build agent"),
        endpoint_url: Some(
            EndpointUrl::parse("https://agent.example.com/hooks?team=1")
                .expect("fixture URL is valid"),
        ),
        signing_secret: sealed(1),
        created_at,
        updated_at: created_at,
    }
}

/// A team of `organization` without an endpoint: its tasks stay on its board.
pub fn board_target(organization: &Organization, created_at: Timestamp) -> Target {
    Target {
        kind: TargetKind::Team,
        name: name("ops team"),
        endpoint_url: None,
        ..target(organization, created_at)
    }
}

/// An active webhook of `target`'s organization pointing at `target`, with a secret.
pub fn webhook(target: &Target, created_at: Timestamp) -> Webhook {
    Webhook {
        id: WebhookId::from_uuid(Uuid::new_v4()),
        organization_id: target.organization_id,
        name: name("CI pipeline"),
        target_id: target.id,
        event_types: EventTypes::parse(&["deploy.*", "build.finished"])
            .expect("fixture patterns are valid"),
        secret: Some(sealed(2)),
        previous_secret: None,
        previous_secret_expires_at: None,
        source: SourceSettings::default(),
        allowed_source_ips: CidrList::default(),
        rate_limit_per_minute: RatePerMinute::WEBHOOK_DEFAULT,
        status: WebhookStatus::Active,
        created_at,
        updated_at: created_at,
        last_triggered_at: None,
    }
}

fn invocation(webhook: &Webhook, received_at: Timestamp) -> Invocation {
    Invocation {
        id: InvocationId::from_uuid(time_ordered(received_at)),
        organization_id: webhook.organization_id,
        webhook_id: webhook.id,
        received_at,
        source_ip: Some(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7))),
        event_type: Some("deploy.finished".to_owned()),
        payload: Some(payload("Deploy api")),
        outcome: InvocationOutcome::Ignored,
        http_status: 200,
        error_code: None,
        task_id: None,
        repeat_count: 1,
        test: false,
        target_response: None,
        delivery_id: None,
        duplicate_of: None,
        instruction_fallback: None,
        request: None,
        replay_of: None,
    }
}

/// A 401 `invalid_secret` rejection received at `received_at`.
pub fn rejected(webhook: &Webhook, received_at: Timestamp) -> Invocation {
    Invocation {
        payload: None,
        outcome: InvocationOutcome::Rejected,
        http_status: 401,
        error_code: Some("invalid_secret".to_owned()),
        ..invocation(webhook, received_at)
    }
}

/// An ignored invocation (event type not subscribed) received at `received_at`.
pub fn ignored(webhook: &Webhook, received_at: Timestamp) -> Invocation {
    Invocation {
        event_type: Some("push".to_owned()),
        ..invocation(webhook, received_at)
    }
}

/// An accepted invocation received at `received_at` and its queued task, due at once.
pub fn accepted(webhook: &Webhook, received_at: Timestamp) -> (Invocation, Task) {
    let task_id = TaskId::from_uuid(time_ordered(received_at));
    let invocation = Invocation {
        outcome: InvocationOutcome::Accepted,
        http_status: 202,
        task_id: Some(task_id),
        ..invocation(webhook, received_at)
    };
    let context = invocation
        .payload
        .clone()
        .expect("accepted invocations have a payload");
    let task = Task::queued(
        task_id,
        &invocation,
        webhook.target_id,
        Some("Deploy api".to_owned()),
        context,
        true,
        Source::Generic,
    );
    (invocation, task)
}

/// An accepted invocation sent through the test endpoint, received at `received_at`, and its
/// task: both marked `test`.
pub fn accepted_test(webhook: &Webhook, received_at: Timestamp) -> (Invocation, Task) {
    let (mut invocation, mut task) = accepted(webhook, received_at);
    invocation.test = true;
    task.test = true;
    (invocation, task)
}

/// An accepted invocation received at `received_at` from a sender speaking `provider`'s
/// dialect, with the sender's delivery id and a note of why the instruction template did not
/// make the task's instruction, and its queued task.
pub fn accepted_from(
    webhook: &Webhook,
    received_at: Timestamp,
    provider: Source,
) -> (Invocation, Task) {
    let (mut invocation, mut task) = accepted(webhook, received_at);
    invocation.delivery_id = Some("b2c1e7a0-3f4d-11ef-9a5b-0242ac120002".to_owned());
    invocation.instruction_fallback = Some("the template took too much work to render".to_owned());
    task.source.provider = provider;
    (invocation, task)
}

/// A delivery attempt of `task` numbered `number`, answered with `status_code` at `at`.
pub fn answered(task: &Task, number: u32, status_code: u16, at: Timestamp) -> DeliveryAttempt {
    let succeeded = (200..300).contains(&status_code);
    DeliveryAttempt {
        task_id: task.id,
        number,
        response: TargetResponse {
            status_code: Some(status_code),
            body_excerpt: Some(format!("{{\"status\":{status_code}}}")),
            latency_ms: 37,
            error: (!succeeded).then(|| format!("the target answered {status_code}")),
            at,
            succeeded,
        },
    }
}

/// A delivery attempt of `task` that got no answer (a timeout) at `at`.
pub fn timed_out(task: &Task, number: u32, at: Timestamp) -> DeliveryAttempt {
    DeliveryAttempt {
        task_id: task.id,
        number,
        response: TargetResponse {
            status_code: None,
            body_excerpt: None,
            latency_ms: 10_000,
            error: Some("timeout".to_owned()),
            at,
            succeeded: false,
        },
    }
}

/// More pages than any case stores items: a listing that goes on longer never ends.
pub const MAX_PAGES: usize = 1_000;

/// A lease duration long enough that it never expires within a case.
pub const LONG_LEASE: Duration = Duration::from_secs(3600);

/// One organization with a pushed target and an active webhook, all stored.
#[derive(Debug, Clone)]
pub struct World {
    pub organization: Organization,
    pub target: Target,
    pub webhook: Webhook,
}

impl World {
    /// Stores an organization, a target and a webhook created at [`at`]`(0)`.
    pub async fn seed<S: Store>(store: &S) -> Self {
        let organization = stored_organization(store).await;
        let target = target(&organization, at(0));
        Self::of_target(store, organization, target).await
    }

    /// Stores `target`, of this world's organization, and an active webhook of it created at
    /// [`at`]`(0)`: the world of that target.
    pub async fn with_target<S: Store>(&self, store: &S, target: Target) -> Self {
        Self::of_target(store, self.organization.clone(), target).await
    }

    async fn of_target<S: Store>(store: &S, organization: Organization, target: Target) -> Self {
        store.insert_target(&target).await.expect("insert target");
        let webhook = webhook(&target, at(0));
        store
            .insert_webhook(&webhook)
            .await
            .expect("insert webhook");
        Self {
            organization,
            target,
            webhook,
        }
    }

    /// Records an accepted invocation received at `received_at` with its task.
    pub async fn accept<S: Store>(&self, store: &S, received_at: Timestamp) -> (Invocation, Task) {
        record_accepted(store, accepted(&self.webhook, received_at)).await
    }

    /// Records an accepted invocation received at `received_at` from `provider`, with its task
    /// (see [`accepted_from`]).
    pub async fn accept_from<S: Store>(
        &self,
        store: &S,
        received_at: Timestamp,
        provider: Source,
    ) -> (Invocation, Task) {
        record_accepted(store, accepted_from(&self.webhook, received_at, provider)).await
    }

    /// Records an accepted invocation received at each of `seconds` (see [`at`]), in that
    /// order: their tasks.
    pub async fn accept_at<S: Store>(
        &self,
        store: &S,
        seconds: impl IntoIterator<Item = i64>,
    ) -> Vec<Task> {
        let mut tasks = Vec::new();
        for second in seconds {
            tasks.push(self.accept(store, at(second)).await.1);
        }
        tasks
    }

    /// Records a rejected invocation received at `received_at` (see [`rejected`]).
    pub async fn reject<S: Store>(&self, store: &S, received_at: Timestamp) -> Invocation {
        let invocation = rejected(&self.webhook, received_at);
        store
            .record_invocation(&invocation, None)
            .await
            .expect("record rejected invocation");
        invocation
    }
}

/// Records an accepted invocation with its task.
async fn record_accepted<S: Store>(
    store: &S,
    (invocation, task): (Invocation, Task),
) -> (Invocation, Task) {
    store
        .record_invocation(&invocation, Some(&task))
        .await
        .expect("record accepted invocation");
    (invocation, task)
}

/// Random ids of the rows a migration test writes with SQL under the first schema: an
/// organization, its target and webhook, and an accepted invocation with its task.
#[derive(Debug, Clone, Copy)]
pub struct FirstSchemaIds {
    pub organization: Uuid,
    pub target: Uuid,
    pub webhook: Uuid,
    pub invocation: Uuid,
    pub task: Uuid,
}

impl FirstSchemaIds {
    pub fn random() -> Self {
        Self {
            organization: Uuid::new_v4(),
            target: Uuid::new_v4(),
            webhook: Uuid::new_v4(),
            invocation: Uuid::new_v4(),
            task: Uuid::new_v4(),
        }
    }
}

/// The answers of every call in `calls`, in the order they finished, each expected to be `Ok`;
/// `what` names the call when one fails.
pub async fn all_ok<T, E>(calls: JoinSet<Result<T, E>>, what: &str) -> Vec<T>
where
    T: 'static,
    E: Debug + 'static,
{
    calls
        .join_all()
        .await
        .into_iter()
        .map(|answer| answer.unwrap_or_else(|e| panic!("{what}: {e:?}")))
        .collect()
}

/// Checks the outcomes of requests that claimed one delivery id at once, each with the ids of
/// its invocation and task: exactly one recorded, every other names that one as the original,
/// and the board holds its one task.
pub async fn check_one_recorded<S: Store>(
    store: &S,
    world: &World,
    outcomes: &[(ClaimOutcome, InvocationId, TaskId)],
) {
    let recorded: Vec<_> = outcomes
        .iter()
        .filter(|(outcome, _, _)| *outcome == ClaimOutcome::Recorded)
        .collect();
    assert_eq!(recorded.len(), 1, "exactly one request records");
    let (_, winner, winner_task) = *recorded[0];
    let duplicate = ClaimOutcome::Duplicate {
        invocation_id: winner,
        task_id: Some(winner_task),
    };
    for (outcome, _, _) in outcomes {
        assert!(
            *outcome == ClaimOutcome::Recorded || *outcome == duplicate,
            "every other request names the winner: {outcome:?}"
        );
    }
    let tasks = store
        .tasks(world.organization.id, TaskFilter::default(), page(100))
        .await
        .expect("tasks");
    assert_eq!(tasks.items.len(), 1, "one task");
}

/// Checks a store just migrated from the first schema, which held the task of `ids`: failed
/// after three attempts with the error `the target answered HTTP 503`, its context the
/// invocation's payload `{"message":"Deploy"}`. It reads back in its first delivery round, and
/// a manual retry at `retry_at` starts a round after those three attempts.
pub async fn check_task_from_the_first_schema<S: TaskQueue>(
    store: &S,
    ids: &FirstSchemaIds,
    retry_at: Timestamp,
) {
    let organization = OrganizationId::from_uuid(ids.organization);
    let task = TaskId::from_uuid(ids.task);
    let stored = store.task(organization, task).await.expect("read");
    assert_eq!(stored.status, TaskStatus::Failed);
    assert_eq!((stored.attempts, stored.attempts_before_round), (3, 0));
    assert_eq!(
        stored.last_error.as_deref(),
        Some("the target answered HTTP 503")
    );
    assert_eq!(stored.context.as_str(), "{\"message\":\"Deploy\"}");

    let retried = store
        .set_task_status(organization, task, manual_retry(stored.attempts, retry_at))
        .await
        .expect("retry");
    assert_eq!((retried.attempts, retried.attempts_before_round), (3, 3));
    assert_eq!(retried.last_error, None);
}

/// The stored `last_triggered_at` of `webhook`.
pub async fn last_triggered_at<S: WebhookStore>(store: &S, webhook: &Webhook) -> Option<Timestamp> {
    store
        .webhook(webhook.id)
        .await
        .expect("the webhook is stored")
        .last_triggered_at
}

/// Every invocation logged for `webhook`, newest first: one page of 500, more than a test logs.
pub async fn logged<S: InvocationLog>(store: &S, webhook: &Webhook) -> Vec<Invocation> {
    store
        .invocations(
            webhook.organization_id,
            webhook.id,
            &InvocationFilter::default(),
            page(500),
        )
        .await
        .expect("the log is readable")
        .items
}

//! [`MemoryStore`]: every store port over plain collections behind one lock.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use uuid::Uuid;
use webhook_domain::model::SealedSecret;
use webhook_domain::model::{
    ApiKey, ApiKeyHash, ApiKeyId, Cursor, DeliveryAttempt, Invocation, InvocationFilter,
    InvocationId, InvocationOutcome, Organization, OrganizationId, OutcomeFilter, Page,
    PageRequest, Target, TargetId, Task, TaskFilter, TaskId, TaskStatus, Timestamp, Webhook,
    WebhookFilter, WebhookHealth, WebhookId, WebhookStatus,
};
use webhook_domain::model::{
    AttemptVerdict, ClaimRequest, ClaimedTask, FinishedAttempt, Lease, QueueStats, TaskStatusChange,
};
use webhook_domain::model::{ClaimOutcome, DeliveryClaim};
use webhook_domain::model::{DeliveryStatus, InvocationSummary, TaskSummary};
use webhook_domain::ports::{
    InvocationLog, KeyCheckStore, OrganizationInsert, OrganizationStore, StoreError, TargetStore,
    TaskQueue, WebhookStore,
};

/// The error inside [`StoreError::Unavailable`] while a [`MemoryStore`] is set unavailable.
#[derive(Debug, thiserror::Error)]
#[error("the in-memory store is set unavailable")]
pub struct StoreSetUnavailable;

/// A panic happened while the store's lock was held; its state may be half-written.
#[derive(Debug, thiserror::Error)]
#[error("the in-memory store's lock was poisoned by a panic")]
struct Poisoned;

/// Every store port in memory: organizations, keys, targets, webhooks (with tombstones), the
/// invocation log and the task queue with leases.
///
/// Cheap to clone; clones share the same data. Each operation takes one lock for its whole
/// duration and never across an `.await`, so every operation is atomic and isolated: a write
/// that fails has changed nothing.
///
/// [`MemoryStore::set_unavailable`] makes every operation fail with
/// [`StoreError::Unavailable`] until it is cleared, as an unreachable database would: tests use
/// it to check what callers do when the store is down, and an embedding service can use it as a
/// maintenance switch.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    unavailable: AtomicBool,
    state: RwLock<State>,
}

/// A (time, id) key of the newest-first indexes.
type TimeKey = (Timestamp, Uuid);

#[derive(Debug, Default)]
struct State {
    organizations: HashMap<OrganizationId, Organization>,
    api_keys: HashMap<ApiKeyId, ApiKey>,
    api_keys_by_hash: HashMap<ApiKeyHash, ApiKeyId>,
    targets: HashMap<TargetId, StoredTarget>,
    webhooks: HashMap<WebhookId, Webhook>,
    invocations: HashMap<InvocationId, Invocation>,
    /// Each webhook's invocations by (`received_at`, id).
    invocations_by_webhook: HashMap<WebhookId, BTreeSet<TimeKey>>,
    tasks: HashMap<TaskId, StoredTask>,
    /// Each organization's tasks by (`created_at`, id).
    tasks_by_organization: HashMap<OrganizationId, BTreeSet<TimeKey>>,
    /// Queued tasks by (`next_attempt_at`, id): the delivery queue.
    due: BTreeSet<TimeKey>,
    attempts: HashMap<TaskId, Vec<DeliveryAttempt>>,
    /// Delivery ids claimed per webhook: the claiming invocation, its task and when.
    claims: HashMap<(WebhookId, String), StoredClaim>,
    /// The master key's check, once kept.
    key_check: Option<SealedSecret>,
}

#[derive(Debug, Clone, Copy)]
struct StoredClaim {
    invocation_id: InvocationId,
    task_id: Option<TaskId>,
    claimed_at: Timestamp,
}

#[derive(Debug)]
struct StoredTarget {
    target: Target,
    deleted: bool,
}

#[derive(Debug)]
struct StoredTask {
    task: Task,
    lease: Option<(Uuid, Timestamp)>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// While `unavailable` is true, every operation returns [`StoreError::Unavailable`] (with
    /// [`StoreSetUnavailable`] as its source) and changes nothing.
    pub fn set_unavailable(&self, unavailable: bool) {
        self.inner.unavailable.store(unavailable, Ordering::SeqCst);
    }

    /// Whether the store is set unavailable.
    pub fn is_unavailable(&self) -> bool {
        self.inner.unavailable.load(Ordering::SeqCst)
    }

    fn check_available(&self) -> Result<(), StoreError> {
        if self.is_unavailable() {
            Err(StoreError::Unavailable(Box::new(StoreSetUnavailable)))
        } else {
            Ok(())
        }
    }

    fn read(&self) -> Result<RwLockReadGuard<'_, State>, StoreError> {
        self.check_available()?;
        self.inner
            .state
            .read()
            .map_err(|_| StoreError::Internal(Box::new(Poisoned)))
    }

    fn write(&self) -> Result<RwLockWriteGuard<'_, State>, StoreError> {
        self.check_available()?;
        self.inner
            .state
            .write()
            .map_err(|_| StoreError::Internal(Box::new(Poisoned)))
    }

    /// A page of the organization's board, newest first, as `view` shows each task.
    fn board<T>(
        &self,
        organization_id: OrganizationId,
        filter: TaskFilter,
        page: PageRequest,
        view: impl Fn(&Task) -> T,
    ) -> Result<Page<T>, StoreError> {
        let state = self.read()?;
        let index = state.tasks_by_organization.get(&organization_id);
        Ok(newest_page(index, page, |id| {
            let task = &state.tasks.get(&TaskId::from_uuid(id))?.task;
            let kept = filter.target_id.is_none_or(|id| task.target_id == id)
                && filter.status.is_none_or(|s| task.status == s);
            kept.then(|| view(task))
        }))
    }

    /// A page of a webhook's invocations of the organization that `filter` keeps, newest
    /// first, as `view` shows each one.
    fn log<T>(
        &self,
        organization_id: OrganizationId,
        webhook_id: WebhookId,
        filter: &InvocationFilter,
        page: PageRequest,
        view: impl Fn(&State, &Invocation) -> T,
    ) -> Result<Page<T>, StoreError> {
        let state = self.read()?;
        let index = state.invocations_by_webhook.get(&webhook_id);
        Ok(newest_page(index, page, |id| {
            let invocation = state.invocations.get(&InvocationId::from_uuid(id))?;
            let kept =
                invocation.organization_id == organization_id && state.keeps(invocation, filter);
            kept.then(|| view(&state, invocation))
        }))
    }
}

/// The page of the entries of `index` (keyed by time and id) after the request's cursor,
/// newest first, that `entry` finds and keeps, each as `entry` shows it.
fn newest_page<T>(
    index: Option<&BTreeSet<TimeKey>>,
    request: PageRequest,
    entry: impl Fn(Uuid) -> Option<T>,
) -> Page<T> {
    let Some(index) = index else {
        return Page {
            items: Vec::new(),
            next: None,
        };
    };
    let items = newest_keys(index, request.after)
        .filter_map(|&(at, id)| entry(id).map(|item| ((at, id), item)))
        .take(overfetch(request))
        .collect();
    page_of_keyed(items, request)
}

/// Up to `limit + 1` keys of `index` strictly before `after`, newest first.
fn newest_keys(index: &BTreeSet<TimeKey>, after: Option<Cursor>) -> impl Iterator<Item = &TimeKey> {
    match after {
        Some(cursor) => index.range(..(cursor.at, cursor.id)),
        None => index.range(..),
    }
    .rev()
}

/// `items` sorted newest first by their place, `cursor`, and cut into the requested page.
fn page_of_sorted<T>(
    mut items: Vec<T>,
    request: PageRequest,
    cursor: impl Fn(&T) -> Cursor,
) -> Page<T> {
    let key = |item: &T| {
        let Cursor { at, id } = cursor(item);
        (at, id)
    };
    items.retain(|item| request.after.is_none_or(|c| key(item) < (c.at, c.id)));
    items.sort_unstable_by_key(|item| std::cmp::Reverse(key(item)));
    items.truncate(overfetch(request));
    Page::from_overfetch(items, request, cursor)
}

/// The page of up to `limit + 1` keyed items, newest first, without their keys.
fn page_of_keyed<T>(items: Vec<(TimeKey, T)>, request: PageRequest) -> Page<T> {
    let page = Page::from_overfetch(items, request, |(key, _)| Cursor {
        at: key.0,
        id: key.1,
    });
    Page {
        items: page.items.into_iter().map(|(_, item)| item).collect(),
        next: page.next,
    }
}

fn overfetch(request: PageRequest) -> usize {
    request.limit() as usize + 1
}

fn conflict(what: &'static str) -> StoreError {
    StoreError::Conflict(what)
}

impl State {
    fn live_target(&self, organization_id: OrganizationId, id: TargetId) -> Option<&Target> {
        self.targets
            .get(&id)
            .filter(|t| !t.deleted && t.target.organization_id == organization_id)
            .map(|t| &t.target)
    }

    fn task_in(
        &self,
        organization_id: OrganizationId,
        id: TaskId,
    ) -> Result<&StoredTask, StoreError> {
        self.tasks
            .get(&id)
            .filter(|t| t.task.organization_id == organization_id)
            .ok_or(StoreError::NotFound)
    }

    /// Whether `invocation` passes every filter of `filter`.
    fn keeps(&self, invocation: &Invocation, filter: &InvocationFilter) -> bool {
        filter.outcome.is_none_or(|f| self.selects(invocation, f)) && filter.admits(invocation)
    }

    /// Whether `invocation` matches `filter`, looking at its task for [`OutcomeFilter::Failed`].
    fn selects(&self, invocation: &Invocation, filter: OutcomeFilter) -> bool {
        match filter {
            OutcomeFilter::Accepted => invocation.outcome == InvocationOutcome::Accepted,
            OutcomeFilter::Ignored => invocation.outcome == InvocationOutcome::Ignored,
            OutcomeFilter::Rejected => invocation.outcome == InvocationOutcome::Rejected,
            OutcomeFilter::Duplicate => invocation.outcome == InvocationOutcome::Duplicate,
            OutcomeFilter::Failed => match invocation.outcome {
                InvocationOutcome::Rejected => true,
                InvocationOutcome::Ignored | InvocationOutcome::Duplicate => false,
                InvocationOutcome::Accepted => {
                    invocation
                        .target_response
                        .as_ref()
                        .is_some_and(|r| !r.succeeded)
                        || invocation
                            .task_id
                            .and_then(|id| self.tasks.get(&id))
                            .is_some_and(|t| t.task.status == TaskStatus::Failed)
                }
            },
        }
    }

    /// Whether the lease is still held: the task is queued under the same token.
    fn held(&self, lease: &Lease) -> Result<(), StoreError> {
        match self.tasks.get(&lease.task_id) {
            Some(stored)
                if stored.task.status == TaskStatus::Queued
                    && stored.lease.is_some_and(|(token, _)| token == lease.token) =>
            {
                Ok(())
            }
            _ => Err(conflict("the lease is no longer held")),
        }
    }

    /// Records a delivery attempt under its lease (see `TaskQueue::finish_attempt`).
    fn finish_attempt(
        &mut self,
        lease: &Lease,
        attempt: &DeliveryAttempt,
        verdict: AttemptVerdict,
    ) -> Result<Task, StoreError> {
        self.held(lease)?;
        if attempt.task_id != lease.task_id {
            return Err(conflict("the attempt is not of the leased task"));
        }
        let stored = self
            .tasks
            .get_mut(&lease.task_id)
            .ok_or(StoreError::NotFound)?;
        let old_due = (stored.task.next_attempt_at, *lease.task_id.as_uuid());
        let task = &mut stored.task;
        task.attempts = attempt.number;
        task.last_error.clone_from(&attempt.response.error);
        task.updated_at = attempt.response.at;
        match verdict {
            AttemptVerdict::Delivered => task.status = TaskStatus::Delivered,
            AttemptVerdict::Failed => task.status = TaskStatus::Failed,
            AttemptVerdict::RetryAt(at) => task.next_attempt_at = at,
        }
        stored.lease = None;
        let task = stored.task.clone();
        self.due.remove(&old_due);
        if task.status == TaskStatus::Queued {
            self.due.insert((task.next_attempt_at, *task.id.as_uuid()));
        }
        if let Some(invocation) = self.invocations.get_mut(&task.invocation_id) {
            invocation.target_response = Some(attempt.response.clone());
        }
        self.attempts
            .entry(task.id)
            .or_default()
            .push(attempt.clone());
        Ok(task)
    }

    fn remove_task(&mut self, id: TaskId) {
        if let Some(stored) = self.tasks.remove(&id) {
            let task = stored.task;
            let key = (task.created_at, *task.id.as_uuid());
            if let Some(index) = self.tasks_by_organization.get_mut(&task.organization_id) {
                index.remove(&key);
            }
            self.due.remove(&(task.next_attempt_at, *task.id.as_uuid()));
            self.attempts.remove(&id);
        }
    }
}

impl OrganizationStore for MemoryStore {
    async fn insert_organization(&self, organization: &Organization) -> Result<(), StoreError> {
        let mut state = self.write()?;
        if state.organizations.contains_key(&organization.id) {
            return Err(conflict("an organization with this id exists"));
        }
        state
            .organizations
            .insert(organization.id, organization.clone());
        Ok(())
    }

    async fn organization(&self, id: OrganizationId) -> Result<Organization, StoreError> {
        self.read()?
            .organizations
            .get(&id)
            .cloned()
            .ok_or(StoreError::NotFound)
    }

    async fn update_organization(&self, organization: &Organization) -> Result<(), StoreError> {
        let mut state = self.write()?;
        let stored = state
            .organizations
            .get_mut(&organization.id)
            .ok_or(StoreError::NotFound)?;
        stored.name.clone_from(&organization.name);
        stored.rate_limit_per_minute = organization.rate_limit_per_minute;
        stored.updated_at = organization.updated_at;
        Ok(())
    }

    async fn count_organizations(&self) -> Result<u64, StoreError> {
        Ok(self.read()?.organizations.len() as u64)
    }

    async fn organizations(&self) -> Result<Vec<Organization>, StoreError> {
        let mut all: Vec<Organization> = self.read()?.organizations.values().cloned().collect();
        all.sort_unstable_by_key(|o| (o.created_at, o.id));
        Ok(all)
    }

    async fn insert_organization_with_key(
        &self,
        organization: &Organization,
        key: &ApiKey,
        mode: OrganizationInsert,
    ) -> Result<bool, StoreError> {
        let mut state = self.write()?;
        if mode == OrganizationInsert::FirstOnly && !state.organizations.is_empty() {
            return Ok(false);
        }
        if state.organizations.contains_key(&organization.id) {
            return Err(conflict("an organization with this id exists"));
        }
        if state.api_keys.contains_key(&key.id) || state.api_keys_by_hash.contains_key(&key.hash) {
            return Err(conflict("an API key with this id or hash exists"));
        }
        state
            .organizations
            .insert(organization.id, organization.clone());
        state.api_keys_by_hash.insert(key.hash, key.id);
        state.api_keys.insert(key.id, key.clone());
        Ok(true)
    }

    async fn insert_api_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        let mut state = self.write()?;
        if state.api_keys.contains_key(&key.id) || state.api_keys_by_hash.contains_key(&key.hash) {
            return Err(conflict("an API key with this id or hash exists"));
        }
        if !state.organizations.contains_key(&key.organization_id) {
            return Err(StoreError::NotFound);
        }
        state.api_keys_by_hash.insert(key.hash, key.id);
        state.api_keys.insert(key.id, key.clone());
        Ok(())
    }

    async fn api_key_by_hash(&self, hash: &ApiKeyHash) -> Result<ApiKey, StoreError> {
        let state = self.read()?;
        state
            .api_keys_by_hash
            .get(hash)
            .and_then(|id| state.api_keys.get(id))
            .cloned()
            .ok_or(StoreError::NotFound)
    }

    async fn api_keys(&self, organization_id: OrganizationId) -> Result<Vec<ApiKey>, StoreError> {
        let state = self.read()?;
        let mut keys: Vec<ApiKey> = state
            .api_keys
            .values()
            .filter(|k| k.organization_id == organization_id)
            .cloned()
            .collect();
        keys.sort_unstable_by_key(|k| (k.created_at, k.id));
        Ok(keys)
    }

    async fn delete_api_key(
        &self,
        organization_id: OrganizationId,
        id: ApiKeyId,
    ) -> Result<(), StoreError> {
        let mut state = self.write()?;
        match state.api_keys.get(&id) {
            Some(key) if key.organization_id == organization_id => {
                let hash = key.hash;
                state.api_keys.remove(&id);
                state.api_keys_by_hash.remove(&hash);
                Ok(())
            }
            _ => Err(StoreError::NotFound),
        }
    }
}

impl TargetStore for MemoryStore {
    async fn insert_target(&self, target: &Target) -> Result<(), StoreError> {
        let mut state = self.write()?;
        if state.targets.contains_key(&target.id) {
            return Err(conflict("a target with this id exists"));
        }
        if !state.organizations.contains_key(&target.organization_id) {
            return Err(StoreError::NotFound);
        }
        state.targets.insert(
            target.id,
            StoredTarget {
                target: target.clone(),
                deleted: false,
            },
        );
        Ok(())
    }

    async fn target(
        &self,
        organization_id: OrganizationId,
        id: TargetId,
    ) -> Result<Target, StoreError> {
        self.read()?
            .live_target(organization_id, id)
            .cloned()
            .ok_or(StoreError::NotFound)
    }

    async fn targets(
        &self,
        organization_id: OrganizationId,
        page: PageRequest,
    ) -> Result<Page<Target>, StoreError> {
        let state = self.read()?;
        let items = state
            .targets
            .values()
            .filter(|t| !t.deleted && t.target.organization_id == organization_id)
            .map(|t| t.target.clone())
            .collect();
        Ok(page_of_sorted(items, page, Target::cursor))
    }

    async fn update_target(&self, target: &Target) -> Result<(), StoreError> {
        let mut state = self.write()?;
        let stored = state
            .targets
            .get_mut(&target.id)
            .filter(|t| !t.deleted && t.target.organization_id == target.organization_id)
            .ok_or(StoreError::NotFound)?;
        let stored = &mut stored.target;
        stored.kind = target.kind;
        stored.name.clone_from(&target.name);
        stored.endpoint_url.clone_from(&target.endpoint_url);
        stored.signing_secret.clone_from(&target.signing_secret);
        stored.updated_at = target.updated_at;
        Ok(())
    }

    async fn delete_target(
        &self,
        organization_id: OrganizationId,
        id: TargetId,
    ) -> Result<(), StoreError> {
        let mut state = self.write()?;
        if state.live_target(organization_id, id).is_none() {
            return Err(StoreError::NotFound);
        }
        if state
            .webhooks
            .values()
            .any(|w| w.target_id == id && w.status != WebhookStatus::Deleted)
        {
            return Err(conflict("a webhook points at this target"));
        }
        if let Some(stored) = state.targets.get_mut(&id) {
            stored.deleted = true;
        }
        Ok(())
    }
}

impl WebhookStore for MemoryStore {
    async fn insert_webhook(&self, webhook: &Webhook) -> Result<(), StoreError> {
        let mut state = self.write()?;
        if state.webhooks.contains_key(&webhook.id) {
            return Err(conflict("a webhook with this id exists or existed"));
        }
        if state
            .live_target(webhook.organization_id, webhook.target_id)
            .is_none()
        {
            return Err(StoreError::NotFound);
        }
        state.webhooks.insert(webhook.id, webhook.clone());
        Ok(())
    }

    async fn webhook(&self, id: WebhookId) -> Result<Webhook, StoreError> {
        self.read()?
            .webhooks
            .get(&id)
            .cloned()
            .ok_or(StoreError::NotFound)
    }

    async fn webhooks(
        &self,
        organization_id: OrganizationId,
        filter: WebhookFilter,
        page: PageRequest,
    ) -> Result<Page<Webhook>, StoreError> {
        let state = self.read()?;
        let items = state
            .webhooks
            .values()
            .filter(|w| w.organization_id == organization_id && filter.admits(w.status))
            .cloned()
            .collect();
        Ok(page_of_sorted(items, page, Webhook::cursor))
    }

    async fn update_webhook(&self, webhook: &Webhook) -> Result<(), StoreError> {
        let mut state = self.write()?;
        let stored = state
            .webhooks
            .get_mut(&webhook.id)
            .filter(|w| w.organization_id == webhook.organization_id)
            .ok_or(StoreError::NotFound)?;
        if stored.status == WebhookStatus::Deleted {
            return Err(conflict("a deleted webhook never changes"));
        }
        *stored = Webhook {
            id: stored.id,
            organization_id: stored.organization_id,
            created_at: stored.created_at,
            last_triggered_at: stored.last_triggered_at,
            ..webhook.clone()
        };
        Ok(())
    }
}

impl InvocationLog for MemoryStore {
    async fn record_invocation(
        &self,
        invocation: &Invocation,
        task: Option<&Task>,
    ) -> Result<(), StoreError> {
        let mut state = self.write()?;
        record(&mut state, invocation, task)
    }

    async fn record_claimed(
        &self,
        invocation: &Invocation,
        task: Option<&Task>,
        claim: &DeliveryClaim,
    ) -> Result<ClaimOutcome, StoreError> {
        let mut state = self.write()?;
        let key = (invocation.webhook_id, claim.delivery_id.clone());
        if let Some(held) = state.claims.get(&key)
            && held.claimed_at >= claim.window_start
        {
            return Ok(ClaimOutcome::Duplicate {
                invocation_id: held.invocation_id,
                task_id: held.task_id,
            });
        }
        record(&mut state, invocation, task)?;
        state.claims.insert(
            key,
            StoredClaim {
                invocation_id: invocation.id,
                task_id: task.map(|t| t.id),
                claimed_at: invocation.received_at,
            },
        );
        Ok(ClaimOutcome::Recorded)
    }

    async fn purge_delivery_claims(&self, before: Timestamp) -> Result<u64, StoreError> {
        let mut state = self.write()?;
        let count = state.claims.len();
        state.claims.retain(|_, claim| claim.claimed_at >= before);
        Ok((count - state.claims.len()) as u64)
    }

    async fn invocation(
        &self,
        organization_id: OrganizationId,
        id: InvocationId,
    ) -> Result<Invocation, StoreError> {
        self.read()?
            .invocations
            .get(&id)
            .filter(|i| i.organization_id == organization_id)
            .cloned()
            .ok_or(StoreError::NotFound)
    }

    async fn invocations(
        &self,
        organization_id: OrganizationId,
        webhook_id: WebhookId,
        filter: &InvocationFilter,
        page: PageRequest,
    ) -> Result<Page<Invocation>, StoreError> {
        self.log(
            organization_id,
            webhook_id,
            filter,
            page,
            |_, invocation| invocation.clone(),
        )
    }

    async fn webhook_health(
        &self,
        organization_id: OrganizationId,
        webhook_ids: &[WebhookId],
        since: Timestamp,
    ) -> Result<Vec<WebhookHealth>, StoreError> {
        let state = self.read()?;
        let health = |webhook_id: &WebhookId| {
            let mut health = WebhookHealth::default();
            let Some(index) = state.invocations_by_webhook.get(webhook_id) else {
                return health;
            };
            let window = index
                .range((since, Uuid::nil())..)
                .filter_map(|(_, id)| state.invocations.get(&InvocationId::from_uuid(*id)))
                .filter(|i| i.organization_id == organization_id);
            for invocation in window {
                if invocation.outcome == InvocationOutcome::Accepted {
                    health.accepted += 1;
                }
                if state.selects(invocation, OutcomeFilter::Failed) {
                    health.failed += u64::from(invocation.repeat_count);
                    health.last_failure_at =
                        health.last_failure_at.max(Some(invocation.received_at));
                }
            }
            health
        };
        Ok(webhook_ids.iter().map(health).collect())
    }

    async fn invocation_summaries(
        &self,
        organization_id: OrganizationId,
        webhook_id: WebhookId,
        filter: &InvocationFilter,
        page: PageRequest,
    ) -> Result<Page<InvocationSummary>, StoreError> {
        self.log(
            organization_id,
            webhook_id,
            filter,
            page,
            |state, invocation| {
                let delivery = invocation
                    .task_id
                    .and_then(|id| state.tasks.get(&id))
                    .map(|t| DeliveryStatus::of(t.task.status, t.task.last_error.is_some()));
                InvocationSummary::of(invocation, delivery)
            },
        )
    }

    async fn check_writable(&self) -> Result<(), StoreError> {
        self.write().map(drop)
    }

    async fn purge_invocations(&self, before: Timestamp) -> Result<u64, StoreError> {
        let mut state = self.write()?;
        let doomed: Vec<Invocation> = state
            .invocations
            .values()
            .filter(|i| i.received_at < before)
            .filter(|i| {
                i.task_id
                    .and_then(|id| state.tasks.get(&id))
                    .is_none_or(|t| {
                        matches!(t.task.status, TaskStatus::Completed | TaskStatus::Failed)
                    })
            })
            .cloned()
            .collect();
        for invocation in &doomed {
            state.invocations.remove(&invocation.id);
            if let Some(index) = state.invocations_by_webhook.get_mut(&invocation.webhook_id) {
                index.remove(&(invocation.received_at, *invocation.id.as_uuid()));
                if index.is_empty() {
                    state.invocations_by_webhook.remove(&invocation.webhook_id);
                }
            }
            if let Some(task_id) = invocation.task_id {
                state.remove_task(task_id);
            }
        }
        Ok(doomed.len() as u64)
    }
}

impl TaskQueue for MemoryStore {
    async fn task(&self, organization_id: OrganizationId, id: TaskId) -> Result<Task, StoreError> {
        Ok(self.read()?.task_in(organization_id, id)?.task.clone())
    }

    async fn tasks(
        &self,
        organization_id: OrganizationId,
        filter: TaskFilter,
        page: PageRequest,
    ) -> Result<Page<Task>, StoreError> {
        self.board(organization_id, filter, page, Task::clone)
    }

    async fn task_summaries(
        &self,
        organization_id: OrganizationId,
        filter: TaskFilter,
        page: PageRequest,
    ) -> Result<Page<TaskSummary>, StoreError> {
        self.board(organization_id, filter, page, |task: &Task| {
            TaskSummary::from(task)
        })
    }

    async fn set_task_status(
        &self,
        organization_id: OrganizationId,
        id: TaskId,
        change: TaskStatusChange,
    ) -> Result<Task, StoreError> {
        let mut state = self.write()?;
        let old_due = {
            let stored = state.task_in(organization_id, id)?;
            if stored.task.status != change.from {
                return Err(conflict("the task's status changed"));
            }
            if change
                .round
                .is_some_and(|round| round.attempts_before != stored.task.attempts)
            {
                return Err(conflict("another delivery round ran meanwhile"));
            }
            (stored.task.next_attempt_at, *id.as_uuid())
        };
        state.due.remove(&old_due);
        let stored = state.tasks.get_mut(&id).ok_or(StoreError::NotFound)?;
        stored.task.status = change.to;
        stored.task.updated_at = change.at;
        stored.lease = None;
        if let Some(round) = change.round {
            stored.task.next_attempt_at = round.due_at;
            stored.task.attempts_before_round = round.attempts_before;
            stored.task.last_error = None;
        }
        let task = stored.task.clone();
        if task.status == TaskStatus::Queued {
            state.due.insert((task.next_attempt_at, *id.as_uuid()));
        }
        Ok(task)
    }

    async fn claim_tasks(&self, claim: ClaimRequest<'_>) -> Result<Vec<ClaimedTask>, StoreError> {
        let ClaimRequest {
            now, token, limit, ..
        } = claim;
        let until = claim.lease_until();
        let mut state = self.write()?;
        let mut claimable = Vec::new();
        for (_, id) in state.due.range(..=(now, Uuid::max())) {
            if claimable.len() >= limit as usize {
                break;
            }
            let Some(stored) = state.tasks.get(&TaskId::from_uuid(*id)) else {
                continue;
            };
            if stored.lease.is_some_and(|(_, until)| until > now) {
                continue;
            }
            let task = &stored.task;
            if claim.skip_targets.contains(&task.target_id) {
                continue;
            }
            let Some(target) = state.live_target(task.organization_id, task.target_id) else {
                continue;
            };
            let Some(endpoint_url) = target.endpoint_url.clone() else {
                continue;
            };
            claimable.push((task.id, endpoint_url, target.signing_secret.clone()));
        }
        let mut claimed = Vec::with_capacity(claimable.len());
        for (task_id, endpoint_url, signing_secret) in claimable {
            if let Some(stored) = state.tasks.get_mut(&task_id) {
                stored.lease = Some((token, until));
                claimed.push(ClaimedTask {
                    task: stored.task.clone(),
                    lease: Lease {
                        task_id,
                        token,
                        until,
                    },
                    endpoint_url,
                    signing_secret,
                });
            }
        }
        Ok(claimed)
    }

    async fn finish_attempt(
        &self,
        lease: &Lease,
        attempt: &DeliveryAttempt,
        verdict: AttemptVerdict,
    ) -> Result<Task, StoreError> {
        self.write()?.finish_attempt(lease, attempt, verdict)
    }

    async fn finish_attempts(&self, finished: &[FinishedAttempt]) -> Vec<Result<(), StoreError>> {
        let mut state = match self.write() {
            Ok(state) => state,
            Err(error) => return error.shared(finished.len()).into_iter().map(Err).collect(),
        };
        finished
            .iter()
            .map(|f| {
                state
                    .finish_attempt(&f.lease, &f.attempt, f.verdict)
                    .map(drop)
            })
            .collect()
    }

    async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        let mut state = self.write()?;
        state.held(lease)?;
        if let Some(stored) = state.tasks.get_mut(&lease.task_id) {
            stored.lease = None;
        }
        Ok(())
    }

    async fn queue_stats(&self, now: Timestamp) -> Result<QueueStats, StoreError> {
        let state = self.read()?;
        let mut counted = QueueStats::default();
        for (next_attempt_at, id) in &state.due {
            let Some(stored) = state.tasks.get(&TaskId::from_uuid(*id)) else {
                continue;
            };
            let task = &stored.task;
            let waiting = state
                .live_target(task.organization_id, task.target_id)
                .is_some_and(|target| target.endpoint_url.is_some());
            if !waiting {
                continue;
            }
            counted.queued += 1;
            if *next_attempt_at <= now {
                counted.due += 1;
            }
            counted.oldest_queued_at = Some(
                counted
                    .oldest_queued_at
                    .map_or(task.created_at, |oldest| oldest.min(task.created_at)),
            );
        }
        Ok(counted)
    }

    async fn delivery_attempts(
        &self,
        organization_id: OrganizationId,
        id: TaskId,
    ) -> Result<Vec<DeliveryAttempt>, StoreError> {
        let state = self.read()?;
        state.task_in(organization_id, id)?;
        Ok(state.attempts.get(&id).cloned().unwrap_or_default())
    }
}

impl KeyCheckStore for MemoryStore {
    async fn keep_key_check(&self, check: &SealedSecret) -> Result<SealedSecret, StoreError> {
        Ok(self
            .write()?
            .key_check
            .get_or_insert_with(|| check.clone())
            .clone())
    }
}

#[cfg(feature = "test-util")]
impl webhook_store_contract::ContractStore for MemoryStore {}

/// Writes an invocation and its task, after checking everything first: nothing is written
/// unless everything can be.
fn record(
    state: &mut State,
    invocation: &Invocation,
    task: Option<&Task>,
) -> Result<(), StoreError> {
    // Every check first: nothing is written unless everything can be.
    if state.invocations.contains_key(&invocation.id) {
        return Err(conflict("an invocation with this id exists"));
    }
    if task.is_some_and(|t| state.tasks.contains_key(&t.id)) {
        return Err(conflict("a task with this id exists"));
    }
    let webhook = state
        .webhooks
        .get_mut(&invocation.webhook_id)
        .filter(|w| w.organization_id == invocation.organization_id)
        .ok_or(StoreError::NotFound)?;
    if invocation.outcome == InvocationOutcome::Accepted
        && webhook
            .last_triggered_at
            .is_none_or(|at| at < invocation.received_at)
    {
        webhook.last_triggered_at = Some(invocation.received_at);
    }
    state
        .invocations_by_webhook
        .entry(invocation.webhook_id)
        .or_default()
        .insert((invocation.received_at, *invocation.id.as_uuid()));
    state.invocations.insert(invocation.id, invocation.clone());
    if let Some(task) = task {
        let id = *task.id.as_uuid();
        state
            .tasks_by_organization
            .entry(task.organization_id)
            .or_default()
            .insert((task.created_at, id));
        if task.status == TaskStatus::Queued {
            state.due.insert((task.next_attempt_at, id));
        }
        state.tasks.insert(
            task.id,
            StoredTask {
                task: task.clone(),
                lease: None,
            },
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use webhook_domain::model::{Name, RatePerMinute};

    use super::*;

    fn organization() -> Organization {
        Organization {
            id: OrganizationId::from_uuid(Uuid::from_u128(1)),
            name: Name::parse("Acme").unwrap(),
            rate_limit_per_minute: RatePerMinute::ORGANIZATION_DEFAULT,
            created_at: Timestamp::UNIX_EPOCH,
            updated_at: Timestamp::UNIX_EPOCH,
        }
    }

    #[tokio::test]
    async fn an_unavailable_store_answers_unavailable_and_writes_nothing() {
        let store = MemoryStore::new();
        let clone = store.clone();
        store.set_unavailable(true);
        assert!(clone.is_unavailable(), "clones share the switch");
        assert!(matches!(
            clone.insert_organization(&organization()).await,
            Err(StoreError::Unavailable(_))
        ));
        assert!(matches!(
            clone.count_organizations().await,
            Err(StoreError::Unavailable(_))
        ));
        assert!(matches!(
            clone.purge_invocations(Timestamp::UNIX_EPOCH).await,
            Err(StoreError::Unavailable(_))
        ));
        store.set_unavailable(false);
        assert_eq!(clone.count_organizations().await.unwrap(), 0);
        clone.insert_organization(&organization()).await.unwrap();
        assert_eq!(store.count_organizations().await.unwrap(), 1);
    }
}

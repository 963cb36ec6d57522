//! The store ports on [`PgStore`]: one function per port method, each one query or one
//! transaction.

use std::collections::HashMap;

use diesel::dsl::{exists, not, sql};
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types;
use diesel::{
    BoolExpressionMethods as _, ExpressionMethods as _, NullableExpressionMethods as _,
    OptionalExtension as _, QueryDsl as _, QueryResult, QueryableByName, SelectableHelper as _,
};
use diesel_async::pooled_connection::PoolableConnection as _;
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl as _};
use uuid::Uuid;
use webhook_domain::model::{
    ApiKey, ApiKeyHash, ApiKeyId, Cursor, DeliveryAttempt, DeliveryStatus, Invocation,
    InvocationFilter, InvocationId, InvocationSummary, MESSAGE_PREVIEW_CHARS, Organization,
    OrganizationId, OutcomeFilter, PAYLOAD_EXCERPT_BYTES, Page, PageRequest, Stale, Target,
    TargetId, Task, TaskFilter, TaskId, TaskStatus, TaskSummary, Timestamp, Webhook, WebhookFilter,
    WebhookHealth, WebhookId, WebhookStatus,
};
use webhook_domain::model::{
    AttemptVerdict, ClaimOutcome, ClaimRequest, ClaimedTask, DeliveryClaim, FinishedAttempt, Lease,
    QueueStats, TaskStatusChange,
};
use webhook_domain::ports::{
    InvocationLog, OrganizationInsert, OrganizationStore, StoreError, TargetStore, TaskQueue,
    WebhookStore,
};

use crate::PgStore;
use crate::attempt::{self, FinishAttempt, ReleaseLease};
use crate::changes::announce;
use crate::error::{TxError, corrupt, store_error};
use crate::rows::{
    ApiKeyRow, AttemptRow, InvocationRow, OrganizationRow, RequestRow, TargetRow, TaskRow,
    WebhookRow, at, endpoint, int, ts,
};
use crate::schema::{
    api_keys, delivery_attempts, invocations, organizations, targets, tasks, webhooks,
};
use crate::{prepared, search};

/// Translates a failure, looking at whether it cost the connection.
pub(crate) fn check<T>(
    result: Result<T, TxError>,
    conn: &mut AsyncPgConnection,
) -> Result<T, StoreError> {
    result.map_err(|e| store_error(e, conn.is_broken()))
}

impl PgStore {
    /// Runs `work` on a pooled connection and translates its failure, looking at whether it
    /// cost the connection.
    async fn run<T, E: Into<TxError>>(
        &self,
        work: impl AsyncFnOnce(&mut AsyncPgConnection) -> Result<T, E>,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn().await?;
        let result = work(&mut conn).await.map_err(Into::into);
        check(result, &mut conn)
    }
}

/// The advisory lock under which a first start counts organizations and creates the default
/// one ("webhorg1" in ASCII).
const FIRST_ORGANIZATION_LOCK: i64 = 0x7765_6268_6f72_6731;

fn collect<R, T>(rows: Vec<R>) -> Result<Vec<T>, StoreError>
where
    T: TryFrom<R, Error = StoreError>,
{
    rows.into_iter().map(T::try_from).collect()
}

/// Rows to fetch for a page: one more than asked proves a next page exists.
fn overfetch(page: PageRequest) -> i64 {
    i64::from(page.limit()) + 1
}

/// Narrows a boxed query to the page `$page` asks for: newest first by (`$time`, `$id`), after
/// the page's cursor, one row more than the page holds (see [`overfetch`]).
macro_rules! newest_first {
    ($query:expr, $time:path, $id:path, $page:expr) => {{
        let mut query = $query;
        if let Some(Cursor { at: after, id }) = $page.after {
            let after = at(after);
            query = query.filter($time.lt(after).or($time.eq(after).and($id.lt(id))));
        }
        query
            .order(($time.desc(), $id.desc()))
            .limit(overfetch($page))
    }};
}

fn tasks_from(rows: Vec<(TaskRow, Option<String>)>) -> Result<Vec<Task>, StoreError> {
    rows.into_iter()
        .map(|(row, payload)| row.into_task(payload))
        .collect()
}

diesel::define_sql_function! {
    /// The first argument unless it is null.
    fn coalesce(x: sql_types::Nullable<sql_types::Timestamptz>, y: sql_types::Timestamptz) -> sql_types::Timestamptz;
}

async fn load_task(
    conn: &mut AsyncPgConnection,
    organization_id: Option<OrganizationId>,
    id: TaskId,
) -> Result<Task, TxError> {
    let mut query = tasks::table
        .inner_join(invocations::table)
        .select((TaskRow::as_select(), invocations::payload))
        .filter(tasks::id.eq(id.as_uuid()))
        .into_boxed();
    if let Some(organization_id) = organization_id {
        query = query.filter(tasks::organization_id.eq(*organization_id.as_uuid()));
    }
    let (row, payload) = query.first::<(TaskRow, Option<String>)>(conn).await?;
    Ok(row.into_task(payload)?)
}

/// The first characters of the payload: enough for [`PAYLOAD_EXCERPT_BYTES`] bytes, however
/// many bytes each character takes, and never the whole of a large payload.
const PAYLOAD_PREFIX: &str = "left(invocations.payload, 1024)";

/// The first characters of the payload's `message`, when it is a string.
const MESSAGE_PREFIX: &str = "(CASE WHEN jsonb_typeof(invocations.payload::jsonb -> 'message') \
     = 'string' THEN left(invocations.payload::jsonb ->> 'message', 200) END)";

/// The status of the invocation's task.
const TASK_STATUS: &str = "(SELECT tasks.status FROM tasks WHERE tasks.id = invocations.task_id)";

/// Whether the latest attempt of the task's round failed.
const TASK_FAILED_ATTEMPT: &str =
    "(SELECT tasks.last_error IS NOT NULL FROM tasks WHERE tasks.id = invocations.task_id)";

const _: () = assert!(PAYLOAD_EXCERPT_BYTES == 1024 && MESSAGE_PREVIEW_CHARS == 200);

/// `rows`, each with the latest attempt of the task that answered its invocation
/// ([`InvocationRow::answered_task`]): the target's response, which the invocation does not keep
/// but for whether it succeeded. One statement for all the rows, each task's attempts found
/// through the primary key (task, number).
async fn with_latest_attempts<R>(
    conn: &mut AsyncPgConnection,
    rows: Vec<R>,
    row: impl Fn(&R) -> &InvocationRow,
) -> QueryResult<Vec<(R, Option<AttemptRow>)>> {
    let answered: Vec<Uuid> = rows.iter().filter_map(|r| row(r).answered_task()).collect();
    let mut latest: HashMap<Uuid, AttemptRow> = if answered.is_empty() {
        HashMap::new()
    } else {
        delivery_attempts::table
            .filter(delivery_attempts::task_id.eq_any(answered))
            .distinct_on(delivery_attempts::task_id)
            .order((delivery_attempts::task_id, delivery_attempts::number.desc()))
            .select(AttemptRow::as_select())
            .load::<AttemptRow>(conn)
            .await?
            .into_iter()
            .map(|attempt| (attempt.task_id, attempt))
            .collect()
    };
    Ok(rows
        .into_iter()
        .map(|r| {
            let attempt = row(&r)
                .answered_task()
                .and_then(|task| latest.remove(&task));
            (r, attempt)
        })
        .collect())
}

/// An invocation row with a payload prefix in the payload's place, its message's prefix, and
/// its task's status and whether the task's latest attempt failed.
type InvocationSummaryRow = (InvocationRow, Option<String>, Option<String>, Option<bool>);

fn invocation_summary(
    ((mut row, message, task_status, failed_attempt), latest): (
        InvocationSummaryRow,
        Option<AttemptRow>,
    ),
) -> Result<InvocationSummary, StoreError> {
    let payload_prefix = row.payload.take();
    let delivery = task_status
        .map(|status| {
            TaskStatus::parse(&status)
                .map(|status| DeliveryStatus::of(status, failed_attempt.unwrap_or(false)))
                .ok_or_else(|| corrupt("task status"))
        })
        .transpose()?;
    Ok(InvocationSummary::from_prefixes(
        row.into_domain(latest)?,
        payload_prefix,
        message,
        delivery,
    ))
}

/// A webhook's invocations of this organization, filtered, newest first, one page and one
/// more.
fn listed_invocations(
    organization_id: OrganizationId,
    webhook_id: WebhookId,
    filter: &InvocationFilter,
    page: PageRequest,
) -> invocations::BoxedQuery<'static, diesel::pg::Pg> {
    let mut query = invocations::table
        .filter(invocations::webhook_id.eq(*webhook_id.as_uuid()))
        .filter(invocations::organization_id.eq(*organization_id.as_uuid()))
        .into_boxed();
    query = match filter.outcome {
        None => query,
        Some(OutcomeFilter::Accepted) => query.filter(invocations::outcome.eq("accepted")),
        Some(OutcomeFilter::Ignored) => query.filter(invocations::outcome.eq("ignored")),
        Some(OutcomeFilter::Rejected) => query.filter(invocations::outcome.eq("rejected")),
        Some(OutcomeFilter::Duplicate) => query.filter(invocations::outcome.eq("duplicate")),
        // Rejected, or accepted and then failed: never ignored, never a duplicate.
        Some(OutcomeFilter::Failed) => {
            let task_failed = exists(
                tasks::table
                    .filter(tasks::id.nullable().eq(invocations::task_id))
                    .filter(tasks::status.eq(TaskStatus::Failed.as_str())),
            );
            query.filter(
                invocations::outcome.eq("rejected").or(invocations::outcome
                    .eq("accepted")
                    .and(
                        invocations::response_succeeded
                            .eq(false)
                            .nullable()
                            .or(task_failed.nullable()),
                    )
                    .assume_not_null()),
            )
        }
    };
    if let Some(event_type) = &filter.event_type {
        query = query.filter(invocations::event_type.eq(event_type.clone()));
    }
    if let Some(ip) = filter.source_ip {
        query = query.filter(invocations::source_ip.eq(ip.to_string()));
    }
    if let Some(since) = filter.since {
        query = query.filter(invocations::received_at.ge(at(since)));
    }
    if let Some(until) = filter.until {
        query = query.filter(invocations::received_at.lt(at(until)));
    }
    if let Some(test) = filter.test {
        query = query.filter(invocations::test.eq(test));
    }
    if let Some(words) = &filter.words {
        query = query.filter(
            sql::<sql_types::Bool>("invocations.search_words @@ ")
                .bind::<sql_types::Text, _>(search::tsquery(words))
                .sql("::tsquery"),
        );
    }
    newest_first!(query, invocations::received_at, invocations::id, page)
}

impl OrganizationStore for PgStore {
    async fn insert_organization(&self, organization: &Organization) -> Result<(), StoreError> {
        self.run(async |conn| {
            diesel::insert_into(organizations::table)
                .values(OrganizationRow::from(organization))
                .execute(conn)
                .await
        })
        .await
        .map(drop)
    }

    async fn organization(&self, id: OrganizationId) -> Result<Organization, StoreError> {
        self.run(async |conn| {
            organizations::table
                .find(id.as_uuid())
                .select(OrganizationRow::as_select())
                .first(conn)
                .await
        })
        .await?
        .try_into()
    }

    async fn update_organization(&self, organization: &Organization) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        let row = OrganizationRow::from(organization);
        let result = conn
            .transaction(async |conn| {
                let updated = diesel::update(organizations::table.find(row.id))
                    .set((
                        organizations::name.eq(&row.name),
                        organizations::rate_limit_per_minute.eq(row.rate_limit_per_minute),
                        organizations::updated_at.eq(row.updated_at),
                    ))
                    .execute(conn)
                    .await?;
                if updated == 0 {
                    return Err(StoreError::NotFound.into());
                }
                announce(conn, Stale::Organization(organization.id)).await?;
                Ok(())
            })
            .await;
        check(result, &mut conn)
    }

    async fn count_organizations(&self) -> Result<u64, StoreError> {
        let count = self
            .run(async |conn| organizations::table.count().get_result::<i64>(conn).await)
            .await?;
        u64::try_from(count).map_err(|_| corrupt("count"))
    }

    async fn organizations(&self) -> Result<Vec<Organization>, StoreError> {
        collect(
            self.run(async |conn| {
                organizations::table
                    .order((organizations::created_at.asc(), organizations::id.asc()))
                    .select(OrganizationRow::as_select())
                    .load(conn)
                    .await
            })
            .await?,
        )
    }

    async fn insert_organization_with_key(
        &self,
        organization: &Organization,
        key: &ApiKey,
        mode: OrganizationInsert,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn().await?;
        let org_row = OrganizationRow::from(organization);
        let key_row = ApiKeyRow::from(key);
        let result = conn
            .transaction(async |conn| {
                if mode == OrganizationInsert::FirstOnly {
                    // Nodes starting together on an empty database: the lock, held until the
                    // transaction ends, makes their count-then-insert run one after the other.
                    diesel::sql_query(format!(
                        "SELECT pg_advisory_xact_lock({FIRST_ORGANIZATION_LOCK})"
                    ))
                    .execute(conn)
                    .await?;
                    let count = organizations::table.count().get_result::<i64>(conn).await?;
                    if count > 0 {
                        return Ok(false);
                    }
                }
                diesel::insert_into(organizations::table)
                    .values(&org_row)
                    .execute(conn)
                    .await?;
                diesel::insert_into(api_keys::table)
                    .values(&key_row)
                    .execute(conn)
                    .await?;
                Ok(true)
            })
            .await;
        check(result, &mut conn)
    }

    async fn insert_api_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        self.run(async |conn| {
            diesel::insert_into(api_keys::table)
                .values(ApiKeyRow::from(key))
                .execute(conn)
                .await
        })
        .await
        .map(drop)
    }

    async fn api_key_by_hash(&self, hash: &ApiKeyHash) -> Result<ApiKey, StoreError> {
        self.run(async |conn| {
            api_keys::table
                .filter(api_keys::hash.eq(&hash.as_bytes()[..]))
                .select(ApiKeyRow::as_select())
                .first(conn)
                .await
        })
        .await?
        .try_into()
    }

    async fn api_keys(&self, organization_id: OrganizationId) -> Result<Vec<ApiKey>, StoreError> {
        collect(
            self.run(async |conn| {
                api_keys::table
                    .filter(api_keys::organization_id.eq(organization_id.as_uuid()))
                    .order((api_keys::created_at.asc(), api_keys::id.asc()))
                    .select(ApiKeyRow::as_select())
                    .load(conn)
                    .await
            })
            .await?,
        )
    }

    async fn delete_api_key(
        &self,
        organization_id: OrganizationId,
        id: ApiKeyId,
    ) -> Result<(), StoreError> {
        match self
            .run(async |conn| {
                diesel::delete(
                    api_keys::table
                        .filter(api_keys::id.eq(id.as_uuid()))
                        .filter(api_keys::organization_id.eq(organization_id.as_uuid())),
                )
                .execute(conn)
                .await
            })
            .await?
        {
            0 => Err(StoreError::NotFound),
            _ => Ok(()),
        }
    }
}

impl TargetStore for PgStore {
    async fn insert_target(&self, target: &Target) -> Result<(), StoreError> {
        self.run(async |conn| {
            diesel::insert_into(targets::table)
                .values(TargetRow::from(target))
                .execute(conn)
                .await
        })
        .await
        .map(drop)
    }

    async fn target(
        &self,
        organization_id: OrganizationId,
        id: TargetId,
    ) -> Result<Target, StoreError> {
        self.run(async |conn| {
            targets::table
                .filter(targets::id.eq(id.as_uuid()))
                .filter(targets::organization_id.eq(organization_id.as_uuid()))
                .filter(not(targets::deleted))
                .select(TargetRow::as_select())
                .first(conn)
                .await
        })
        .await?
        .try_into()
    }

    async fn targets(
        &self,
        organization_id: OrganizationId,
        page: PageRequest,
    ) -> Result<Page<Target>, StoreError> {
        let live = targets::table
            .filter(targets::organization_id.eq(organization_id.as_uuid()))
            .filter(not(targets::deleted))
            .select(TargetRow::as_select())
            .into_boxed();
        let query = newest_first!(live, targets::created_at, targets::id, page);
        let items = collect(self.run(async |conn| query.load(conn).await).await?)?;
        Ok(Page::from_overfetch(items, page, Target::cursor))
    }

    async fn update_target(&self, target: &Target) -> Result<(), StoreError> {
        let row = TargetRow::from(target);
        match self
            .run(async |conn| {
                diesel::update(
                    targets::table
                        .filter(targets::id.eq(row.id))
                        .filter(targets::organization_id.eq(row.organization_id))
                        .filter(not(targets::deleted)),
                )
                .set((
                    targets::kind.eq(&row.kind),
                    targets::name.eq(&row.name),
                    targets::endpoint_url.eq(&row.endpoint_url),
                    targets::signing_secret.eq(&row.signing_secret),
                    targets::updated_at.eq(row.updated_at),
                ))
                .execute(conn)
                .await
            })
            .await?
        {
            0 => Err(StoreError::NotFound),
            _ => Ok(()),
        }
    }

    async fn delete_target(
        &self,
        organization_id: OrganizationId,
        id: TargetId,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        let id = *id.as_uuid();
        let organization_id = *organization_id.as_uuid();
        let result = conn
            .transaction(async |conn| {
                // Locking the target keeps a webhook from being pointed at it meanwhile.
                targets::table
                    .filter(targets::id.eq(id))
                    .filter(targets::organization_id.eq(organization_id))
                    .filter(not(targets::deleted))
                    .select(targets::id)
                    .for_update()
                    .first::<Uuid>(conn)
                    .await?;
                let in_use = diesel::select(exists(
                    webhooks::table
                        .filter(webhooks::target_id.eq(id))
                        .filter(webhooks::status.ne(WebhookStatus::Deleted.as_str())),
                ))
                .get_result::<bool>(conn)
                .await?;
                if in_use {
                    return Err(StoreError::Conflict("a webhook points at the target").into());
                }
                diesel::update(targets::table.find(id))
                    .set(targets::deleted.eq(true))
                    .execute(conn)
                    .await?;
                Ok(())
            })
            .await;
        check(result, &mut conn)
    }
}

/// Locks a live target of the organization against deletion, or says it does not exist.
async fn lock_live_target(
    conn: &mut AsyncPgConnection,
    organization_id: Uuid,
    id: Uuid,
) -> Result<(), TxError> {
    targets::table
        .filter(targets::id.eq(id))
        .filter(targets::organization_id.eq(organization_id))
        .filter(not(targets::deleted))
        .select(targets::id)
        .for_share()
        .first::<Uuid>(conn)
        .await
        .optional()?
        .map(drop)
        .ok_or(TxError::Store(StoreError::NotFound))
}

impl WebhookStore for PgStore {
    async fn insert_webhook(&self, webhook: &Webhook) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        let row = WebhookRow::try_from(webhook)?;
        let result = conn
            .transaction(async |conn| {
                lock_live_target(conn, row.organization_id, row.target_id).await?;
                diesel::insert_into(webhooks::table)
                    .values(&row)
                    .execute(conn)
                    .await?;
                // Other nodes may remember the id as unknown.
                announce(conn, Stale::Webhook(webhook.id)).await?;
                Ok(())
            })
            .await;
        check(result, &mut conn)
    }

    async fn webhook(&self, id: WebhookId) -> Result<Webhook, StoreError> {
        self.run(async |conn| {
            webhooks::table
                .find(id.as_uuid())
                .select(WebhookRow::as_select())
                .first(conn)
                .await
        })
        .await?
        .try_into()
    }

    async fn webhooks(
        &self,
        organization_id: OrganizationId,
        filter: WebhookFilter,
        page: PageRequest,
    ) -> Result<Page<Webhook>, StoreError> {
        let mut query = webhooks::table
            .filter(webhooks::organization_id.eq(organization_id.as_uuid()))
            .select(WebhookRow::as_select())
            .into_boxed();
        let deleted = WebhookStatus::Deleted.as_str();
        query = match filter.status {
            // Saying "not deleted" too keeps the planner on `webhooks_live_by_organization`.
            Some(status @ (WebhookStatus::Active | WebhookStatus::Disabled)) => query
                .filter(webhooks::status.ne(deleted))
                .filter(webhooks::status.eq(status.as_str())),
            Some(WebhookStatus::Deleted) => query.filter(webhooks::status.eq(deleted)),
            None => query.filter(webhooks::status.ne(deleted)),
        };
        let query = newest_first!(query, webhooks::created_at, webhooks::id, page);
        let items = collect(self.run(async |conn| query.load(conn).await).await?)?;
        Ok(Page::from_overfetch(items, page, Webhook::cursor))
    }

    async fn update_webhook(&self, webhook: &Webhook) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        let row = WebhookRow::try_from(webhook)?;
        let result = conn
            .transaction(async |conn| {
                let (status, target_id) = webhooks::table
                    .filter(webhooks::id.eq(row.id))
                    .filter(webhooks::organization_id.eq(row.organization_id))
                    .select((webhooks::status, webhooks::target_id))
                    .for_update()
                    .first::<(String, Uuid)>(conn)
                    .await?;
                if status == WebhookStatus::Deleted.as_str() {
                    return Err(StoreError::Conflict("the webhook is deleted").into());
                }
                if target_id != row.target_id && row.status != WebhookStatus::Deleted.as_str() {
                    lock_live_target(conn, row.organization_id, row.target_id).await?;
                }
                diesel::update(webhooks::table.find(row.id))
                    .set((
                        webhooks::name.eq(&row.name),
                        webhooks::target_id.eq(row.target_id),
                        webhooks::event_types.eq(&row.event_types),
                        webhooks::secret.eq(&row.secret),
                        webhooks::previous_secret.eq(&row.previous_secret),
                        webhooks::previous_secret_expires_at.eq(row.previous_secret_expires_at),
                        webhooks::source.eq(&row.source),
                        webhooks::verification.eq(&row.verification),
                        webhooks::event_type_from.eq(&row.event_type_from),
                        webhooks::dedup_key_from.eq(&row.dedup_key_from),
                        webhooks::instruction_template.eq(&row.instruction_template),
                        webhooks::allowed_source_ips.eq(&row.allowed_source_ips),
                        webhooks::rate_limit_per_minute.eq(row.rate_limit_per_minute),
                        webhooks::status.eq(&row.status),
                        webhooks::updated_at.eq(row.updated_at),
                    ))
                    .execute(conn)
                    .await?;
                announce(conn, Stale::Webhook(webhook.id)).await?;
                Ok(())
            })
            .await;
        check(result, &mut conn)
    }
}

impl InvocationLog for PgStore {
    async fn record_invocation(
        &self,
        invocation: &Invocation,
        task: Option<&Task>,
    ) -> Result<(), StoreError> {
        self.writer.record(invocation, task).await
    }

    async fn record_claimed(
        &self,
        invocation: &Invocation,
        task: Option<&Task>,
        claim: &DeliveryClaim,
    ) -> Result<ClaimOutcome, StoreError> {
        // In the same statement as the invocation and its task, through the group commit.
        self.writer.record_claimed(invocation, task, claim).await
    }

    async fn purge_delivery_claims(&self, before: Timestamp) -> Result<u64, StoreError> {
        let purged = self
            .run(async |conn| {
                diesel::sql_query(PURGE_CLAIMS)
                    .bind::<sql_types::Timestamptz, _>(at(before))
                    .execute(conn)
                    .await
            })
            .await?;
        Ok(u64::try_from(purged).unwrap_or(0))
    }

    async fn invocation(
        &self,
        organization_id: OrganizationId,
        id: InvocationId,
    ) -> Result<Invocation, StoreError> {
        let ((row, request), latest) = self
            .run(async |conn| {
                let found = invocations::table
                    .filter(invocations::id.eq(id.as_uuid()))
                    .filter(invocations::organization_id.eq(organization_id.as_uuid()))
                    .select((InvocationRow::as_select(), RequestRow::as_select()))
                    .first::<(InvocationRow, RequestRow)>(conn)
                    .await?;
                let mut rows = with_latest_attempts(conn, vec![found], |(row, _)| row).await?;
                QueryResult::Ok(rows.remove(0))
            })
            .await?;
        request.fill(row.into_domain(latest)?)
    }

    async fn invocations(
        &self,
        organization_id: OrganizationId,
        webhook_id: WebhookId,
        filter: &InvocationFilter,
        page: PageRequest,
    ) -> Result<Page<Invocation>, StoreError> {
        let query = listed_invocations(organization_id, webhook_id, filter, page)
            .select((InvocationRow::as_select(), RequestRow::as_select()));
        let items = self
            .run(async |conn| {
                let rows = query.load::<(InvocationRow, RequestRow)>(conn).await?;
                with_latest_attempts(conn, rows, |(row, _)| row).await
            })
            .await?
            .into_iter()
            .map(|((row, request), latest)| request.fill(row.into_domain(latest)?))
            .collect::<Result<Vec<Invocation>, StoreError>>()?;
        Ok(Page::from_overfetch(items, page, Invocation::cursor))
    }

    async fn webhook_health(
        &self,
        organization_id: OrganizationId,
        webhook_ids: &[WebhookId],
        since: Timestamp,
    ) -> Result<Vec<WebhookHealth>, StoreError> {
        if webhook_ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<Uuid> = webhook_ids.iter().map(|id| *id.as_uuid()).collect();
        let rows = self
            .run(async |conn| {
                diesel::sql_query(HEALTH)
                    .bind::<sql_types::Array<sql_types::Uuid>, _>(&ids)
                    .bind::<sql_types::Uuid, _>(organization_id.as_uuid())
                    .bind::<sql_types::Timestamptz, _>(at(since))
                    .load::<HealthRow>(conn)
                    .await
            })
            .await?;
        let found = rows
            .into_iter()
            .map(HealthRow::into_domain)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(WebhookHealth::in_order_of(webhook_ids, found))
    }

    async fn invocation_summaries(
        &self,
        organization_id: OrganizationId,
        webhook_id: WebhookId,
        filter: &InvocationFilter,
        page: PageRequest,
    ) -> Result<Page<InvocationSummary>, StoreError> {
        let query = listed_invocations(organization_id, webhook_id, filter, page).select((
            (
                invocations::id,
                invocations::organization_id,
                invocations::webhook_id,
                invocations::received_at,
                invocations::source_ip,
                invocations::event_type,
                sql::<sql_types::Nullable<sql_types::Text>>(PAYLOAD_PREFIX),
                invocations::outcome,
                invocations::http_status,
                invocations::error_code,
                invocations::task_id,
                invocations::repeat_count,
                invocations::test,
                invocations::response_succeeded,
                invocations::delivery_id,
                invocations::duplicate_of,
                invocations::instruction_fallback,
            ),
            sql::<sql_types::Nullable<sql_types::Text>>(MESSAGE_PREFIX),
            sql::<sql_types::Nullable<sql_types::Text>>(TASK_STATUS),
            sql::<sql_types::Nullable<sql_types::Bool>>(TASK_FAILED_ATTEMPT),
        ));
        let items = self
            .run(async |conn| {
                let rows = query.load::<InvocationSummaryRow>(conn).await?;
                with_latest_attempts(conn, rows, |(row, ..)| row).await
            })
            .await?
            .into_iter()
            .map(invocation_summary)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_overfetch(
            items,
            page,
            |s: &InvocationSummary| s.invocation.cursor(),
        ))
    }

    async fn check_writable(&self) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        // A transaction that takes a transaction id writes a commit record, and fails on a
        // read-only server (a standby, `default_transaction_read_only`).
        let result = conn
            .transaction(async |conn| {
                diesel::sql_query("SELECT pg_current_xact_id()")
                    .execute(conn)
                    .await?;
                Ok(())
            })
            .await;
        check(result, &mut conn)
    }

    async fn purge_invocations(&self, before: Timestamp) -> Result<u64, StoreError> {
        // Tasks and their attempts go with their invocation, in the same statement. Webhooks
        // keep the latest accepted invocation deleted, for their `last_triggered_at`.
        let purged = self
            .run(async |conn| {
                diesel::sql_query(PURGE)
                    .bind::<sql_types::Timestamptz, _>(at(before))
                    .get_result::<Purged>(conn)
                    .await
            })
            .await?;
        Ok(u64::try_from(purged.deleted).unwrap_or(0))
    }
}

/// The health of the webhooks `$1` of the organization `$2` from `$3` on, in one statement for
/// a page of webhooks: each webhook's invocations of the window, walked through
/// `invocations_by_webhook`. A failure is what the log's `failed` filter selects; the failed
/// tasks are read once, as a set (through `tasks_by_status`), and joined, instead of looking
/// each accepted invocation's task up: a task is created with its invocation's `received_at`
/// as its `created_at` (`Task::queued`), so the window's failed tasks are those created in it.
const HEALTH: &str = "\
SELECT webhook_id,
       count(*) FILTER (WHERE outcome = 'accepted') AS accepted,
       coalesce(sum(repeat_count) FILTER (WHERE failure), 0)::bigint AS failed,
       max(received_at) FILTER (WHERE failure) AS last_failure_at
FROM (
    SELECT i.webhook_id, i.outcome, i.repeat_count, i.received_at,
           (i.outcome = 'rejected' OR (i.outcome = 'accepted'
             AND (i.response_succeeded = false OR t.id IS NOT NULL))) AS failure
    FROM invocations i
    LEFT JOIN tasks t ON t.id = i.task_id AND t.status = 'failed'
        AND t.organization_id = $2 AND t.created_at >= $3
    WHERE i.webhook_id = ANY($1) AND i.organization_id = $2 AND i.received_at >= $3
) window_of_log
GROUP BY webhook_id";

/// A row of [`HEALTH`].
#[derive(QueryableByName)]
struct HealthRow {
    #[diesel(sql_type = sql_types::Uuid)]
    webhook_id: Uuid,
    #[diesel(sql_type = sql_types::BigInt)]
    accepted: i64,
    #[diesel(sql_type = sql_types::BigInt)]
    failed: i64,
    #[diesel(sql_type = sql_types::Nullable<sql_types::Timestamptz>)]
    last_failure_at: Option<time::OffsetDateTime>,
}

impl HealthRow {
    fn into_domain(self) -> Result<(WebhookId, WebhookHealth), StoreError> {
        let count = |n: i64| u64::try_from(n).map_err(|_| corrupt("health count"));
        Ok((
            WebhookId::from_uuid(self.webhook_id),
            WebhookHealth {
                accepted: count(self.accepted)?,
                failed: count(self.failed)?,
                last_failure_at: self.last_failure_at.map(ts),
            },
        ))
    }
}

/// Deletes the delivery-id claims made before `$1`. Their rows are locked in key order, as a
/// batch claiming ids takes them, so that the purge and a batch taking over lapsed claims never
/// wait for each other in a cycle; a claim taken over meanwhile is no longer before `$1`, and
/// stays.
const PURGE_CLAIMS: &str = "\
DELETE FROM delivery_claims d USING (
    SELECT webhook_id, delivery_id FROM delivery_claims WHERE claimed_at < $1
    ORDER BY webhook_id, delivery_id
    FOR UPDATE
) lapsed
WHERE d.webhook_id = lapsed.webhook_id AND d.delivery_id = lapsed.delivery_id";

/// Deletes the finished invocations received before `$1`, with their tasks and attempts, and
/// moves `webhooks.last_triggered_at` to the latest accepted invocation deleted, which reads of
/// a webhook no longer find among its invocations. Answers the number deleted.
///
/// One statement, so nothing is left half purged. No foreign key cascades from an invocation
/// to its task: the statement deletes the task its invocation names (`invocations.task_id`,
/// through `tasks_pkey`; the store writes both in one statement, each naming the other), and
/// the task's attempts go with it (`delivery_attempts` cascades). It walks each webhook's log
/// through `invocations_by_webhook` (every invocation has its webhook: a foreign key), which
/// makes the hourly pass cost a descent per webhook and the rows it deletes. It also deletes
/// finished tasks from before `$1` whose invocation is gone, as a purge of the release before
/// the cascade was dropped leaves them during a rolling upgrade (through `tasks_by_status`).
const PURGE: &str = "\
WITH gone AS (
    DELETE FROM invocations i USING webhooks w
    WHERE i.webhook_id = w.id AND i.received_at < $1 AND NOT EXISTS
        (SELECT 1 FROM tasks t WHERE t.id = i.task_id AND t.invocation_id = i.id
         AND t.status NOT IN ('completed', 'failed'))
    RETURNING i.id, i.webhook_id, i.received_at, i.outcome, i.task_id
), their_tasks AS (
    DELETE FROM tasks t USING gone WHERE t.id = gone.task_id AND t.invocation_id = gone.id
), left_over AS (
    DELETE FROM tasks t USING organizations o
    WHERE t.organization_id = o.id AND t.created_at < $1
      AND t.status IN ('completed', 'failed')
      AND NOT EXISTS (SELECT 1 FROM invocations i WHERE i.id = t.invocation_id)
), kept AS (
    UPDATE webhooks w SET last_triggered_at = latest.at
    FROM (SELECT webhook_id, max(received_at) AS at FROM gone
          WHERE outcome = 'accepted' GROUP BY webhook_id) latest
    WHERE w.id = latest.webhook_id
      AND (w.last_triggered_at IS NULL OR w.last_triggered_at < latest.at)
)
SELECT count(*) AS deleted FROM gone";

#[derive(QueryableByName)]
struct Purged {
    #[diesel(sql_type = sql_types::BigInt)]
    deleted: i64,
}

/// Leases up to `limit` due tasks in one statement and answers them with their invocation's
/// payload and their target's endpoint and secret; the oldest due first, passing over the
/// targets in `$5`. Driven by the live targets that have an endpoint, each walking its own
/// range of the `tasks_claimable` index, so that the queued tasks of targets without an
/// endpoint (they stay on the board) are never walked whatever the planner's estimates. Each
/// target locks at most `limit` rows, and no more than the claim may take of one target (`$8`);
/// those left over are released when the statement commits.
/// A target with a floor (`$6`, `$7`) starts its walk there: the entries of its delivered tasks
/// stay in the index until a vacuum, and without the floor every claim would walk them again.
///
/// The statement's commit does not wait for its WAL to reach the disk (`synchronous_commit`
/// off for this transaction alone): a lease is visible to every other claim as soon as it
/// commits, and one lost in a crash of the database only makes its task claimable again,
/// which at-least-once delivery allows. The next durable commit (an attempt's) flushes it.
const CLAIM: &str = "\
WITH asynchronous AS (
    SELECT set_config('synchronous_commit', 'off', true) AS setting
), due AS (
    SELECT c.id FROM targets g
    LEFT JOIN unnest($6::uuid[], $7::timestamptz[]) AS f (target_id, due_at)
        ON f.target_id = g.id
    CROSS JOIN LATERAL (
        SELECT t.id, t.next_attempt_at FROM tasks t
        WHERE t.target_id = g.id AND t.status = 'queued' AND t.next_attempt_at <= $1
          AND t.next_attempt_at >= coalesce(f.due_at, '-infinity')
          AND (t.lease_until IS NULL OR t.lease_until <= $1)
        ORDER BY t.next_attempt_at, t.id
        LIMIT least($4, $8)
        FOR UPDATE OF t SKIP LOCKED
    ) c
    WHERE NOT g.deleted AND g.endpoint_url IS NOT NULL AND g.id <> ALL($5)
    ORDER BY c.next_attempt_at, c.id
    LIMIT $4
), leased AS (
    UPDATE tasks SET lease_token = $2, lease_until = $3
    FROM due, asynchronous WHERE tasks.id = due.id AND asynchronous.setting = 'off'
    RETURNING tasks.id, tasks.organization_id, tasks.target_id, tasks.webhook_id,
        tasks.invocation_id, tasks.instruction, tasks.context, tasks.event_type, tasks.status,
        tasks.test, tasks.source_verified, tasks.source_ip, tasks.source_received_at,
        tasks.attempts, tasks.next_attempt_at, tasks.last_error, tasks.created_at,
        tasks.updated_at, tasks.attempts_before_round, tasks.source_provider
)
SELECT leased.*, i.payload, g.endpoint_url, g.signing_secret
FROM leased
JOIN invocations i ON i.id = leased.invocation_id
JOIN targets g ON g.id = leased.target_id
ORDER BY leased.next_attempt_at, leased.id";

/// [`CLAIM`] with its parameters.
struct Claim {
    now: time::OffsetDateTime,
    token: Uuid,
    until: time::OffsetDateTime,
    limit: i64,
    skip_targets: Vec<Uuid>,
    floor_targets: Vec<Uuid>,
    floors: Vec<time::OffsetDateTime>,
    per_target: i64,
}

impl QueryId for Claim {
    type QueryId = Self;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl Query for Claim {
    type SqlType = sql_types::Untyped;
}

impl QueryFragment<Pg> for Claim {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> diesel::QueryResult<()> {
        prepared::push_sql(&mut out, CLAIM, |number, out| match number {
            1 => out.push_bind_param::<sql_types::Timestamptz, _>(&self.now),
            2 => out.push_bind_param::<sql_types::Uuid, _>(&self.token),
            3 => out.push_bind_param::<sql_types::Timestamptz, _>(&self.until),
            4 => out.push_bind_param::<sql_types::BigInt, _>(&self.limit),
            5 => out.push_bind_param::<sql_types::Array<sql_types::Uuid>, _>(&self.skip_targets),
            6 => out.push_bind_param::<sql_types::Array<sql_types::Uuid>, _>(&self.floor_targets),
            7 => out.push_bind_param::<sql_types::Array<sql_types::Timestamptz>, _>(&self.floors),
            8 => out.push_bind_param::<sql_types::BigInt, _>(&self.per_target),
            other => Err(prepared::no_parameter(other)),
        })
    }
}

/// A task [`CLAIM`] leased, with what its delivery needs.
#[derive(QueryableByName)]
struct ClaimedRow {
    #[diesel(embed)]
    task: TaskRow,
    #[diesel(sql_type = sql_types::Nullable<sql_types::Text>)]
    payload: Option<String>,
    #[diesel(sql_type = sql_types::Nullable<sql_types::Text>)]
    endpoint_url: Option<String>,
    #[diesel(sql_type = sql_types::Binary)]
    signing_secret: Vec<u8>,
}

/// Narrows a boxed query of the board to the tasks a [`TaskFilter`] asks for.
macro_rules! on_board {
    ($query:expr, $filter:expr) => {{
        let mut query = $query;
        if let Some(target_id) = $filter.target_id {
            query = query.filter(tasks::target_id.eq(*target_id.as_uuid()));
        }
        if let Some(status) = $filter.status {
            query = query.filter(tasks::status.eq(status.as_str()));
        }
        query
    }};
}

/// Counts the tasks waiting for delivery over the `tasks_claimable` index.
const QUEUE_STATS: &str = "\
SELECT count(*) AS queued,
       count(*) FILTER (WHERE t.next_attempt_at <= $1) AS due,
       min(t.created_at) AS oldest
FROM tasks t JOIN targets g ON g.id = t.target_id
WHERE t.status = 'queued' AND NOT g.deleted AND g.endpoint_url IS NOT NULL";

#[derive(QueryableByName)]
struct StatsRow {
    #[diesel(sql_type = sql_types::BigInt)]
    queued: i64,
    #[diesel(sql_type = sql_types::BigInt)]
    due: i64,
    #[diesel(sql_type = sql_types::Nullable<sql_types::Timestamptz>)]
    oldest: Option<time::OffsetDateTime>,
}

impl TaskQueue for PgStore {
    async fn task(&self, organization_id: OrganizationId, id: TaskId) -> Result<Task, StoreError> {
        self.run(async |conn| load_task(conn, Some(organization_id), id).await)
            .await
    }

    async fn tasks(
        &self,
        organization_id: OrganizationId,
        filter: TaskFilter,
        page: PageRequest,
    ) -> Result<Page<Task>, StoreError> {
        let query = tasks::table
            .inner_join(invocations::table)
            .filter(tasks::organization_id.eq(organization_id.as_uuid()))
            .select((TaskRow::as_select(), invocations::payload))
            .into_boxed();
        let query = newest_first!(on_board!(query, filter), tasks::created_at, tasks::id, page);
        let items = tasks_from(
            self.run(async |conn| query.load::<(TaskRow, Option<String>)>(conn).await)
                .await?,
        )?;
        Ok(Page::from_overfetch(items, page, Task::cursor))
    }

    async fn task_summaries(
        &self,
        organization_id: OrganizationId,
        filter: TaskFilter,
        page: PageRequest,
    ) -> Result<Page<TaskSummary>, StoreError> {
        let query = tasks::table
            .filter(tasks::organization_id.eq(organization_id.as_uuid()))
            .select((
                tasks::id,
                tasks::organization_id,
                tasks::target_id,
                tasks::webhook_id,
                tasks::invocation_id,
                tasks::instruction,
                // The context is left unread.
                sql::<sql_types::Nullable<sql_types::Text>>("NULL"),
                tasks::event_type,
                tasks::status,
                tasks::test,
                tasks::source_verified,
                tasks::source_ip,
                tasks::source_received_at,
                tasks::attempts,
                tasks::next_attempt_at,
                tasks::last_error,
                tasks::created_at,
                tasks::updated_at,
                tasks::attempts_before_round,
                tasks::source_provider,
            ))
            .into_boxed();
        let query = newest_first!(on_board!(query, filter), tasks::created_at, tasks::id, page);
        let items = self
            .run(async |conn| query.load::<TaskRow>(conn).await)
            .await?
            .into_iter()
            .map(TaskRow::into_summary)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_overfetch(items, page, TaskSummary::cursor))
    }

    async fn set_task_status(
        &self,
        organization_id: OrganizationId,
        id: TaskId,
        change: TaskStatusChange,
    ) -> Result<Task, StoreError> {
        let mut conn = self.conn().await?;
        let result = conn
            .transaction(async |conn| {
                let target = tasks::table
                    .filter(tasks::id.eq(id.as_uuid()))
                    .filter(tasks::organization_id.eq(organization_id.as_uuid()))
                    .filter(tasks::status.eq(change.from.as_str()));
                // Any status change ends a lease; a new round is written as the change gives it.
                let updated = if let Some(round) = change.round {
                    let attempts_before = int(round.attempts_before);
                    diesel::update(target.filter(tasks::attempts.eq(attempts_before)))
                        .set((
                            tasks::status.eq(change.to.as_str()),
                            tasks::updated_at.eq(at(change.at)),
                            tasks::next_attempt_at.eq(at(round.due_at)),
                            tasks::attempts_before_round.eq(attempts_before),
                            tasks::last_error.eq(None::<String>),
                            tasks::lease_token.eq(None::<Uuid>),
                            tasks::lease_until.eq(None::<time::OffsetDateTime>),
                        ))
                        .execute(conn)
                        .await?
                } else {
                    diesel::update(target)
                        .set((
                            tasks::status.eq(change.to.as_str()),
                            tasks::updated_at.eq(at(change.at)),
                            tasks::lease_token.eq(None::<Uuid>),
                            tasks::lease_until.eq(None::<time::OffsetDateTime>),
                        ))
                        .execute(conn)
                        .await?
                };
                if updated == 0 {
                    // Absent (NotFound), no longer `from` or after another round (Conflict).
                    load_task(conn, Some(organization_id), id).await?;
                    return Err(StoreError::Conflict("the task's status changed").into());
                }
                load_task(conn, Some(organization_id), id).await
            })
            .await;
        check(result, &mut conn)
    }

    async fn claim_tasks(&self, claim: ClaimRequest<'_>) -> Result<Vec<ClaimedTask>, StoreError> {
        if claim.limit == 0 {
            return Ok(Vec::new());
        }
        let until = claim.lease_until();
        self.run(async |conn| {
            Claim {
                now: at(claim.now),
                token: claim.token,
                until: at(until),
                limit: i64::from(claim.limit),
                skip_targets: claim
                    .skip_targets
                    .iter()
                    .map(|target| *target.as_uuid())
                    .collect(),
                floor_targets: claim
                    .floors
                    .iter()
                    .map(|floor| *floor.target_id.as_uuid())
                    .collect(),
                floors: claim.floors.iter().map(|floor| at(floor.due_at)).collect(),
                per_target: i64::from(claim.per_target),
            }
            .load::<ClaimedRow>(conn)
            .await
        })
        .await?
        .into_iter()
        .map(|row| {
            let task = row.task.into_task(row.payload)?;
            let endpoint_url = endpoint(
                row.endpoint_url
                    .as_deref()
                    .ok_or_else(|| corrupt("claimed target without endpoint"))?,
            )?;
            Ok(ClaimedTask {
                lease: Lease {
                    task_id: task.id,
                    token: claim.token,
                    until,
                },
                task,
                endpoint_url,
                signing_secret: webhook_domain::model::SealedSecret::from_bytes(row.signing_secret),
            })
        })
        .collect()
    }

    async fn finish_attempt(
        &self,
        lease: &Lease,
        attempt: &DeliveryAttempt,
        verdict: AttemptVerdict,
    ) -> Result<Task, StoreError> {
        let attempt = AttemptRow::from(attempt);
        let finish = FinishAttempt::new(lease, &attempt, verdict);
        self.run(async |conn| {
            if finish.execute(conn).await? == 0 {
                return Err(StoreError::Conflict("the lease is no longer held").into());
            }
            load_task(conn, None, lease.task_id).await
        })
        .await
    }

    async fn finish_attempts(&self, finished: &[FinishedAttempt]) -> Vec<Result<(), StoreError>> {
        attempt::finish_attempts(&self.inner, finished).await
    }

    async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        match self
            .run(async |conn| ReleaseLease(lease).execute(conn).await)
            .await?
        {
            0 => Err(StoreError::Conflict("the lease is no longer held")),
            _ => Ok(()),
        }
    }

    async fn queue_stats(&self, now: Timestamp) -> Result<QueueStats, StoreError> {
        let row = self
            .run(async |conn| {
                diesel::sql_query(QUEUE_STATS)
                    .bind::<sql_types::Timestamptz, _>(at(now))
                    .get_result::<StatsRow>(conn)
                    .await
            })
            .await?;
        let count = |n: i64| u64::try_from(n).map_err(|_| corrupt("negative task count"));
        Ok(QueueStats {
            queued: count(row.queued)?,
            due: count(row.due)?,
            oldest_queued_at: row.oldest.map(ts),
        })
    }

    async fn delivery_attempts(
        &self,
        organization_id: OrganizationId,
        id: TaskId,
    ) -> Result<Vec<DeliveryAttempt>, StoreError> {
        let mut conn = self.conn().await?;
        let result = conn
            .transaction(async |conn| {
                tasks::table
                    .filter(tasks::id.eq(id.as_uuid()))
                    .filter(tasks::organization_id.eq(organization_id.as_uuid()))
                    .select(tasks::id)
                    .first::<Uuid>(conn)
                    .await?;
                let rows = delivery_attempts::table
                    .filter(delivery_attempts::task_id.eq(id.as_uuid()))
                    .order(delivery_attempts::number.asc())
                    .select(AttemptRow::as_select())
                    .load(conn)
                    .await?;
                Ok::<_, TxError>(rows)
            })
            .await;
        collect(check(result, &mut conn)?)
    }
}

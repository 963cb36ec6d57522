//! `InvocationLog`: the invocation log, and the one write that accepts an event.

use std::collections::HashMap;

use diesel::connection::SimpleConnection as _;
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, QueryFragment};
use diesel::sql_types::{BigInt, Binary, Bool, Integer, Nullable, Text};
use diesel::sqlite::Sqlite;
use webhook_domain::model::{
    ClaimOutcome, DeliveryClaim, DeliveryStatus, Invocation, InvocationFilter, InvocationId,
    InvocationOutcome, InvocationSummary, MESSAGE_PREVIEW_CHARS, OrganizationId, OutcomeFilter,
    PAYLOAD_EXCERPT_BYTES, Page, PageRequest, Payload, RequestRecord, Task, TaskId, TaskStatus,
    Timestamp, WebhookHealth, WebhookId,
};
use webhook_domain::ports::{InvocationLog, StoreError};

use super::claim_reads::id_list;
use super::{converted, overfetch};
use crate::SqliteStore;
use crate::error::Failure;
use crate::prepared::fixed_text;
use crate::rows::{AttemptRow, InvocationRow, RequestRow, id, uuid};
use crate::schema::{delivery_claims, invocations, tasks, webhooks};
use crate::search;

/// `OutcomeFilter::Failed`: rejected, or accepted with a failed latest attempt or a failed task
/// (never ignored or a duplicate).
const FAILED: &str = "(invocations.outcome = 'rejected' OR (invocations.outcome = 'accepted' \
     AND (invocations.response_succeeded = 0 OR EXISTS (SELECT 1 FROM tasks \
     WHERE tasks.id = invocations.task_id AND tasks.status = 'failed'))))";

/// The health of webhooks over a window of the log, in one statement for a page of webhooks:
/// each webhook's invocations from the window's start on, walked through
/// `invocations_by_webhook`. A failure is what [`FAILED`] selects; the failed tasks are read
/// once, as a set (through `tasks_by_status`), instead of looking each accepted invocation's
/// task up: a task is created with its invocation's `received_at` as its `created_at`
/// (`Task::queued`), so the window's failed tasks are those created in it. Followed by the
/// webhook ids' placeholders (`?3` on) and [`HEALTH_END`]; binds the organization (`?1`), the
/// window's start (`?2`), then the ids.
const HEALTH: &str = "SELECT webhook_id, \
     sum(outcome = 'accepted') AS accepted, \
     sum(CASE WHEN failure THEN repeat_count ELSE 0 END) AS failed, \
     max(CASE WHEN failure THEN received_at END) AS last_failure_at \
     FROM (SELECT i.webhook_id, i.outcome, i.repeat_count, i.received_at, \
         (i.outcome = 'rejected' OR (i.outcome = 'accepted' AND (i.response_succeeded = 0 \
           OR i.task_id IN (SELECT t.id FROM tasks AS t WHERE t.organization_id = ?1 \
             AND t.status = 'failed' AND t.created_at >= ?2)))) AS failure \
       FROM invocations AS i \
       WHERE i.organization_id = ?1 AND i.received_at >= ?2 AND i.webhook_id IN (";

/// The end of [`HEALTH`], after its placeholders.
const HEALTH_END: &str = ")) GROUP BY webhook_id";

/// A row of [`HEALTH`].
#[derive(QueryableByName)]
struct HealthRow {
    #[diesel(sql_type = Binary)]
    webhook_id: Vec<u8>,
    #[diesel(sql_type = BigInt)]
    accepted: i64,
    #[diesel(sql_type = BigInt)]
    failed: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    last_failure_at: Option<i64>,
}

impl HealthRow {
    fn into_domain(self) -> Result<(WebhookId, WebhookHealth), Failure> {
        let count = |n: i64| u64::try_from(n).map_err(|_| Failure::corrupt("health count"));
        Ok((
            WebhookId::from_uuid(uuid(&self.webhook_id, "health webhook id")?),
            WebhookHealth {
                accepted: count(self.accepted)?,
                failed: count(self.failed)?,
                last_failure_at: self.last_failure_at.map(Timestamp::from_unix_micros),
            },
        ))
    }
}

/// The first characters of the payload: enough for [`PAYLOAD_EXCERPT_BYTES`] bytes, however
/// many bytes each character takes, and never the whole of a large payload.
const PAYLOAD_PREFIX: &str = "substr(invocations.payload, 1, 1024)";

/// The first characters of the payload's `message`, when it is a string.
const MESSAGE_PREFIX: &str = "(CASE WHEN json_type(invocations.payload, '$.message') = 'text' \
     THEN substr(json_extract(invocations.payload, '$.message'), 1, 200) END)";

/// The status of the invocation's task.
const TASK_STATUS: &str = "(SELECT tasks.status FROM tasks WHERE tasks.id = invocations.task_id)";

/// Whether the latest attempt of the task's round failed.
const TASK_FAILED_ATTEMPT: &str =
    "(SELECT tasks.last_error IS NOT NULL FROM tasks WHERE tasks.id = invocations.task_id)";

const _: () = assert!(PAYLOAD_EXCERPT_BYTES == 1024 && MESSAGE_PREVIEW_CHARS == 200);

/// An invocation row with a payload prefix in place of the payload, its message's prefix, and
/// its task's status and whether the task's latest attempt failed.
type SummaryRow = (InvocationRow, Option<String>, Option<String>, Option<bool>);

fn summary_of(
    ((mut row, message, task_status, failed_attempt), latest): (SummaryRow, Option<AttemptRow>),
) -> Result<InvocationSummary, Failure> {
    let payload_prefix = row.take_payload();
    let delivery = task_status
        .map(|status| {
            TaskStatus::parse(&status)
                .map(|status| DeliveryStatus::of(status, failed_attempt.unwrap_or(false)))
                .ok_or_else(|| Failure::corrupt("task status"))
        })
        .transpose()?;
    Ok(InvocationSummary::from_prefixes(
        row.into_domain(latest)?,
        payload_prefix,
        message,
        delivery,
    ))
}

/// The latest attempt of each task of `?` (an [`id_list`]) that has had one. SQLite answers the
/// bare columns of a query with `max()` from the row that holds the maximum, so each task's row
/// is its latest attempt's; a task's attempts are found through the primary key (task, number).
const LATEST_ATTEMPTS: &str = "SELECT task_id, max(number) AS number, status_code, \
     body_excerpt, latency_ms, error, at, succeeded FROM delivery_attempts \
     WHERE task_id IN (SELECT unhex(value) FROM json_each(?)) GROUP BY task_id";

/// `rows`, each with the latest attempt of the task that answered its invocation
/// ([`InvocationRow::answered_task`]): the target's response, which the invocation does not keep
/// but for whether it succeeded. One statement for all the rows.
fn with_latest_attempts<R>(
    conn: &mut SqliteConnection,
    rows: Vec<R>,
    row: impl Fn(&R) -> &InvocationRow,
) -> QueryResult<Vec<(R, Option<AttemptRow>)>> {
    let answered: Vec<String> = rows
        .iter()
        .filter_map(|r| row(r).answered_task())
        .filter_map(|task| uuid::Uuid::from_slice(task).ok())
        .map(|task| task.simple().to_string())
        .collect();
    let mut latest = if answered.is_empty() {
        HashMap::new()
    } else {
        diesel::sql_query(LATEST_ATTEMPTS)
            .bind::<Text, _>(id_list(&answered))
            .load::<AttemptRow>(conn)?
            .into_iter()
            .map(|attempt| (attempt.task_key().to_vec(), attempt))
            .collect()
    };
    Ok(rows
        .into_iter()
        .map(|r| {
            let attempt = row(&r).answered_task().and_then(|task| latest.remove(task));
            (r, attempt)
        })
        .collect())
}

/// A webhook's invocations of this organization, filtered (but for `filter.words`, which
/// [`SqliteStore::log`] applies), newest first, one page and one more.
///
/// With `among`, only those invocations (the matches of a search, a few thousand at most) are
/// read, each by its id: the unary `+` keeps SQLite from walking the webhook's index or the
/// time index instead, which it would otherwise prefer for the order, through the whole log.
fn listed(
    organization_id: OrganizationId,
    webhook_id: WebhookId,
    filter: &InvocationFilter,
    page: PageRequest,
    among: Option<Vec<Vec<u8>>>,
) -> invocations::BoxedQuery<'static, Sqlite> {
    let webhook = id(webhook_id.as_uuid());
    let organization = id(organization_id.as_uuid());
    let by_id = among.is_some();
    let mut query = match among {
        None => invocations::table
            .filter(invocations::webhook_id.eq(webhook))
            .filter(invocations::organization_id.eq(organization))
            .into_boxed(),
        Some(ids) => invocations::table
            .filter(invocations::id.eq_any(ids))
            .filter(sql::<Bool>("+invocations.webhook_id = ").bind::<Binary, _>(webhook))
            .filter(sql::<Bool>("+invocations.organization_id = ").bind::<Binary, _>(organization))
            .into_boxed(),
    };
    query = match filter.outcome {
        None => query,
        Some(OutcomeFilter::Accepted) => query.filter(invocations::outcome.eq("accepted")),
        Some(OutcomeFilter::Ignored) => query.filter(invocations::outcome.eq("ignored")),
        Some(OutcomeFilter::Rejected) => query.filter(invocations::outcome.eq("rejected")),
        Some(OutcomeFilter::Duplicate) => query.filter(invocations::outcome.eq("duplicate")),
        Some(OutcomeFilter::Failed) => query.filter(sql::<Bool>(FAILED)),
    };
    if let Some(event_type) = &filter.event_type {
        query = query.filter(invocations::event_type.eq(event_type.clone()));
    }
    if let Some(ip) = filter.source_ip {
        query = query.filter(invocations::source_ip.eq(ip.to_string()));
    }
    if let Some(since) = filter.since {
        query = query.filter(invocations::received_at.ge(since.unix_micros()));
    }
    if let Some(until) = filter.until {
        query = query.filter(invocations::received_at.lt(until.unix_micros()));
    }
    if let Some(test) = filter.test {
        query = query.filter(invocations::test.eq(test));
    }
    if let Some(after) = page.after {
        let at = after.at.unix_micros();
        query = query.filter(
            invocations::received_at.lt(at).or(invocations::received_at
                .eq(at)
                .and(invocations::id.lt(id(&after.id)))),
        );
    }
    let query = if by_id {
        query.order((
            sql::<BigInt>("+invocations.received_at").desc(),
            invocations::id.desc(),
        ))
    } else {
        query.order((invocations::received_at.desc(), invocations::id.desc()))
    };
    query.limit(overfetch(page))
}

/// Moves the webhook's `last_triggered_at` forward to the invocation's time; touches one row
/// exactly when the webhook is the organization's.
///
/// A statement of its own rather than `diesel::update`, which diesel never keeps prepared (a
/// changeset may leave columns out): this one runs for every accepted event, and parsing it
/// again each time cost as much as running it.
struct TouchWebhook<'a> {
    at: i64,
    webhook_id: &'a [u8],
    organization_id: &'a [u8],
}

impl QueryFragment<Sqlite> for TouchWebhook<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        out.push_sql("UPDATE webhooks SET last_triggered_at = max(coalesce(last_triggered_at, ");
        out.push_bind_param::<BigInt, _>(&self.at)?;
        out.push_sql("), ");
        out.push_bind_param::<BigInt, _>(&self.at)?;
        out.push_sql(") WHERE id = ");
        out.push_bind_param::<Binary, _>(self.webhook_id)?;
        out.push_sql(" AND organization_id = ");
        out.push_bind_param::<Binary, _>(self.organization_id)?;
        Ok(())
    }
}

fixed_text!(TouchWebhook);

fn touch_webhook(conn: &mut SqliteConnection, inv: &Invocation) -> Result<bool, Failure> {
    let touched = TouchWebhook {
        at: inv.received_at.unix_micros(),
        webhook_id: inv.webhook_id.as_uuid().as_bytes(),
        organization_id: inv.organization_id.as_uuid().as_bytes(),
    }
    .execute(conn)?;
    Ok(touched == 1)
}

/// Claims a delivery id on a webhook for an invocation (and its task): inserts the claim, or
/// takes over one made before `window_start`, which has lapsed. Touches no row when the claim
/// is held, made at or after `window_start`.
///
/// One statement, so that the primary key decides: the store's one writer runs claims one
/// after another, and a claim made earlier in the same transaction (another event of the same
/// group commit) is held like a committed one. Written by hand, as [`TouchWebhook`] is, so
/// that the statement stays prepared.
struct ClaimDelivery<'a> {
    webhook_id: &'a [u8],
    delivery_id: &'a str,
    invocation_id: &'a [u8],
    task_id: Option<&'a [u8]>,
    claimed_at: i64,
    window_start: i64,
}

impl QueryFragment<Sqlite> for ClaimDelivery<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        out.push_sql(
            "INSERT INTO delivery_claims \
             (webhook_id, delivery_id, invocation_id, task_id, claimed_at) VALUES (",
        );
        out.push_bind_param::<Binary, _>(self.webhook_id)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(self.delivery_id)?;
        out.push_sql(", ");
        out.push_bind_param::<Binary, _>(self.invocation_id)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<Binary>, _>(&self.task_id)?;
        out.push_sql(", ");
        out.push_bind_param::<BigInt, _>(&self.claimed_at)?;
        out.push_sql(
            ") ON CONFLICT (webhook_id, delivery_id) DO UPDATE SET \
             invocation_id = excluded.invocation_id, task_id = excluded.task_id, \
             claimed_at = excluded.claimed_at WHERE delivery_claims.claimed_at < ",
        );
        out.push_bind_param::<BigInt, _>(&self.window_start)?;
        Ok(())
    }
}

fixed_text!(ClaimDelivery);

/// Claims `claim` for the invocation and its task; when the claim is held, answers its
/// holder's ids and writes nothing.
fn claim_delivery(
    conn: &mut SqliteConnection,
    inv: &Invocation,
    task: Option<&Task>,
    claim: &DeliveryClaim,
) -> Result<ClaimOutcome, Failure> {
    let webhook_id = inv.webhook_id.as_uuid().as_bytes();
    let claimed = ClaimDelivery {
        webhook_id,
        delivery_id: &claim.delivery_id,
        invocation_id: inv.id.as_uuid().as_bytes(),
        task_id: task.map(|t| t.id.as_uuid().as_bytes().as_slice()),
        claimed_at: inv.received_at.unix_micros(),
        window_start: claim.window_start.unix_micros(),
    }
    .execute(conn)?;
    if claimed == 1 {
        return Ok(ClaimOutcome::Recorded);
    }
    let (holder, holder_task): (Vec<u8>, Option<Vec<u8>>) = delivery_claims::table
        .find((webhook_id.as_slice(), claim.delivery_id.as_str()))
        .select((delivery_claims::invocation_id, delivery_claims::task_id))
        .first(conn)?;
    Ok(ClaimOutcome::Duplicate {
        invocation_id: InvocationId::from_uuid(uuid(&holder, "claim invocation id")?),
        task_id: holder_task
            .map(|t| uuid(&t, "claim task id").map(TaskId::from_uuid))
            .transpose()?,
    })
}

fn insert_invocation(conn: &mut SqliteConnection, inv: &Invocation) -> Result<(), Failure> {
    let response = inv.target_response.as_ref();
    diesel::insert_into(invocations::table)
        .values((
            (
                invocations::id.eq(id(inv.id.as_uuid())),
                invocations::organization_id.eq(id(inv.organization_id.as_uuid())),
                invocations::webhook_id.eq(id(inv.webhook_id.as_uuid())),
                invocations::received_at.eq(inv.received_at.unix_micros()),
                invocations::source_ip.eq(inv.source_ip.map(|ip| ip.to_string())),
                invocations::event_type.eq(inv.event_type.as_deref()),
                invocations::payload.eq(inv.payload.as_ref().map(Payload::as_str)),
                invocations::outcome.eq(inv.outcome.as_str()),
                invocations::http_status.eq(i64::from(inv.http_status)),
                invocations::error_code.eq(inv.error_code.as_deref()),
                invocations::task_id.eq(inv.task_id.map(|t| id(t.as_uuid()))),
                invocations::repeat_count.eq(i64::from(inv.repeat_count)),
                invocations::test.eq(inv.test),
            ),
            (
                invocations::response_succeeded.eq(response.map(|r| r.succeeded)),
                invocations::delivery_id.eq(inv.delivery_id.as_deref()),
                invocations::duplicate_of.eq(inv.duplicate_of.map(|i| id(i.as_uuid()))),
                invocations::instruction_fallback.eq(inv.instruction_fallback.as_deref()),
                invocations::request_record.eq(inv.request.as_ref().map(RequestRecord::to_json)),
                invocations::replay_of.eq(inv.replay_of.map(|i| id(i.as_uuid()))),
            ),
        ))
        .execute(conn)?;
    Ok(())
}

fn insert_task(
    conn: &mut SqliteConnection,
    task: &Task,
    invocation_payload: Option<&str>,
) -> Result<(), Failure> {
    // The body is stored once, on the invocation; the task keeps its own only if it differs.
    let context = Some(task.context.as_str()).filter(|c| Some(*c) != invocation_payload);
    diesel::insert_into(tasks::table)
        .values((
            (
                tasks::id.eq(id(task.id.as_uuid())),
                tasks::organization_id.eq(id(task.organization_id.as_uuid())),
                tasks::target_id.eq(id(task.target_id.as_uuid())),
                tasks::webhook_id.eq(id(task.webhook_id.as_uuid())),
                tasks::invocation_id.eq(id(task.invocation_id.as_uuid())),
                tasks::instruction.eq(task.instruction.as_deref()),
                tasks::context.eq(context),
                tasks::event_type.eq(task.event_type.as_deref()),
                tasks::status.eq(task.status.as_str()),
                tasks::test.eq(task.test),
            ),
            (
                tasks::source_verified.eq(task.source.verified),
                tasks::source_ip.eq(task.source.source_ip.map(|ip| ip.to_string())),
                tasks::source_received_at.eq(task.source.received_at.unix_micros()),
                tasks::attempts.eq(i64::from(task.attempts)),
                tasks::attempts_before_round.eq(i64::from(task.attempts_before_round)),
                tasks::next_attempt_at.eq(task.next_attempt_at.unix_micros()),
                tasks::last_error.eq(task.last_error.as_deref()),
                tasks::created_at.eq(task.created_at.unix_micros()),
                tasks::updated_at.eq(task.updated_at.unix_micros()),
                tasks::source_provider.eq(task.source.provider.as_str()),
            ),
        ))
        .execute(conn)?;
    Ok(())
}

/// Writes an invocation, its index row with `words` ([`search::words_of`]) and its task; the
/// webhook must be the invocation's organization's.
fn record(
    conn: &mut SqliteConnection,
    inv: &Invocation,
    words: Option<&str>,
    task: Option<&Task>,
) -> Result<(), Failure> {
    let webhook_here = if inv.outcome == InvocationOutcome::Accepted {
        // Moving `last_triggered_at` is also the check that the webhook is this
        // organization's: one statement instead of a lookup and an update.
        touch_webhook(conn, inv)?
    } else {
        let webhook = webhooks::table
            .find(id(inv.webhook_id.as_uuid()))
            .filter(webhooks::organization_id.eq(id(inv.organization_id.as_uuid())));
        diesel::select(diesel::dsl::exists(webhook)).get_result(conn)?
    };
    if !webhook_here {
        return Err(Failure::not_found());
    }
    insert_invocation(conn, inv)?;
    search::index(conn, inv, words)?;
    if let Some(task) = task {
        insert_task(conn, task, inv.payload.as_ref().map(Payload::as_str))?;
    }
    Ok(())
}

/// Claims the delivery id and, when the claim is this invocation's, writes the invocation and
/// its task. The claim comes first, so that a held one answers before anything is written; a
/// failure of the write after it rolls the claim back with the rest of the operation.
fn record_claimed(
    conn: &mut SqliteConnection,
    inv: &Invocation,
    words: Option<&str>,
    task: Option<&Task>,
    claim: &DeliveryClaim,
) -> Result<ClaimOutcome, Failure> {
    let outcome = claim_delivery(conn, inv, task, claim)?;
    if outcome == ClaimOutcome::Recorded {
        record(conn, inv, words, task)?;
    }
    Ok(outcome)
}

impl SqliteStore {
    /// A webhook's invocations that `filter` keeps, newest first, one page and one more:
    /// `load` reads the rows of a listing (the listing as it is, or, with words to find, on the
    /// matches of the word index a chunk at a time, see [`search::search`]) and `convert` makes
    /// each row an entry.
    async fn log<R, T>(
        &self,
        organization_id: OrganizationId,
        webhook_id: WebhookId,
        filter: &InvocationFilter,
        page: PageRequest,
        load: impl Fn(
            &mut SqliteConnection,
            invocations::BoxedQuery<'static, Sqlite>,
        ) -> QueryResult<Vec<R>>
        + Send
        + 'static,
        convert: impl Fn(R) -> Result<T, Failure> + Send + 'static,
    ) -> Result<Vec<T>, StoreError>
    where
        T: Send + 'static,
    {
        let filter = filter.clone();
        self.read(move |conn| {
            let listing = |among| listed(organization_id, webhook_id, &filter, page, among);
            let Some(words) = &filter.words else {
                return converted(load(conn, listing(None))?, convert);
            };
            // Everything received up to the cursor's microsecond, and before `until`.
            let before = [
                page.after.map(|c| c.at.unix_micros().saturating_add(1)),
                filter.until.map(Timestamp::unix_micros),
            ]
            .into_iter()
            .flatten()
            .min();
            let window = search::Window::new(filter.since.map(Timestamp::unix_micros), before);
            let wanted = usize::try_from(overfetch(page)).unwrap_or(usize::MAX);
            let rows = search::search(conn, webhook_id, words, window, wanted, |conn, ids| {
                Ok(load(conn, listing(Some(ids)))?)
            })?;
            converted(rows, convert)
        })
        .await
    }
}

impl InvocationLog for SqliteStore {
    async fn record_invocation(
        &self,
        invocation: &Invocation,
        task: Option<&Task>,
    ) -> Result<(), StoreError> {
        let inv = invocation.clone();
        let task = task.cloned();
        // The words are made here, on the caller's thread, not on the one writer's.
        let words = search::words_of(invocation);
        self.write(move |conn| record(conn, &inv, words.as_deref(), task.as_ref()))
            .await
    }

    async fn record_claimed(
        &self,
        invocation: &Invocation,
        task: Option<&Task>,
        claim: &DeliveryClaim,
    ) -> Result<ClaimOutcome, StoreError> {
        let inv = invocation.clone();
        let task = task.cloned();
        let claim = claim.clone();
        let words = search::words_of(invocation);
        self.write(move |conn| record_claimed(conn, &inv, words.as_deref(), task.as_ref(), &claim))
            .await
    }

    async fn purge_delivery_claims(&self, before: Timestamp) -> Result<u64, StoreError> {
        let before = before.unix_micros();
        self.write(move |conn| {
            let deleted = diesel::delete(
                delivery_claims::table.filter(delivery_claims::claimed_at.lt(before)),
            )
            .execute(conn)?;
            u64::try_from(deleted).map_err(|_| Failure::corrupt("purge count"))
        })
        .await
    }

    async fn invocation(
        &self,
        organization_id: OrganizationId,
        invocation_id: InvocationId,
    ) -> Result<Invocation, StoreError> {
        self.read(move |conn| {
            let found = invocations::table
                .filter(invocations::id.eq(id(invocation_id.as_uuid())))
                .filter(invocations::organization_id.eq(id(organization_id.as_uuid())))
                .select((InvocationRow::as_select(), RequestRow::as_select()))
                .first::<(InvocationRow, RequestRow)>(conn)
                .optional()?
                .ok_or_else(Failure::not_found)?;
            let ((row, request), latest) =
                with_latest_attempts(conn, vec![found], |(row, _)| row)?.remove(0);
            request.fill(row.into_domain(latest)?)
        })
        .await
    }

    async fn invocations(
        &self,
        organization_id: OrganizationId,
        webhook_id: WebhookId,
        filter: &InvocationFilter,
        page: PageRequest,
    ) -> Result<Page<Invocation>, StoreError> {
        let items = self
            .log(
                organization_id,
                webhook_id,
                filter,
                page,
                |conn, q| {
                    let rows = q
                        .select((InvocationRow::as_select(), RequestRow::as_select()))
                        .load::<(InvocationRow, RequestRow)>(conn)?;
                    with_latest_attempts(conn, rows, |(row, _)| row)
                },
                |((row, request), latest)| request.fill(row.into_domain(latest)?),
            )
            .await?;
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
        let ids = webhook_ids.to_vec();
        self.read(move |conn| {
            let placeholders = (3..3 + ids.len())
                .map(|n| format!("?{n}"))
                .collect::<Vec<_>>()
                .join(", ");
            let mut query = diesel::sql_query(format!("{HEALTH}{placeholders}{HEALTH_END}"))
                .into_boxed::<Sqlite>()
                .bind::<Binary, _>(id(organization_id.as_uuid()))
                .bind::<BigInt, _>(since.unix_micros());
            for webhook_id in &ids {
                query = query.bind::<Binary, _>(id(webhook_id.as_uuid()));
            }
            let rows = query.load::<HealthRow>(conn)?;
            let found = converted(rows, HealthRow::into_domain)?;
            Ok(WebhookHealth::in_order_of(&ids, found))
        })
        .await
    }

    async fn invocation_summaries(
        &self,
        organization_id: OrganizationId,
        webhook_id: WebhookId,
        filter: &InvocationFilter,
        page: PageRequest,
    ) -> Result<Page<InvocationSummary>, StoreError> {
        let items = self
            .log(
                organization_id,
                webhook_id,
                filter,
                page,
                |conn, q| {
                    let rows = q
                        .select((
                            (
                                invocations::id,
                                invocations::organization_id,
                                invocations::webhook_id,
                                invocations::received_at,
                                invocations::source_ip,
                                invocations::event_type,
                                sql::<Nullable<Text>>(PAYLOAD_PREFIX),
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
                            sql::<Nullable<Text>>(MESSAGE_PREFIX),
                            sql::<Nullable<Text>>(TASK_STATUS),
                            sql::<Nullable<Bool>>(TASK_FAILED_ATTEMPT),
                        ))
                        .load::<SummaryRow>(conn)?;
                    with_latest_attempts(conn, rows, |(row, ..)| row)
                },
                summary_of,
            )
            .await?;
        Ok(Page::from_overfetch(
            items,
            page,
            |s: &InvocationSummary| s.invocation.cursor(),
        ))
    }

    async fn check_writable(&self) -> Result<(), StoreError> {
        // Through the writer, like every write: setting the schema's `user_version` to the
        // value it has dirties the database header, so the commit appends to the WAL and fails
        // as a real write would (read-only file, full disk, stopped writer).
        self.write(|conn| {
            let version: i32 = diesel::select(sql::<Integer>(
                "(SELECT user_version FROM pragma_user_version)",
            ))
            .get_result(conn)?;
            conn.batch_execute(&format!("PRAGMA user_version = {version}"))?;
            Ok(())
        })
        .await
    }

    async fn purge_invocations(&self, before: Timestamp) -> Result<u64, StoreError> {
        let before = before.unix_micros();
        self.write(move |conn| {
            diesel::sql_query(PURGE_ATTEMPTS)
                .bind::<BigInt, _>(before)
                .execute(conn)?;
            diesel::sql_query(PURGE_TASKS)
                .bind::<BigInt, _>(before)
                .execute(conn)?;
            let deleted = diesel::sql_query(PURGE_INVOCATIONS)
                .bind::<BigInt, _>(before)
                .execute(conn)?;
            u64::try_from(deleted).map_err(|_| Failure::corrupt("purge count"))
        })
        .await
    }
}

/// The invocations received before `?`, each webhook's walked through `invocations_by_webhook`
/// (every invocation has its webhook: a foreign key), so that the purge costs a descent per
/// webhook and the rows it finds, whatever the length of the log.
macro_rules! purged_invocations {
    () => {
        "invocations.webhook_id IN (SELECT id FROM webhooks) AND invocations.received_at < ?"
    };
}

/// The retention purge, in three statements of the one writer's transaction: the attempts of
/// the finished tasks of the invocations before `?`, those tasks, then the invocations before
/// `?` left without a task.
const PURGE_ATTEMPTS: &str = concat!(
    "DELETE FROM delivery_attempts WHERE task_id IN (SELECT tasks.id FROM invocations \
     JOIN tasks ON tasks.invocation_id = invocations.id WHERE ",
    purged_invocations!(),
    " AND tasks.status IN ('completed', 'failed'))"
);
const PURGE_TASKS: &str = concat!(
    "DELETE FROM tasks WHERE status IN ('completed', 'failed') AND invocation_id IN \
     (SELECT id FROM invocations WHERE ",
    purged_invocations!(),
    ")"
);
const PURGE_INVOCATIONS: &str = concat!(
    "DELETE FROM invocations WHERE ",
    purged_invocations!(),
    " AND NOT EXISTS (SELECT 1 FROM tasks WHERE tasks.invocation_id = invocations.id)"
);

#[cfg(test)]
mod tests {
    use tokio::sync::oneshot;
    use webhook_domain::ports::TaskQueue as _;
    use webhook_store_contract::fixtures::{World, accepted, at, page};

    use super::*;
    use crate::writer::{Job, commit_together, job};
    use crate::{SqliteOptions, connect};

    type Answer = oneshot::Receiver<Result<ClaimOutcome, StoreError>>;

    /// A write claiming `delivery_id` for `invocation` and `task`, as `record_claimed` queues it.
    fn claiming(invocation: &Invocation, task: &Task, delivery_id: &str) -> (Box<dyn Job>, Answer) {
        let (invocation, task) = (invocation.clone(), task.clone());
        let claim = DeliveryClaim {
            delivery_id: delivery_id.to_owned(),
            window_start: at(0),
        };
        let words = search::words_of(&invocation);
        job(move |conn| record_claimed(conn, &invocation, words.as_deref(), Some(&task), &claim))
    }

    fn answer(mut answer: Answer) -> Result<ClaimOutcome, StoreError> {
        answer.try_recv().expect("the batch answered every write")
    }

    fn duplicate_of(invocation: &Invocation, task: &Task) -> ClaimOutcome {
        ClaimOutcome::Duplicate {
            invocation_id: invocation.id,
            task_id: Some(task.id),
        }
    }

    /// Claims of one id written in one group commit answer like claims committed one after
    /// another: the first that commits holds the id, the later ones name it, and neither a
    /// duplicate nor a failing write disturbs the other writes of the batch. The first batch
    /// has a write that fails, so that it is written again with a savepoint per write; the
    /// second is written in one go.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn claims_in_one_group_commit_are_held_by_the_first_that_commits() {
        let options = SqliteOptions::new(
            std::env::temp_dir().join(format!("webhookd-test-{}.sqlite", uuid::Uuid::new_v4())),
        );
        let store = SqliteStore::open(options.clone()).await.expect("open");
        let world = World::seed(&store).await;
        let org = world.organization.id;
        let (taken, _) = world.accept(&store, at(1)).await;
        store.close().await;

        let hook = &world.webhook;
        let (mut failing, mut failing_task) = accepted(hook, at(10));
        failing.id = taken.id;
        failing_task.invocation_id = taken.id;
        let (first, first_task) = accepted(hook, at(11));
        let (second, second_task) = accepted(hook, at(12));
        let (other, other_task) = accepted(hook, at(13));
        let (later, later_task) = accepted(hook, at(20));
        let (later_again, later_again_task) = accepted(hook, at(21));
        let (shared_again, shared_again_task) = accepted(hook, at(22));

        let mut conn = connect(&options, false).expect("connect");
        let (jobs, answers): (Vec<_>, Vec<_>) = [
            claiming(&failing, &failing_task, "shared"),
            claiming(&first, &first_task, "shared"),
            claiming(&second, &second_task, "shared"),
            claiming(&other, &other_task, "other"),
        ]
        .into_iter()
        .unzip();
        commit_together(&mut conn, jobs);
        let [failed, first_answer, second_answer, other_answer] =
            <[Answer; 4]>::try_from(answers).expect("four answers");
        assert!(
            matches!(answer(failed), Err(StoreError::Conflict(_))),
            "the write with a taken id fails alone"
        );
        assert_eq!(answer(first_answer).expect("first"), ClaimOutcome::Recorded);
        assert_eq!(
            answer(second_answer).expect("second"),
            duplicate_of(&first, &first_task)
        );
        assert_eq!(answer(other_answer).expect("other"), ClaimOutcome::Recorded);

        let (jobs, answers): (Vec<_>, Vec<_>) = [
            claiming(&later, &later_task, "again"),
            claiming(&later_again, &later_again_task, "again"),
            claiming(&shared_again, &shared_again_task, "shared"),
        ]
        .into_iter()
        .unzip();
        commit_together(&mut conn, jobs);
        let [later_answer, later_again_answer, shared_again_answer] =
            <[Answer; 3]>::try_from(answers).expect("three answers");
        assert_eq!(answer(later_answer).expect("later"), ClaimOutcome::Recorded);
        assert_eq!(
            answer(later_again_answer).expect("later again"),
            duplicate_of(&later, &later_task)
        );
        assert_eq!(
            answer(shared_again_answer).expect("shared again"),
            duplicate_of(&first, &first_task)
        );
        drop(conn);

        let store = SqliteStore::open(options.clone()).await.expect("reopen");
        for (invocation, task) in [
            (&first, &first_task),
            (&other, &other_task),
            (&later, &later_task),
        ] {
            let stored = store.invocation(org, invocation.id).await;
            assert_eq!(&stored.expect("a recorded invocation"), invocation);
            let stored = store.task(org, task.id).await;
            assert_eq!(&stored.expect("its task"), task);
        }
        for invocation in [&second, &later_again, &shared_again] {
            assert!(
                matches!(
                    store.invocation(org, invocation.id).await,
                    Err(StoreError::NotFound)
                ),
                "a duplicate writes nothing"
            );
        }
        let listed = store
            .invocations(org, hook.id, &InvocationFilter::default(), page(50))
            .await
            .expect("list");
        assert_eq!(listed.items.len(), 4, "the first write and three claims");
        store.close().await;
        for suffix in ["", "-wal", "-shm"] {
            let mut file = options.path.clone().into_os_string();
            file.push(suffix);
            let _ = std::fs::remove_file(file);
        }
    }

    #[derive(QueryableByName)]
    struct PlanStep {
        #[diesel(sql_type = Text)]
        detail: String,
    }

    /// Each of the purge's statements finds the invocations before the cutoff through each
    /// webhook's log (`invocations_by_webhook`), and never reads the whole log: no index holds
    /// the invocations by time alone.
    #[test]
    fn the_purge_walks_each_webhooks_log() {
        let mut conn = SqliteConnection::establish(":memory:").unwrap();
        crate::migrate(&mut conn).unwrap();
        for statement in [PURGE_ATTEMPTS, PURGE_TASKS, PURGE_INVOCATIONS] {
            let plan = diesel::sql_query(format!("EXPLAIN QUERY PLAN {statement}"))
                .bind::<BigInt, _>(5)
                .load::<PlanStep>(&mut conn)
                .unwrap()
                .into_iter()
                .map(|step| step.detail)
                .collect::<Vec<_>>()
                .join("\n");
            assert!(
                plan.lines()
                    .any(|step| step.starts_with("SEARCH invocations USING ")
                        && step.ends_with(
                            "INDEX invocations_by_webhook (webhook_id=? AND received_at<?)"
                        )),
                "{statement}\n{plan}"
            );
            assert!(
                !plan
                    .lines()
                    .any(|step| step.starts_with("SCAN invocations")),
                "{statement}\n{plan}"
            );
        }
    }
}

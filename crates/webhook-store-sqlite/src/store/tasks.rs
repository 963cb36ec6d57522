//! `TaskQueue`: the task board and the delivery queue. A task's context is its invocation's
//! payload, read by join.

use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::{Nullable, Text};
use webhook_domain::model::{
    AttemptVerdict, ClaimRequest, ClaimedTask, FinishedAttempt, Lease, QueueStats, TaskStatusChange,
};
use webhook_domain::model::{
    DeliveryAttempt, EndpointUrl, OrganizationId, Page, PageRequest, SealedSecret, Task,
    TaskFilter, TaskId, TaskStatus, TaskSummary, Timestamp,
};
use webhook_domain::ports::{StoreError, TaskQueue};

use super::claim_reads::{ClaimCandidates, ClaimRow, DueTasks, id_list};
use super::delivery_writes::{FinishTask, SetLease, SetResponseSucceeded};
use super::{converted, found, into_page};
use crate::SqliteStore;
use crate::error::Failure;
use crate::rows::{AttemptRow, TaskRow, id};
use crate::schema::{delivery_attempts, invocations, tasks};

/// A task (of this organization, when one is given) read with its invocation's payload, or
/// `NotFound`.
fn load_task(
    conn: &mut SqliteConnection,
    organization_id: Option<OrganizationId>,
    task_id: TaskId,
) -> Result<Task, Failure> {
    let mut query = tasks::table
        .inner_join(invocations::table)
        .filter(tasks::id.eq(id(task_id.as_uuid())))
        .select((tasks::all_columns, invocations::payload))
        .into_boxed();
    if let Some(org) = organization_id {
        query = query.filter(tasks::organization_id.eq(id(org.as_uuid())));
    }
    task_of(found(query.first::<TaskRowWithPayload>(conn))?)
}

type TaskRowWithPayload = (TaskRow, Option<String>);

/// Narrows a boxed query of the board to the tasks a [`TaskFilter`] asks for.
macro_rules! on_board {
    ($query:expr, $filter:expr) => {{
        let mut query = $query;
        if let Some(target) = $filter.target_id {
            query = query.filter(tasks::target_id.eq(id(target.as_uuid())));
        }
        if let Some(status) = $filter.status {
            query = query.filter(tasks::status.eq(status.as_str()));
        }
        query
    }};
}

/// Counts the tasks waiting for delivery over the `tasks_claimable` index, target by target
/// (`CROSS JOIN` keeps that order), so the tasks of targets without an endpoint are not walked.
const QUEUE_STATS: &str = "\
SELECT count(*) AS queued,
       coalesce(sum(t.next_attempt_at <= ?), 0) AS due,
       min(t.created_at) AS oldest
FROM targets g CROSS JOIN tasks t
WHERE t.target_id = g.id AND t.status = 'queued'
  AND g.deleted_at IS NULL AND g.endpoint_url IS NOT NULL";

#[derive(QueryableByName)]
struct StatsRow {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    queued: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    due: i64,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
    oldest: Option<i64>,
}

fn task_of((row, payload): TaskRowWithPayload) -> Result<Task, Failure> {
    row.into_domain(payload)
}

/// The lease `lease` still holds its task: the task is queued and carries the lease's token.
///
/// Read with `get_result`, not `first`: the primary key finds one row at most, and the bound
/// `LIMIT` of `first` makes SQLite prepare the statement again at every run (it plans with a
/// bound limit's value, so a new value, even the same one, expires the statement).
fn check_lease(conn: &mut SqliteConnection, lease: &Lease) -> Result<(), Failure> {
    let row: Option<(String, Option<Vec<u8>>)> = tasks::table
        .find(id(lease.task_id.as_uuid()))
        .select((tasks::status, tasks::lease_token))
        .get_result(conn)
        .optional()?;
    let held = row.is_some_and(|(status, token)| {
        status == TaskStatus::Queued.as_str()
            && token.as_deref() == Some(lease.token.as_bytes().as_slice())
    });
    if held {
        Ok(())
    } else {
        Err(Failure::conflict("the lease is no longer held"))
    }
}

/// The invocation of the task that `finished` was made for, when its lease still holds it
/// (read as in [`check_lease`]).
fn held_task(conn: &mut SqliteConnection, finished: &FinishedAttempt) -> Result<Vec<u8>, Failure> {
    let lease = &finished.lease;
    if finished.attempt.task_id != lease.task_id {
        return Err(Failure::conflict("the attempt is not of the leased task"));
    }
    let row: Option<(String, Option<Vec<u8>>, Vec<u8>)> = tasks::table
        .find(id(lease.task_id.as_uuid()))
        .select((tasks::status, tasks::lease_token, tasks::invocation_id))
        .get_result(conn)
        .optional()?;
    match row {
        Some((status, token, invocation_id))
            if status == TaskStatus::Queued.as_str()
                && token.as_deref() == Some(lease.token.as_bytes().as_slice()) =>
        {
            Ok(invocation_id)
        }
        _ => Err(Failure::conflict("the lease is no longer held")),
    }
}

/// Writes a finished attempt whose lease [`held_task`] found held: the attempt row, the
/// invocation's latest target response, the task's new state and the lease's release.
fn record_attempt(
    conn: &mut SqliteConnection,
    finished: &FinishedAttempt,
    invocation_id: &[u8],
) -> Result<(), Failure> {
    let FinishedAttempt {
        lease,
        attempt,
        verdict,
    } = finished;
    let task_key = id(lease.task_id.as_uuid());
    let response = &attempt.response;
    diesel::insert_into(delivery_attempts::table)
        .values((
            delivery_attempts::task_id.eq(&task_key),
            delivery_attempts::number.eq(i64::from(attempt.number)),
            delivery_attempts::status_code.eq(response.status_code.map(i64::from)),
            delivery_attempts::body_excerpt.eq(response.body_excerpt.as_deref()),
            delivery_attempts::latency_ms.eq(i64::from(response.latency_ms)),
            delivery_attempts::error.eq(response.error.as_deref()),
            delivery_attempts::at.eq(response.at.unix_micros()),
            delivery_attempts::succeeded.eq(response.succeeded),
        ))
        .execute(conn)?;
    SetResponseSucceeded {
        invocation_id,
        succeeded: response.succeeded,
    }
    .execute(conn)?;
    let (status, next_attempt_at) = match *verdict {
        AttemptVerdict::Delivered => (TaskStatus::Delivered, None),
        AttemptVerdict::RetryAt(at) => (TaskStatus::Queued, Some(at.unix_micros())),
        AttemptVerdict::Failed => (TaskStatus::Failed, None),
    };
    FinishTask {
        task_id: &task_key,
        status,
        attempts: i64::from(attempt.number),
        last_error: response.error.as_deref(),
        updated_at: response.at.unix_micros(),
        next_attempt_at,
    }
    .execute(conn)?;
    Ok(())
}

impl TaskQueue for SqliteStore {
    async fn task(
        &self,
        organization_id: OrganizationId,
        task_id: TaskId,
    ) -> Result<Task, StoreError> {
        self.read(move |conn| load_task(conn, Some(organization_id), task_id))
            .await
    }

    async fn tasks(
        &self,
        organization_id: OrganizationId,
        filter: TaskFilter,
        page: PageRequest,
    ) -> Result<Page<Task>, StoreError> {
        self.read(move |conn| {
            let query = tasks::table
                .inner_join(invocations::table)
                .filter(tasks::organization_id.eq(id(organization_id.as_uuid())))
                .select((tasks::all_columns, invocations::payload))
                .into_boxed();
            let rows = newest_first!(on_board!(query, filter), tasks, page)
                .load::<TaskRowWithPayload>(conn)?;
            into_page(rows, page, task_of, Task::cursor)
        })
        .await
    }

    async fn task_summaries(
        &self,
        organization_id: OrganizationId,
        filter: TaskFilter,
        page: PageRequest,
    ) -> Result<Page<TaskSummary>, StoreError> {
        self.read(move |conn| {
            let query = tasks::table
                .filter(tasks::organization_id.eq(id(organization_id.as_uuid())))
                .select((
                    tasks::id,
                    tasks::organization_id,
                    tasks::target_id,
                    tasks::webhook_id,
                    tasks::invocation_id,
                    tasks::instruction,
                    // The context is left unread.
                    sql::<Nullable<Text>>("NULL"),
                    tasks::event_type,
                    tasks::status,
                    tasks::test,
                    tasks::source_verified,
                    tasks::source_ip,
                    tasks::source_received_at,
                    tasks::attempts,
                    tasks::next_attempt_at,
                    tasks::last_error,
                    tasks::lease_token,
                    tasks::lease_until,
                    tasks::created_at,
                    tasks::updated_at,
                    tasks::attempts_before_round,
                    tasks::source_provider,
                ))
                .into_boxed();
            let rows =
                newest_first!(on_board!(query, filter), tasks, page).load::<TaskRow>(conn)?;
            into_page(rows, page, TaskRow::into_summary, TaskSummary::cursor)
        })
        .await
    }

    async fn set_task_status(
        &self,
        organization_id: OrganizationId,
        task_id: TaskId,
        change: TaskStatusChange,
    ) -> Result<Task, StoreError> {
        self.write(move |conn| {
            let (status, attempts): (String, i64) = tasks::table
                .filter(tasks::id.eq(id(task_id.as_uuid())))
                .filter(tasks::organization_id.eq(id(organization_id.as_uuid())))
                .select((tasks::status, tasks::attempts))
                .first(conn)
                .optional()?
                .ok_or_else(Failure::not_found)?;
            if status != change.from.as_str() {
                return Err(Failure::conflict("the task's status changed"));
            }
            if change
                .round
                .is_some_and(|round| attempts != i64::from(round.attempts_before))
            {
                return Err(Failure::conflict("another delivery round ran meanwhile"));
            }
            // Any status change ends a lease; a new round is written as the change gives it.
            let key = id(task_id.as_uuid());
            diesel::update(tasks::table.find(&key))
                .set((
                    tasks::status.eq(change.to.as_str()),
                    tasks::updated_at.eq(change.at.unix_micros()),
                    tasks::lease_token.eq(None::<Vec<u8>>),
                    tasks::lease_until.eq(None::<i64>),
                ))
                .execute(conn)?;
            if let Some(round) = change.round {
                diesel::update(tasks::table.find(&key))
                    .set((
                        tasks::next_attempt_at.eq(round.due_at.unix_micros()),
                        tasks::attempts_before_round.eq(i64::from(round.attempts_before)),
                        tasks::last_error.eq(None::<String>),
                    ))
                    .execute(conn)?;
            }
            load_task(conn, None, task_id)
        })
        .await
    }

    async fn claim_tasks(&self, claim: ClaimRequest<'_>) -> Result<Vec<ClaimedTask>, StoreError> {
        let ClaimRequest {
            now, token, limit, ..
        } = claim;
        if limit == 0 {
            return Ok(Vec::new());
        }
        let until = claim.lease_until();
        let now_micros = now.unix_micros();
        let skipped: Vec<_> = claim
            .skip_targets
            .iter()
            .map(|t| t.as_uuid().simple().to_string())
            .collect();
        let skipped = id_list(&skipped);
        // Looking is a read: the writer is only asked to lease what was found due.
        let candidates: Vec<String> = self
            .read(move |conn| {
                Ok(DueTasks {
                    skipped_targets: &skipped,
                    now: now_micros,
                    limit,
                }
                .load(conn)?)
            })
            .await?;
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let candidates = id_list(&candidates);
        self.write(move |conn| {
            // The candidates are checked again: another claim may have leased them meanwhile.
            let rows: Vec<ClaimRow> = ClaimCandidates {
                task_ids: &candidates,
                now: now_micros,
            }
            .load(conn)?;
            let mut claimed = Vec::with_capacity(rows.len());
            for (row, payload, endpoint, secret) in rows {
                let task = row.into_domain(payload)?;
                SetLease {
                    task_id: task.id.as_uuid().as_bytes(),
                    token: Some(token.as_bytes()),
                    until: Some(until.unix_micros()),
                }
                .execute(conn)?;
                let endpoint_url = endpoint
                    .as_deref()
                    .and_then(|u| EndpointUrl::parse(u).ok())
                    .ok_or_else(|| Failure::corrupt("endpoint url"))?;
                claimed.push(ClaimedTask {
                    lease: Lease {
                        task_id: task.id,
                        token,
                        until,
                    },
                    task,
                    endpoint_url,
                    signing_secret: SealedSecret::from_bytes(secret),
                });
            }
            Ok(claimed)
        })
        .await
    }

    async fn finish_attempt(
        &self,
        lease: &Lease,
        attempt: &DeliveryAttempt,
        verdict: AttemptVerdict,
    ) -> Result<Task, StoreError> {
        let finished = FinishedAttempt {
            lease: *lease,
            attempt: attempt.clone(),
            verdict,
        };
        self.write(move |conn| {
            let held = held_task(conn, &finished)?;
            record_attempt(conn, &finished, &held)?;
            load_task(conn, None, finished.lease.task_id)
        })
        .await
    }

    async fn finish_attempts(&self, finished: &[FinishedAttempt]) -> Vec<Result<(), StoreError>> {
        if finished.is_empty() {
            return Vec::new();
        }
        let batch = finished.to_vec();
        // One job: the writer commits the whole batch with whatever else is queued. A lease
        // found lost answers its attempt alone, before anything of it is written.
        let written = self
            .write(move |conn| {
                let mut outcomes = Vec::with_capacity(batch.len());
                for finished in &batch {
                    match held_task(conn, finished) {
                        Ok(held) => {
                            record_attempt(conn, finished, &held)?;
                            outcomes.push(Ok(()));
                        }
                        Err(Failure::Store(error)) => outcomes.push(Err(error)),
                        Err(failure) => return Err(failure),
                    }
                }
                Ok(outcomes)
            })
            .await;
        match written {
            Ok(outcomes) => outcomes,
            Err(error @ StoreError::Unavailable(_)) => {
                // Nothing was written, and writing one by one would fail alike.
                error.shared(finished.len()).into_iter().map(Err).collect()
            }
            Err(_) => {
                // One attempt's failure: each is written on its own, and gets its own answer.
                let mut outcomes = Vec::with_capacity(finished.len());
                for one in finished {
                    let one = one.clone();
                    outcomes.push(
                        self.write(move |conn| {
                            let held = held_task(conn, &one)?;
                            record_attempt(conn, &one, &held)
                        })
                        .await,
                    );
                }
                outcomes
            }
        }
    }

    async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        let lease = *lease;
        self.write(move |conn| {
            check_lease(conn, &lease)?;
            SetLease {
                task_id: lease.task_id.as_uuid().as_bytes(),
                token: None,
                until: None,
            }
            .execute(conn)?;
            Ok(())
        })
        .await
    }

    async fn queue_stats(&self, now: Timestamp) -> Result<QueueStats, StoreError> {
        self.read(move |conn| {
            let row: StatsRow = diesel::sql_query(QUEUE_STATS)
                .bind::<diesel::sql_types::BigInt, _>(now.unix_micros())
                .get_result(conn)?;
            let count = |n: i64| u64::try_from(n).map_err(|_| Failure::corrupt("task count"));
            Ok(QueueStats {
                queued: count(row.queued)?,
                due: count(row.due)?,
                oldest_queued_at: row.oldest.map(Timestamp::from_unix_micros),
            })
        })
        .await
    }

    async fn delivery_attempts(
        &self,
        organization_id: OrganizationId,
        task_id: TaskId,
    ) -> Result<Vec<DeliveryAttempt>, StoreError> {
        self.read(move |conn| {
            let exists: bool = diesel::select(diesel::dsl::exists(
                tasks::table
                    .filter(tasks::id.eq(id(task_id.as_uuid())))
                    .filter(tasks::organization_id.eq(id(organization_id.as_uuid()))),
            ))
            .get_result(conn)?;
            if !exists {
                return Err(Failure::not_found());
            }
            let rows = delivery_attempts::table
                .filter(delivery_attempts::task_id.eq(id(task_id.as_uuid())))
                .order(delivery_attempts::number.asc())
                .load(conn)?;
            converted(rows, AttemptRow::into_domain)
        })
        .await
    }
}

//! The one statement that records a delivery attempt under its lease: the task's new state and
//! the lease's release, the attempt's row, and whether it succeeded on the invocation (the rest
//! of the target's response is read from the attempt's row). One
//! round trip, atomic without an explicit transaction, and kept prepared by the connection
//! because its text never changes (diesel prepares every `UPDATE` it builds anew).
//!
//! ```sql
//! WITH held AS (UPDATE tasks SET … WHERE id = $1 AND lease_token = $2 AND status = 'queued'
//!               RETURNING id, invocation_id),
//!      attempt AS (INSERT INTO delivery_attempts (…) SELECT held.id, … FROM held RETURNING …)
//! UPDATE invocations SET response_succeeded = a.succeeded
//! FROM held JOIN attempt a ON a.task_id = held.id
//! WHERE invocations.id = held.invocation_id
//! ```
//!
//! It changes one invocation exactly when the lease was still held, and nothing otherwise.
//!
//! [`finish_attempts`] records many attempts the same way with one statement
//! ([`FINISH_ATTEMPTS`]), each attempt's values in arrays of one element per attempt: one round
//! trip and one commit for the batch, and an attempt whose lease is lost is left out of it.

use std::collections::{HashMap, HashSet};

use diesel::QueryResult;
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{
    Array, Bool, Integer, Nullable, Text, Timestamptz, Untyped, Uuid as SqlUuid,
};
use diesel_async::pooled_connection::PoolableConnection as _;
use diesel_async::pooled_connection::deadpool::Object;
use diesel_async::{AsyncPgConnection, RunQueryDsl as _};
use time::OffsetDateTime;
use uuid::Uuid;
use webhook_domain::model::{AttemptVerdict, FinishedAttempt, Lease, TaskId, TaskStatus};
use webhook_domain::ports::StoreError;

use crate::error::{TxError, may_have_committed, store_error};
use crate::rows::{AttemptRow, at};
use crate::{Inner, prepared};

/// A finished attempt, its lease, and the task's state after it.
pub(crate) struct FinishAttempt<'a> {
    pub(crate) lease: &'a Lease,
    pub(crate) attempt: &'a AttemptRow,
    pub(crate) status: TaskStatus,
    /// When the next attempt is due; `None` keeps the task's.
    pub(crate) next_attempt_at: Option<OffsetDateTime>,
}

impl<'a> FinishAttempt<'a> {
    /// The statement recording `attempt` under `lease` with `verdict`.
    pub(crate) fn new(lease: &'a Lease, attempt: &'a AttemptRow, verdict: AttemptVerdict) -> Self {
        let (status, next_attempt_at) = task_state(verdict);
        Self {
            lease,
            attempt,
            status,
            next_attempt_at,
        }
    }
}

/// The task's status after an attempt with `verdict`, and when its next attempt is due
/// (`None` keeps the task's).
fn task_state(verdict: AttemptVerdict) -> (TaskStatus, Option<OffsetDateTime>) {
    match verdict {
        AttemptVerdict::Delivered => (TaskStatus::Delivered, None),
        AttemptVerdict::RetryAt(when) => (TaskStatus::Queued, Some(at(when))),
        AttemptVerdict::Failed => (TaskStatus::Failed, None),
    }
}

impl QueryId for FinishAttempt<'_> {
    type QueryId = FinishAttempt<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl QueryFragment<Pg> for FinishAttempt<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        let attempt = self.attempt;
        prepared::push_sql(&mut out, FINISH_ATTEMPT, |number, out| match number {
            1 => out.push_bind_param::<Integer, _>(&attempt.number),
            2 => out.push_bind_param::<Text, _>(self.status.as_str()),
            3 => out.push_bind_param::<Nullable<Timestamptz>, _>(&self.next_attempt_at),
            4 => out.push_bind_param::<Nullable<Text>, _>(&attempt.error),
            5 => out.push_bind_param::<Timestamptz, _>(&attempt.at),
            6 => out.push_bind_param::<SqlUuid, _>(self.lease.task_id.as_uuid()),
            7 => out.push_bind_param::<SqlUuid, _>(&self.lease.token),
            8 => out.push_bind_param::<Nullable<Integer>, _>(&attempt.status_code),
            9 => out.push_bind_param::<Nullable<Text>, _>(&attempt.body_excerpt),
            10 => out.push_bind_param::<Integer, _>(&attempt.latency_ms),
            11 => out.push_bind_param::<Bool, _>(&attempt.succeeded),
            other => Err(prepared::no_parameter(other)),
        })
    }
}

/// Records one attempt under its lease, [`FinishAttempt`]'s values in order: the attempt's
/// number, the task's new status and next due time (null keeps it), the attempt's error and
/// time, the lease's task and token, then the attempt's status code, body excerpt, latency and
/// success.
const FINISH_ATTEMPT: &str = "\
WITH held AS (
    UPDATE tasks SET attempts = $1, status = $2, next_attempt_at = coalesce($3, next_attempt_at),
        last_error = $4, updated_at = $5, lease_token = NULL, lease_until = NULL
    WHERE id = $6 AND lease_token = $7 AND status = 'queued'
    RETURNING id, invocation_id
), attempt AS (
    INSERT INTO delivery_attempts
        (task_id, number, status_code, body_excerpt, latency_ms, error, at, succeeded)
    SELECT held.id, $1, $8, $9, $10, $4, $5, $11 FROM held
    RETURNING task_id, succeeded
)
UPDATE invocations SET response_succeeded = a.succeeded
FROM held JOIN attempt a ON a.task_id = held.id
WHERE invocations.id = held.invocation_id";

/// Gives a task back: releases its lease when `lease` still holds it ([`RELEASE_LEASE`]).
/// Of fixed text, as [`FinishAttempt`] is, so that it stays prepared: under a backlog a node
/// gives back thousands of tasks a minute.
pub(crate) struct ReleaseLease<'a>(pub(crate) &'a Lease);

impl QueryId for ReleaseLease<'_> {
    type QueryId = ReleaseLease<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl QueryFragment<Pg> for ReleaseLease<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        let lease = self.0;
        prepared::push_sql(&mut out, RELEASE_LEASE, |number, out| match number {
            1 => out.push_bind_param::<SqlUuid, _>(lease.task_id.as_uuid()),
            2 => out.push_bind_param::<SqlUuid, _>(&lease.token),
            other => Err(prepared::no_parameter(other)),
        })
    }
}

/// Releases the lease of task `$1` when it still carries token `$2` and waits for delivery.
const RELEASE_LEASE: &str = "\
UPDATE tasks SET lease_token = NULL, lease_until = NULL
WHERE id = $1 AND lease_token = $2 AND status = 'queued'";

/// Records a batch of finished attempts, [`FINISH_ATTEMPTS`]'s parameters in order: one array
/// per column, one element per attempt.
const FINISH_ATTEMPTS: &str = "\
WITH done AS (
    SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::int[], $4::text[], $5::timestamptz[],
                         $6::int[], $7::text[], $8::int[], $9::text[], $10::timestamptz[],
                         $11::bool[])
        AS d (task_id, token, number, status, next_attempt_at, status_code, body_excerpt,
              latency_ms, error, at, succeeded)
), held AS (
    UPDATE tasks SET attempts = d.number, status = d.status,
        next_attempt_at = coalesce(d.next_attempt_at, tasks.next_attempt_at),
        last_error = d.error, updated_at = d.at, lease_token = NULL, lease_until = NULL
    FROM done d
    WHERE tasks.id = d.task_id AND tasks.lease_token = d.token AND tasks.status = 'queued'
    RETURNING tasks.id, tasks.invocation_id
), attempt AS (
    INSERT INTO delivery_attempts
        (task_id, number, status_code, body_excerpt, latency_ms, error, at, succeeded)
    SELECT d.task_id, d.number, d.status_code, d.body_excerpt, d.latency_ms, d.error, d.at,
           d.succeeded
    FROM held JOIN done d ON d.task_id = held.id
), response AS (
    UPDATE invocations SET response_succeeded = d.succeeded
    FROM held JOIN done d ON d.task_id = held.id
    WHERE invocations.id = held.invocation_id
)
SELECT id FROM held";

#[derive(diesel::QueryableByName)]
struct HeldRow {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
}

/// The attempts of one statement, column by column.
#[derive(Default)]
struct Columns {
    task_ids: Vec<Uuid>,
    tokens: Vec<Uuid>,
    numbers: Vec<i32>,
    statuses: Vec<&'static str>,
    next_attempt_at: Vec<Option<OffsetDateTime>>,
    status_codes: Vec<Option<i32>>,
    body_excerpts: Vec<Option<String>>,
    latencies_ms: Vec<i32>,
    errors: Vec<Option<String>>,
    ats: Vec<OffsetDateTime>,
    succeeded: Vec<bool>,
}

impl Columns {
    fn push(&mut self, finished: &FinishedAttempt) {
        let row = AttemptRow::from(&finished.attempt);
        let (status, next_attempt_at) = task_state(finished.verdict);
        self.task_ids.push(*finished.lease.task_id.as_uuid());
        self.tokens.push(finished.lease.token);
        self.numbers.push(row.number);
        self.statuses.push(status.as_str());
        self.next_attempt_at.push(next_attempt_at);
        self.status_codes.push(row.status_code);
        self.body_excerpts.push(row.body_excerpt);
        self.latencies_ms.push(row.latency_ms);
        self.errors.push(row.error);
        self.ats.push(row.at);
        self.succeeded.push(row.succeeded);
    }

    /// Runs the statement; answers the tasks whose leases were held (and are now released).
    async fn execute(self, conn: &mut AsyncPgConnection) -> QueryResult<HashSet<Uuid>> {
        let rows = self.load::<HeldRow>(conn).await?;
        Ok(rows.into_iter().map(|row| row.id).collect())
    }
}

impl QueryId for Columns {
    type QueryId = Self;
    // The text is the same for every batch, whatever its size: the connection prepares it once.
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl Query for Columns {
    type SqlType = Untyped;
}

impl QueryFragment<Pg> for Columns {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        prepared::push_sql(&mut out, FINISH_ATTEMPTS, |number, out| match number {
            1 => out.push_bind_param::<Array<SqlUuid>, _>(&self.task_ids),
            2 => out.push_bind_param::<Array<SqlUuid>, _>(&self.tokens),
            3 => out.push_bind_param::<Array<Integer>, _>(&self.numbers),
            4 => out.push_bind_param::<Array<Text>, _>(&self.statuses),
            5 => out.push_bind_param::<Array<Nullable<Timestamptz>>, _>(&self.next_attempt_at),
            6 => out.push_bind_param::<Array<Nullable<Integer>>, _>(&self.status_codes),
            7 => out.push_bind_param::<Array<Nullable<Text>>, _>(&self.body_excerpts),
            8 => out.push_bind_param::<Array<Integer>, _>(&self.latencies_ms),
            9 => out.push_bind_param::<Array<Nullable<Text>>, _>(&self.errors),
            10 => out.push_bind_param::<Array<Timestamptz>, _>(&self.ats),
            11 => out.push_bind_param::<Array<Bool>, _>(&self.succeeded),
            other => Err(prepared::no_parameter(other)),
        })
    }
}

/// Records `finished` (see `TaskQueue::finish_attempts`): one statement for all of them, or
/// one per repetition of a task (each repetition in order, after the attempt before it).
pub(crate) async fn finish_attempts(
    inner: &Inner,
    finished: &[FinishedAttempt],
) -> Vec<Result<(), StoreError>> {
    let mut outcomes: Vec<Option<Result<(), StoreError>>> = finished.iter().map(|_| None).collect();
    let mut repeats: HashMap<TaskId, usize> = HashMap::new();
    let mut rounds: Vec<Vec<usize>> = Vec::new();
    for (index, one) in finished.iter().enumerate() {
        if one.attempt.task_id != one.lease.task_id {
            outcomes[index] = Some(Err(StoreError::Conflict(
                "the attempt is not of the leased task",
            )));
            continue;
        }
        let repeat = repeats.entry(one.lease.task_id).or_default();
        if rounds.len() <= *repeat {
            rounds.push(Vec::new());
        }
        rounds[*repeat].push(index);
        *repeat += 1;
    }
    for round in rounds {
        let answers = finish_round(inner, finished, &round).await;
        for (index, answer) in round.into_iter().zip(answers) {
            outcomes[index] = Some(answer);
        }
    }
    outcomes
        .into_iter()
        .map(|outcome| {
            outcome.unwrap_or_else(|| Err(crate::error::corrupt("an attempt without its outcome")))
        })
        .collect()
}

/// Records the attempts `round` of `finished`, whose tasks differ, with one statement; when it
/// fails for a reason that may be one attempt's, records each on its own.
async fn finish_round(
    inner: &Inner,
    finished: &[FinishedAttempt],
    round: &[usize],
) -> Vec<Result<(), StoreError>> {
    let shared = |error: StoreError| error.shared(round.len()).into_iter().map(Err).collect();
    let mut columns = Columns::default();
    for &index in round {
        columns.push(&finished[index]);
    }
    let mut conn = match inner.conn().await {
        Ok(conn) => conn,
        Err(error) => return shared(error),
    };
    let error = match columns.execute(&mut conn).await {
        Ok(held) => {
            return round
                .iter()
                .map(|&index| {
                    if held.contains(finished[index].lease.task_id.as_uuid()) {
                        Ok(())
                    } else {
                        Err(StoreError::Conflict("the lease is no longer held"))
                    }
                })
                .collect();
        }
        Err(error) => error,
    };
    let broken = conn.is_broken();
    let in_doubt = may_have_committed(&error, broken);
    let error = store_error(TxError::Db(error), broken);
    if in_doubt || matches!(error, StoreError::Unavailable(_)) {
        // The server may have ended the connection: keep the pool from handing it out again.
        drop(Object::take(conn));
    } else {
        drop(conn);
    }
    if in_doubt {
        // The statement may have committed: writing its attempts again could record them twice.
        let cause = match error {
            StoreError::Unavailable(cause) | StoreError::Internal(cause) => cause,
            other => Box::new(other),
        };
        return shared(StoreError::OutcomeUnknown(cause));
    }
    if matches!(error, StoreError::Unavailable(_)) || round.len() == 1 {
        return shared(error);
    }
    let mut answers = Vec::with_capacity(round.len());
    for &index in round {
        answers.push(finish_one(inner, &finished[index]).await);
    }
    answers
}

/// Records one attempt with [`FinishAttempt`].
async fn finish_one(inner: &Inner, finished: &FinishedAttempt) -> Result<(), StoreError> {
    let mut conn = inner.conn().await?;
    let attempt = AttemptRow::from(&finished.attempt);
    let result = FinishAttempt::new(&finished.lease, &attempt, finished.verdict)
        .execute(&mut *conn)
        .await;
    match result {
        Ok(0) => Err(StoreError::Conflict("the lease is no longer held")),
        Ok(_) => Ok(()),
        Err(error) => Err(store_error(TxError::Db(error), conn.is_broken())),
    }
}

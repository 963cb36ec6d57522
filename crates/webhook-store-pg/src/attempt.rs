//! The one statement that records a delivery attempt under its lease: the task's new state and
//! the lease's release, the attempt's row, and the invocation's latest target response. One
//! round trip, atomic without an explicit transaction, and kept prepared by the connection
//! because its text never changes (diesel prepares every `UPDATE` it builds anew).
//!
//! ```sql
//! WITH held AS (UPDATE tasks SET … WHERE id = $1 AND lease_token = $2 AND status = 'queued'
//!               RETURNING id, invocation_id),
//!      attempt AS (INSERT INTO delivery_attempts (…) SELECT held.id, … FROM held RETURNING …)
//! UPDATE invocations SET response_… = a.… FROM held JOIN attempt a ON a.task_id = held.id
//! WHERE invocations.id = held.invocation_id
//! ```
//!
//! It changes one invocation exactly when the lease was still held, and nothing otherwise.

use diesel::QueryResult;
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::sql_types::{Bool, Integer, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use time::OffsetDateTime;
use webhook_domain::model::Lease;
use webhook_domain::model::TaskStatus;

use crate::rows::AttemptRow;

/// A finished attempt, its lease, and the task's state after it.
pub(crate) struct FinishAttempt<'a> {
    pub(crate) lease: &'a Lease,
    pub(crate) attempt: &'a AttemptRow,
    pub(crate) status: TaskStatus,
    /// When the next attempt is due; `None` keeps the task's.
    pub(crate) next_attempt_at: Option<OffsetDateTime>,
}

impl QueryId for FinishAttempt<'_> {
    type QueryId = FinishAttempt<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl QueryFragment<Pg> for FinishAttempt<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        let attempt = self.attempt;
        out.push_sql("WITH held AS (UPDATE tasks SET attempts = ");
        out.push_bind_param::<Integer, _>(&attempt.number)?;
        out.push_sql(", status = ");
        out.push_bind_param::<Text, _>(self.status.as_str())?;
        out.push_sql(", next_attempt_at = coalesce(");
        out.push_bind_param::<Nullable<Timestamptz>, _>(&self.next_attempt_at)?;
        out.push_sql(", next_attempt_at), last_error = ");
        out.push_bind_param::<Nullable<Text>, _>(&attempt.error)?;
        out.push_sql(", updated_at = ");
        out.push_bind_param::<Timestamptz, _>(&attempt.at)?;
        out.push_sql(", lease_token = NULL, lease_until = NULL WHERE id = ");
        out.push_bind_param::<SqlUuid, _>(self.lease.task_id.as_uuid())?;
        out.push_sql(" AND lease_token = ");
        out.push_bind_param::<SqlUuid, _>(&self.lease.token)?;
        out.push_sql(
            " AND status = 'queued' RETURNING id, invocation_id), \
             attempt AS (INSERT INTO delivery_attempts \
             (task_id, number, status_code, body_excerpt, latency_ms, error, at, succeeded) \
             SELECT held.id, ",
        );
        out.push_bind_param::<Integer, _>(&attempt.number)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<Integer>, _>(&attempt.status_code)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<Text>, _>(&attempt.body_excerpt)?;
        out.push_sql(", ");
        out.push_bind_param::<Integer, _>(&attempt.latency_ms)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<Text>, _>(&attempt.error)?;
        out.push_sql(", ");
        out.push_bind_param::<Timestamptz, _>(&attempt.at)?;
        out.push_sql(", ");
        out.push_bind_param::<Bool, _>(&attempt.succeeded)?;
        out.push_sql(
            " FROM held RETURNING task_id, status_code, body_excerpt, latency_ms, error, at, \
             succeeded) \
             UPDATE invocations SET response_status_code = a.status_code, \
             response_body_excerpt = a.body_excerpt, response_latency_ms = a.latency_ms, \
             response_error = a.error, response_at = a.at, response_succeeded = a.succeeded \
             FROM held JOIN attempt a ON a.task_id = held.id \
             WHERE invocations.id = held.invocation_id",
        );
        Ok(())
    }
}

//! The writes of the delivery path that run once per task: leasing a task and giving it back,
//! the task's state after an attempt, and the invocation's latest target response.
//!
//! Statements of their own rather than `diesel::update`, which diesel never keeps prepared (a
//! changeset may leave columns out): each claimed task paid for parsing and planning its lease's
//! `UPDATE`, and each attempt for two more, about a tenth of the server's CPU at a steady
//! delivery rate. These have a fixed text, so the connection prepares each once.

use diesel::prelude::*;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::sql_types::{BigInt, Binary, Bool, Nullable, Text};
use diesel::sqlite::Sqlite;
use webhook_domain::model::{TargetResponse, TaskStatus};

/// Sets a task's lease: `token` until `until` (µs) to lease it, both `None` to give it back.
pub(super) struct SetLease<'a> {
    pub(super) task_id: &'a [u8],
    pub(super) token: Option<&'a [u8]>,
    pub(super) until: Option<i64>,
}

impl QueryId for SetLease<'_> {
    type QueryId = SetLease<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl QueryFragment<Sqlite> for SetLease<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        out.push_sql("UPDATE tasks SET lease_token = ");
        out.push_bind_param::<Nullable<Binary>, _>(&self.token)?;
        out.push_sql(", lease_until = ");
        out.push_bind_param::<Nullable<BigInt>, _>(&self.until)?;
        out.push_sql(" WHERE id = ");
        out.push_bind_param::<Binary, _>(self.task_id)?;
        Ok(())
    }
}

impl RunQueryDsl<SqliteConnection> for SetLease<'_> {}

/// A task's state after an attempt: its status, attempt count and last error, the time of the
/// change, and when its next attempt is due (`None` keeps the task's); its lease is released.
pub(super) struct FinishTask<'a> {
    pub(super) task_id: &'a [u8],
    pub(super) status: TaskStatus,
    pub(super) attempts: i64,
    pub(super) last_error: Option<&'a str>,
    pub(super) updated_at: i64,
    pub(super) next_attempt_at: Option<i64>,
}

impl QueryId for FinishTask<'_> {
    type QueryId = FinishTask<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl QueryFragment<Sqlite> for FinishTask<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        out.push_sql("UPDATE tasks SET status = ");
        out.push_bind_param::<Text, _>(self.status.as_str())?;
        out.push_sql(", attempts = ");
        out.push_bind_param::<BigInt, _>(&self.attempts)?;
        out.push_sql(", last_error = ");
        out.push_bind_param::<Nullable<Text>, _>(&self.last_error)?;
        out.push_sql(", lease_token = NULL, lease_until = NULL, updated_at = ");
        out.push_bind_param::<BigInt, _>(&self.updated_at)?;
        out.push_sql(", next_attempt_at = coalesce(");
        out.push_bind_param::<Nullable<BigInt>, _>(&self.next_attempt_at)?;
        out.push_sql(", next_attempt_at) WHERE id = ");
        out.push_bind_param::<Binary, _>(self.task_id)?;
        Ok(())
    }
}

impl RunQueryDsl<SqliteConnection> for FinishTask<'_> {}

/// An invocation's latest target response.
pub(super) struct SetResponse<'a> {
    pub(super) invocation_id: &'a [u8],
    pub(super) status_code: Option<i64>,
    pub(super) body_excerpt: Option<&'a str>,
    pub(super) latency_ms: i64,
    pub(super) error: Option<&'a str>,
    pub(super) at: i64,
    pub(super) succeeded: bool,
}

impl<'a> SetResponse<'a> {
    pub(super) fn new(invocation_id: &'a [u8], response: &'a TargetResponse) -> Self {
        Self {
            invocation_id,
            status_code: response.status_code.map(i64::from),
            body_excerpt: response.body_excerpt.as_deref(),
            latency_ms: i64::from(response.latency_ms),
            error: response.error.as_deref(),
            at: response.at.unix_micros(),
            succeeded: response.succeeded,
        }
    }
}

impl QueryId for SetResponse<'_> {
    type QueryId = SetResponse<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl QueryFragment<Sqlite> for SetResponse<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        out.push_sql("UPDATE invocations SET response_status_code = ");
        out.push_bind_param::<Nullable<BigInt>, _>(&self.status_code)?;
        out.push_sql(", response_body_excerpt = ");
        out.push_bind_param::<Nullable<Text>, _>(&self.body_excerpt)?;
        out.push_sql(", response_latency_ms = ");
        out.push_bind_param::<BigInt, _>(&self.latency_ms)?;
        out.push_sql(", response_error = ");
        out.push_bind_param::<Nullable<Text>, _>(&self.error)?;
        out.push_sql(", response_at = ");
        out.push_bind_param::<BigInt, _>(&self.at)?;
        out.push_sql(", response_succeeded = ");
        out.push_bind_param::<Bool, _>(&self.succeeded)?;
        out.push_sql(" WHERE id = ");
        out.push_bind_param::<Binary, _>(self.invocation_id)?;
        Ok(())
    }
}

impl RunQueryDsl<SqliteConnection> for SetResponse<'_> {}

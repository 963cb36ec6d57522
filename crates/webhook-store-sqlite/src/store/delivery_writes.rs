//! The writes of the delivery path that run once per task: leasing a task and giving it back,
//! the task's state after an attempt, and the invocation's latest target response.
//!
//! Statements of fixed text (see [`crate::prepared`]) rather than `diesel::update`: each claimed
//! task paid for parsing and planning its lease's `UPDATE`, and each attempt for two more, about
//! a tenth of the server's CPU at a steady delivery rate. The connection prepares each once.

use diesel::QueryResult;
use diesel::query_builder::{AstPass, QueryFragment};
use diesel::sql_types::{BigInt, Binary, Bool, Nullable, Text};
use diesel::sqlite::Sqlite;
use webhook_domain::model::{TargetResponse, TaskStatus};

use crate::prepared::{self, fixed_text};

/// Sets a task's lease: `token` until `until` (µs) to lease it, both `None` to give it back.
pub(super) struct SetLease<'a> {
    pub(super) task_id: &'a [u8],
    pub(super) token: Option<&'a [u8]>,
    pub(super) until: Option<i64>,
}

const SET_LEASE: &str = "UPDATE tasks SET lease_token = ?, lease_until = ? WHERE id = ?";

impl QueryFragment<Sqlite> for SetLease<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        prepared::push_sql(&mut out, SET_LEASE, |number, out| match number {
            1 => out.push_bind_param::<Nullable<Binary>, _>(&self.token),
            2 => out.push_bind_param::<Nullable<BigInt>, _>(&self.until),
            3 => out.push_bind_param::<Binary, _>(self.task_id),
            other => Err(prepared::no_parameter(other)),
        })
    }
}

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

const FINISH_TASK: &str = "\
UPDATE tasks SET status = ?, attempts = ?, last_error = ?, lease_token = NULL,
    lease_until = NULL, updated_at = ?, next_attempt_at = coalesce(?, next_attempt_at)
WHERE id = ?";

impl QueryFragment<Sqlite> for FinishTask<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        prepared::push_sql(&mut out, FINISH_TASK, |number, out| match number {
            1 => out.push_bind_param::<Text, _>(self.status.as_str()),
            2 => out.push_bind_param::<BigInt, _>(&self.attempts),
            3 => out.push_bind_param::<Nullable<Text>, _>(&self.last_error),
            4 => out.push_bind_param::<BigInt, _>(&self.updated_at),
            5 => out.push_bind_param::<Nullable<BigInt>, _>(&self.next_attempt_at),
            6 => out.push_bind_param::<Binary, _>(self.task_id),
            other => Err(prepared::no_parameter(other)),
        })
    }
}

/// An invocation's latest target response.
pub(super) struct SetResponse<'a> {
    invocation_id: &'a [u8],
    status_code: Option<i64>,
    body_excerpt: Option<&'a str>,
    latency_ms: i64,
    error: Option<&'a str>,
    at: i64,
    succeeded: bool,
}

impl<'a> SetResponse<'a> {
    /// Sets `response` as the latest of invocation `invocation_id`.
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

const SET_RESPONSE: &str = "\
UPDATE invocations SET response_status_code = ?, response_body_excerpt = ?,
    response_latency_ms = ?, response_error = ?, response_at = ?, response_succeeded = ?
WHERE id = ?";

impl QueryFragment<Sqlite> for SetResponse<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        prepared::push_sql(&mut out, SET_RESPONSE, |number, out| match number {
            1 => out.push_bind_param::<Nullable<BigInt>, _>(&self.status_code),
            2 => out.push_bind_param::<Nullable<Text>, _>(&self.body_excerpt),
            3 => out.push_bind_param::<BigInt, _>(&self.latency_ms),
            4 => out.push_bind_param::<Nullable<Text>, _>(&self.error),
            5 => out.push_bind_param::<BigInt, _>(&self.at),
            6 => out.push_bind_param::<Bool, _>(&self.succeeded),
            7 => out.push_bind_param::<Binary, _>(self.invocation_id),
            other => Err(prepared::no_parameter(other)),
        })
    }
}

fixed_text!(SetLease, FinishTask, SetResponse);

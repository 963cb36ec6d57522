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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use diesel::connection::{InstrumentationEvent, SimpleConnection as _};
    use diesel::prelude::*;
    use webhook_domain::model::Timestamp;

    use super::*;

    /// Each statement is prepared once on a connection and found again in its statement cache
    /// at every later run: diesel reports the one time it caches a statement, and caches none
    /// that says it is unsafe to cache (as an `UPDATE` diesel builds, an `sql_query` or a SQL
    /// literal do).
    #[test]
    fn each_statement_is_prepared_once_per_connection() {
        let mut conn = SqliteConnection::establish(":memory:").unwrap();
        conn.batch_execute(
            "CREATE TABLE tasks (id BLOB PRIMARY KEY, status TEXT NOT NULL, attempts INTEGER NOT NULL,
                 last_error TEXT, lease_token BLOB, lease_until INTEGER, updated_at INTEGER NOT NULL,
                 next_attempt_at INTEGER NOT NULL);
             CREATE TABLE invocations (id BLOB PRIMARY KEY, response_status_code INTEGER,
                 response_body_excerpt TEXT, response_latency_ms INTEGER, response_error TEXT,
                 response_at INTEGER, response_succeeded BOOLEAN);
             INSERT INTO tasks VALUES (x'01', 'queued', 0, NULL, NULL, NULL, 0, 0);
             INSERT INTO invocations (id) VALUES (x'02');",
        )
        .unwrap();
        let cached = Arc::new(Mutex::new(Vec::<String>::new()));
        let seen = Arc::clone(&cached);
        conn.set_instrumentation(move |event: InstrumentationEvent<'_>| {
            if let InstrumentationEvent::CacheQuery { sql, .. } = event {
                seen.lock().unwrap().push(sql.to_owned());
            }
        });
        let response = TargetResponse {
            status_code: Some(200),
            body_excerpt: Some("ok".to_owned()),
            latency_ms: 3,
            error: None,
            at: Timestamp::from_unix_micros(5),
            succeeded: true,
        };
        for round in 0..3 {
            let token = [round; 16];
            let lease = SetLease {
                task_id: &[1],
                token: Some(&token),
                until: Some(10),
            };
            assert_eq!(lease.execute(&mut conn).unwrap(), 1);
            let finish = FinishTask {
                task_id: &[1],
                status: TaskStatus::Queued,
                attempts: i64::from(round) + 1,
                last_error: Some("503"),
                updated_at: 5,
                next_attempt_at: Some(20),
            };
            assert_eq!(finish.execute(&mut conn).unwrap(), 1);
            assert_eq!(
                SetResponse::new(&[2], &response)
                    .execute(&mut conn)
                    .unwrap(),
                1
            );
        }
        let cached = cached.lock().unwrap();
        assert_eq!(
            *cached,
            [SET_LEASE, FINISH_TASK, SET_RESPONSE],
            "each statement cached once, in the order of their first runs"
        );
        let task: TaskState =
            diesel::sql_query("SELECT attempts, lease_token, next_attempt_at FROM tasks")
                .get_result(&mut conn)
                .unwrap();
        assert_eq!(
            (task.attempts, task.lease_token, task.next_attempt_at),
            (3, None, 20)
        );
    }

    #[derive(QueryableByName)]
    struct TaskState {
        #[diesel(sql_type = BigInt)]
        attempts: i64,
        #[diesel(sql_type = Nullable<Binary>)]
        lease_token: Option<Vec<u8>>,
        #[diesel(sql_type = BigInt)]
        next_attempt_at: i64,
    }
}

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
use webhook_domain::model::TaskStatus;

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

/// Whether the latest attempt of an invocation's task succeeded, the one part of the target's
/// response kept on the invocation (the log's `failed` filter and the webhooks' health read it
/// there, row by row); the rest is read from the attempt itself
/// ([`super::invocations::latest_responses`]).
///
/// SQLite stores 0 and 1 in a record's header alone, with no bytes of value, so this never
/// changes the size of the row, and SQLite then writes only the page that holds the row's start:
/// a payload too large for one page sits in overflow pages, which an update that changes the
/// row's size would write anew.
pub(super) struct SetResponseSucceeded<'a> {
    pub(super) invocation_id: &'a [u8],
    pub(super) succeeded: bool,
}

const SET_RESPONSE_SUCCEEDED: &str = "UPDATE invocations SET response_succeeded = ? WHERE id = ?";

impl QueryFragment<Sqlite> for SetResponseSucceeded<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        prepared::push_sql(
            &mut out,
            SET_RESPONSE_SUCCEEDED,
            |number, out| match number {
                1 => out.push_bind_param::<Bool, _>(&self.succeeded),
                2 => out.push_bind_param::<Binary, _>(self.invocation_id),
                other => Err(prepared::no_parameter(other)),
            },
        )
    }
}

fixed_text!(SetLease, FinishTask, SetResponseSucceeded);

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use diesel::connection::{InstrumentationEvent, SimpleConnection as _};
    use diesel::prelude::*;

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
             CREATE TABLE invocations (id BLOB PRIMARY KEY, response_succeeded BOOLEAN);
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
            let succeeded = SetResponseSucceeded {
                invocation_id: &[2],
                succeeded: round == 2,
            };
            assert_eq!(succeeded.execute(&mut conn).unwrap(), 1);
        }
        let cached = cached.lock().unwrap();
        assert_eq!(
            *cached,
            [SET_LEASE, FINISH_TASK, SET_RESPONSE_SUCCEEDED],
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

    /// Recording an attempt's outcome on an invocation writes the one page that holds the start
    /// of its row, however large its payload: the payload's overflow pages are left as they
    /// are. Counted as the frames the commit appends to the write-ahead log, on the migrated
    /// schema; an update that changes the row's size (here, its error code set) writes them
    /// all.
    #[test]
    fn an_outcome_leaves_a_large_payload_unwritten() {
        let path =
            std::env::temp_dir().join(format!("webhookd-test-{}.sqlite", uuid::Uuid::new_v4()));
        let mut conn = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
        conn.batch_execute("PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;")
            .unwrap();
        crate::migrate(&mut conn).unwrap();
        // The row alone, without its webhook.
        conn.batch_execute("PRAGMA foreign_keys = OFF").unwrap();
        let payload = format!(
            r#"{{"message":"deploy","padding":"{}"}}"#,
            "x".repeat(64 * 1024)
        );
        diesel::sql_query(
            "INSERT INTO invocations (id, organization_id, webhook_id, received_at, payload, \
             outcome, http_status, repeat_count, test) \
             VALUES (x'02', x'03', x'04', 1, ?, 'accepted', 202, 1, 0)",
        )
        .bind::<Text, _>(&payload)
        .execute(&mut conn)
        .unwrap();
        let page_size = diesel::select(diesel::dsl::sql::<BigInt>(
            "(SELECT page_size FROM pragma_page_size)",
        ))
        .get_result::<i64>(&mut conn)
        .unwrap()
        .unsigned_abs();
        let wal = path.with_extension("sqlite-wal");
        let frames_of = |conn: &mut SqliteConnection, write: &dyn Fn(&mut SqliteConnection)| {
            conn.batch_execute("PRAGMA wal_checkpoint(TRUNCATE)")
                .unwrap();
            assert_eq!(
                std::fs::metadata(&wal).unwrap().len(),
                0,
                "the log starts empty"
            );
            write(conn);
            // A 32-byte header, then each frame: a 24-byte header and the page. A commit that
            // changed nothing writes no header either.
            (std::fs::metadata(&wal).unwrap().len().saturating_sub(32)) / (page_size + 24)
        };
        for succeeded in [false, true, true] {
            let frames = frames_of(&mut conn, &|conn| {
                let outcome = SetResponseSucceeded {
                    invocation_id: &[2],
                    succeeded,
                };
                assert_eq!(outcome.execute(conn).unwrap(), 1);
            });
            assert!(
                frames <= 1,
                "only the row's first page is written: {frames} frames"
            );
        }
        let resized = frames_of(&mut conn, &|conn| {
            conn.batch_execute("UPDATE invocations SET error_code = 'grown' WHERE id = x'02'")
                .unwrap();
        });
        assert!(
            resized > 16,
            "a row that changes size is written whole: {resized} frames"
        );
        drop(conn);
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
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

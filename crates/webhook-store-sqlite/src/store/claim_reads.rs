//! The two reads of a claim: the due tasks found by a reader, and the same tasks checked again
//! by the writer, with what their delivery needs.
//!
//! Statements whose text does not depend on how many ids they are given, so that each
//! connection prepares them once (see [`crate::prepared`]): a list of ids is bound as one JSON
//! array of hexadecimal strings (`json_each`) rather than as an `IN` list of one parameter per
//! id, whose text changes with the list's length and which diesel therefore never caches; the
//! queued status is written in the text (a literal, so that the partial index `tasks_claimable`
//! applies); and the reader's `LIMIT` is written in the text too, because SQLite plans with the
//! value of a bound `LIMIT` and so prepares the statement again whenever it is bound (one text,
//! kept prepared, per limit a claim asks for).

use diesel::QueryResult;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{BigInt, Text};
use diesel::sqlite::Sqlite;
use diesel::{Expression, Table};

use crate::prepared::{self, fixed_text};
use crate::rows::TaskRow;
use crate::schema::{invocations, targets, tasks};

/// The ids, each in hexadecimal (as `hex(id)` in SQL or [`uuid::Uuid::simple`] write it), as one
/// JSON array: how [`DueTasks`] and [`ClaimCandidates`] bind a list of ids
/// (`unhex(value) FROM json_each(?)`).
pub(super) fn id_list<S: AsRef<str>>(hex_ids: &[S]) -> String {
    hex_ids
        .iter()
        .map(AsRef::as_ref)
        .collect::<serde_json::Value>()
        .to_string()
}

/// The ids (in hexadecimal, as [`id_list`] takes them) of the due, unleased tasks of the live
/// targets that have an endpoint, except those of the targets in `skipped_targets` (an
/// [`id_list`]), the first due first, at most `limit`.
/// Driven by the targets, through `tasks_claimable`, so that the queued tasks of targets without
/// an endpoint are never walked.
pub(super) struct DueTasks<'a> {
    pub(super) skipped_targets: &'a str,
    pub(super) now: i64,
    pub(super) limit: u32,
}

const DUE_TASKS: &str = "\
SELECT hex(tasks.id) FROM tasks
WHERE tasks.status = 'queued'
  AND tasks.target_id IN (
    SELECT targets.id FROM targets
    WHERE targets.deleted_at IS NULL AND targets.endpoint_url IS NOT NULL
      AND targets.id NOT IN (SELECT unhex(value) FROM json_each(?)))
  AND tasks.next_attempt_at <= ?
  AND (tasks.lease_until IS NULL OR tasks.lease_until <= ?)
ORDER BY tasks.next_attempt_at, tasks.id
LIMIT ";

impl QueryFragment<Sqlite> for DueTasks<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        prepared::push_sql(&mut out, DUE_TASKS, |number, out| match number {
            1 => out.push_bind_param::<Text, _>(self.skipped_targets),
            2 | 3 => out.push_bind_param::<BigInt, _>(&self.now),
            other => Err(prepared::no_parameter(other)),
        })?;
        out.push_sql(&self.limit.to_string());
        Ok(())
    }
}

/// The text holds the limit: the statement cache finds it by its text, not by its type.
impl QueryId for DueTasks<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Query for DueTasks<'_> {
    type SqlType = Text;
}

impl diesel::RunQueryDsl<diesel::SqliteConnection> for DueTasks<'_> {}

/// A claimed task's columns, its invocation's payload, its target's endpoint and signing secret.
type ClaimColumns = (
    <tasks::table as Table>::AllColumns,
    invocations::payload,
    targets::endpoint_url,
    targets::signing_secret,
);

/// A row of [`ClaimColumns`].
pub(super) type ClaimRow = (TaskRow, Option<String>, Option<String>, Vec<u8>);

static CLAIM_COLUMNS: ClaimColumns = (
    tasks::all_columns,
    invocations::payload,
    targets::endpoint_url,
    targets::signing_secret,
);

/// Those of the tasks `task_ids` (an [`id_list`]) that are still due, unleased, and of a live
/// target with an endpoint, with [`ClaimColumns`], the first due first: the writer's check of
/// what a reader found, which another claim may have leased meanwhile.
pub(super) struct ClaimCandidates<'a> {
    pub(super) task_ids: &'a str,
    pub(super) now: i64,
}

const CLAIM_CANDIDATES_FROM: &str = "
FROM tasks
  INNER JOIN invocations ON invocations.id = tasks.invocation_id
  INNER JOIN targets ON targets.id = tasks.target_id
WHERE tasks.id IN (SELECT unhex(value) FROM json_each(?))
  AND tasks.status = 'queued'
  AND tasks.next_attempt_at <= ?
  AND (tasks.lease_until IS NULL OR tasks.lease_until <= ?)
  AND targets.deleted_at IS NULL AND targets.endpoint_url IS NOT NULL
ORDER BY tasks.next_attempt_at, tasks.id";

impl QueryFragment<Sqlite> for ClaimCandidates<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        out.push_sql("SELECT ");
        CLAIM_COLUMNS.walk_ast(out.reborrow())?;
        prepared::push_sql(
            &mut out,
            CLAIM_CANDIDATES_FROM,
            |number, out| match number {
                1 => out.push_bind_param::<Text, _>(self.task_ids),
                2 | 3 => out.push_bind_param::<BigInt, _>(&self.now),
                other => Err(prepared::no_parameter(other)),
            },
        )
    }
}

impl Query for ClaimCandidates<'_> {
    type SqlType = <ClaimColumns as Expression>::SqlType;
}

fixed_text!(ClaimCandidates);

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use diesel::connection::InstrumentationEvent;
    use diesel::dsl::sql;
    use diesel::prelude::*;
    use diesel::sql_types::Binary;
    use uuid::Uuid;

    use super::*;

    /// Whatever the number of ids, each statement is prepared once per limit on a connection
    /// and found again in its statement cache at every later run.
    #[test]
    fn each_read_is_prepared_once_per_connection_whatever_the_ids() {
        let mut conn = SqliteConnection::establish(":memory:").unwrap();
        crate::migrate(&mut conn).unwrap();
        let cached = Arc::new(Mutex::new(Vec::<String>::new()));
        let seen = Arc::clone(&cached);
        conn.set_instrumentation(move |event: InstrumentationEvent<'_>| {
            if let InstrumentationEvent::CacheQuery { sql, .. } = event {
                seen.lock().unwrap().push(sql.to_owned());
            }
        });
        let ids: Vec<String> = (0..4)
            .map(|_| Uuid::new_v4().simple().to_string())
            .collect();
        for (count, limit) in [(0, 8), (1, 8), (4, 8), (2, 16), (3, 16)] {
            let list = id_list(&ids[..count]);
            let due: Vec<String> = DueTasks {
                skipped_targets: &list,
                now: 5,
                limit,
            }
            .load(&mut conn)
            .unwrap();
            assert!(due.is_empty());
            let claimed: Vec<ClaimRow> = ClaimCandidates {
                task_ids: &list,
                now: 5,
            }
            .load(&mut conn)
            .unwrap();
            assert!(claimed.is_empty());
        }
        let cached = cached.lock().unwrap();
        assert_eq!(cached.len(), 3, "{cached:#?}");
        assert!(cached[0].starts_with(DUE_TASKS) && cached[0].ends_with("LIMIT 8"));
        assert!(cached[1].starts_with("SELECT ") && cached[1].ends_with(CLAIM_CANDIDATES_FROM));
        assert!(cached[2].ends_with("LIMIT 16"));
    }

    /// The reader walks `tasks_claimable` (a partial index, which applies only because the
    /// status is a literal), target by target; the re-check finds each listed task by its key.
    #[test]
    fn the_reads_walk_the_claimable_index_and_the_key() {
        let mut conn = SqliteConnection::establish(":memory:").unwrap();
        crate::migrate(&mut conn).unwrap();
        let plan = |conn: &mut SqliteConnection, sql: String| -> String {
            diesel::sql_query(format!("EXPLAIN QUERY PLAN {sql}"))
                .bind::<Text, _>(r#"["00"]"#)
                .bind::<BigInt, _>(5)
                .bind::<BigInt, _>(5)
                .load::<PlanStep>(conn)
                .unwrap()
                .into_iter()
                .map(|step| step.detail)
                .collect::<Vec<_>>()
                .join("\n")
        };
        let due = plan(&mut conn, format!("{DUE_TASKS}8"));
        assert!(
            due.contains(
                "SEARCH tasks USING INDEX tasks_claimable (target_id=? AND next_attempt_at<?)"
            ),
            "{due}"
        );
        let claim = plan(&mut conn, format!("SELECT tasks.id{CLAIM_CANDIDATES_FROM}"));
        assert!(
            claim
                .lines()
                .any(|step| step.starts_with("SEARCH tasks USING ") && step.ends_with("(id=?)")),
            "{claim}"
        );
    }

    #[derive(QueryableByName)]
    struct PlanStep {
        #[diesel(sql_type = Text)]
        detail: String,
    }

    /// An id written by `hex()` (upper case, as the reader answers) or by `Uuid::simple`
    /// (lower case) stands in a list for the id's bytes, which the statements compare with.
    #[test]
    fn an_id_list_stands_for_the_ids_bytes() {
        let mut conn = SqliteConnection::establish(":memory:").unwrap();
        let id = Uuid::new_v4();
        let from_sql: String = diesel::select(
            sql::<Text>("hex(")
                .bind::<Binary, _>(id.as_bytes().to_vec())
                .sql(")"),
        )
        .get_result(&mut conn)
        .unwrap();
        let list = id_list(&[from_sql, id.simple().to_string()]);
        let matching: i64 = diesel::select(
            sql::<BigInt>("(SELECT count(*) FROM json_each(")
                .bind::<Text, _>(&list)
                .sql(") WHERE unhex(value) = ")
                .bind::<Binary, _>(id.as_bytes().to_vec())
                .sql(")"),
        )
        .get_result(&mut conn)
        .unwrap();
        assert_eq!(matching, 2, "{list}");
        assert_eq!(id_list::<String>(&[]), "[]");
    }
}

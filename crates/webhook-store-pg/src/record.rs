//! The one statement that records a batch of invocations with their tasks: one round trip,
//! atomic without an explicit transaction, and kept prepared by the connection because its text
//! never changes. It writes no other row: a webhook's `last_triggered_at` is read from its
//! invocations, so writers of one webhook's events never wait for each other.
//!
//! Each column of the new rows travels as one array parameter; `unnest` turns the arrays back
//! into rows. The statement is
//!
//! ```sql
//! WITH inv AS (INSERT INTO invocations (…) SELECT * FROM unnest($1::uuid[], …))
//! INSERT INTO tasks (…) SELECT * FROM unnest($20::uuid[], …)
//! ```
//!
//! Foreign keys hold as they did with one statement per table: PostgreSQL checks them when the
//! whole statement is done, so a task finds its invocation inserted by the same statement.

use diesel::QueryResult;
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::sql_types::{Array, Bool, Integer, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use time::OffsetDateTime;
use uuid::Uuid;
use webhook_domain::model::{Invocation, Payload, Task};

use crate::rows::{at, int};

/// `""` the first time, `", "` after: separates the items of a list written one by one.
fn separator(first: &mut bool) -> &'static str {
    if std::mem::take(first) { "" } else { ", " }
}

/// Declares the new rows of one table as one array per column, with the `INSERT … SELECT *
/// FROM unnest(…)` that writes them: the column list and the arrays come from one list, so they
/// cannot fall out of step.
macro_rules! columns {
    (
        $(#[$meta:meta])*
        $name:ident => $table:literal {
            $($column:ident: $element:ty => $sql:ty as $cast:literal,)*
        }
    ) => {
        $(#[$meta])*
        #[derive(Default)]
        struct $name<'a> {
            $($column: Vec<$element>,)*
        }

        impl<'a> $name<'a> {
            fn walk_insert<'b>(&'b self, out: &mut AstPass<'_, 'b, Pg>) -> QueryResult<()> {
                out.push_sql(concat!("INSERT INTO ", $table, " ("));
                let mut first = true;
                $(
                    out.push_sql(separator(&mut first));
                    out.push_sql(stringify!($column));
                )*
                out.push_sql(") SELECT * FROM unnest(");
                let mut first = true;
                $(
                    out.push_sql(separator(&mut first));
                    out.push_bind_param::<Array<$sql>, _>(&self.$column)?;
                    out.push_sql(concat!("::", $cast, "[]"));
                )*
                out.push_sql(")");
                Ok(())
            }
        }
    };
}

columns! {
    /// New invocations, one array element per invocation.
    Invocations => "invocations" {
        id: Uuid => SqlUuid as "uuid",
        organization_id: Uuid => SqlUuid as "uuid",
        webhook_id: Uuid => SqlUuid as "uuid",
        received_at: OffsetDateTime => Timestamptz as "timestamptz",
        source_ip: Option<String> => Nullable<Text> as "text",
        event_type: Option<&'a str> => Nullable<Text> as "text",
        payload: Option<&'a str> => Nullable<Text> as "text",
        outcome: &'static str => Text as "text",
        http_status: i32 => Integer as "integer",
        error_code: Option<&'a str> => Nullable<Text> as "text",
        task_id: Option<Uuid> => Nullable<SqlUuid> as "uuid",
        repeat_count: i32 => Integer as "integer",
        test: bool => Bool as "boolean",
        response_status_code: Option<i32> => Nullable<Integer> as "integer",
        response_body_excerpt: Option<&'a str> => Nullable<Text> as "text",
        response_latency_ms: Option<i32> => Nullable<Integer> as "integer",
        response_error: Option<&'a str> => Nullable<Text> as "text",
        response_at: Option<OffsetDateTime> => Nullable<Timestamptz> as "timestamptz",
        response_succeeded: Option<bool> => Nullable<Bool> as "boolean",
    }
}

columns! {
    /// New tasks, one array element per task.
    Tasks => "tasks" {
        id: Uuid => SqlUuid as "uuid",
        organization_id: Uuid => SqlUuid as "uuid",
        target_id: Uuid => SqlUuid as "uuid",
        webhook_id: Uuid => SqlUuid as "uuid",
        invocation_id: Uuid => SqlUuid as "uuid",
        instruction: Option<&'a str> => Nullable<Text> as "text",
        context: Option<&'a str> => Nullable<Text> as "text",
        event_type: Option<&'a str> => Nullable<Text> as "text",
        status: &'static str => Text as "text",
        test: bool => Bool as "boolean",
        source_verified: bool => Bool as "boolean",
        source_ip: Option<String> => Nullable<Text> as "text",
        source_received_at: OffsetDateTime => Timestamptz as "timestamptz",
        attempts: i32 => Integer as "integer",
        attempts_before_round: i32 => Integer as "integer",
        next_attempt_at: OffsetDateTime => Timestamptz as "timestamptz",
        last_error: Option<&'a str> => Nullable<Text> as "text",
        created_at: OffsetDateTime => Timestamptz as "timestamptz",
        updated_at: OffsetDateTime => Timestamptz as "timestamptz",
    }
}

impl<'a> Invocations<'a> {
    fn push(&mut self, i: &'a Invocation) {
        let r = i.target_response.as_ref();
        self.id.push(*i.id.as_uuid());
        self.organization_id.push(*i.organization_id.as_uuid());
        self.webhook_id.push(*i.webhook_id.as_uuid());
        self.received_at.push(at(i.received_at));
        self.source_ip.push(i.source_ip.map(|ip| ip.to_string()));
        self.event_type.push(i.event_type.as_deref());
        self.payload.push(i.payload.as_ref().map(Payload::as_str));
        self.outcome.push(i.outcome.as_str());
        self.http_status.push(i32::from(i.http_status));
        self.error_code.push(i.error_code.as_deref());
        self.task_id.push(i.task_id.map(|t| *t.as_uuid()));
        self.repeat_count.push(int(i.repeat_count));
        self.test.push(i.test);
        self.response_status_code
            .push(r.and_then(|r| r.status_code).map(i32::from));
        self.response_body_excerpt
            .push(r.and_then(|r| r.body_excerpt.as_deref()));
        self.response_latency_ms.push(r.map(|r| int(r.latency_ms)));
        self.response_error.push(r.and_then(|r| r.error.as_deref()));
        self.response_at.push(r.map(|r| at(r.at)));
        self.response_succeeded.push(r.map(|r| r.succeeded));
    }
}

impl<'a> Tasks<'a> {
    /// Adds `t`, whose context is stored only when it is not `invocation`'s payload (a task
    /// reads that by join).
    fn push(&mut self, t: &'a Task, invocation: &Invocation) {
        let own_context = invocation.payload.as_ref() != Some(&t.context);
        self.id.push(*t.id.as_uuid());
        self.organization_id.push(*t.organization_id.as_uuid());
        self.target_id.push(*t.target_id.as_uuid());
        self.webhook_id.push(*t.webhook_id.as_uuid());
        self.invocation_id.push(*t.invocation_id.as_uuid());
        self.instruction.push(t.instruction.as_deref());
        self.context.push(own_context.then(|| t.context.as_str()));
        self.event_type.push(t.event_type.as_deref());
        self.status.push(t.status.as_str());
        self.test.push(t.test);
        self.source_verified.push(t.source.verified);
        self.source_ip
            .push(t.source.source_ip.map(|ip| ip.to_string()));
        self.source_received_at.push(at(t.source.received_at));
        self.attempts.push(int(t.attempts));
        self.attempts_before_round
            .push(int(t.attempts_before_round));
        self.next_attempt_at.push(at(t.next_attempt_at));
        self.last_error.push(t.last_error.as_deref());
        self.created_at.push(at(t.created_at));
        self.updated_at.push(at(t.updated_at));
    }
}

/// A batch of invocations with their tasks, written by one statement.
#[derive(Default)]
pub(crate) struct RecordBatch<'a> {
    invocations: Invocations<'a>,
    tasks: Tasks<'a>,
}

impl<'a> RecordBatch<'a> {
    pub(crate) fn push(&mut self, invocation: &'a Invocation, task: Option<&'a Task>) {
        self.invocations.push(invocation);
        if let Some(task) = task {
            self.tasks.push(task, invocation);
        }
    }
}

impl QueryId for RecordBatch<'_> {
    type QueryId = RecordBatch<'static>;
    // The text is the same for every batch, whatever its size: the connection prepares it once.
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl QueryFragment<Pg> for RecordBatch<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("WITH inv AS (");
        self.invocations.walk_insert(&mut out)?;
        out.push_sql(") ");
        self.tasks.walk_insert(&mut out)
    }
}

#[cfg(all(test, feature = "test-util"))]
mod tests {
    use diesel::QueryableByName;
    use diesel::sql_types::BigInt;
    use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl as _};
    use webhook_store_contract::ContractStore as _;
    use webhook_store_contract::fixtures::{World, accepted, at, rejected};

    use super::RecordBatch;
    use crate::test_db::{database_url, fresh_store};

    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }

    /// Batches of any size run one statement that the connection prepared once: a batch costs
    /// one round trip.
    #[tokio::test]
    async fn batches_share_one_prepared_statement() {
        let store = fresh_store().await;
        let world = World::seed(&store).await;
        let url = database_url(&store.test_database().expect("a test database"));
        let mut conn = AsyncPgConnection::establish(&url).await.expect("connect");

        let (one, one_task) = accepted(&world.webhook, at(1));
        let mut batch = RecordBatch::default();
        batch.push(&one, Some(&one_task));
        assert_eq!(batch.execute(&mut conn).await.expect("first batch"), 1);

        let (two, two_task) = accepted(&world.webhook, at(2));
        let three = rejected(&world.webhook, at(3));
        let mut batch = RecordBatch::default();
        batch.push(&two, Some(&two_task));
        batch.push(&three, None);
        assert_eq!(batch.execute(&mut conn).await.expect("second batch"), 1);

        let prepared = diesel::sql_query(
            "SELECT count(*) AS n FROM pg_prepared_statements \
             WHERE statement LIKE 'WITH inv AS (INSERT INTO invocations %'",
        )
        .get_result::<Count>(&mut conn)
        .await
        .expect("pg_prepared_statements is readable");
        assert_eq!(prepared.n, 1);
        let stored = diesel::sql_query(
            "SELECT (SELECT count(*) FROM invocations) + (SELECT count(*) FROM tasks) AS n",
        )
        .get_result::<Count>(&mut conn)
        .await
        .expect("count");
        assert_eq!(stored.n, 5);
        drop(conn);
        store.teardown().await;
    }
}

//! The one statement that records a batch of invocations with their tasks and the delivery ids
//! they claim: one round trip, atomic without an explicit transaction, and kept prepared by the
//! connection because its text never changes. It writes no other row: a webhook's
//! `last_triggered_at` is read from its invocations, so writers of one webhook's events never
//! wait for each other.
//!
//! Each column of the new rows travels as one array parameter; `unnest` turns the arrays back
//! into rows. The statement is
//!
//! ```sql
//! WITH claim AS (SELECT * FROM unnest($1::uuid[], …) AS n (webhook_id, …, window_start)),
//! claimed AS (INSERT INTO delivery_claims … ON CONFLICT … DO UPDATE … WHERE <lapsed>
//!             RETURNING invocation_id),
//! inv AS (INSERT INTO invocations (…) SELECT * FROM unnest($7::uuid[], …) AS n (…)
//!         WHERE <not claiming, or claimed>),
//! task AS (INSERT INTO tasks (…) SELECT * FROM unnest($29::uuid[], …) AS n (…) WHERE <same>)
//! SELECT invocation_id FROM claimed
//! ```
//!
//! A claim is the row of its (webhook, delivery id) in `delivery_claims`, whose primary key
//! makes it exact: a claim of an id that another transaction is claiming waits for it, then
//! finds its row. A held claim (made at or after the claim's `window_start`) is left alone and
//! its invocation and task are not inserted; a lapsed one is taken over in place. The statement
//! answers the invocations whose claims it took; the caller reads the holders of the others.
//! Claims are inserted in key order, so that two batches claiming the same ids cannot wait for
//! each other in a cycle. One batch claims each (webhook, delivery id) at most once: a row
//! cannot be claimed twice by one statement.
//!
//! A task is written only with its invocation, and the two rows name each other
//! (`tasks.invocation_id`, `invocations.task_id`) whatever ids the caller's values carry: the
//! retention purge deletes an invocation's task through `invocations.task_id`, and no foreign
//! key checks the pair, so that an event costs no lookup and no row lock for it. The one
//! foreign key an event is checked against, its webhook in its organization, PostgreSQL checks
//! when the whole statement is done.

use diesel::QueryResult;
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{Array, Bool, Integer, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use time::OffsetDateTime;
use uuid::Uuid;
use webhook_domain::model::{DeliveryClaim, Invocation, Payload, RequestRecord, Task};

use crate::rows::{at, int};

/// `""` the first time, `", "` after: separates the items of a list written one by one.
fn separator(first: &mut bool) -> &'static str {
    if std::mem::take(first) { "" } else { ", " }
}

/// Declares new rows as one array per column, with the `SELECT * FROM unnest(…) AS n (…)` that
/// turns them back into rows and the column list an `INSERT` names: both come from one list,
/// so they cannot fall out of step.
macro_rules! columns {
    (
        $(#[$meta:meta])*
        $name:ident {
            $($column:ident: $element:ty => $sql:ty as $cast:literal,)*
        }
    ) => {
        $(#[$meta])*
        #[derive(Default)]
        struct $name<'a> {
            $($column: Vec<$element>,)*
        }

        impl<'a> $name<'a> {
            /// `(column, …)`.
            fn walk_columns(out: &mut AstPass<'_, '_, Pg>) {
                out.push_sql("(");
                let mut first = true;
                $(
                    out.push_sql(separator(&mut first));
                    out.push_sql(stringify!($column));
                )*
                out.push_sql(")");
            }

            /// `SELECT * FROM unnest($1::type[], …) AS n (column, …)`: the rows, as `n`.
            fn walk_rows<'b>(&'b self, out: &mut AstPass<'_, 'b, Pg>) -> QueryResult<()> {
                out.push_sql("SELECT * FROM unnest(");
                let mut first = true;
                $(
                    out.push_sql(separator(&mut first));
                    out.push_bind_param::<Array<$sql>, _>(&self.$column)?;
                    out.push_sql(concat!("::", $cast, "[]"));
                )*
                out.push_sql(") AS n ");
                Self::walk_columns(out);
                Ok(())
            }
        }
    };
}

columns! {
    /// Delivery ids claimed, one array element per claim: the columns of `delivery_claims`,
    /// and the start of each claim's window.
    Claims {
        webhook_id: Uuid => SqlUuid as "uuid",
        delivery_id: &'a str => Text as "text",
        invocation_id: Uuid => SqlUuid as "uuid",
        task_id: Option<Uuid> => Nullable<SqlUuid> as "uuid",
        claimed_at: OffsetDateTime => Timestamptz as "timestamptz",
        window_start: OffsetDateTime => Timestamptz as "timestamptz",
    }
}

columns! {
    /// New invocations, one array element per invocation.
    Invocations {
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
        response_succeeded: Option<bool> => Nullable<Bool> as "boolean",
        delivery_id: Option<&'a str> => Nullable<Text> as "text",
        duplicate_of: Option<Uuid> => Nullable<SqlUuid> as "uuid",
        instruction_fallback: Option<&'a str> => Nullable<Text> as "text",
        // The payload's words, as tsvector text (`search::tsvector_text`).
        search_words: Option<String> => Nullable<Text> as "tsvector",
        request_record: Option<String> => Nullable<Text> as "text",
        replay_of: Option<Uuid> => Nullable<SqlUuid> as "uuid",
    }
}

columns! {
    /// New tasks, one array element per task.
    Tasks {
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
        source_provider: &'static str => Text as "text",
        attempts: i32 => Integer as "integer",
        attempts_before_round: i32 => Integer as "integer",
        next_attempt_at: OffsetDateTime => Timestamptz as "timestamptz",
        last_error: Option<&'a str> => Nullable<Text> as "text",
        created_at: OffsetDateTime => Timestamptz as "timestamptz",
        updated_at: OffsetDateTime => Timestamptz as "timestamptz",
    }
}

impl<'a> Claims<'a> {
    fn push(&mut self, claim: &'a DeliveryClaim, invocation: &Invocation, task: Option<&Task>) {
        self.webhook_id.push(*invocation.webhook_id.as_uuid());
        self.delivery_id.push(&claim.delivery_id);
        self.invocation_id.push(*invocation.id.as_uuid());
        self.task_id.push(task.map(|t| *t.id.as_uuid()));
        self.claimed_at.push(at(invocation.received_at));
        self.window_start.push(at(claim.window_start));
    }
}

impl<'a> Invocations<'a> {
    /// Adds `i`, which names `task` when it has one: the retention purge finds an invocation's
    /// task through `task_id` (no foreign key cascades to it).
    fn push(&mut self, i: &'a Invocation, task: Option<&Task>) {
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
        self.task_id
            .push(task.map_or(i.task_id, |t| Some(t.id)).map(|t| *t.as_uuid()));
        self.repeat_count.push(int(i.repeat_count));
        self.test.push(i.test);
        self.response_succeeded.push(r.map(|r| r.succeeded));
        self.delivery_id.push(i.delivery_id.as_deref());
        self.duplicate_of.push(i.duplicate_of.map(|d| *d.as_uuid()));
        self.instruction_fallback
            .push(i.instruction_fallback.as_deref());
        self.search_words
            .push(i.payload.as_ref().map(crate::search::tsvector_text));
        self.request_record
            .push(i.request.as_ref().map(RequestRecord::to_json));
        self.replay_of.push(i.replay_of.map(|r| *r.as_uuid()));
    }
}

impl<'a> Tasks<'a> {
    /// Adds `t`, the task of `invocation`, which it names, and whose context is stored only
    /// when it is not `invocation`'s payload (a task reads that by join).
    fn push(&mut self, t: &'a Task, invocation: &Invocation) {
        let own_context = invocation.payload.as_ref() != Some(&t.context);
        self.id.push(*t.id.as_uuid());
        self.organization_id.push(*t.organization_id.as_uuid());
        self.target_id.push(*t.target_id.as_uuid());
        self.webhook_id.push(*t.webhook_id.as_uuid());
        self.invocation_id.push(*invocation.id.as_uuid());
        self.instruction.push(t.instruction.as_deref());
        self.context.push(own_context.then(|| t.context.as_str()));
        self.event_type.push(t.event_type.as_deref());
        self.status.push(t.status.as_str());
        self.test.push(t.test);
        self.source_verified.push(t.source.verified);
        self.source_ip
            .push(t.source.source_ip.map(|ip| ip.to_string()));
        self.source_received_at.push(at(t.source.received_at));
        self.source_provider.push(t.source.provider.as_str());
        self.attempts.push(int(t.attempts));
        self.attempts_before_round
            .push(int(t.attempts_before_round));
        self.next_attempt_at.push(at(t.next_attempt_at));
        self.last_error.push(t.last_error.as_deref());
        self.created_at.push(at(t.created_at));
        self.updated_at.push(at(t.updated_at));
    }
}

/// A batch of invocations with their tasks and claims, written by one statement, which answers
/// the ids of the invocations whose claims it took.
#[derive(Default)]
pub(crate) struct RecordBatch<'a> {
    claims: Claims<'a>,
    invocations: Invocations<'a>,
    tasks: Tasks<'a>,
}

impl<'a> RecordBatch<'a> {
    /// Adds an invocation with its task, written as is, or, with a `claim`, only when the claim
    /// is taken. A batch holds at most one claim of each (webhook, delivery id).
    pub(crate) fn push(
        &mut self,
        invocation: &'a Invocation,
        task: Option<&'a Task>,
        claim: Option<&'a DeliveryClaim>,
    ) {
        if let Some(claim) = claim {
            self.claims.push(claim, invocation, task);
        }
        self.invocations.push(invocation, task);
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

impl Query for RecordBatch<'_> {
    /// The invocations whose claims the statement took.
    type SqlType = SqlUuid;
}

/// Keeps the rows whose invocation (`n.{column}`) claims nothing, or took its claim.
fn walk_unless_held(out: &mut AstPass<'_, '_, Pg>, column: &'static str) {
    out.push_sql(" WHERE n.");
    out.push_sql(column);
    out.push_sql(" NOT IN (SELECT invocation_id FROM claim) OR n.");
    out.push_sql(column);
    out.push_sql(" IN (SELECT invocation_id FROM claimed)");
}

impl QueryFragment<Pg> for RecordBatch<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("WITH claim AS (");
        self.claims.walk_rows(&mut out)?;
        // A held claim's row is locked and left as it is; a lapsed one is taken over.
        out.push_sql(
            "), claimed AS (\
             INSERT INTO delivery_claims AS held \
             (webhook_id, delivery_id, invocation_id, task_id, claimed_at) \
             SELECT webhook_id, delivery_id, invocation_id, task_id, claimed_at FROM claim \
             ORDER BY webhook_id, delivery_id \
             ON CONFLICT (webhook_id, delivery_id) DO UPDATE SET \
             invocation_id = excluded.invocation_id, task_id = excluded.task_id, \
             claimed_at = excluded.claimed_at \
             WHERE held.claimed_at < (SELECT c.window_start FROM claim c \
             WHERE c.webhook_id = excluded.webhook_id AND c.delivery_id = excluded.delivery_id) \
             RETURNING invocation_id\
             ), inv AS (INSERT INTO invocations ",
        );
        Invocations::walk_columns(&mut out);
        out.push_sql(" ");
        self.invocations.walk_rows(&mut out)?;
        walk_unless_held(&mut out, "id");
        out.push_sql("), task AS (INSERT INTO tasks ");
        Tasks::walk_columns(&mut out);
        out.push_sql(" ");
        self.tasks.walk_rows(&mut out)?;
        walk_unless_held(&mut out, "invocation_id");
        out.push_sql(") SELECT invocation_id FROM claimed");
        Ok(())
    }
}

#[cfg(all(test, feature = "test-util"))]
mod tests {
    use diesel::QueryableByName;
    use diesel::sql_types::BigInt;
    use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl as _};
    use uuid::Uuid;
    use webhook_domain::model::DeliveryClaim;
    use webhook_store_contract::ContractStore as _;
    use webhook_store_contract::fixtures::{World, accepted, at, rejected};

    use super::RecordBatch;
    use crate::test_db::{database_url, fresh_store};

    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }

    /// Batches of any size, with claims or without, run one statement that the connection
    /// prepared once: a batch costs one round trip.
    #[tokio::test]
    async fn batches_share_one_prepared_statement() {
        let store = fresh_store().await;
        let world = World::seed(&store).await;
        let url = database_url(&store.test_database().expect("a test database"));
        let mut conn = AsyncPgConnection::establish(&url).await.expect("connect");

        let (one, one_task) = accepted(&world.webhook, at(1));
        let mut batch = RecordBatch::default();
        batch.push(&one, Some(&one_task), None);
        let taken = batch.load::<Uuid>(&mut conn).await.expect("first batch");
        assert!(taken.is_empty(), "no claims: {taken:?}");

        let (two, two_task) = accepted(&world.webhook, at(2));
        let three = rejected(&world.webhook, at(3));
        let (four, four_task) = accepted(&world.webhook, at(4));
        let claim = DeliveryClaim {
            delivery_id: "delivery-4".to_owned(),
            window_start: at(0),
        };
        let mut batch = RecordBatch::default();
        batch.push(&two, Some(&two_task), None);
        batch.push(&three, None, None);
        batch.push(&four, Some(&four_task), Some(&claim));
        let taken = batch.load::<Uuid>(&mut conn).await.expect("second batch");
        assert_eq!(taken, vec![*four.id.as_uuid()]);

        // The same id again, within its window: held, so this invocation and task are not
        // written; the rest of the batch is.
        let (five, five_task) = accepted(&world.webhook, at(5));
        let (six, six_task) = accepted(&world.webhook, at(6));
        let mut batch = RecordBatch::default();
        batch.push(&five, Some(&five_task), Some(&claim));
        batch.push(&six, Some(&six_task), None);
        let taken = batch.load::<Uuid>(&mut conn).await.expect("third batch");
        assert!(taken.is_empty(), "the claim is held: {taken:?}");

        let prepared = diesel::sql_query(
            "SELECT count(*) AS n FROM pg_prepared_statements \
             WHERE statement LIKE 'WITH claim AS (SELECT * FROM unnest(%'",
        )
        .get_result::<Count>(&mut conn)
        .await
        .expect("pg_prepared_statements is readable");
        assert_eq!(prepared.n, 1);
        let stored = diesel::sql_query(
            "SELECT (SELECT count(*) FROM invocations) + (SELECT count(*) FROM tasks) \
             + (SELECT count(*) FROM delivery_claims) AS n",
        )
        .get_result::<Count>(&mut conn)
        .await
        .expect("count");
        // Five invocations (not the fifth), four tasks (the rejected one has none), one claim.
        assert_eq!(stored.n, 5 + 4 + 1);
        drop(conn);
        store.teardown().await;
    }
}

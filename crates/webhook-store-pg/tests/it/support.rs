//! Helpers shared by the PostgreSQL-specific tests.

use diesel::sql_types::{BigInt, Text};
use diesel::{QueryableByName, sql_query};
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl as _};
use webhook_store_pg::test_db::admin_url;

#[derive(QueryableByName)]
pub(crate) struct Count {
    #[diesel(sql_type = BigInt)]
    pub(crate) n: i64,
}

pub(crate) async fn admin() -> AsyncPgConnection {
    AsyncPgConnection::establish(&admin_url())
        .await
        .expect("the test server accepts connections")
}

pub(crate) async fn execute(conn: &mut AsyncPgConnection, sql: &str) {
    sql_query(sql)
        .execute(conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// How many backends of `database` match `condition` (SQL on `pg_stat_activity`).
pub(crate) async fn backends(conn: &mut AsyncPgConnection, database: &str, condition: &str) -> i64 {
    sql_query(format!(
        "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = $1 AND {condition}"
    ))
    .bind::<Text, _>(database)
    .get_result::<Count>(conn)
    .await
    .expect("pg_stat_activity is readable")
    .n
}

//! Statements of fixed text, kept prepared by the connection: diesel prepares every `UPDATE`
//! it builds anew (a changeset may leave columns out), while a query whose type says its text
//! never changes is prepared once per connection and found again in its statement cache.

use diesel::QueryResult;
use diesel::query_builder::AstPass;
use diesel::result::Error;
use diesel::sqlite::Sqlite;

/// Declares that the statements `$name<'_>` have a text that never changes (`QueryId`) and can
/// be run (`RunQueryDsl`); each implements `QueryFragment` itself.
macro_rules! fixed_text {
    ($($name:ident),+ $(,)?) => {$(
        impl diesel::query_builder::QueryId for $name<'_> {
            type QueryId = $name<'static>;
            const HAS_STATIC_QUERY_ID: bool = true;
        }

        impl diesel::RunQueryDsl<diesel::SqliteConnection> for $name<'_> {}
    )+};
}
pub(crate) use fixed_text;

/// Pushes `sql`, whose parameters are written `?` (and which holds no `?` otherwise), calling
/// `bind(n, out)` in place of the `n`-th `?`, from 1, to push that parameter's value.
pub(crate) fn push_sql<'b>(
    out: &mut AstPass<'_, 'b, Sqlite>,
    sql: &'static str,
    mut bind: impl FnMut(usize, &mut AstPass<'_, 'b, Sqlite>) -> QueryResult<()>,
) -> QueryResult<()> {
    for (number, text) in sql.split('?').enumerate() {
        if number > 0 {
            bind(number, out)?;
        }
        out.push_sql(text);
    }
    Ok(())
}

/// The error of a parameter number that the statement does not have.
pub(crate) fn no_parameter(number: usize) -> Error {
    Error::QueryBuilderError(format!("the statement has no parameter {number}").into())
}

//! Statements of fixed text written in SQL with numbered parameters, kept prepared by the
//! connection: diesel prepares an `sql_query` anew at every run (parsed and planned each time),
//! while a query whose type says its text never changes is prepared once per connection.

use diesel::QueryResult;
use diesel::pg::Pg;
use diesel::query_builder::AstPass;
use diesel::result::Error;

/// Pushes `sql`, whose parameters are written `$1`, `$2`, … (and no `$` otherwise), calling
/// `bind(n, out)` in place of each `$n` to push that parameter's value. A parameter used twice
/// is bound twice.
pub(crate) fn push_sql<'b>(
    out: &mut AstPass<'_, 'b, Pg>,
    sql: &'static str,
    mut bind: impl FnMut(usize, &mut AstPass<'_, 'b, Pg>) -> QueryResult<()>,
) -> QueryResult<()> {
    let mut rest = sql;
    while let Some(dollar) = rest.find('$') {
        out.push_sql(&rest[..dollar]);
        let after = &rest[dollar + 1..];
        let digits = after
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(after.len());
        let number = after[..digits]
            .parse()
            .map_err(|_| Error::QueryBuilderError("a `$` without a parameter number".into()))?;
        bind(number, out)?;
        rest = &after[digits..];
    }
    out.push_sql(rest);
    Ok(())
}

/// The error of a parameter number that the statement does not have.
pub(crate) fn no_parameter(number: usize) -> Error {
    Error::QueryBuilderError(format!("the statement has no parameter ${number}").into())
}

//! The store ports implemented on [`crate::SqliteStore`], one module per port.

/// Narrows a boxed query of `$table` to the page `$page` asks for: newest first by
/// (`created_at`, `id`), after the page's cursor, one row more than the page holds (see
/// [`overfetch`]).
macro_rules! newest_first {
    ($query:expr, $table:ident, $page:expr) => {{
        let mut query = $query;
        if let Some(after) = $page.after {
            let at = after.at.unix_micros();
            query = query.filter(
                $table::created_at.lt(at).or($table::created_at
                    .eq(at)
                    .and($table::id.lt($crate::rows::id(&after.id)))),
            );
        }
        query
            .order(($table::created_at.desc(), $table::id.desc()))
            .limit($crate::store::overfetch($page))
    }};
}

mod claim_reads;
mod delivery_writes;
mod invocations;
mod key_check;
mod organizations;
mod targets;
mod tasks;
mod webhooks;

use diesel::{OptionalExtension, QueryResult};
use webhook_domain::model::{Page, PageRequest};

use crate::error::Failure;

/// Rows fetched for a page: one more than asked, to know whether a next page exists.
fn overfetch(page: PageRequest) -> i64 {
    i64::from(page.limit()) + 1
}

/// Converts fetched rows and cuts them into a page.
fn into_page<R, T>(
    rows: Vec<R>,
    page: PageRequest,
    convert: impl Fn(R) -> Result<T, Failure>,
    key: impl Fn(&T) -> webhook_domain::model::Cursor,
) -> Result<Page<T>, Failure> {
    Ok(Page::from_overfetch(converted(rows, convert)?, page, key))
}

/// Converts every fetched row.
fn converted<R, T>(
    rows: Vec<R>,
    convert: impl Fn(R) -> Result<T, Failure>,
) -> Result<Vec<T>, Failure> {
    rows.into_iter().map(convert).collect()
}

/// The row a query for one row found, or `NotFound`.
fn found<R>(row: QueryResult<R>) -> Result<R, Failure> {
    row.optional()?.ok_or_else(Failure::not_found)
}

/// `Ok` when a write changed its row, `NotFound` when it matched none.
fn changed(rows: usize) -> Result<(), Failure> {
    if rows == 0 {
        Err(Failure::not_found())
    } else {
        Ok(())
    }
}

//! The store ports implemented on [`crate::SqliteStore`], one module per port.

mod invocations;
mod key_check;
mod organizations;
mod targets;
mod tasks;
mod webhooks;

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
    let items = rows
        .into_iter()
        .map(convert)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Page::from_overfetch(items, page, key))
}

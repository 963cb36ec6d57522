//! The word index of the invocation log (`invocation_search`, an FTS5 table; see its migration)
//! behind the `q` filter: writing an invocation's words, finding the invocations that have
//! every word of a search newest first, and indexing the invocations logged before the index.
//!
//! An index row's rowid is `received_at` (µs) × [`PER_MICROSECOND`] + the invocation's place
//! among those of the same microsecond, so the index yields matches newest first by time, a page
//! at a time, however common the words. Matches are read in chunks, each ending on a whole
//! microsecond, and the invocations of a chunk are read with the list's own query (every other
//! filter, the cursor and the order by (`received_at`, id)), until a page is full.

use diesel::connection::SimpleConnection as _;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::sql_types::{BigInt, Binary, Nullable, Text};
use diesel::sqlite::Sqlite;
use webhook_domain::model::{Invocation, Payload, SearchWords, WebhookId, indexed_words};

use crate::error::Failure;
use crate::prepared::fixed_text;
use crate::rows::uuid;

/// Index rows per microsecond of `received_at`.
const PER_MICROSECOND: i64 = 1024;

/// Matches read at first for a page, per item wanted; later chunks double, up to
/// [`MAX_CHUNK`].
const CHUNK_PER_ITEM: usize = 4;
const MAX_CHUNK: usize = 8192;

/// Invocations indexed per transaction when the store indexes those logged before the index.
const BACKFILL_BATCH: i64 = 500;

/// The token of a webhook's rows: `·` and the id's 32 hex digits. No word of a payload has a
/// `·`, so no payload can look like another webhook's.
fn webhook_token(webhook_id: WebhookId) -> String {
    format!("·{}", webhook_id.as_uuid().simple())
}

/// The first rowid of invocations received at `micros`, or `None` beyond the year 2255.
fn first_rowid(micros: i64) -> Option<i64> {
    micros.checked_mul(PER_MICROSECOND)
}

/// The words an invocation's index row holds; `None` for one without a payload.
pub(crate) fn words_of(invocation: &Invocation) -> Option<String> {
    row_words(invocation.webhook_id, invocation.payload.as_ref())
}

fn row_words(webhook_id: WebhookId, payload: Option<&Payload>) -> Option<String> {
    payload.map(|payload| {
        let words = indexed_words(payload);
        let mut text = webhook_token(webhook_id);
        text.reserve(words.len() + 1);
        text.push(' ');
        text.push_str(&words);
        text
    })
}

/// The last rowid in use among those of one microsecond. Written by hand, as the statements of
/// ingest are, so that the connection keeps it prepared.
struct LastOfMicrosecond {
    first: i64,
    last: i64,
}

impl QueryId for LastOfMicrosecond {
    type QueryId = Self;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl QueryFragment<Sqlite> for LastOfMicrosecond {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        out.push_sql("SELECT max(rowid) FROM invocation_search WHERE rowid BETWEEN ");
        out.push_bind_param::<BigInt, _>(&self.first)?;
        out.push_sql(" AND ");
        out.push_bind_param::<BigInt, _>(&self.last)?;
        Ok(())
    }
}

impl diesel::query_builder::Query for LastOfMicrosecond {
    type SqlType = Nullable<BigInt>;
}

impl RunQueryDsl<SqliteConnection> for LastOfMicrosecond {}

/// One index row.
struct InsertRow<'a> {
    rowid: i64,
    words: &'a str,
    invocation_id: &'a [u8],
}

impl QueryFragment<Sqlite> for InsertRow<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        out.push_sql("INSERT INTO invocation_search (rowid, words, invocation_id) VALUES (");
        out.push_bind_param::<BigInt, _>(&self.rowid)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(self.words)?;
        out.push_sql(", ");
        out.push_bind_param::<Binary, _>(self.invocation_id)?;
        out.push_sql(")");
        Ok(())
    }
}

fixed_text!(InsertRow);

/// Writes the index row of an invocation received at `received_at` (µs) with `words`
/// ([`words_of`]).
fn insert(
    conn: &mut SqliteConnection,
    received_at: i64,
    invocation_id: &[u8],
    words: &str,
) -> Result<(), Failure> {
    let first = first_rowid(received_at).ok_or_else(|| Failure::corrupt("received_at"))?;
    let last = first + (PER_MICROSECOND - 1);
    let in_use: Option<i64> = LastOfMicrosecond { first, last }.get_result(conn)?;
    let rowid = match in_use {
        None => first,
        Some(used) if used < last => used + 1,
        Some(_) => return Err(Failure::conflict("index rows of one microsecond")),
    };
    InsertRow {
        rowid,
        words,
        invocation_id,
    }
    .execute(conn)?;
    Ok(())
}

/// Indexes `invocation`, whose row was just written, with its `words` ([`words_of`]).
pub(crate) fn index(
    conn: &mut SqliteConnection,
    invocation: &Invocation,
    words: Option<&str>,
) -> Result<(), Failure> {
    match words {
        Some(words) => insert(
            conn,
            invocation.received_at.unix_micros(),
            invocation.id.as_uuid().as_bytes(),
            words,
        ),
        None => Ok(()),
    }
}

/// Where a search looks: the rowids of the times a page may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    /// Rows at or after this rowid.
    from: i64,
    /// Rows before this rowid.
    before: i64,
}

impl Window {
    /// The rows received at or after `since` and before `before` (µs); a bound out of range
    /// is no bound.
    pub(crate) fn new(since: Option<i64>, before: Option<i64>) -> Self {
        Self {
            from: since.and_then(first_rowid).unwrap_or(i64::MIN),
            before: before.and_then(first_rowid).unwrap_or(i64::MAX),
        }
    }
}

#[derive(QueryableByName)]
struct Match {
    #[diesel(sql_type = BigInt)]
    position: i64,
    #[diesel(sql_type = Binary)]
    invocation_id: Vec<u8>,
}

const MATCHES: &str = "SELECT rowid AS position, invocation_id FROM invocation_search \
     WHERE invocation_search MATCH ? AND rowid >= ? AND rowid < ? ORDER BY rowid DESC LIMIT ?";

fn matches(
    conn: &mut SqliteConnection,
    expression: &str,
    from: i64,
    before: i64,
    limit: usize,
) -> Result<Vec<Match>, Failure> {
    Ok(diesel::sql_query(MATCHES)
        .bind::<Text, _>(expression)
        .bind::<BigInt, _>(from)
        .bind::<BigInt, _>(before)
        .bind::<BigInt, _>(i64::try_from(limit).unwrap_or(i64::MAX))
        .load(conn)?)
}

/// Up to `wanted` invocations of `webhook_id` in `window` whose payload has every word of
/// `words`, newest first: matches are read a chunk at a time and handed to `load`, which
/// answers those of them the list keeps, in the list's order.
pub(crate) fn search<R>(
    conn: &mut SqliteConnection,
    webhook_id: WebhookId,
    words: &SearchWords,
    window: Window,
    wanted: usize,
    mut load: impl FnMut(&mut SqliteConnection, Vec<Vec<u8>>) -> Result<Vec<R>, Failure>,
) -> Result<Vec<R>, Failure> {
    let mut expression = format!("\"{}\"", webhook_token(webhook_id));
    for word in words.words() {
        // Words are letters and digits only: nothing in them needs escaping.
        expression.push_str(" AND \"");
        expression.push_str(word);
        expression.push('"');
    }
    let mut found = Vec::new();
    let mut before = window.before;
    let mut chunk = (wanted * CHUNK_PER_ITEM).clamp(1, MAX_CHUNK);
    while found.len() < wanted && before > window.from {
        let mut rows = matches(conn, &expression, window.from, before, chunk)?;
        let complete = rows.len() < chunk;
        match rows.last().map(|m| m.position) {
            None => break,
            Some(_) if complete => before = window.from,
            Some(last) => {
                // End the chunk on a whole microsecond: its invocations are ordered by id, which
                // rowids do not follow.
                let start = last.div_euclid(PER_MICROSECOND) * PER_MICROSECOND;
                let start = start.max(window.from);
                let rest = usize::try_from(last - start).unwrap_or(0);
                if rest > 0 {
                    rows.extend(matches(conn, &expression, start, last, rest)?);
                }
                before = start;
            }
        }
        let ids = rows.into_iter().map(|m| m.invocation_id).collect();
        found.extend(load(conn, ids)?);
        chunk = (chunk * 2).min(MAX_CHUNK);
    }
    found.truncate(wanted);
    Ok(found)
}

#[derive(QueryableByName)]
struct Unindexed {
    #[diesel(sql_type = BigInt)]
    rowid: i64,
    #[diesel(sql_type = Binary)]
    id: Vec<u8>,
    #[diesel(sql_type = Binary)]
    webhook_id: Vec<u8>,
    #[diesel(sql_type = BigInt)]
    received_at: i64,
    #[diesel(sql_type = Nullable<Text>)]
    payload: Option<String>,
}

#[derive(QueryableByName)]
struct Backfill {
    #[diesel(sql_type = BigInt)]
    next_rowid: i64,
}

/// Indexes the invocations logged before the index existed, a batch per transaction, from
/// where the last one stopped; returns how many were indexed. Runs when the store opens, before
/// anything else writes.
pub(crate) fn backfill(conn: &mut SqliteConnection) -> Result<u64, Failure> {
    let mut indexed = 0u64;
    loop {
        let next = diesel::sql_query("SELECT next_rowid FROM invocation_search_backfill")
            .get_result::<Backfill>(conn)
            .optional()?;
        let Some(Backfill { next_rowid }) = next else {
            return Ok(indexed);
        };
        indexed += conn.immediate_transaction(|conn| -> Result<u64, Failure> {
            let rows: Vec<Unindexed> = diesel::sql_query(
                "SELECT rowid, id, webhook_id, received_at, payload FROM invocations \
                 WHERE rowid <= ? ORDER BY rowid DESC LIMIT ?",
            )
            .bind::<BigInt, _>(next_rowid)
            .bind::<BigInt, _>(BACKFILL_BATCH)
            .load(conn)?;
            let Some(last) = rows.last().map(|r| r.rowid) else {
                conn.batch_execute("DELETE FROM invocation_search_backfill")?;
                return Ok(0);
            };
            let mut batch = 0;
            for row in rows {
                let webhook_id = WebhookId::from_uuid(uuid(&row.webhook_id, "webhook id")?);
                let payload = row.payload.map(Payload::from_stored);
                if let Some(words) = row_words(webhook_id, payload.as_ref()) {
                    insert(conn, row.received_at, &row.id, &words)?;
                    batch += 1;
                }
            }
            diesel::sql_query("UPDATE invocation_search_backfill SET next_rowid = ?")
                .bind::<BigInt, _>(last - 1)
                .execute(conn)?;
            Ok(batch)
        })?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_cover_whole_microseconds() {
        let window = Window::new(Some(10), Some(21));
        assert_eq!(window.from, 10 * PER_MICROSECOND);
        assert_eq!(window.before, 21 * PER_MICROSECOND);
        let open = Window::new(None, Some(i64::MAX));
        assert_eq!((open.from, open.before), (i64::MIN, i64::MAX));
    }
}

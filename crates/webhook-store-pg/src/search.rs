//! The word index of the invocation log (`invocations.search_words`, a tsvector under a GIN
//! index; see its migration) behind the `q` filter. The words are made by the domain
//! ([`indexed_words`]) and written and searched as they are: a tsvector cast from text and a
//! tsquery of quoted words, never parsed by a text search configuration.

use diesel::QueryableByName;
use diesel::sql_types::{Array, Nullable, Text, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl as _};
use uuid::Uuid;
use webhook_domain::model::{Payload, SearchWords, indexed_words};
use webhook_domain::ports::StoreError;

use crate::PgStore;
use crate::error::TxError;

/// Invocations indexed per statement when a node indexes those logged before the index.
const BACKFILL_BATCH: i64 = 500;

/// The tsvector text of a payload's words: they are letters and digits separated by spaces,
/// which tsvector input reads back one lexeme each, unchanged.
pub(crate) fn tsvector_text(payload: &Payload) -> String {
    indexed_words(payload)
}

/// The tsquery text that keeps the payloads having every word: `'w1' & 'w2'`. Quoted lexemes
/// are taken as they are; words hold no quote or backslash to escape.
pub(crate) fn tsquery(words: &SearchWords) -> String {
    let quoted: Vec<String> = words.words().iter().map(|w| format!("'{w}'")).collect();
    quoted.join(" & ")
}

#[derive(QueryableByName)]
struct Unindexed {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = Nullable<Text>)]
    payload: Option<String>,
}

/// Indexes one batch of invocations that have a payload but no words yet; returns how many.
async fn backfill_batch(conn: &mut AsyncPgConnection) -> Result<usize, TxError> {
    let rows: Vec<Unindexed> = diesel::sql_query(
        "SELECT id, payload FROM invocations WHERE search_words IS NULL AND payload IS NOT NULL \
         ORDER BY received_at LIMIT $1",
    )
    .bind::<diesel::sql_types::BigInt, _>(BACKFILL_BATCH)
    .load(conn)
    .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let (ids, words): (Vec<Uuid>, Vec<String>) = rows
        .into_iter()
        .filter_map(|row| {
            let payload = Payload::from_stored(row.payload?);
            Some((row.id, tsvector_text(&payload)))
        })
        .unzip();
    diesel::sql_query(
        "UPDATE invocations SET search_words = n.words::tsvector \
         FROM unnest($1::uuid[], $2::text[]) AS n (id, words) \
         WHERE invocations.id = n.id AND invocations.search_words IS NULL",
    )
    .bind::<Array<SqlUuid>, _>(&ids)
    .bind::<Array<Text>, _>(&words)
    .execute(conn)
    .await?;
    Ok(ids.len())
}

impl PgStore {
    /// Indexes the words of the invocations logged before the word index existed (or by a node
    /// of an older version), a batch at a time; returns how many. Nodes run it when they
    /// start; several at once only repeat each other's work.
    pub async fn index_unsearchable(&self) -> Result<u64, StoreError> {
        let mut indexed = 0u64;
        loop {
            let mut conn = self.conn().await?;
            let result = backfill_batch(&mut conn).await;
            match crate::store::check(result, &mut conn)? {
                0 => return Ok(indexed),
                n => indexed += u64::try_from(n).unwrap_or(u64::MAX),
            }
        }
    }
}

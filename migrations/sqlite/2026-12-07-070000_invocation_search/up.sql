-- The word index of the invocation log, behind the `q` filter of invocation lists: one row per
-- invocation that has a payload.
--
-- - rowid: `received_at` (µs) * 1024 + the invocation's place among those received in the same
--   microsecond, so that the index reads newest first by time and a time range is a rowid range;
-- - words: the webhook's token `·` + its id in 32 hex digits (no payload word has a `·`), then
--   the payload's words as `webhook_domain::model::indexed_words` makes them: lowercase letters
--   and digits separated by spaces. The `ascii` tokenizer splits on ASCII characters that are
--   not letters or digits only, here the spaces, so the index holds exactly those words, and
--   the same query means the same on every store;
-- - invocation_id: the invocation, stored but not indexed.
--
-- Contentless (the words are not stored a second time), without positions (`detail=none`: no
-- query needs them), and rows may be deleted.
CREATE VIRTUAL TABLE invocation_search USING fts5(
    words,
    invocation_id UNINDEXED,
    content = '',
    contentless_delete = 1,
    contentless_unindexed = 1,
    detail = none,
    tokenize = 'ascii'
);

-- An invocation leaves the index with its row.
CREATE TRIGGER invocation_search_forget AFTER DELETE ON invocations
WHEN old.payload IS NOT NULL
BEGIN
    DELETE FROM invocation_search
    WHERE rowid BETWEEN old.received_at * 1024 AND old.received_at * 1024 + 1023
      AND invocation_id = old.id;
END;

-- The invocations logged before this migration are indexed when the store opens (their words
-- are made by the store's code, not in SQL), newest first by row: this row holds the next one
-- to index, and goes when all are.
CREATE TABLE invocation_search_backfill (
    next_rowid INTEGER NOT NULL
);
INSERT INTO invocation_search_backfill (next_rowid)
SELECT max(rowid) FROM invocations HAVING max(rowid) IS NOT NULL;

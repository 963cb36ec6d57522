-- The word index of the invocation log, behind the `q` filter of invocation lists.
--
-- `search_words` holds the payload's words as `webhook_domain::model::indexed_words` makes them
-- (lowercase letters and digits), written as a tsvector by the store: they are cast from text,
-- never parsed by a text search configuration, and searched with a tsquery of quoted words, so
-- no parser, dictionary or locale of the server changes what a word is. No positions are kept.
-- NULL for an invocation without a payload, and for one logged before this migration until the
-- store has indexed it (each node does when it starts; see the partial index below).
ALTER TABLE invocations ADD COLUMN search_words tsvector;

-- The planner reads how common a word is from the column's statistics, to choose between the
-- word index (rare words) and the webhook's index in time order (common ones). With the default
-- target it knows the 1,000 most common words, and takes any other word for half as common as
-- the last of them: in a log with a large vocabulary that makes a rare word look common, and a
-- search for it walks the whole log. 10,000 words keep that guess small.
ALTER TABLE invocations ALTER COLUMN search_words SET STATISTICS 1000;

-- `fastupdate` (the default, spelled out): new entries go to a pending list that is merged in
-- bulk, so an insert costs one append rather than one entry per word.
CREATE INDEX invocations_search_words ON invocations USING gin (search_words)
    WITH (fastupdate = on);

-- The invocations not indexed yet: those logged before this migration (and by nodes of an
-- older version while they still run).
CREATE INDEX invocations_not_searchable ON invocations (received_at)
    WHERE search_words IS NULL AND payload IS NOT NULL;

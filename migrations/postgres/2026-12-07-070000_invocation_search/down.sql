DROP INDEX invocations_not_searchable;
DROP INDEX invocations_search_words;
ALTER TABLE invocations DROP COLUMN search_words;

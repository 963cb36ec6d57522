-- Room on the pages of the two tables that delivery rewrites, so that a rewrite which changes
-- no indexed column stays on its page: PostgreSQL then writes no index entry for it (a HOT
-- update), and reclaims the old version on the page without waiting for a vacuum.
--
-- Every delivery rewrites its task twice (the claim writes the lease, the attempt's record the
-- status) and its invocation once (the target's latest response). The lease changes no indexed
-- column, nor does the response; the status does (`tasks_by_status`, and the predicate of
-- `tasks_claimable`), so that rewrite cannot stay on its page. With full pages (the default,
-- 100) only those that found a page with room left stayed (about a quarter in `bench
-- pipeline`); the others wrote a new entry in every index of their table (five on `tasks`,
-- four on `invocations`, one of them the word index).
--
-- A page is filled to this share by inserts; the rest is kept for new versions of its rows. A
-- lease makes its row larger (token and time) and a response makes its invocation larger, so
-- half of each page of `tasks` and 30 % of each page of `invocations` are kept. The tables take
-- more pages for the same rows, fewer than the dead versions that full pages left behind until
-- the next vacuum. Only pages written from now on are filled so; nothing is rewritten, and the
-- change takes a lock that lets reads and writes go on.
ALTER TABLE tasks SET (fillfactor = 50);
ALTER TABLE invocations SET (fillfactor = 70);

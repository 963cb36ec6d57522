-- One index fewer written per accepted event. SQLite only (see migrations/README.md): the
-- PostgreSQL twin of this index went with `postgres/2026-12-07-090000_ingest_without_task_foreign_keys`.
--
-- `invocations_by_received_at` served the retention purge alone, which now walks each webhook's
-- log through `invocations_by_webhook` (webhook, received_at), as PostgreSQL's does: every
-- invocation has its webhook (a foreign key), so the hourly purge costs a descent per webhook
-- and the rows it deletes. Every list, search and health read already goes through the webhook.
-- Each event's entry in it was one more b-tree written by the one writer's commit: with events
-- committed ten at a time, 2.54 WAL frames an event instead of 2.70.
DROP INDEX invocations_by_received_at;

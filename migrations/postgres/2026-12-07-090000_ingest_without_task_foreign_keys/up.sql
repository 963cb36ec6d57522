-- Less work for PostgreSQL per accepted event: a task's two foreign keys and two indexes that
-- only the purge used are dropped. PostgreSQL only (see migrations/README.md): SQLite checks
-- its foreign keys in its one writer, and dropping one there means rebuilding the table.
--
-- Each inserted task ran two foreign-key checks, each an index lookup that also locks the
-- referenced row (`FOR KEY SHARE`): its invocation, inserted by the same statement, and its
-- target, which every busy webhook of the target locks again and again. What they guarded is
-- guaranteed where tasks are written:
-- - `tasks_invocation_id_fkey`: a task is only ever written in the statement that writes its
--   invocation, which names it (`invocations.task_id`); the retention purge deletes an
--   invocation's task and its attempts itself, in the same statement, instead of the cascade.
-- - `tasks_target_id_fkey`: a task's target is its webhook's, which `webhooks_target_id_fkey`
--   keeps pointing at a row of `targets`; targets are never deleted, only marked deleted.
-- The guard that keeps organizations apart, `invocations_webhook_in_organization_fkey`, stays.
--
-- `tasks_by_invocation` served the cascade alone: the purge reaches a task by its id, through
-- the invocation. `invocations_by_received_at` served the purge alone: the purge walks each
-- webhook's log through `invocations_by_webhook` (webhook, received_at), which every list,
-- search and health read uses.
--
-- The purge finds an invocation's task through `invocations.task_id`, so every task must be
-- named by its invocation. Every release wrote them so; a database where one is not stops here
-- rather than leave that task behind once its invocation is purged.
DO $$
DECLARE
    unnamed uuid;
BEGIN
    SELECT t.id INTO unnamed
    FROM tasks t LEFT JOIN invocations i ON i.id = t.invocation_id
    WHERE i.task_id IS DISTINCT FROM t.id
    LIMIT 1;
    IF unnamed IS NOT NULL THEN
        RAISE EXCEPTION 'task % is not named by its invocation (invocations.task_id)', unnamed
            USING HINT = 'Set the invocation''s task_id to the task, or delete the task, '
                         'then start again.';
    END IF;
END
$$;

ALTER TABLE tasks
    DROP CONSTRAINT tasks_invocation_id_fkey,
    DROP CONSTRAINT tasks_target_id_fkey;
DROP INDEX tasks_by_invocation;
DROP INDEX invocations_by_received_at;

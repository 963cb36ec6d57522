CREATE INDEX invocations_by_received_at ON invocations (received_at);
CREATE INDEX tasks_by_invocation ON tasks (invocation_id);
ALTER TABLE tasks
    ADD CONSTRAINT tasks_target_id_fkey FOREIGN KEY (target_id) REFERENCES targets (id),
    ADD CONSTRAINT tasks_invocation_id_fkey FOREIGN KEY (invocation_id)
        REFERENCES invocations (id) ON DELETE CASCADE;

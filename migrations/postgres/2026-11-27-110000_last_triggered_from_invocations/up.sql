-- A webhook's `last_triggered_at` is read from its latest accepted invocation, through this
-- index, instead of being moved by every write: concurrent writes of one webhook's events no
-- longer wait for each other on its row. `webhooks.last_triggered_at` now keeps the latest
-- accepted invocation the retention purge has deleted, and a read takes the later of the two.
CREATE INDEX invocations_accepted_by_webhook
    ON invocations (webhook_id, received_at DESC)
    WHERE outcome = 'accepted';

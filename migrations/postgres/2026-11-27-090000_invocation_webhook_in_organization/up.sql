-- An invocation's webhook must belong to the invocation's organization, as on every other store:
-- the foreign key covers the pair, and replaces the one on the webhook alone.
ALTER TABLE webhooks ADD CONSTRAINT webhooks_id_organization_key UNIQUE (id, organization_id);
ALTER TABLE invocations
    ADD CONSTRAINT invocations_webhook_in_organization_fkey
    FOREIGN KEY (webhook_id, organization_id) REFERENCES webhooks (id, organization_id)
    ON DELETE CASCADE NOT VALID;
ALTER TABLE invocations VALIDATE CONSTRAINT invocations_webhook_in_organization_fkey;
ALTER TABLE invocations DROP CONSTRAINT invocations_webhook_id_fkey;

ALTER TABLE invocations
    ADD CONSTRAINT invocations_webhook_id_fkey
    FOREIGN KEY (webhook_id) REFERENCES webhooks (id) ON DELETE CASCADE;
ALTER TABLE invocations DROP CONSTRAINT invocations_webhook_in_organization_fkey;
ALTER TABLE webhooks DROP CONSTRAINT webhooks_id_organization_key;

DROP TABLE delivery_claims;
ALTER TABLE tasks DROP COLUMN source_provider;
DELETE FROM invocations WHERE outcome = 'duplicate';
ALTER TABLE invocations
    DROP CONSTRAINT invocations_outcome_check,
    ADD CONSTRAINT invocations_outcome_check CHECK (outcome IN ('accepted', 'ignored', 'rejected')),
    DROP COLUMN instruction_fallback,
    DROP COLUMN duplicate_of,
    DROP COLUMN delivery_id;
ALTER TABLE webhooks
    DROP COLUMN previous_secret_expires_at,
    DROP COLUMN previous_secret,
    DROP COLUMN allowed_source_ips,
    DROP COLUMN instruction_template,
    DROP COLUMN dedup_key_from,
    DROP COLUMN event_type_from,
    DROP COLUMN verification,
    DROP COLUMN source;

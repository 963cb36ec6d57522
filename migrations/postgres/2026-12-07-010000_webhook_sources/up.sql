-- Webhooks speak their senders' dialects: a source with optional overrides, a list of networks
-- requests may come from, and the secret a rotation replaced, which verifies until it expires.
-- Every column is nullable or has a constant default: PostgreSQL adds them without rewriting the
-- table, and every existing webhook stays a `generic` one, as it behaved before.
-- `source` names are checked by the store when read, not here, so a new source needs no
-- migration. `verification` is the JSON object of the management API; `allowed_source_ips`
-- lists networks in CIDR notation, and an empty list allows every address.
ALTER TABLE webhooks
    ADD COLUMN source text NOT NULL DEFAULT 'generic',
    ADD COLUMN verification jsonb CHECK (jsonb_typeof(verification) = 'object'),
    ADD COLUMN event_type_from text,
    ADD COLUMN dedup_key_from text,
    ADD COLUMN instruction_template text,
    ADD COLUMN allowed_source_ips text[] NOT NULL DEFAULT '{}',
    ADD COLUMN previous_secret bytea,
    ADD COLUMN previous_secret_expires_at timestamptz;

-- An invocation keeps the sender's delivery id, the invocation a duplicate repeats (no foreign
-- key: the retention purge may delete the original first), and why the instruction template was
-- not used. A duplicate is an outcome of its own. The new check admits every row the old one
-- did; it is added unvalidated and validated after, as the other constraints were.
ALTER TABLE invocations
    ADD COLUMN delivery_id text,
    ADD COLUMN duplicate_of uuid,
    ADD COLUMN instruction_fallback text,
    DROP CONSTRAINT invocations_outcome_check,
    ADD CONSTRAINT invocations_outcome_check
        CHECK (outcome IN ('accepted', 'ignored', 'rejected', 'duplicate')) NOT VALID;
ALTER TABLE invocations VALIDATE CONSTRAINT invocations_outcome_check;

-- The webhook's source when the task's event arrived; earlier tasks came from generic webhooks.
ALTER TABLE tasks ADD COLUMN source_provider text NOT NULL DEFAULT 'generic';

-- The delivery ids claimed per webhook, written in the same statement as the claiming
-- invocation: the primary key makes a claim exact across connections and nodes (a concurrent
-- claim of the same id waits for the first to commit, then finds it). A claim older than the
-- dedup window has lapsed and is taken over in place; the purge deletes lapsed claims through
-- `delivery_claims_by_claimed_at`. No foreign keys: a claim outlives neither its window nor the
-- purge, and must not hold up deleting what it names.
CREATE TABLE delivery_claims (
    webhook_id uuid NOT NULL,
    delivery_id text NOT NULL,
    invocation_id uuid NOT NULL,
    task_id uuid,
    claimed_at timestamptz NOT NULL,
    PRIMARY KEY (webhook_id, delivery_id)
);
CREATE INDEX delivery_claims_by_claimed_at ON delivery_claims (claimed_at);

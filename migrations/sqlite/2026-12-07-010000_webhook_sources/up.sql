-- Webhooks speak their senders' dialects: a source with optional overrides, a list of networks
-- requests may come from, and the secret a rotation replaced, which verifies until it expires.
-- Every existing webhook stays a `generic` one, as it behaved before. `source` names are checked
-- by the store when read, not here, so a new source needs no migration. `verification` is the
-- JSON object of the management API; `allowed_source_ips` is a JSON array of networks in CIDR
-- notation, NULL (or empty) allowing every address.
ALTER TABLE webhooks ADD COLUMN source TEXT NOT NULL DEFAULT 'generic';
ALTER TABLE webhooks ADD COLUMN verification TEXT
    CHECK (verification IS NULL OR json_type(verification) = 'object');
ALTER TABLE webhooks ADD COLUMN event_type_from TEXT;
ALTER TABLE webhooks ADD COLUMN dedup_key_from TEXT;
ALTER TABLE webhooks ADD COLUMN instruction_template TEXT;
ALTER TABLE webhooks ADD COLUMN allowed_source_ips TEXT
    CHECK (allowed_source_ips IS NULL OR json_type(allowed_source_ips) = 'array');
ALTER TABLE webhooks ADD COLUMN previous_secret BLOB;
ALTER TABLE webhooks ADD COLUMN previous_secret_expires_at INTEGER;

-- An invocation keeps the sender's delivery id, the invocation a duplicate repeats (no foreign
-- key: the retention purge may delete the original first), and why the instruction template was
-- not used. A duplicate is an outcome of its own, which the outcome's CHECK must admit: SQLite
-- cannot change a CHECK in place, so the table is rebuilt as SQLite's "Making Other Kinds Of
-- Table Schema Changes" describes (create, copy, drop, rename, index). The store applies
-- migrations with foreign keys off, as that procedure asks, so dropping the old table leaves
-- the tasks that reference it alone; it checks every foreign key once the migrations are done.
CREATE TABLE invocations_new (
    id                     BLOB    NOT NULL PRIMARY KEY,
    organization_id        BLOB    NOT NULL,
    webhook_id             BLOB    NOT NULL REFERENCES webhooks (id),
    received_at            INTEGER NOT NULL,
    source_ip              TEXT,
    event_type             TEXT,
    payload                TEXT,
    outcome                TEXT    NOT NULL
        CHECK (outcome IN ('accepted', 'ignored', 'rejected', 'duplicate')),
    http_status            INTEGER NOT NULL,
    error_code             TEXT,
    task_id                BLOB,
    repeat_count           INTEGER NOT NULL,
    test                   INTEGER NOT NULL,
    response_status_code   INTEGER,
    response_body_excerpt  TEXT,
    response_latency_ms    INTEGER,
    response_error         TEXT,
    response_at            INTEGER,
    response_succeeded     INTEGER,
    delivery_id            TEXT,
    duplicate_of           BLOB,
    instruction_fallback   TEXT
);
INSERT INTO invocations_new (
    id, organization_id, webhook_id, received_at, source_ip, event_type, payload, outcome,
    http_status, error_code, task_id, repeat_count, test, response_status_code,
    response_body_excerpt, response_latency_ms, response_error, response_at, response_succeeded
)
SELECT
    id, organization_id, webhook_id, received_at, source_ip, event_type, payload, outcome,
    http_status, error_code, task_id, repeat_count, test, response_status_code,
    response_body_excerpt, response_latency_ms, response_error, response_at, response_succeeded
FROM invocations;
DROP TABLE invocations;
ALTER TABLE invocations_new RENAME TO invocations;
CREATE INDEX invocations_by_webhook ON invocations (webhook_id, received_at, id);
CREATE INDEX invocations_by_received_at ON invocations (received_at);

-- The webhook's source when the task's event arrived; earlier tasks came from generic webhooks.
ALTER TABLE tasks ADD COLUMN source_provider TEXT NOT NULL DEFAULT 'generic';

-- The delivery ids claimed per webhook, written in the same transaction as the claiming
-- invocation: the primary key makes a claim exact (the store's one writer, and SQLite's one
-- write transaction at a time, serialise claims; a later one finds the first). A claim older
-- than the dedup window has lapsed and is taken over in place; the purge deletes lapsed claims
-- through `delivery_claims_by_claimed_at`. No foreign keys: a claim outlives neither its window
-- nor the purge, and must not hold up deleting what it names.
CREATE TABLE delivery_claims (
    webhook_id    BLOB    NOT NULL,
    delivery_id   TEXT    NOT NULL,
    invocation_id BLOB    NOT NULL,
    task_id       BLOB,
    claimed_at    INTEGER NOT NULL,
    PRIMARY KEY (webhook_id, delivery_id)
) WITHOUT ROWID;
CREATE INDEX delivery_claims_by_claimed_at ON delivery_claims (claimed_at);

-- webhookd on SQLite: the first schema.
--
-- Ids are 16-byte BLOBs holding the UUID's bytes, so BLOB comparison (memcmp) orders them as
-- `Uuid` does. Times are INTEGER microseconds since the Unix epoch (`Timestamp::unix_micros`).
-- Lists are read newest first by (time, id); the indexes below end in those two columns.

CREATE TABLE organizations (
    id                    BLOB    NOT NULL PRIMARY KEY,
    name                  TEXT    NOT NULL,
    rate_limit_per_minute INTEGER NOT NULL,
    created_at            INTEGER NOT NULL,
    updated_at            INTEGER NOT NULL
);

CREATE TABLE api_keys (
    id              BLOB    NOT NULL PRIMARY KEY,
    organization_id BLOB    NOT NULL REFERENCES organizations (id),
    name            TEXT    NOT NULL,
    role            TEXT    NOT NULL CHECK (role IN ('admin', 'viewer')),
    hash            BLOB    NOT NULL UNIQUE,
    created_at      INTEGER NOT NULL
);
CREATE INDEX api_keys_by_organization ON api_keys (organization_id, created_at, id);

-- A deleted target keeps its row (its tasks stay on the board) with `deleted_at` set.
CREATE TABLE targets (
    id              BLOB    NOT NULL PRIMARY KEY,
    organization_id BLOB    NOT NULL REFERENCES organizations (id),
    kind            TEXT    NOT NULL CHECK (kind IN ('agent', 'team')),
    name            TEXT    NOT NULL,
    endpoint_url    TEXT,
    signing_secret  BLOB    NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    deleted_at      INTEGER
);
CREATE INDEX targets_by_organization ON targets (organization_id, created_at, id);

-- A deleted webhook is a tombstone: the row stays so that its id is never reused.
-- `event_types` is a JSON array of patterns.
CREATE TABLE webhooks (
    id                    BLOB    NOT NULL PRIMARY KEY,
    organization_id       BLOB    NOT NULL REFERENCES organizations (id),
    name                  TEXT    NOT NULL,
    target_id             BLOB    NOT NULL REFERENCES targets (id),
    event_types           TEXT    NOT NULL,
    secret                BLOB,
    rate_limit_per_minute INTEGER NOT NULL,
    status                TEXT    NOT NULL CHECK (status IN ('active', 'disabled', 'deleted')),
    created_at            INTEGER NOT NULL,
    updated_at            INTEGER NOT NULL,
    last_triggered_at     INTEGER
);
CREATE INDEX webhooks_by_organization ON webhooks (organization_id, created_at, id);
CREATE INDEX webhooks_by_target ON webhooks (target_id, status);

-- The payload is stored here only; a task reads it as its context by join. `response_*` is the
-- latest delivery attempt of the invocation's task (NULL before the first one).
CREATE TABLE invocations (
    id                     BLOB    NOT NULL PRIMARY KEY,
    organization_id        BLOB    NOT NULL,
    webhook_id             BLOB    NOT NULL REFERENCES webhooks (id),
    received_at            INTEGER NOT NULL,
    source_ip              TEXT,
    event_type             TEXT,
    payload                TEXT,
    outcome                TEXT    NOT NULL CHECK (outcome IN ('accepted', 'ignored', 'rejected')),
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
    response_succeeded     INTEGER
);
CREATE INDEX invocations_by_webhook ON invocations (webhook_id, received_at, id);
CREATE INDEX invocations_by_received_at ON invocations (received_at);

-- `context` is NULL when it is the invocation's payload (always, for tasks made by ingest).
-- `lease_token`/`lease_until` hold a dispatcher's claim on a queued task.
CREATE TABLE tasks (
    id                 BLOB    NOT NULL PRIMARY KEY,
    organization_id    BLOB    NOT NULL,
    target_id          BLOB    NOT NULL REFERENCES targets (id),
    webhook_id         BLOB    NOT NULL REFERENCES webhooks (id),
    invocation_id      BLOB    NOT NULL REFERENCES invocations (id),
    instruction        TEXT,
    context            TEXT,
    event_type         TEXT,
    status             TEXT    NOT NULL CHECK (status IN ('queued', 'delivered', 'in_progress', 'completed', 'failed')),
    test               INTEGER NOT NULL,
    source_verified    INTEGER NOT NULL,
    source_ip          TEXT,
    source_received_at INTEGER NOT NULL,
    attempts           INTEGER NOT NULL,
    next_attempt_at    INTEGER NOT NULL,
    last_error         TEXT,
    lease_token        BLOB,
    lease_until        INTEGER,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
);
CREATE INDEX tasks_by_organization ON tasks (organization_id, created_at, id);
CREATE INDEX tasks_by_target ON tasks (organization_id, target_id, created_at, id);
CREATE INDEX tasks_by_status ON tasks (organization_id, status, created_at, id);
-- The delivery queue, per target: a claim walks only the targets that have an endpoint, so
-- queued tasks of targets without one (they stay on the board) cost it nothing.
CREATE INDEX tasks_claimable ON tasks (target_id, next_attempt_at, id) WHERE status = 'queued';
CREATE INDEX tasks_by_invocation ON tasks (invocation_id);

CREATE TABLE delivery_attempts (
    task_id       BLOB    NOT NULL REFERENCES tasks (id),
    number        INTEGER NOT NULL,
    status_code   INTEGER,
    body_excerpt  TEXT,
    latency_ms    INTEGER NOT NULL,
    error         TEXT,
    at            INTEGER NOT NULL,
    succeeded     INTEGER NOT NULL,
    PRIMARY KEY (task_id, number)
);

-- webhookd's schema on PostgreSQL. Times are timestamptz (microseconds, like the domain's
-- Timestamp); lists are ordered by (time, id) descending, and their indexes say so.

CREATE TABLE organizations (
    id uuid PRIMARY KEY,
    name text NOT NULL,
    rate_limit_per_minute integer NOT NULL CHECK (rate_limit_per_minute > 0),
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);

CREATE TABLE api_keys (
    id uuid PRIMARY KEY,
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name text NOT NULL,
    role text NOT NULL CHECK (role IN ('admin', 'viewer')),
    hash bytea NOT NULL UNIQUE,
    created_at timestamptz NOT NULL
);
CREATE INDEX api_keys_by_organization ON api_keys (organization_id, created_at, id);

CREATE TABLE targets (
    id uuid PRIMARY KEY,
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    kind text NOT NULL CHECK (kind IN ('agent', 'team')),
    name text NOT NULL,
    endpoint_url text,
    signing_secret bytea NOT NULL,
    deleted boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE INDEX targets_live_by_organization
    ON targets (organization_id, created_at DESC, id DESC) WHERE NOT deleted;

CREATE TABLE webhooks (
    id uuid PRIMARY KEY,
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name text NOT NULL,
    target_id uuid NOT NULL REFERENCES targets (id),
    event_types text[] NOT NULL,
    secret bytea,
    rate_limit_per_minute integer NOT NULL CHECK (rate_limit_per_minute > 0),
    status text NOT NULL CHECK (status IN ('active', 'disabled', 'deleted')),
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    last_triggered_at timestamptz
);
CREATE INDEX webhooks_live_by_organization
    ON webhooks (organization_id, created_at DESC, id DESC) WHERE status <> 'deleted';
CREATE INDEX webhooks_live_by_target ON webhooks (target_id) WHERE status <> 'deleted';

-- The payload is stored once, as the exact text received; a task reads it by join.
CREATE TABLE invocations (
    id uuid PRIMARY KEY,
    organization_id uuid NOT NULL,
    webhook_id uuid NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    received_at timestamptz NOT NULL,
    source_ip text,
    event_type text,
    payload text,
    outcome text NOT NULL CHECK (outcome IN ('accepted', 'ignored', 'rejected')),
    http_status integer NOT NULL,
    error_code text,
    task_id uuid,
    repeat_count integer NOT NULL,
    test boolean NOT NULL,
    -- The latest target response, written by each delivery attempt.
    response_status_code integer,
    response_body_excerpt text,
    response_latency_ms integer,
    response_error text,
    response_at timestamptz,
    response_succeeded boolean
);
CREATE INDEX invocations_by_webhook ON invocations (webhook_id, received_at DESC, id DESC);
CREATE INDEX invocations_by_received_at ON invocations (received_at);

CREATE TABLE tasks (
    id uuid PRIMARY KEY,
    organization_id uuid NOT NULL,
    target_id uuid NOT NULL REFERENCES targets (id),
    webhook_id uuid NOT NULL,
    invocation_id uuid NOT NULL REFERENCES invocations (id) ON DELETE CASCADE,
    instruction text,
    -- Only when it differs from the invocation's payload; otherwise read by join.
    context text,
    event_type text,
    status text NOT NULL
        CHECK (status IN ('queued', 'delivered', 'in_progress', 'completed', 'failed')),
    test boolean NOT NULL,
    source_verified boolean NOT NULL,
    source_ip text,
    source_received_at timestamptz NOT NULL,
    attempts integer NOT NULL,
    next_attempt_at timestamptz NOT NULL,
    last_error text,
    lease_token uuid,
    lease_until timestamptz,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE INDEX tasks_by_organization ON tasks (organization_id, created_at DESC, id DESC);
CREATE INDEX tasks_by_target ON tasks (organization_id, target_id, created_at DESC, id DESC);
CREATE INDEX tasks_by_status ON tasks (organization_id, status, created_at DESC, id DESC);
CREATE INDEX tasks_by_invocation ON tasks (invocation_id);
-- The delivery queue, per target: a claim walks only the targets that have an endpoint, so
-- queued tasks of targets without one (they stay on the board) cost it nothing.
CREATE INDEX tasks_claimable ON tasks (target_id, next_attempt_at, id) WHERE status = 'queued';

CREATE TABLE delivery_attempts (
    task_id uuid NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    number integer NOT NULL,
    status_code integer,
    body_excerpt text,
    latency_ms integer NOT NULL,
    error text,
    at timestamptz NOT NULL,
    succeeded boolean NOT NULL,
    PRIMARY KEY (task_id, number)
);

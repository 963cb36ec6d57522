-- The master key's check: a known text sealed under the key that seals this database's secrets,
-- kept by the first node that starts on it (never the key itself). A node holding another key
-- cannot open it and refuses to start, instead of answering 503 for every webhook with a secret.
-- One row at most: `id` is always 1, and a node keeps its check with `ON CONFLICT DO NOTHING`,
-- so of nodes starting together on an empty database exactly one check is kept.
CREATE TABLE master_key_check (
    id smallint PRIMARY KEY CHECK (id = 1),
    sealed bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- The master key's check: a known text sealed under the key that seals this database's secrets,
-- kept by the first start on it (never the key itself). A start with another key (a
-- WEBHOOKD_MASTER_KEY that differs from the data directory's master.key, a replaced key file)
-- cannot open it and refuses, instead of answering 503 for every webhook with a secret.
-- One row at most: `id` is always 1, and the check is kept with `INSERT OR IGNORE`. `created_at`
-- (microseconds since the epoch, to the second) is for the operator only.
CREATE TABLE master_key_check (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    sealed     BLOB    NOT NULL,
    created_at INTEGER NOT NULL DEFAULT (strftime('%s', 'now') * 1000000)
);

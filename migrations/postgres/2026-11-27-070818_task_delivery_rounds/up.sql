-- A task is delivered in rounds: the first starts when it is accepted, each manual retry starts
-- another, and the retry policy counts only the attempts of the current round. This is how many
-- attempts were made before the current round began; every existing task is in its first round.
-- A constant default: PostgreSQL adds the column without rewriting the table.
ALTER TABLE tasks ADD COLUMN attempts_before_round integer NOT NULL DEFAULT 0;

-- A task is delivered in rounds: the first starts when it is accepted, each manual retry starts
-- another, and the retry policy counts only the attempts of the current round. This is how many
-- attempts were made before the current round began; every existing task is in its first round.
ALTER TABLE tasks ADD COLUMN attempts_before_round INTEGER NOT NULL DEFAULT 0;

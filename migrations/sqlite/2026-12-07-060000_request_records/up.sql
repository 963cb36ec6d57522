-- The record of each request beside its outcome, and the invocation a replay sent again.
--
-- `request_record` is one compact JSON text per invocation (written with the row, in the same
-- statement): the request's headers with credentials redacted and bounded, what of its body
-- was kept (`not_read`, `excerpt` or `whole`) and, for a body the row has no payload for, its
-- text; the problem the sender was answered; the subscriptions an ignored event was matched
-- against. NULL for rows written before this migration.
-- `replay_of` names the invocation a replay sent again; no foreign key, so that the purge of
-- the original leaves the replay's row as it is.
ALTER TABLE invocations ADD COLUMN request_record TEXT;
ALTER TABLE invocations ADD COLUMN replay_of BLOB;

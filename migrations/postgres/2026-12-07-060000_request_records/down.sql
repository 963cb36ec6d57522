ALTER TABLE invocations
    DROP COLUMN replay_of,
    DROP COLUMN request_record;

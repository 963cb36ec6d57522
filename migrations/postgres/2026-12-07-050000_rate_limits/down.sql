DROP FUNCTION rate_limit_acquire(uuid[], integer[], uuid[], integer[], bigint[], integer[]);
DROP TABLE rate_limit_windows;

ALTER TABLE tasks RESET (fillfactor);
ALTER TABLE invocations RESET (fillfactor);

-- When the notifier took the alert, so its delivery latency counts the waits
-- (retries, quiet hours) too.
ALTER TABLE pending ADD COLUMN taken_at_ms BIGINT;

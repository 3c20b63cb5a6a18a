-- An endpoint's health: failing since when (cleared by a success), disabled since
-- when and why (a 410, or failing for too long); an operator enables it again.
CREATE TABLE endpoints (
    channel TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    failing_since_ms BIGINT,
    disabled_at_ms BIGINT,
    reason TEXT,
    PRIMARY KEY (channel, endpoint)
);

-- Deliveries given up, with the alert kept whole so an operator can re-drive them;
-- a re-drive moves the row back to the retry queue.
CREATE TABLE dead_letters (
    alert_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    user_id TEXT NOT NULL,
    alert TEXT NOT NULL,
    failed_at_ms BIGINT NOT NULL,
    attempts INTEGER NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (alert_id, channel, endpoint)
);
CREATE INDEX dead_letters_by_time ON dead_letters (failed_at_ms);

-- Attempts made before the current round of retries (a re-drive starts a new round
-- with the whole backoff schedule).
ALTER TABLE pending ADD COLUMN round_base INTEGER NOT NULL DEFAULT 0;

-- The signal an alert belongs to (account and rule), so a clear can cancel a raise
-- still waiting (quiet hours, a retry) and a throttle can count messages per signal.
ALTER TABLE pending ADD COLUMN alert_key TEXT;
CREATE INDEX pending_by_key ON pending (alert_key);

-- Deliveries decided against, and why: a throttle, a raise cancelled by its clear.
-- Settled: never sent, never retried.
CREATE TABLE suppressed (
    alert_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (alert_id, channel, endpoint)
);

-- When each endpoint was last sent a message of each signal (for throttles).
CREATE TABLE throttles (
    channel TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    alert_key TEXT NOT NULL,
    last_ms BIGINT NOT NULL,
    PRIMARY KEY (channel, endpoint, alert_key)
);

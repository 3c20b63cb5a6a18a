-- Deliveries that failed in a way that may pass, waiting for their next try. The
-- alert is kept whole so the retry needs nothing else; the row goes once the
-- delivery succeeds or is given up.
CREATE TABLE pending (
    alert_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    alert TEXT NOT NULL,
    next_at_ms BIGINT NOT NULL,
    PRIMARY KEY (alert_id, channel, endpoint)
);
CREATE INDEX pending_due ON pending (next_at_ms);

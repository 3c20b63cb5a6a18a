-- Alerts held for a digest: one message per window listing them, to a channel's
-- endpoint. A window is its rows of one (channel, endpoint, due_at_ms) while
-- digest_id is NULL; when it falls due it is closed: digest_id, derived from its
-- members, is set and fixes them, and next_at_ms says when to send (or retry).
-- `sent` marks the alert that opened the window and went out on its own (the first
-- of a burst, where the user asks for it): it is not listed again.
CREATE TABLE digest_members (
    alert_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    user_id TEXT NOT NULL,
    alert TEXT NOT NULL,
    alert_key TEXT NOT NULL,
    due_at_ms BIGINT NOT NULL,
    sent BOOLEAN NOT NULL,
    digest_id TEXT,
    next_at_ms BIGINT,
    PRIMARY KEY (alert_id, channel, endpoint)
);
CREATE INDEX digest_members_window ON digest_members (channel, endpoint, digest_id, due_at_ms);
CREATE INDEX digest_members_by_key ON digest_members (alert_key);
CREATE INDEX digest_members_ready ON digest_members (digest_id, next_at_ms);

-- The digest an alert was delivered in, if it was.
ALTER TABLE deliveries ADD COLUMN digest_id TEXT;

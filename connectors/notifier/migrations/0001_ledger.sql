-- The notifier's store: the delivery ledger and the in-app inbox. Portable SQL:
-- the same file serves SQLite (embedded) and PostgreSQL.

-- At most one success per (alert, channel, endpoint), ever: the primary key is
-- the exactly-once guarantee across restarts and crashes.
CREATE TABLE deliveries (
    alert_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    user_id TEXT NOT NULL,
    delivered_at_ms BIGINT NOT NULL,
    attempts INTEGER NOT NULL,
    PRIMARY KEY (alert_id, channel, endpoint)
);

-- Every try, successful or not: when, how long, what went wrong.
CREATE TABLE attempts (
    alert_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    at_ms BIGINT NOT NULL,
    ok BOOLEAN NOT NULL,
    latency_us BIGINT NOT NULL,
    error TEXT,
    -- A failure that retrying cannot mend: the delivery is settled, not retried.
    given_up BOOLEAN NOT NULL,
    PRIMARY KEY (alert_id, channel, endpoint, attempt)
);

-- The in-app channel's messages, one per (user, alert).
CREATE TABLE inbox (
    user_id TEXT NOT NULL,
    alert_id TEXT NOT NULL,
    ts_us BIGINT NOT NULL,
    alert TEXT NOT NULL,
    read_at_ms BIGINT,
    archived_at_ms BIGINT,
    PRIMARY KEY (user_id, alert_id)
);
CREATE INDEX inbox_by_user_time ON inbox (user_id, ts_us);

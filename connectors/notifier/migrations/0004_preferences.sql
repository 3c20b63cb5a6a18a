-- Users' notification preferences, each document sealed whole under the notifier's
-- key (src/preferences.rs): the file alone discloses no address, URL or secret.
CREATE TABLE preferences (
    user_id TEXT NOT NULL PRIMARY KEY,
    sealed TEXT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);

//! The notifier's one error type.

#[derive(Debug, thiserror::Error)]
pub enum NotifierError {
    /// The ledger cannot be reached or written: retry later, nothing is lost (the
    /// engine's outbox keeps the alerts until they are acknowledged).
    #[error("notifier ledger: {0}")]
    Ledger(#[from] sqlx::Error),
    #[error("notifier ledger migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A channel failed in a way that may pass: the alert is tried again later.
    #[error("channel `{channel}` will retry: {reason}")]
    Retry { channel: String, reason: String },
    #[error("stored alert is not readable: {0}")]
    Corrupt(String),
}

impl NotifierError {
    /// Whether trying again later may succeed (a full or unreachable store, a
    /// channel that asked for it); otherwise an operator must look.
    pub fn is_retryable(&self) -> bool {
        matches!(self, NotifierError::Ledger(_) | NotifierError::Retry { .. })
    }
}

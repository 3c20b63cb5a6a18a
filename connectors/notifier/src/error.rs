//! The notifier's one error type.

#[derive(Debug, thiserror::Error)]
pub enum NotifierError {
    /// The ledger cannot be reached or written: retry later, nothing is lost (the
    /// engine's outbox keeps the alerts until they are acknowledged).
    #[error("notifier ledger: {0}")]
    Ledger(#[from] sqlx::Error),
    #[error("notifier ledger migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored alert is not readable: {0}")]
    Corrupt(String),
}

impl NotifierError {
    /// Whether trying again later may succeed (a busy or full store); otherwise an
    /// operator must look.
    pub fn is_retryable(&self) -> bool {
        matches!(self, NotifierError::Ledger(_))
    }
}

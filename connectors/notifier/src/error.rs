//! The notifier's one error type.

#[derive(Debug, thiserror::Error)]
pub enum NotifierError {
    /// The ledger cannot be reached or written: retry later, nothing is lost (the
    /// engine's outbox keeps the alerts until they are acknowledged).
    #[error("notifier ledger: {0}")]
    Ledger(#[from] sqlx::Error),
    #[error("notifier ledger migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The ledger's URL names no database the notifier runs on (the scheme alone
    /// is kept: a URL may carry a password).
    #[error(
        "notifier ledger URL: unsupported scheme `{0}` (use postgres://user:password@host/database or sqlite://path)"
    )]
    Url(String),
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

//! Endpoint health in the ledger: which endpoints fail or are disabled, enabling
//! one again, and the ledger's backlog for health checks.

use serde::Serialize;

use super::Ledger;
use crate::error::NotifierError;

/// An endpoint that failed or was disabled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct EndpointHealth {
    pub channel: String,
    pub endpoint: String,
    /// When its current streak of failures began (none: its last try passed).
    pub failing_since_ms: Option<i64>,
    /// When it was disabled (none: it is enabled).
    pub disabled_at_ms: Option<i64>,
    pub reason: Option<String>,
}

/// What [`Ledger::health`] counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct LedgerHealth {
    pub pending: i64,
    pub dead_letters: i64,
    pub disabled_endpoints: i64,
}

impl Ledger {
    /// Every endpoint that has failed or been disabled, by channel and endpoint.
    pub async fn endpoints(&self) -> Result<Vec<EndpointHealth>, NotifierError> {
        let rows = sqlx::query_as(
            "SELECT channel, endpoint, failing_since_ms, disabled_at_ms, reason FROM endpoints \
             ORDER BY channel, endpoint",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    /// Enables a disabled endpoint (its failures forgotten); false when it was not
    /// disabled. Deliveries given up meanwhile stay dead letters until re-driven.
    pub async fn enable(&self, channel: &str, endpoint: &str) -> Result<bool, NotifierError> {
        let done = sqlx::query(
            "UPDATE endpoints SET disabled_at_ms = NULL, failing_since_ms = NULL, reason = NULL \
             WHERE channel = $1 AND endpoint = $2 AND disabled_at_ms IS NOT NULL",
        )
        .bind(channel)
        .bind(endpoint)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The ledger's state in numbers, for health checks: deliveries waiting for a
    /// retry, dead letters, disabled endpoints.
    pub async fn health(&self) -> Result<LedgerHealth, NotifierError> {
        Ok(sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM pending) AS pending, (SELECT COUNT(*) FROM dead_letters) AS dead_letters, \
             (SELECT COUNT(*) FROM endpoints WHERE disabled_at_ms IS NOT NULL) AS disabled_endpoints",
        )
        .fetch_one(&self.pool)
        .await?)
    }
}

//! The delivery ledger through sqlx: what was tried, when, and the one success per
//! (alert, channel, endpoint). A SQLite file by default; the migrations are plain
//! SQL that PostgreSQL also runs.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use riskstream_schemas::Alert;
use serde::Serialize;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

use crate::error::NotifierError;

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// One try to deliver an alert on a channel to an endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attempt {
    pub alert_id: String,
    pub channel: String,
    pub endpoint: String,
    pub attempt: i64,
    pub at_ms: i64,
    pub ok: bool,
    pub latency_us: i64,
    pub error: Option<String>,
    /// The failure is final: the delivery is not tried again.
    pub given_up: bool,
}

#[derive(Clone)]
pub struct Ledger {
    pool: SqlitePool,
}

impl Ledger {
    /// Opens (creating it when absent) the ledger file and brings its schema up to
    /// date. WAL with `synchronous = NORMAL`: a committed delivery survives a crash
    /// of the process, which is what exactly-once needs.
    pub async fn open(path: &Path) -> Result<Self, NotifierError> {
        let url = format!("sqlite://{}", path.display());
        let options = SqliteConnectOptions::from_str(&url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new().max_connections(4).connect_with(options).await?;
        MIGRATIONS.run(&pool).await?;
        Ok(Ledger { pool })
    }

    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Whether the alert's delivery on this channel to this endpoint is settled
    /// (delivered, or given up for good) or waiting for a retry.
    pub async fn settled_or_pending(
        &self,
        alert_id: &str,
        channel: &str,
        endpoint: &str,
    ) -> Result<bool, NotifierError> {
        let row = sqlx::query(
            "SELECT 1 FROM deliveries WHERE alert_id = ? AND channel = ? AND endpoint = ? \
             UNION ALL SELECT 1 FROM attempts WHERE alert_id = ? AND channel = ? AND endpoint = ? AND given_up \
             UNION ALL SELECT 1 FROM pending WHERE alert_id = ? AND channel = ? AND endpoint = ?",
        )
        .bind(alert_id)
        .bind(channel)
        .bind(endpoint)
        .bind(alert_id)
        .bind(channel)
        .bind(endpoint)
        .bind(alert_id)
        .bind(channel)
        .bind(endpoint)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    /// Retries due at `now_ms`, soonest first: (channel, endpoint, alert).
    pub async fn due(&self, now_ms: i64, limit: i64) -> Result<Vec<(String, String, Alert)>, NotifierError> {
        let rows = sqlx::query(
            "SELECT channel, endpoint, alert FROM pending WHERE next_at_ms <= ? ORDER BY next_at_ms LIMIT ?",
        )
        .bind(now_ms)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let text: String = r.try_get("alert")?;
                let alert = serde_json::from_str(&text).map_err(|e| NotifierError::Corrupt(e.to_string()))?;
                Ok((r.try_get("channel")?, r.try_get("endpoint")?, alert))
            })
            .collect()
    }

    /// Deliveries waiting for a retry.
    pub async fn pending_count(&self) -> Result<i64, NotifierError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM pending").fetch_one(&self.pool).await?;
        Ok(row.try_get("n")?)
    }

    /// Records one try, in one transaction with what follows from it: a success
    /// records the delivery (once: a second success of the same key, after a crash
    /// between the two, changes nothing); `retry_at` schedules the next try (the
    /// alert kept whole); otherwise the delivery leaves the retry queue.
    pub async fn record(
        &self,
        attempt: &Attempt,
        user_id: &str,
        alert: &Alert,
        retry_at: Option<i64>,
    ) -> Result<(), NotifierError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO attempts (alert_id, channel, endpoint, attempt, at_ms, ok, latency_us, error, given_up) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(&attempt.alert_id)
        .bind(&attempt.channel)
        .bind(&attempt.endpoint)
        .bind(attempt.attempt)
        .bind(attempt.at_ms)
        .bind(attempt.ok)
        .bind(attempt.latency_us)
        .bind(&attempt.error)
        .bind(attempt.given_up)
        .execute(&mut *tx)
        .await?;
        if attempt.ok {
            sqlx::query(
                "INSERT INTO deliveries (alert_id, channel, endpoint, user_id, delivered_at_ms, attempts) \
                 VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            )
            .bind(&attempt.alert_id)
            .bind(&attempt.channel)
            .bind(&attempt.endpoint)
            .bind(user_id)
            .bind(attempt.at_ms)
            .bind(attempt.attempt)
            .execute(&mut *tx)
            .await?;
        }
        match retry_at {
            Some(at) => {
                let text = serde_json::to_string(alert).map_err(|e| NotifierError::Corrupt(e.to_string()))?;
                sqlx::query(
                    "INSERT INTO pending (alert_id, channel, endpoint, alert, next_at_ms) VALUES (?, ?, ?, ?, ?) \
                     ON CONFLICT (alert_id, channel, endpoint) DO UPDATE SET next_at_ms = excluded.next_at_ms",
                )
                .bind(&attempt.alert_id)
                .bind(&attempt.channel)
                .bind(&attempt.endpoint)
                .bind(text)
                .bind(at)
                .execute(&mut *tx)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM pending WHERE alert_id = ? AND channel = ? AND endpoint = ?")
                    .bind(&attempt.alert_id)
                    .bind(&attempt.channel)
                    .bind(&attempt.endpoint)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Tries made so far for the key (the next attempt's number is this plus one).
    pub async fn attempt_count(&self, alert_id: &str, channel: &str, endpoint: &str) -> Result<i64, NotifierError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM attempts WHERE alert_id = ? AND channel = ? AND endpoint = ?")
            .bind(alert_id)
            .bind(channel)
            .bind(endpoint)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }

    /// Every attempt of an alert, oldest first.
    pub async fn attempts(&self, alert_id: &str) -> Result<Vec<Attempt>, NotifierError> {
        let rows = sqlx::query(
            "SELECT alert_id, channel, endpoint, attempt, at_ms, ok, latency_us, error, given_up FROM attempts \
             WHERE alert_id = ? ORDER BY channel, endpoint, attempt",
        )
        .bind(alert_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Attempt {
                    alert_id: r.try_get("alert_id")?,
                    channel: r.try_get("channel")?,
                    endpoint: r.try_get("endpoint")?,
                    attempt: r.try_get("attempt")?,
                    at_ms: r.try_get("at_ms")?,
                    ok: r.try_get("ok")?,
                    latency_us: r.try_get("latency_us")?,
                    error: r.try_get("error")?,
                    given_up: r.try_get("given_up")?,
                })
            })
            .collect()
    }

    /// Successful deliveries recorded, over all alerts.
    pub async fn delivery_count(&self) -> Result<i64, NotifierError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM deliveries").fetch_one(&self.pool).await?;
        Ok(row.try_get("n")?)
    }
}

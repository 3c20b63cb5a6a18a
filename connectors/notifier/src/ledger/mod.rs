//! The delivery ledger through sqlx: what was tried, when, and the one success per
//! (alert, channel, endpoint), the retry queue, and what was decided against. A
//! SQLite file by default; the migrations are plain SQL that PostgreSQL also runs.
//! Dead letters and endpoint health are in their own files.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use riskstream_schemas::Alert;
use serde::Serialize;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqliteConnection, SqlitePool};

use crate::error::NotifierError;

mod dead_letters;
mod endpoints;

pub use dead_letters::{DeadLetter, DeadLetterFilter};
pub use endpoints::{EndpointHealth, LedgerHealth};

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// One try to deliver an alert on a channel to an endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
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

/// A retry that is due.
#[derive(Debug, Clone)]
pub struct Due {
    pub channel: String,
    pub endpoint: String,
    pub alert: Alert,
    /// Attempts made before this round of retries.
    pub round_base: i64,
    /// When the notifier took the alert (none in rows from before it was kept).
    pub taken_at_ms: Option<i64>,
}

/// What the ledger says of one delivery before it is made ([`Ledger::delivery_state`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryState {
    /// Delivered, given up, suppressed, or waiting in the retry queue.
    pub settled_or_waiting: bool,
    /// Why its endpoint is disabled, if it is.
    pub disabled: Option<String>,
    /// Tries so far (the next one's number is this plus one).
    pub attempts: i64,
    /// When the endpoint last got a message of the alert's signal.
    pub last_sent_ms: Option<i64>,
}

/// What follows a try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Try again at `at_ms`; `round_base` attempts came before this round; the
    /// notifier took the alert at `taken_at_ms`.
    Retry { at_ms: i64, round_base: i64, taken_at_ms: i64 },
    /// Delivered, or given up: out of the retry queue.
    Done,
}

/// What a try says about its endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Says nothing (the endpoint was not tried, or its channel never disables).
    Unchanged,
    /// Answered: its failing streak ends.
    Ok,
    /// Failed: disabled once it has failed for `disable_after_ms` without a success.
    Failing { disable_after_ms: i64 },
    /// Disabled now, for this reason (a 410).
    Disable(String),
}

/// The signal an alert belongs to, for the user: its account and rule.
fn alert_key(alert: &Alert) -> String {
    format!("{}\u{1f}{}", alert.account_id, alert.rule)
}

fn alert_text(alert: &Alert) -> Result<String, NotifierError> {
    serde_json::to_string(alert).map_err(|e| NotifierError::Corrupt(e.to_string()))
}

fn parse_alert(text: String) -> Result<Alert, NotifierError> {
    serde_json::from_str(&text).map_err(|e| NotifierError::Corrupt(e.to_string()))
}

/// Puts a delivery in the retry queue, due at `at_ms`, or moves its next try there
/// when it waits already.
async fn queue(
    conn: &mut SqliteConnection,
    alert: &Alert,
    channel: &str,
    endpoint: &str,
    at_ms: i64,
    round_base: i64,
    taken_at_ms: i64,
) -> Result<(), NotifierError> {
    sqlx::query(
        "INSERT INTO pending (alert_id, channel, endpoint, alert, next_at_ms, round_base, alert_key, taken_at_ms) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (alert_id, channel, endpoint) DO UPDATE SET next_at_ms = excluded.next_at_ms",
    )
    .bind(&alert.alert_id)
    .bind(channel)
    .bind(endpoint)
    .bind(alert_text(alert)?)
    .bind(at_ms)
    .bind(round_base)
    .bind(alert_key(alert))
    .bind(taken_at_ms)
    .execute(conn)
    .await?;
    Ok(())
}

/// Takes a delivery out of the retry queue.
async fn unqueue(
    conn: &mut SqliteConnection,
    alert_id: &str,
    channel: &str,
    endpoint: &str,
) -> Result<(), NotifierError> {
    sqlx::query("DELETE FROM pending WHERE alert_id = ? AND channel = ? AND endpoint = ?")
        .bind(alert_id)
        .bind(channel)
        .bind(endpoint)
        .execute(conn)
        .await?;
    Ok(())
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
            .busy_timeout(Duration::from_secs(5))
            // Deleted rows (an erased user's preferences) are overwritten, not left in free pages.
            .pragma("secure_delete", "ON");
        let pool = SqlitePoolOptions::new().max_connections(4).connect_with(options).await?;
        MIGRATIONS.run(&pool).await?;
        Ok(Ledger { pool })
    }

    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Everything a delivery decision reads, in one round trip: whether it is
    /// settled or waiting, whether its endpoint is disabled, the tries so far, and
    /// when the endpoint last got a message of the alert's signal.
    pub async fn delivery_state(
        &self,
        alert: &Alert,
        channel: &str,
        endpoint: &str,
    ) -> Result<DeliveryState, NotifierError> {
        let row = sqlx::query(
            "SELECT \
               EXISTS (SELECT 1 FROM deliveries WHERE alert_id = ?1 AND channel = ?2 AND endpoint = ?3) \
               OR EXISTS (SELECT 1 FROM attempts WHERE alert_id = ?1 AND channel = ?2 AND endpoint = ?3 AND given_up) \
               OR EXISTS (SELECT 1 FROM pending WHERE alert_id = ?1 AND channel = ?2 AND endpoint = ?3) \
               OR EXISTS (SELECT 1 FROM suppressed WHERE alert_id = ?1 AND channel = ?2 AND endpoint = ?3) AS settled, \
               (SELECT COALESCE(reason, '') FROM endpoints WHERE channel = ?2 AND endpoint = ?3 \
                  AND disabled_at_ms IS NOT NULL) AS disabled, \
               (SELECT COUNT(*) FROM attempts WHERE alert_id = ?1 AND channel = ?2 AND endpoint = ?3) AS attempts, \
               (SELECT last_ms FROM throttles WHERE channel = ?2 AND endpoint = ?3 AND alert_key = ?4) AS last_sent",
        )
        .bind(&alert.alert_id)
        .bind(channel)
        .bind(endpoint)
        .bind(alert_key(alert))
        .fetch_one(&self.pool)
        .await?;
        Ok(DeliveryState {
            settled_or_waiting: row.try_get("settled")?,
            disabled: row.try_get("disabled")?,
            attempts: row.try_get("attempts")?,
            last_sent_ms: row.try_get("last_sent")?,
        })
    }

    /// Retries due at `now_ms`, soonest first.
    pub async fn due(&self, now_ms: i64, limit: i64) -> Result<Vec<Due>, NotifierError> {
        let rows = sqlx::query(
            "SELECT channel, endpoint, alert, round_base, taken_at_ms FROM pending WHERE next_at_ms <= ? \
             ORDER BY next_at_ms LIMIT ?",
        )
        .bind(now_ms)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Due {
                    channel: r.try_get("channel")?,
                    endpoint: r.try_get("endpoint")?,
                    alert: parse_alert(r.try_get("alert")?)?,
                    round_base: r.try_get("round_base")?,
                    taken_at_ms: r.try_get("taken_at_ms")?,
                })
            })
            .collect()
    }

    /// When the delivery's next retry is due, if it waits for one.
    pub async fn next_retry_at(
        &self,
        alert_id: &str,
        channel: &str,
        endpoint: &str,
    ) -> Result<Option<i64>, NotifierError> {
        let row = sqlx::query("SELECT next_at_ms FROM pending WHERE alert_id = ? AND channel = ? AND endpoint = ?")
            .bind(alert_id)
            .bind(channel)
            .bind(endpoint)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("next_at_ms")).transpose()?)
    }

    /// Deliveries waiting for a retry.
    pub async fn pending_count(&self) -> Result<i64, NotifierError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM pending").fetch_one(&self.pool).await?;
        Ok(row.try_get("n")?)
    }

    /// Records one try, in one transaction with what follows from it: a success
    /// records the delivery (once: a second success of the same key, after a crash
    /// between the two, changes nothing); [`Next::Retry`] schedules the next try
    /// (the alert kept whole); a failure given up becomes a dead letter; and the
    /// endpoint's health is updated. Returns whether this try disabled the endpoint.
    pub async fn record(
        &self,
        attempt: &Attempt,
        alert: &Alert,
        next: Next,
        health: Health,
    ) -> Result<bool, NotifierError> {
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
            .bind(&alert.user_id)
            .bind(attempt.at_ms)
            .bind(attempt.attempt)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO throttles (channel, endpoint, alert_key, last_ms) VALUES (?, ?, ?, ?) \
                 ON CONFLICT (channel, endpoint, alert_key) DO UPDATE SET last_ms = excluded.last_ms",
            )
            .bind(&attempt.channel)
            .bind(&attempt.endpoint)
            .bind(alert_key(alert))
            .bind(attempt.at_ms)
            .execute(&mut *tx)
            .await?;
        }
        let key = [&attempt.alert_id, &attempt.channel, &attempt.endpoint];
        match next {
            Next::Retry { at_ms, round_base, taken_at_ms } => {
                queue(&mut tx, alert, &attempt.channel, &attempt.endpoint, at_ms, round_base, taken_at_ms).await?;
            }
            Next::Done => unqueue(&mut tx, key[0], key[1], key[2]).await?,
        }
        if attempt.given_up {
            sqlx::query(
                "INSERT INTO dead_letters (alert_id, channel, endpoint, user_id, alert, failed_at_ms, attempts, reason) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (alert_id, channel, endpoint) DO UPDATE SET \
                 failed_at_ms = excluded.failed_at_ms, attempts = excluded.attempts, reason = excluded.reason",
            )
            .bind(key[0])
            .bind(key[1])
            .bind(key[2])
            .bind(&alert.user_id)
            .bind(alert_text(alert)?)
            .bind(attempt.at_ms)
            .bind(attempt.attempt)
            .bind(attempt.error.as_deref().unwrap_or("given up"))
            .execute(&mut *tx)
            .await?;
        }
        let disabled = match health {
            Health::Unchanged => false,
            Health::Ok => {
                sqlx::query("UPDATE endpoints SET failing_since_ms = NULL WHERE channel = ? AND endpoint = ?")
                    .bind(key[1])
                    .bind(key[2])
                    .execute(&mut *tx)
                    .await?;
                false
            }
            Health::Failing { disable_after_ms } => {
                sqlx::query(
                    "INSERT INTO endpoints (channel, endpoint, failing_since_ms) VALUES (?, ?, ?) \
                     ON CONFLICT (channel, endpoint) DO UPDATE SET \
                     failing_since_ms = COALESCE(endpoints.failing_since_ms, excluded.failing_since_ms)",
                )
                .bind(key[1])
                .bind(key[2])
                .bind(attempt.at_ms)
                .execute(&mut *tx)
                .await?;
                let reason = format!("failing for over {} hours", disable_after_ms / 3_600_000);
                sqlx::query(
                    "UPDATE endpoints SET disabled_at_ms = ?, reason = ? WHERE channel = ? AND endpoint = ? \
                     AND disabled_at_ms IS NULL AND failing_since_ms <= ?",
                )
                .bind(attempt.at_ms)
                .bind(reason)
                .bind(key[1])
                .bind(key[2])
                .bind(attempt.at_ms.saturating_sub(disable_after_ms))
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    > 0
            }
            Health::Disable(reason) => {
                sqlx::query(
                    "INSERT INTO endpoints (channel, endpoint, failing_since_ms, disabled_at_ms, reason) \
                     VALUES (?, ?, ?, ?, ?) ON CONFLICT (channel, endpoint) DO UPDATE SET \
                     disabled_at_ms = excluded.disabled_at_ms, reason = excluded.reason \
                     WHERE endpoints.disabled_at_ms IS NULL",
                )
                .bind(key[1])
                .bind(key[2])
                .bind(attempt.at_ms)
                .bind(attempt.at_ms)
                .bind(reason)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    > 0
            }
        };
        tx.commit().await?;
        Ok(disabled)
    }

    /// Puts a delivery that was not tried (its endpoint over its rate limit) in the
    /// retry queue, due at `at_ms`; no attempt is recorded.
    pub async fn defer(
        &self,
        alert: &Alert,
        channel: &str,
        endpoint: &str,
        at_ms: i64,
        round_base: i64,
        taken_at_ms: i64,
    ) -> Result<(), NotifierError> {
        let mut conn = self.pool.acquire().await?;
        queue(&mut conn, alert, channel, endpoint, at_ms, round_base, taken_at_ms).await
    }

    /// Settles a delivery without sending it, saying why (a throttle, a cancelled
    /// raise); a waiting retry of it is dropped.
    pub async fn suppress(
        &self,
        alert_id: &str,
        channel: &str,
        endpoint: &str,
        at_ms: i64,
        reason: &str,
    ) -> Result<(), NotifierError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO suppressed (alert_id, channel, endpoint, at_ms, reason) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(alert_id)
        .bind(channel)
        .bind(endpoint)
        .bind(at_ms)
        .bind(reason)
        .execute(&mut *tx)
        .await?;
        unqueue(&mut tx, alert_id, channel, endpoint).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Why a delivery was suppressed, if it was.
    pub async fn suppressed(
        &self,
        alert_id: &str,
        channel: &str,
        endpoint: &str,
    ) -> Result<Option<String>, NotifierError> {
        let row = sqlx::query("SELECT reason FROM suppressed WHERE alert_id = ? AND channel = ? AND endpoint = ?")
            .bind(alert_id)
            .bind(channel)
            .bind(endpoint)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("reason")).transpose()?)
    }

    /// The deliveries of the clear's signal (its account and rule) still waiting, in
    /// quiet hours or for a retry: (alert_id, channel, endpoint).
    pub async fn waiting_of_signal(&self, clear: &Alert) -> Result<Vec<(String, String, String)>, NotifierError> {
        let rows = sqlx::query("SELECT alert_id, channel, endpoint FROM pending WHERE alert_key = ? AND alert_id <> ?")
            .bind(alert_key(clear))
            .bind(&clear.alert_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok((r.try_get("alert_id")?, r.try_get("channel")?, r.try_get("endpoint")?))).collect()
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
        let rows = sqlx::query_as(
            "SELECT alert_id, channel, endpoint, attempt, at_ms, ok, latency_us, error, given_up FROM attempts \
             WHERE alert_id = ? ORDER BY channel, endpoint, attempt",
        )
        .bind(alert_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    /// Successful deliveries recorded, over all alerts.
    pub async fn delivery_count(&self) -> Result<i64, NotifierError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM deliveries").fetch_one(&self.pool).await?;
        Ok(row.try_get("n")?)
    }
}

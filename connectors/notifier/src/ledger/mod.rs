//! The delivery ledger through sqlx: what was tried, when, and the one success per
//! (alert, channel, endpoint), the retry queue, and what was decided against. A
//! SQLite file by default, PostgreSQL when given its URL (several notifiers then
//! share it): the same migrations and statements serve both (`sql.rs`). Dead
//! letters, endpoint health and digests are in their own files.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use riskstream_schemas::Alert;
use serde::Serialize;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{AnyPool, ConnectOptions, Executor, Row};

use crate::error::NotifierError;

mod dead_letters;
mod digests;
mod endpoints;
mod sql;
mod writes;

pub use dead_letters::{DeadLetter, DeadLetterFilter};
pub use digests::ReadyDigest;
pub use endpoints::{EndpointHealth, LedgerHealth};
pub use sql::Backend;
pub(crate) use sql::{flag, Statement};
use writes::{queue, Queued};
pub use writes::{Disabled, Owners, Write};

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

/// One delivery: an alert on a channel to an endpoint.
#[derive(Debug, Clone, Copy)]
pub struct DeliveryKey<'a> {
    pub alert: &'a Alert,
    pub channel: &'a str,
    pub endpoint: &'a str,
}

/// What the ledger says of one delivery before it is made ([`Ledger::delivery_states`]).
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
    /// The end of the endpoint's latest digest window still open to new alerts
    /// (it may have passed, waiting to be closed).
    pub digest_window_ms: Option<i64>,
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
pub(crate) fn signal_key(alert: &Alert) -> String {
    format!("{}\u{1f}{}", alert.account_id, alert.rule)
}

fn alert_text(alert: &Alert) -> Result<String, NotifierError> {
    serde_json::to_string(alert).map_err(|e| NotifierError::Corrupt(e.to_string()))
}

fn parse_alert(text: String) -> Result<Alert, NotifierError> {
    serde_json::from_str(&text).map_err(|e| NotifierError::Corrupt(e.to_string()))
}

impl Attempt {
    fn from_row(r: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Attempt {
            alert_id: r.try_get("alert_id")?,
            channel: r.try_get("channel")?,
            endpoint: r.try_get("endpoint")?,
            attempt: r.try_get("attempt")?,
            at_ms: r.try_get("at_ms")?,
            ok: flag(r, "ok")?,
            latency_us: r.try_get("latency_us")?,
            error: r.try_get("error")?,
            given_up: flag(r, "given_up")?,
        })
    }
}

#[derive(Clone)]
pub struct Ledger {
    pool: AnyPool,
    backend: Backend,
}

impl Ledger {
    /// Opens (creating it when absent) the ledger file and brings its schema up to
    /// date. WAL with `synchronous = NORMAL`: a committed delivery survives a crash
    /// of the process, which is what exactly-once needs.
    pub async fn open(path: &Path) -> Result<Self, NotifierError> {
        let url = SqliteConnectOptions::new().filename(path).create_if_missing(true).to_url_lossy();
        Self::connect(url.as_str()).await
    }

    /// Opens the ledger at a URL, `postgres://user:password@host/database` or
    /// `sqlite://path`, and brings its schema up to date.
    pub async fn connect(url: &str) -> Result<Self, NotifierError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            return Err(NotifierError::Url(url.split(':').next().unwrap_or_default().to_string()));
        };
        let options = AnyConnectOptions::from_str(url)?;
        let pool = match backend {
            Backend::Sqlite => {
                AnyPoolOptions::new()
                    .max_connections(4)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            // Deleted rows (an erased user's preferences) are overwritten,
                            // not left in free pages.
                            conn.execute(
                                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                                 PRAGMA busy_timeout = 5000; PRAGMA secure_delete = ON",
                            )
                            .await?;
                            Ok(())
                        })
                    })
                    .connect_with(options)
                    .await?
            }
            Backend::Postgres => {
                AnyPoolOptions::new()
                    .max_connections(8)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(options)
                    .await?
            }
        };
        MIGRATIONS.run(&pool).await?;
        Ok(Ledger { pool, backend })
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The database behind the ledger.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Everything the decisions on a round of deliveries read, one statement per
    /// [`writes::ROWS`] keys, in the keys' order: whether each is settled or
    /// waiting, whether its endpoint is disabled, the tries so far, and when the
    /// endpoint last got a message of the alert's signal.
    pub async fn delivery_states(&self, keys: &[DeliveryKey<'_>]) -> Result<Vec<DeliveryState>, NotifierError> {
        let mut states = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(writes::ROWS) {
            let mut sql = Statement::new(self.backend, "WITH k (i, alert_id, channel, endpoint, alert_key) AS (");
            sql.values(chunk.iter().enumerate(), |row, (i, key)| {
                row.bind(i as i64)
                    .bind(key.alert.alert_id.as_str())
                    .bind(key.channel)
                    .bind(key.endpoint)
                    .bind(signal_key(key.alert));
            });
            sql.push(
                ") SELECT \
                   EXISTS (SELECT 1 FROM deliveries d WHERE d.alert_id = k.alert_id AND d.channel = k.channel \
                     AND d.endpoint = k.endpoint) \
                   OR EXISTS (SELECT 1 FROM attempts a WHERE a.alert_id = k.alert_id AND a.channel = k.channel \
                     AND a.endpoint = k.endpoint AND a.given_up) \
                   OR EXISTS (SELECT 1 FROM pending p WHERE p.alert_id = k.alert_id AND p.channel = k.channel \
                     AND p.endpoint = k.endpoint) \
                   OR EXISTS (SELECT 1 FROM suppressed s WHERE s.alert_id = k.alert_id AND s.channel = k.channel \
                     AND s.endpoint = k.endpoint) \
                   OR EXISTS (SELECT 1 FROM digest_members m WHERE m.alert_id = k.alert_id \
                     AND m.channel = k.channel AND m.endpoint = k.endpoint) AS settled, \
                   (SELECT MAX(m.due_at_ms) FROM digest_members m WHERE m.channel = k.channel \
                     AND m.endpoint = k.endpoint AND m.digest_id IS NULL) AS digest_window, \
                   (SELECT COALESCE(e.reason, '') FROM endpoints e WHERE e.channel = k.channel \
                     AND e.endpoint = k.endpoint AND e.disabled_at_ms IS NOT NULL) AS disabled, \
                   (SELECT COUNT(*) FROM attempts a WHERE a.alert_id = k.alert_id AND a.channel = k.channel \
                     AND a.endpoint = k.endpoint) AS attempts, \
                   (SELECT t.last_ms FROM throttles t WHERE t.channel = k.channel AND t.endpoint = k.endpoint \
                     AND t.alert_key = k.alert_key) AS last_sent \
                 FROM k ORDER BY k.i",
            );
            for row in sql.query().fetch_all(&self.pool).await? {
                states.push(DeliveryState {
                    settled_or_waiting: flag(&row, "settled")?,
                    disabled: row.try_get("disabled")?,
                    attempts: row.try_get("attempts")?,
                    last_sent_ms: row.try_get("last_sent")?,
                    digest_window_ms: row.try_get("digest_window")?,
                });
            }
        }
        Ok(states)
    }

    /// Retries due at `now_ms`, soonest first.
    pub async fn due(&self, now_ms: i64, limit: i64) -> Result<Vec<Due>, NotifierError> {
        let rows = sqlx::query(
            "SELECT channel, endpoint, alert, round_base, taken_at_ms FROM pending WHERE next_at_ms <= $1 \
             ORDER BY next_at_ms LIMIT $2",
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
        let row = sqlx::query("SELECT next_at_ms FROM pending WHERE alert_id = $1 AND channel = $2 AND endpoint = $3")
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

    /// Why a delivery was suppressed, if it was.
    pub async fn suppressed(
        &self,
        alert_id: &str,
        channel: &str,
        endpoint: &str,
    ) -> Result<Option<String>, NotifierError> {
        let row = sqlx::query("SELECT reason FROM suppressed WHERE alert_id = $1 AND channel = $2 AND endpoint = $3")
            .bind(alert_id)
            .bind(channel)
            .bind(endpoint)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("reason")).transpose()?)
    }

    /// The deliveries of the clear's signal (its account and rule) still waiting, in
    /// quiet hours, for a retry or in an open digest: (alert_id, channel, endpoint).
    pub async fn waiting_of_signal(&self, clear: &Alert) -> Result<Vec<(String, String, String)>, NotifierError> {
        let rows = sqlx::query(
            "SELECT alert_id, channel, endpoint FROM pending WHERE alert_key = $1 AND alert_id <> $2 \
             UNION SELECT alert_id, channel, endpoint FROM digest_members \
             WHERE alert_key = $1 AND alert_id <> $2 AND digest_id IS NULL AND NOT sent",
        )
        .bind(signal_key(clear))
        .bind(&clear.alert_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok((r.try_get("alert_id")?, r.try_get("channel")?, r.try_get("endpoint")?))).collect()
    }

    /// Every attempt of an alert, oldest first.
    pub async fn attempts(&self, alert_id: &str) -> Result<Vec<Attempt>, NotifierError> {
        let rows = sqlx::query(
            "SELECT alert_id, channel, endpoint, attempt, at_ms, CAST(ok AS INTEGER) AS ok, latency_us, error, \
             CAST(given_up AS INTEGER) AS given_up FROM attempts \
             WHERE alert_id = $1 ORDER BY channel, endpoint, attempt",
        )
        .bind(alert_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(Attempt::from_row).collect::<Result<_, _>>()?)
    }

    /// Successful deliveries recorded, over all alerts.
    pub async fn delivery_count(&self) -> Result<i64, NotifierError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM deliveries").fetch_one(&self.pool).await?;
        Ok(row.try_get("n")?)
    }
}

//! What a round of deliveries writes, in one transaction: each statement covers
//! every row of the round (multi-row `INSERT`s, one `DELETE ... IN (VALUES ...)`),
//! so the ledger's cost is per round, not per delivery. Per delivery, a statement
//! is a round trip to the database (for SQLite, to sqlx's worker thread); that,
//! not the disk, bounded throughput when each delivery had its own transaction.

use std::collections::HashMap;

use riskstream_schemas::{Alert, Timestamp};
use sha2::{Digest as _, Sha256};
use sqlx::AnyConnection;

use super::{alert_text, signal_key, Attempt, Backend, Health, Ledger, Next, Statement};
use crate::error::NotifierError;
use crate::inbox::Notice;

/// Rows per statement: 500 rows of at most 9 columns stay far below SQLite's
/// limit of 32,766 bound values (and PostgreSQL's 65,535).
pub(super) const ROWS: usize = 500;

/// One delivery's entry in a round's transaction.
#[derive(Debug, Clone)]
pub enum Write<'a> {
    /// A try and what follows from it: a success records the delivery (once: a
    /// second success of the same key, after a crash between the two, changes
    /// nothing); [`Next::Retry`] schedules the next try with the alert kept whole;
    /// a failure given up becomes a dead letter; the endpoint's health follows.
    Tried { attempt: Attempt, alert: &'a Alert, next: Next, health: Health },
    /// Not tried (its endpoint over its rate limit, its user's quiet hours): in the
    /// retry queue, due at `at_ms`; no attempt is recorded.
    Deferred { alert: &'a Alert, channel: String, endpoint: String, at_ms: i64, round_base: i64, taken_at_ms: i64 },
    /// Settled without sending, saying why (a throttle, a cancelled raise); a
    /// waiting retry of it is dropped.
    Suppressed { alert_id: String, channel: String, endpoint: String, at_ms: i64, reason: String },
    /// Held for the digest window of its endpoint that ends at `due_at_ms`; `sent`:
    /// it opened the window and goes out on its own as well (not listed again).
    Digested { alert: &'a Alert, channel: String, endpoint: String, due_at_ms: i64, sent: bool },
}

/// A row of the retry queue.
pub(super) struct Queued<'a> {
    pub alert: &'a Alert,
    pub channel: &'a str,
    pub endpoint: &'a str,
    pub at_ms: i64,
    pub round_base: i64,
    pub taken_at_ms: i64,
}

/// An endpoint disabled by a round: (channel, endpoint, reason).
pub type Disabled = (String, String, String);

/// Who owns an endpoint, by (channel, endpoint): the user, and the endpoint's name
/// for them; none for an operator's endpoint. The owner is told in their inbox, in
/// the transaction that disables it.
pub type Owners<'a> = &'a (dyn Fn(&str, &str) -> Option<(String, String)> + Sync);

/// Puts deliveries in the retry queue, or moves the next try of those waiting already.
pub(super) async fn queue(conn: &mut AnyConnection, rows: &[Queued<'_>]) -> Result<(), NotifierError> {
    for chunk in rows.chunks(ROWS) {
        let texts = chunk.iter().map(|q| alert_text(q.alert)).collect::<Result<Vec<_>, _>>()?;
        let mut sql = Statement::new(
            Backend::of(conn),
            "INSERT INTO pending (alert_id, channel, endpoint, alert, next_at_ms, round_base, alert_key, taken_at_ms) ",
        );
        sql.values(chunk.iter().zip(texts), |row, (q, text)| {
            row.bind(&q.alert.alert_id)
                .bind(q.channel)
                .bind(q.endpoint)
                .bind(text)
                .bind(q.at_ms)
                .bind(q.round_base)
                .bind(signal_key(q.alert))
                .bind(q.taken_at_ms);
        });
        sql.push(" ON CONFLICT (alert_id, channel, endpoint) DO UPDATE SET next_at_ms = excluded.next_at_ms");
        sql.query().execute(&mut *conn).await?;
    }
    Ok(())
}

/// Takes deliveries, by (alert_id, channel, endpoint), out of the retry queue.
pub(super) async fn unqueue(conn: &mut AnyConnection, keys: &[(&str, &str, &str)]) -> Result<(), NotifierError> {
    for chunk in keys.chunks(ROWS) {
        let mut sql = Statement::new(Backend::of(conn), "DELETE FROM pending WHERE (alert_id, channel, endpoint) IN (");
        sql.values(chunk, |row, (alert_id, channel, endpoint)| {
            row.bind(*alert_id).bind(*channel).bind(*endpoint);
        });
        sql.push(")");
        sql.query().execute(&mut *conn).await?;
    }
    Ok(())
}

impl Ledger {
    /// Writes a round, in one transaction. Returns the endpoints it disabled.
    pub async fn write(&self, writes: &[Write<'_>]) -> Result<Vec<Disabled>, NotifierError> {
        self.write_telling(writes, &|_, _| None).await
    }

    /// Writes a round, in one transaction, telling the owner of an endpoint it
    /// disables in their inbox. Returns the endpoints it disabled.
    pub async fn write_telling(
        &self,
        writes: &[Write<'_>],
        owners: Owners<'_>,
    ) -> Result<Vec<Disabled>, NotifierError> {
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.pool.begin().await?;
        let mut tried = Vec::new();
        let mut queued = Vec::new();
        let mut done = Vec::new();
        let mut suppressed = Vec::new();
        let mut digested = Vec::new();
        let mut undigested = Vec::new();
        for write in writes {
            match write {
                Write::Tried { attempt, alert, next, health } => {
                    tried.push((attempt, *alert, health));
                    let (alert_id, channel, endpoint) = (&attempt.alert_id, &attempt.channel, &attempt.endpoint);
                    match *next {
                        Next::Retry { at_ms, round_base, taken_at_ms } => {
                            queued.push(Queued { alert, channel, endpoint, at_ms, round_base, taken_at_ms })
                        }
                        Next::Done => done.push((alert_id.as_str(), channel.as_str(), endpoint.as_str())),
                    }
                }
                Write::Deferred { alert, channel, endpoint, at_ms, round_base, taken_at_ms } => queued.push(Queued {
                    alert,
                    channel,
                    endpoint,
                    at_ms: *at_ms,
                    round_base: *round_base,
                    taken_at_ms: *taken_at_ms,
                }),
                Write::Suppressed { alert_id, channel, endpoint, at_ms, reason } => {
                    suppressed.push((alert_id, channel, endpoint, *at_ms, reason));
                    done.push((alert_id.as_str(), channel.as_str(), endpoint.as_str()));
                    undigested.push((alert_id.as_str(), channel.as_str(), endpoint.as_str()));
                }
                Write::Digested { alert, channel, endpoint, due_at_ms, sent } => {
                    digested.push((*alert, channel, endpoint, *due_at_ms, *sent));
                }
            }
        }
        for chunk in suppressed.chunks(ROWS) {
            let mut sql =
                Statement::new(self.backend, "INSERT INTO suppressed (alert_id, channel, endpoint, at_ms, reason) ");
            sql.values(chunk, |row, (alert_id, channel, endpoint, at_ms, reason)| {
                row.bind(*alert_id).bind(*channel).bind(*endpoint).bind(*at_ms).bind(*reason);
            });
            sql.push(" ON CONFLICT DO NOTHING");
            sql.query().execute(&mut *tx).await?;
        }
        unqueue(&mut tx, &done).await?;
        for chunk in undigested.chunks(ROWS) {
            let mut sql = Statement::new(
                self.backend,
                "DELETE FROM digest_members WHERE digest_id IS NULL AND (alert_id, channel, endpoint) IN (",
            );
            sql.values(chunk, |row, (alert_id, channel, endpoint)| {
                row.bind(*alert_id).bind(*channel).bind(*endpoint);
            });
            sql.push(")");
            sql.query().execute(&mut *tx).await?;
        }
        for chunk in digested.chunks(ROWS) {
            let texts = chunk.iter().map(|(alert, ..)| alert_text(alert)).collect::<Result<Vec<_>, _>>()?;
            let mut sql = Statement::new(
                self.backend,
                "INSERT INTO digest_members (alert_id, channel, endpoint, user_id, alert, alert_key, due_at_ms, sent) ",
            );
            sql.values(chunk.iter().zip(texts), |row, ((alert, channel, endpoint, due_at_ms, sent), text)| {
                row.bind(&alert.alert_id)
                    .bind(channel.as_str())
                    .bind(endpoint.as_str())
                    .bind(&alert.user_id)
                    .bind(text)
                    .bind(signal_key(alert))
                    .bind(*due_at_ms)
                    .bind(*sent);
            });
            sql.push(" ON CONFLICT DO NOTHING");
            sql.query().execute(&mut *tx).await?;
        }
        queue(&mut tx, &queued).await?;
        record_attempts(&mut tx, &tried).await?;
        let disabled = health(&mut tx, &tried, owners).await?;
        tx.commit().await?;
        Ok(disabled)
    }
}

/// Records tries; a try recorded already (the same number, after a crash) stays as it was.
pub(super) async fn insert_attempts(conn: &mut AnyConnection, attempts: &[&Attempt]) -> Result<(), NotifierError> {
    for chunk in attempts.chunks(ROWS) {
        let mut sql = Statement::new(
            Backend::of(conn),
            "INSERT INTO attempts (alert_id, channel, endpoint, attempt, at_ms, ok, latency_us, error, given_up) ",
        );
        sql.values(chunk, |row, a| {
            row.bind(&a.alert_id)
                .bind(&a.channel)
                .bind(&a.endpoint)
                .bind(a.attempt)
                .bind(a.at_ms)
                .bind(a.ok)
                .bind(a.latency_us)
                .bind(&a.error)
                .bind(a.given_up);
        });
        sql.push(" ON CONFLICT DO NOTHING");
        sql.query().execute(&mut *conn).await?;
    }
    Ok(())
}

/// The attempts, the deliveries that succeeded, when each endpoint last got a
/// message of each signal (for throttles), and the dead letters.
async fn record_attempts(conn: &mut AnyConnection, tried: &[(&Attempt, &Alert, &Health)]) -> Result<(), NotifierError> {
    insert_attempts(conn, &tried.iter().map(|(a, _, _)| *a).collect::<Vec<_>>()).await?;
    let ok: Vec<_> = tried.iter().filter(|(a, _, _)| a.ok).collect();
    let delivered: Vec<_> = ok
        .iter()
        .map(|(a, alert, _)| Delivered {
            alert_id: &a.alert_id,
            channel: &a.channel,
            endpoint: &a.endpoint,
            user_id: &alert.user_id,
            at_ms: a.at_ms,
            attempts: a.attempt,
            digest_id: None,
        })
        .collect();
    insert_deliveries(conn, &delivered).await?;
    // One row per key, the latest: an upsert may not meet its key twice in a statement.
    let mut last_sent: HashMap<(&str, &str, String), i64> = HashMap::new();
    for (a, alert, _) in &ok {
        let at = last_sent.entry((a.channel.as_str(), a.endpoint.as_str(), signal_key(alert))).or_insert(a.at_ms);
        *at = (*at).max(a.at_ms);
    }
    let last_sent: Vec<_> = last_sent.into_iter().collect();
    for chunk in last_sent.chunks(ROWS) {
        let mut sql =
            Statement::new(Backend::of(conn), "INSERT INTO throttles (channel, endpoint, alert_key, last_ms) ");
        sql.values(chunk, |row, ((channel, endpoint, key), at_ms)| {
            row.bind(*channel).bind(*endpoint).bind(key.as_str()).bind(*at_ms);
        });
        sql.push(" ON CONFLICT (channel, endpoint, alert_key) DO UPDATE SET last_ms = excluded.last_ms");
        sql.query().execute(&mut *conn).await?;
    }
    let dead: Vec<_> = tried
        .iter()
        .filter(|(a, _, _)| a.given_up)
        .map(|(a, alert, _)| Dead {
            alert,
            channel: &a.channel,
            endpoint: &a.endpoint,
            at_ms: a.at_ms,
            attempts: a.attempt,
            reason: a.error.as_deref().unwrap_or("given up"),
        })
        .collect();
    insert_dead_letters(conn, &dead).await
}

/// A delivery that succeeded, alone or in a digest.
pub(super) struct Delivered<'a> {
    pub alert_id: &'a str,
    pub channel: &'a str,
    pub endpoint: &'a str,
    pub user_id: &'a str,
    pub at_ms: i64,
    pub attempts: i64,
    pub digest_id: Option<&'a str>,
}

/// Records successes, once: a second success of a key (after a crash) changes nothing.
pub(super) async fn insert_deliveries(conn: &mut AnyConnection, rows: &[Delivered<'_>]) -> Result<(), NotifierError> {
    for chunk in rows.chunks(ROWS) {
        let mut sql = Statement::new(
            Backend::of(conn),
            "INSERT INTO deliveries (alert_id, channel, endpoint, user_id, delivered_at_ms, attempts, digest_id) ",
        );
        sql.values(chunk, |row, d| {
            row.bind(d.alert_id)
                .bind(d.channel)
                .bind(d.endpoint)
                .bind(d.user_id)
                .bind(d.at_ms)
                .bind(d.attempts)
                .bind(d.digest_id);
        });
        sql.push(" ON CONFLICT DO NOTHING");
        sql.query().execute(&mut *conn).await?;
    }
    Ok(())
}

/// A delivery given up, kept whole to be re-driven.
pub(super) struct Dead<'a> {
    pub alert: &'a Alert,
    pub channel: &'a str,
    pub endpoint: &'a str,
    pub at_ms: i64,
    pub attempts: i64,
    pub reason: &'a str,
}

/// Records dead letters; one given up again (after a re-drive) is updated.
pub(super) async fn insert_dead_letters(conn: &mut AnyConnection, rows: &[Dead<'_>]) -> Result<(), NotifierError> {
    for chunk in rows.chunks(ROWS) {
        let texts = chunk.iter().map(|d| alert_text(d.alert)).collect::<Result<Vec<_>, _>>()?;
        let mut sql = Statement::new(
            Backend::of(conn),
            "INSERT INTO dead_letters (alert_id, channel, endpoint, user_id, alert, failed_at_ms, attempts, reason) ",
        );
        sql.values(chunk.iter().zip(texts), |row, (d, text)| {
            row.bind(&d.alert.alert_id)
                .bind(d.channel)
                .bind(d.endpoint)
                .bind(&d.alert.user_id)
                .bind(text)
                .bind(d.at_ms)
                .bind(d.attempts)
                .bind(d.reason);
        });
        sql.push(
            " ON CONFLICT (alert_id, channel, endpoint) DO UPDATE SET \
             failed_at_ms = excluded.failed_at_ms, attempts = excluded.attempts, reason = excluded.reason",
        );
        sql.query().execute(&mut *conn).await?;
    }
    Ok(())
}

/// What a round's tries say of one endpoint, in the order they were made.
#[derive(Default)]
struct EndpointRound {
    /// A success came in the round: the streak before it ended.
    answered: bool,
    /// The first failure after the round's last success: the streak now.
    failing_since_ms: Option<i64>,
    /// The round's last failure, and how long a streak may last.
    last_failure: Option<(i64, i64)>,
    /// A try said the endpoint is gone (a 410): when, and why.
    gone: Option<(i64, String)>,
}

/// Each endpoint's failing streak and whether it is disabled, from the round's
/// tries; a handful of endpoints per round, so a statement each.
pub(super) async fn health(
    conn: &mut AnyConnection,
    tried: &[(&Attempt, &Alert, &Health)],
    owners: Owners<'_>,
) -> Result<Vec<Disabled>, NotifierError> {
    let mut order = Vec::new();
    let mut rounds: HashMap<(&str, &str), EndpointRound> = HashMap::new();
    for (attempt, _, health) in tried {
        if **health == Health::Unchanged {
            continue;
        }
        let key = (attempt.channel.as_str(), attempt.endpoint.as_str());
        let round = rounds.entry(key).or_insert_with(|| {
            order.push(key);
            EndpointRound::default()
        });
        match health {
            Health::Unchanged => {}
            Health::Ok => {
                round.answered = true;
                round.failing_since_ms = None;
                round.last_failure = None;
            }
            Health::Failing { disable_after_ms } => {
                round.failing_since_ms.get_or_insert(attempt.at_ms);
                round.last_failure = Some((attempt.at_ms, *disable_after_ms));
            }
            Health::Disable(reason) => {
                round.gone.get_or_insert_with(|| (attempt.at_ms, reason.clone()));
            }
        }
    }
    let mut disabled = Vec::new();
    for (channel, endpoint) in order {
        let round = &rounds[&(channel, endpoint)];
        if let Some((at_ms, reason)) = &round.gone {
            let changed = sqlx::query(
                "INSERT INTO endpoints (channel, endpoint, failing_since_ms, disabled_at_ms, reason) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (channel, endpoint) DO UPDATE SET \
                 disabled_at_ms = excluded.disabled_at_ms, reason = excluded.reason \
                 WHERE endpoints.disabled_at_ms IS NULL",
            )
            .bind(channel)
            .bind(endpoint)
            .bind(at_ms)
            .bind(at_ms)
            .bind(reason)
            .execute(&mut *conn)
            .await?
            .rows_affected();
            if changed > 0 {
                tell_owner(conn, owners, channel, endpoint, reason, *at_ms).await?;
                disabled.push((channel.to_string(), endpoint.to_string(), reason.clone()));
            }
            continue;
        }
        match (round.failing_since_ms, round.last_failure) {
            (Some(since_ms), Some((last_ms, disable_after_ms))) => {
                // A success earlier in the round ended the old streak: this one replaces it.
                sqlx::query(
                    "INSERT INTO endpoints (channel, endpoint, failing_since_ms) VALUES ($1, $2, $3) \
                     ON CONFLICT (channel, endpoint) DO UPDATE SET failing_since_ms = CASE WHEN $4 \
                     THEN excluded.failing_since_ms \
                     ELSE COALESCE(endpoints.failing_since_ms, excluded.failing_since_ms) END",
                )
                .bind(channel)
                .bind(endpoint)
                .bind(since_ms)
                .bind(round.answered)
                .execute(&mut *conn)
                .await?;
                let reason = format!("failing for over {} hours", disable_after_ms / 3_600_000);
                let changed = sqlx::query(
                    "UPDATE endpoints SET disabled_at_ms = $1, reason = $2 WHERE channel = $3 AND endpoint = $4 \
                     AND disabled_at_ms IS NULL AND failing_since_ms <= $5",
                )
                .bind(last_ms)
                .bind(&reason)
                .bind(channel)
                .bind(endpoint)
                .bind(last_ms.saturating_sub(disable_after_ms))
                .execute(&mut *conn)
                .await?
                .rows_affected();
                if changed > 0 {
                    tell_owner(conn, owners, channel, endpoint, &reason, last_ms).await?;
                    disabled.push((channel.to_string(), endpoint.to_string(), reason));
                }
            }
            _ if round.answered => {
                sqlx::query(
                    "UPDATE endpoints SET failing_since_ms = NULL \
                     WHERE channel = $1 AND endpoint = $2 AND failing_since_ms IS NOT NULL",
                )
                .bind(channel)
                .bind(endpoint)
                .execute(&mut *conn)
                .await?;
            }
            _ => {}
        }
    }
    Ok(disabled)
}

/// Puts a notice in the inbox of the endpoint's owner (if it has one) saying it was
/// disabled and why; its id is derived from the endpoint and the time, so writing
/// it again changes nothing.
async fn tell_owner(
    conn: &mut AnyConnection,
    owners: Owners<'_>,
    channel: &str,
    endpoint: &str,
    reason: &str,
    at_ms: i64,
) -> Result<(), NotifierError> {
    let Some((user, name)) = owners(channel, endpoint) else { return Ok(()) };
    let key = Sha256::new().chain_update(channel).chain_update([0]).chain_update(endpoint);
    let id = format!("ntc_{}", hex::encode(&key.chain_update(at_ms.to_be_bytes()).finalize()[..16]));
    let notice = Notice {
        alert_id: id.clone(),
        notice: "webhook_disabled".into(),
        user_id: user.clone(),
        ts: Timestamp::from_micros(at_ms.saturating_mul(1_000)),
        message: format!(
            "Your {name} was disabled: {reason}. Nothing more is sent to it; the alerts meant \
             for it are kept. Once the receiver is fixed, an operator enables it and sends them again."
        ),
    };
    let text = serde_json::to_string(&notice).map_err(|e| NotifierError::Corrupt(e.to_string()))?;
    sqlx::query("INSERT INTO inbox (user_id, alert_id, ts_us, alert) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING")
        .bind(&user)
        .bind(&id)
        .bind(notice.ts.micros())
        .bind(text)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

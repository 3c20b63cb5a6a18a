//! Digests in the ledger: the alerts held for one (`digest_members`), closing a
//! window that fell due (its id fixed from its members), the digests ready to send,
//! and what a try at sending one leaves.

use std::collections::BTreeMap;

use sqlx::Row;

use super::writes::{
    health, insert_attempts, insert_dead_letters, insert_deliveries, Dead, Delivered, Disabled, Owners,
};
use super::{flag, parse_alert, Attempt, Health, Ledger, Next};
use crate::digest::{digest_id, Digest};
use crate::error::NotifierError;

/// How long a digest taken for sending is not taken again, should its sender die
/// before recording the try.
pub const DIGEST_LEASE_MS: i64 = 60_000;

/// A closed digest waiting to be sent (or retried).
#[derive(Debug, Clone)]
pub struct ReadyDigest {
    pub channel: String,
    pub endpoint: String,
    pub digest: Digest,
    /// Tries so far.
    pub attempts: i64,
    /// Why its endpoint is disabled, if it is.
    pub disabled: Option<String>,
}

impl Ledger {
    /// Closes the windows that fell due by `now_ms`: each gets the id of its members
    /// and is ready to send at once. A window holding only the alert that opened it
    /// (sent on its own) is dropped. Returns how many digests were closed.
    pub async fn close_digests(&self, now_ms: i64) -> Result<usize, NotifierError> {
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(
            "SELECT channel, endpoint, due_at_ms, alert_id, CAST(sent AS INTEGER) AS sent FROM digest_members \
             WHERE digest_id IS NULL AND due_at_ms <= $1",
        )
        .bind(now_ms)
        .fetch_all(&mut *tx)
        .await?;
        let mut windows: BTreeMap<(String, String, i64), Vec<String>> = BTreeMap::new();
        for row in &rows {
            let key = (row.try_get("channel")?, row.try_get("endpoint")?, row.try_get("due_at_ms")?);
            let members = windows.entry(key).or_default();
            if !flag(row, "sent")? {
                members.push(row.try_get("alert_id")?);
            }
        }
        let mut closed = 0;
        for ((channel, endpoint, due_at_ms), members) in &windows {
            let id = digest_id(channel, endpoint, members.iter().map(String::as_str));
            sqlx::query(
                "DELETE FROM digest_members WHERE channel = $1 AND endpoint = $2 AND due_at_ms = $3 \
                 AND digest_id IS NULL AND sent",
            )
            .bind(channel)
            .bind(endpoint)
            .bind(due_at_ms)
            .execute(&mut *tx)
            .await?;
            if members.is_empty() {
                continue;
            }
            sqlx::query(
                "UPDATE digest_members SET digest_id = $1, next_at_ms = $2 \
                 WHERE channel = $3 AND endpoint = $4 AND due_at_ms = $5 AND digest_id IS NULL",
            )
            .bind(&id)
            .bind(due_at_ms)
            .bind(channel)
            .bind(endpoint)
            .bind(due_at_ms)
            .execute(&mut *tx)
            .await?;
            closed += 1;
        }
        tx.commit().await?;
        Ok(closed)
    }

    /// Takes the closed digests due by `now_ms`, soonest first, each with its alerts
    /// oldest first. Taking one moves its next try [`DIGEST_LEASE_MS`] on in the same
    /// statement, so two notifier processes do not both send it; the try's record
    /// sets what really comes next.
    pub async fn ready_digests(&self, now_ms: i64, limit: i64) -> Result<Vec<ReadyDigest>, NotifierError> {
        let mut ids: Vec<String> = sqlx::query_scalar(
            "UPDATE digest_members SET next_at_ms = $1 WHERE digest_id IN (\
               SELECT digest_id FROM digest_members WHERE digest_id IS NOT NULL AND next_at_ms <= $2 \
               GROUP BY digest_id ORDER BY MIN(next_at_ms), digest_id LIMIT $3) \
             RETURNING digest_id",
        )
        .bind(now_ms + DIGEST_LEASE_MS)
        .bind(now_ms)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        ids.sort_unstable();
        ids.dedup();
        let mut ready = Vec::with_capacity(ids.len());
        for id in ids {
            let head = sqlx::query(
                "SELECT channel, endpoint, user_id, \
                 (SELECT COUNT(*) FROM attempts a WHERE a.alert_id = m.digest_id AND a.channel = m.channel \
                   AND a.endpoint = m.endpoint) AS attempts, \
                 (SELECT COALESCE(e.reason, '') FROM endpoints e WHERE e.channel = m.channel \
                   AND e.endpoint = m.endpoint AND e.disabled_at_ms IS NOT NULL) AS disabled \
                 FROM digest_members m WHERE digest_id = $1 LIMIT 1",
            )
            .bind(&id)
            .fetch_one(&self.pool)
            .await?;
            let rows = sqlx::query("SELECT alert FROM digest_members WHERE digest_id = $1")
                .bind(&id)
                .fetch_all(&self.pool)
                .await?;
            let mut alerts =
                rows.into_iter().map(|r| parse_alert(r.try_get("alert")?)).collect::<Result<Vec<_>, _>>()?;
            alerts.sort_by(|a, b| (a.ts, &a.alert_id).cmp(&(b.ts, &b.alert_id)));
            ready.push(ReadyDigest {
                channel: head.try_get("channel")?,
                endpoint: head.try_get("endpoint")?,
                digest: Digest::new(id, head.try_get("user_id")?, alerts),
                attempts: head.try_get("attempts")?,
                disabled: head.try_get("disabled")?,
            });
        }
        Ok(ready)
    }

    /// Moves a digest's next try to `at_ms` (its user's quiet hours).
    pub async fn postpone_digest(&self, digest_id: &str, at_ms: i64) -> Result<(), NotifierError> {
        sqlx::query("UPDATE digest_members SET next_at_ms = $1 WHERE digest_id = $2")
            .bind(at_ms)
            .bind(digest_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records a try at sending a digest (the attempt keyed by the digest's id), in
    /// one transaction with what follows: delivered, the digest and each member
    /// count as delivered (once) and leave the queue; [`Next::Retry`] moves its next
    /// try; given up, each member becomes a dead letter of its own (re-driven, it
    /// goes alone). Returns the endpoints the try disabled.
    pub async fn record_digest(
        &self,
        ready: &ReadyDigest,
        attempt: &Attempt,
        next: Next,
        health_now: Health,
        owners: Owners<'_>,
    ) -> Result<Vec<Disabled>, NotifierError> {
        let digest = &ready.digest;
        let mut tx = self.pool.begin().await?;
        insert_attempts(&mut tx, &[attempt]).await?;
        if attempt.ok {
            let ids =
                std::iter::once(digest.digest_id.as_str()).chain(digest.alerts.iter().map(|a| a.alert_id.as_str()));
            let delivered: Vec<_> = ids
                .map(|alert_id| Delivered {
                    alert_id,
                    channel: &ready.channel,
                    endpoint: &ready.endpoint,
                    user_id: &digest.user_id,
                    at_ms: attempt.at_ms,
                    attempts: attempt.attempt,
                    digest_id: Some(&digest.digest_id),
                })
                .collect();
            insert_deliveries(&mut tx, &delivered).await?;
        } else if attempt.given_up {
            let reason = format!("digest {} given up: {}", digest.digest_id, attempt.error.as_deref().unwrap_or(""));
            let dead: Vec<_> = digest
                .alerts
                .iter()
                .map(|alert| Dead {
                    alert,
                    channel: &ready.channel,
                    endpoint: &ready.endpoint,
                    at_ms: attempt.at_ms,
                    attempts: attempt.attempt,
                    reason: &reason,
                })
                .collect();
            insert_dead_letters(&mut tx, &dead).await?;
        }
        match next {
            Next::Retry { at_ms, .. } => {
                sqlx::query("UPDATE digest_members SET next_at_ms = $1 WHERE digest_id = $2")
                    .bind(at_ms)
                    .bind(&digest.digest_id)
                    .execute(&mut *tx)
                    .await?;
            }
            Next::Done => {
                sqlx::query("DELETE FROM digest_members WHERE digest_id = $1")
                    .bind(&digest.digest_id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        let first = digest.alerts.first().ok_or_else(|| NotifierError::Corrupt("a digest without alerts".into()))?;
        let disabled = health(&mut tx, &[(attempt, first, &health_now)], owners).await?;
        tx.commit().await?;
        Ok(disabled)
    }
}

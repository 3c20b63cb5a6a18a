//! Dead letters in the ledger: deliveries given up, listed by filter and re-driven
//! into the retry queue.

use riskstream_schemas::Alert;
use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::{parse_alert, queue, Ledger, Queued};
use crate::error::NotifierError;

/// A delivery given up, kept for an operator to re-drive.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeadLetter {
    pub alert_id: String,
    pub channel: String,
    pub endpoint: String,
    pub user_id: String,
    pub failed_at_ms: i64,
    pub attempts: i64,
    pub reason: String,
    pub alert: Alert,
}

/// Which dead letters: every field narrows; none matches them all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterFilter {
    pub alert_id: Option<String>,
    pub channel: Option<String>,
    pub endpoint: Option<String>,
    /// Failed at or after (milliseconds since the epoch).
    pub from_ms: Option<i64>,
    /// Failed before (milliseconds since the epoch).
    pub to_ms: Option<i64>,
    pub limit: Option<i64>,
}

/// The filter's conditions, `$1` to `$5` as [`DeadLetterFilter::bind`] binds them
/// (a macro, so the queries stay literals).
macro_rules! dead_letter_where {
    () => {
        "($1 IS NULL OR alert_id = $1) AND ($2 IS NULL OR channel = $2) AND ($3 IS NULL OR endpoint = $3) \
         AND ($4 IS NULL OR failed_at_ms >= $4) AND ($5 IS NULL OR failed_at_ms < $5)"
    };
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

impl DeadLetterFilter {
    fn bind<'q>(&'q self, query: AnyQuery<'q>) -> AnyQuery<'q> {
        query.bind(&self.alert_id).bind(&self.channel).bind(&self.endpoint).bind(self.from_ms).bind(self.to_ms)
    }
}

impl Ledger {
    /// Dead letters matching `filter`, oldest failure first.
    pub async fn dead_letters(&self, filter: &DeadLetterFilter) -> Result<Vec<DeadLetter>, NotifierError> {
        let sql = concat!(
            "SELECT alert_id, channel, endpoint, user_id, alert, failed_at_ms, attempts, reason FROM dead_letters \
             WHERE ",
            dead_letter_where!(),
            " ORDER BY failed_at_ms, alert_id, channel, endpoint LIMIT $6"
        );
        let rows = filter.bind(sqlx::query(sql)).bind(filter.limit.unwrap_or(i64::MAX)).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok(DeadLetter {
                    alert_id: r.try_get("alert_id")?,
                    channel: r.try_get("channel")?,
                    endpoint: r.try_get("endpoint")?,
                    user_id: r.try_get("user_id")?,
                    failed_at_ms: r.try_get("failed_at_ms")?,
                    attempts: r.try_get("attempts")?,
                    reason: r.try_get("reason")?,
                    alert: parse_alert(r.try_get("alert")?)?,
                })
            })
            .collect()
    }

    /// Moves the dead letters matching `filter` back to the retry queue, due at
    /// `now_ms`, each with the whole backoff schedule ahead of it. Returns how many.
    pub async fn redrive(&self, filter: &DeadLetterFilter, now_ms: i64) -> Result<u64, NotifierError> {
        let mut tx = self.pool.begin().await?;
        let chosen = concat!(
            "SELECT alert_id, channel, endpoint, alert, attempts FROM dead_letters WHERE ",
            dead_letter_where!(),
            " ORDER BY failed_at_ms, alert_id, channel, endpoint LIMIT $6"
        );
        let keys = filter.bind(sqlx::query(chosen)).bind(filter.limit.unwrap_or(i64::MAX)).fetch_all(&mut *tx).await?;
        for key in &keys {
            let (channel, endpoint): (String, String) = (key.try_get("channel")?, key.try_get("endpoint")?);
            let alert = parse_alert(key.try_get("alert")?)?;
            // The attempts so far become the new round's base: the whole schedule again.
            let row = Queued {
                alert: &alert,
                channel: &channel,
                endpoint: &endpoint,
                at_ms: now_ms,
                round_base: key.try_get("attempts")?,
                taken_at_ms: now_ms,
            };
            queue(&mut tx, &[row]).await?;
            sqlx::query("DELETE FROM dead_letters WHERE alert_id = $1 AND channel = $2 AND endpoint = $3")
                .bind(&alert.alert_id)
                .bind(&channel)
                .bind(&endpoint)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(keys.len() as u64)
    }
}

//! Delivery: every alert on every channel that takes it, skipping what the ledger
//! says is settled, recording every attempt. A failure that may pass is scheduled
//! for another try (exponential backoff with jitter, [`RETRY_AFTER_SECS`]) instead
//! of holding up the alerts behind it; [`Notifier::retry_due`] makes the tries.

use std::sync::Arc;
use std::time::Instant;

use riskstream_schemas::Alert;
use sha2::{Digest, Sha256};

use crate::channel::{Channel, ChannelError};
use crate::error::NotifierError;
use crate::ledger::{Attempt, Ledger};

/// Seconds before each retry, after attempts 1, 2, ...: about four hours in all,
/// then the delivery is given up (a dead letter). Svix spaces its eight tries over
/// 28 hours (REFERENCES.md); an alert is stale sooner than that.
pub const RETRY_AFTER_SECS: [i64; 7] = [5, 30, 120, 600, 1_800, 3_600, 7_200];

/// Wall-clock milliseconds, injectable so tests drive retries without sleeping.
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> i64;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        crate::now_ms()
    }
}

/// What one `notify` or `retry_due` call did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct NotifyReport {
    pub delivered: usize,
    /// Already settled in the ledger (a re-sent alert after a restart), or waiting
    /// for a retry (the retries own it).
    pub already: usize,
    /// Given up: a permanent failure, or the last retry failed.
    pub failed: usize,
    /// Failed in a way that may pass: scheduled for another try.
    pub retrying: usize,
}

pub struct Notifier {
    ledger: Ledger,
    channels: Vec<Arc<dyn Channel>>,
    clock: Arc<dyn Clock>,
}

impl Notifier {
    pub fn new(ledger: Ledger, channels: Vec<Arc<dyn Channel>>) -> Self {
        Self::with_clock(ledger, channels, Arc::new(SystemClock))
    }

    pub fn with_clock(ledger: Ledger, channels: Vec<Arc<dyn Channel>>, clock: Arc<dyn Clock>) -> Self {
        Notifier { ledger, channels, clock }
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Delivers `alerts`. Only a ledger that cannot be written fails the call (the
    /// caller keeps the alerts and sends them again; what is settled is skipped).
    pub async fn notify(&self, alerts: &[Alert]) -> Result<NotifyReport, NotifierError> {
        let mut report = NotifyReport::default();
        for alert in alerts {
            for channel in &self.channels {
                for endpoint in channel.endpoints(alert) {
                    let name = channel.name();
                    if self.ledger.settled_or_pending(&alert.alert_id, name, &endpoint).await? {
                        report.already += 1;
                        continue;
                    }
                    self.deliver_one(channel.as_ref(), alert, &endpoint, &mut report).await?;
                }
            }
        }
        Ok(report)
    }

    /// Makes the retries that are due.
    pub async fn retry_due(&self) -> Result<NotifyReport, NotifierError> {
        let mut report = NotifyReport::default();
        for (channel_name, endpoint, alert) in self.ledger.due(self.clock.now_ms(), 500).await? {
            let Some(channel) = self.channels.iter().find(|c| c.name() == channel_name) else {
                // The channel is no longer configured: nothing can deliver it.
                let reason = format!("channel `{channel_name}` is not configured any more");
                self.settle_given_up(&channel_name, &endpoint, &alert, reason).await?;
                report.failed += 1;
                continue;
            };
            self.deliver_one(channel.as_ref(), &alert, &endpoint, &mut report).await?;
        }
        Ok(report)
    }

    async fn deliver_one(
        &self,
        channel: &dyn Channel,
        alert: &Alert,
        endpoint: &str,
        report: &mut NotifyReport,
    ) -> Result<(), NotifierError> {
        let name = channel.name();
        let number = self.ledger.attempt_count(&alert.alert_id, name, endpoint).await? + 1;
        let started = Instant::now();
        let outcome = channel.deliver(alert, endpoint).await;
        let last_try = number > RETRY_AFTER_SECS.len() as i64;
        let error = match &outcome {
            Ok(()) => None,
            Err(ChannelError::Retry(reason)) if last_try => Some(format!("gave up after {number} attempts: {reason}")),
            Err(e) => Some(e.to_string()),
        };
        let given_up = matches!(outcome, Err(ChannelError::Permanent(_))) || (outcome.is_err() && last_try);
        let attempt = Attempt {
            ok: outcome.is_ok(),
            latency_us: i64::try_from(started.elapsed().as_micros()).unwrap_or(i64::MAX),
            error,
            given_up,
            ..self.attempt(alert, name, endpoint, number)
        };
        let retry_at = match (&outcome, given_up) {
            (Err(_), false) => Some(attempt.at_ms + backoff_ms(&alert.alert_id, endpoint, number)),
            _ => None,
        };
        self.ledger.record(&attempt, &alert.user_id, alert, retry_at).await?;
        match (outcome, retry_at) {
            (Ok(()), _) => report.delivered += 1,
            (Err(reason), Some(at)) => {
                tracing::info!(alert_id = %alert.alert_id, channel = name, endpoint, attempt = number, retry_at_ms = at, %reason, "delivery failed, will retry");
                report.retrying += 1;
            }
            (Err(reason), None) => {
                tracing::warn!(alert_id = %alert.alert_id, channel = name, endpoint, attempt = number, %reason, "delivery given up");
                report.failed += 1;
            }
        }
        Ok(())
    }

    async fn settle_given_up(
        &self,
        channel: &str,
        endpoint: &str,
        alert: &Alert,
        reason: String,
    ) -> Result<(), NotifierError> {
        let number = self.ledger.attempt_count(&alert.alert_id, channel, endpoint).await? + 1;
        let attempt = Attempt { error: Some(reason), given_up: true, ..self.attempt(alert, channel, endpoint, number) };
        self.ledger.record(&attempt, &alert.user_id, alert, None).await
    }

    /// Attempt `number` of a delivery, stamped now; a failure until said otherwise.
    fn attempt(&self, alert: &Alert, channel: &str, endpoint: &str, number: i64) -> Attempt {
        Attempt {
            alert_id: alert.alert_id.clone(),
            channel: channel.to_string(),
            endpoint: endpoint.to_string(),
            attempt: number,
            at_ms: self.clock.now_ms(),
            ok: false,
            latency_us: 0,
            error: None,
            given_up: false,
        }
    }
}

/// The wait after attempt `number`, from [`RETRY_AFTER_SECS`], spread by +-20% so
/// retries to one endpoint after an outage do not all come at once. The jitter is
/// derived from the delivery's key, so a replayed test sees the same schedule.
fn backoff_ms(alert_id: &str, endpoint: &str, number: i64) -> i64 {
    let index = usize::try_from(number - 1).unwrap_or(0).min(RETRY_AFTER_SECS.len() - 1);
    let base = RETRY_AFTER_SECS[index] * 1_000;
    let digest =
        Sha256::new().chain_update(alert_id).chain_update(endpoint).chain_update(number.to_be_bytes()).finalize();
    let unit = f64::from(u16::from_be_bytes([digest[0], digest[1]])) / f64::from(u16::MAX);
    base + (base as f64 * 0.4 * (unit - 0.5)) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_within_twenty_percent() {
        for (n, secs) in RETRY_AFTER_SECS.iter().enumerate() {
            let waits: Vec<i64> = (0..50).map(|k| backoff_ms(&format!("a{k}"), "e", n as i64 + 1)).collect();
            let (lo, hi) = (secs * 800, secs * 1_200);
            assert!(waits.iter().all(|w| (lo..=hi).contains(w)), "attempt {}: {waits:?}", n + 1);
            assert!(waits.iter().any(|w| *w != waits[0]), "jitter spreads the retries");
        }
        assert_eq!(backoff_ms("a", "e", 3), backoff_ms("a", "e", 3), "the same key, the same wait");
    }
}

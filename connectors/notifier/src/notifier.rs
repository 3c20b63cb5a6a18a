//! Delivery: every alert on every channel that takes it, skipping what the ledger
//! says was delivered, recording every attempt.

use std::sync::Arc;
use std::time::Instant;

use riskstream_schemas::Alert;

use crate::channel::{Channel, ChannelError};
use crate::error::NotifierError;
use crate::ledger::{Attempt, Ledger};

/// What one `notify` call did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct NotifyReport {
    pub delivered: usize,
    /// Already settled in the ledger (a re-sent alert after a restart).
    pub already: usize,
    /// Given up (a permanent failure), recorded as a failed attempt.
    pub failed: usize,
}

pub struct Notifier {
    ledger: Ledger,
    channels: Vec<Arc<dyn Channel>>,
}

impl Notifier {
    pub fn new(ledger: Ledger, channels: Vec<Arc<dyn Channel>>) -> Self {
        Notifier { ledger, channels }
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Delivers `alerts` in order. Stops at the first failure that may pass later
    /// (returned as retryable), so the caller keeps those alerts and sends them again:
    /// what was delivered before it is in the ledger and is not delivered twice.
    pub async fn notify(&self, alerts: &[Alert]) -> Result<NotifyReport, NotifierError> {
        let mut report = NotifyReport::default();
        for alert in alerts {
            for channel in &self.channels {
                for endpoint in channel.endpoints(alert) {
                    self.deliver_one(channel.as_ref(), alert, &endpoint, &mut report).await?;
                }
            }
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
        if self.ledger.settled(&alert.alert_id, name, endpoint).await? {
            report.already += 1;
            return Ok(());
        }
        let number = self.ledger.attempt_count(&alert.alert_id, name, endpoint).await? + 1;
        let started = Instant::now();
        let outcome = channel.deliver(alert, endpoint).await;
        let attempt = Attempt {
            alert_id: alert.alert_id.clone(),
            channel: name.to_string(),
            endpoint: endpoint.to_string(),
            attempt: number,
            at_ms: crate::now_ms(),
            ok: outcome.is_ok(),
            latency_us: i64::try_from(started.elapsed().as_micros()).unwrap_or(i64::MAX),
            error: outcome.as_ref().err().map(ToString::to_string),
            given_up: matches!(outcome, Err(ChannelError::Permanent(_))),
        };
        self.ledger.record(&attempt, &alert.user_id).await?;
        match outcome {
            Ok(()) => report.delivered += 1,
            Err(ChannelError::Permanent(reason)) => {
                tracing::warn!(alert_id = %alert.alert_id, channel = name, endpoint, %reason, "delivery failed for good");
                report.failed += 1;
            }
            Err(ChannelError::Retry(reason)) => {
                return Err(NotifierError::Retry { channel: name.to_string(), reason });
            }
        }
        Ok(())
    }
}

//! Alert delivery: alerts wait in the outbox (committed with their batch) until
//! every sink has taken them, then leave it. A crash between delivery and the
//! outbox delete delivers again (at-least-once); `alert_id` lets consumers dedupe.

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

use riskstream_connectors::AlertSink;
use riskstream_schemas::Alert;

use crate::metrics::Metrics;
use crate::store::{ProjectionStore, StoreError};

pub struct OutboxDelivery<S> {
    store: Arc<S>,
    sinks: Vec<Box<dyn AlertSink>>,
    metrics: Arc<Metrics>,
}

/// Entries taken from the outbox per delivery round.
const ROUND: usize = 1_000;

impl<S: ProjectionStore> OutboxDelivery<S> {
    pub fn new(store: Arc<S>, sinks: Vec<Box<dyn AlertSink>>, metrics: Arc<Metrics>) -> Self {
        OutboxDelivery { store, sinks, metrics }
    }

    /// Delivers one round; returns how many alerts left the outbox. A sink error
    /// leaves the round in the outbox for the next try.
    pub fn deliver_once(&mut self) -> Result<usize, StoreError> {
        let entries = self.store.outbox(ROUND)?;
        if entries.is_empty() {
            return Ok(0);
        }
        let alerts: Vec<Alert> = entries.iter().map(|e| e.alert.clone()).collect();
        for sink in &mut self.sinks {
            if let Err(e) = sink.deliver(&alerts) {
                tracing::warn!(sink = sink.name(), error = %e, pending = alerts.len(), "alert delivery failed; will retry");
                return Ok(0);
            }
        }
        let numbers: Vec<u64> = entries.iter().map(|e| e.number).collect();
        self.store.ack_outbox(&numbers)?;
        self.metrics.outbox_depth.sub(numbers.len() as i64);
        Ok(numbers.len())
    }

    /// Runs until `wake` disconnects, delivering after each wake-up and on a timer
    /// (so a failed round is retried), then drains what is left.
    pub fn run(mut self, wake: Receiver<()>) {
        let mut backoff = Duration::from_millis(50);
        loop {
            let stop = matches!(wake.recv_timeout(backoff), Err(RecvTimeoutError::Disconnected));
            loop {
                match self.deliver_once() {
                    Ok(0) => break,
                    Ok(_) => backoff = Duration::from_millis(50),
                    Err(e) => {
                        tracing::error!(error = %e, "cannot read the outbox");
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                        break;
                    }
                }
            }
            if stop {
                return;
            }
        }
    }
}

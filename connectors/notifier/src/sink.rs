//! The notifier as one of the engine's alert sinks (embedded mode): the outbox
//! thread hands it each round of alerts and acknowledges them only when it returns
//! `Ok`, that is once the ledger holds their deliveries.

use std::sync::Arc;

use riskstream_connectors::{AlertSink, SinkError};
use riskstream_schemas::Alert;

use crate::notifier::Notifier;

pub struct NotifierSink {
    notifier: Arc<Notifier>,
    /// The outbox thread is not async: the sink drives its deliveries on a runtime
    /// of its own.
    runtime: tokio::runtime::Runtime,
}

impl NotifierSink {
    pub fn new(notifier: Arc<Notifier>, runtime: tokio::runtime::Runtime) -> Self {
        NotifierSink { notifier, runtime }
    }
}

impl AlertSink for NotifierSink {
    fn name(&self) -> &str {
        "notifier"
    }

    fn deliver(&mut self, alerts: &[Alert]) -> Result<(), SinkError> {
        // Nothing is acknowledged on any error: the outbox keeps the alerts and tries
        // again; what was delivered before the error is in the ledger and is skipped.
        self.runtime.block_on(self.notifier.notify(alerts)).map(drop).map_err(|e| {
            let hint = if e.is_retryable() { "" } else { "; an operator must look" };
            SinkError::Retry { sink: "notifier".into(), reason: format!("{e}{hint}") }
        })
    }
}

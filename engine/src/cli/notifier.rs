//! The notifier beside the engine in embedded mode (`run`, `demo`): one of the
//! outbox's sinks, and its routes (the in-app inbox) on the engine's API.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use riskstream_connectors::AlertSink;
use riskstream_engine::EngineConfig;
use riskstream_notifier::{InAppChannel, Inbox, Ledger, Notifier, NotifierSink, WebhookChannel};

/// The notifier's sink for the outbox. It drives its deliveries on a runtime of its
/// own (the outbox thread is not async), with its own connections to the ledger.
pub fn sink(cfg: &EngineConfig) -> anyhow::Result<Box<dyn AlertSink>> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let path = cfg.notifier_ledger();
    let ledger = runtime
        .block_on(Ledger::open(&path))
        .with_context(|| format!("cannot open the notifier ledger {}", path.display()))?;
    let mut channels: Vec<Arc<dyn riskstream_notifier::Channel>> = vec![Arc::new(InAppChannel::new(ledger.clone()))];
    if !cfg.notifier.webhooks.is_empty() {
        let webhooks = WebhookChannel::new(cfg.notifier.webhooks.clone(), Duration::from_secs(10))
            .map_err(|e| anyhow::anyhow!("[notifier] {e}"))?;
        channels.push(Arc::new(webhooks));
    }
    let notifier = Arc::new(Notifier::new(ledger, channels));
    Ok(Box::new(NotifierSink::new(notifier, runtime)))
}

/// The inbox routes, on connections opened in the API's runtime `rt`.
pub fn routes(cfg: &EngineConfig, rt: &tokio::runtime::Runtime) -> anyhow::Result<axum::Router> {
    let path = cfg.notifier_ledger();
    let ledger = rt
        .block_on(Ledger::open(&path))
        .with_context(|| format!("cannot open the notifier ledger {}", path.display()))?;
    Ok(riskstream_notifier::router(Inbox::new(ledger)))
}

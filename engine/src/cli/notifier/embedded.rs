//! The notifier beside the engine in embedded mode (`run`, `demo`): one of the
//! outbox's sinks, a thread making the retries that fall due, and its routes (the
//! in-app inbox) on the engine's API. Each part has its own connections to the
//! ledger, on its own runtime.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use riskstream_connectors::AlertSink;
use riskstream_engine::api::AppState;
use riskstream_engine::EngineConfig;
use riskstream_notifier::{
    Channel, EmailChannel, InAppChannel, Inbox, Ledger, Notifier, NotifierKey, NotifierMetrics, NotifierSink,
    PreferenceStore, SlackChannel, SmsChannel, WebhookChannel,
};

pub(super) fn open(cfg: &EngineConfig, runtime: &tokio::runtime::Runtime) -> anyhow::Result<Ledger> {
    let at = cfg.notifier_ledger();
    runtime.block_on(super::open_ledger(&at)).with_context(|| format!("cannot open the notifier ledger {at}"))
}

pub(super) fn preferences(cfg: &EngineConfig, ledger: Ledger) -> anyhow::Result<PreferenceStore> {
    let path = cfg.notifier_key();
    let key = NotifierKey::load_or_create(&path)
        .with_context(|| format!("cannot read or create the notifier key {}", path.display()))?;
    Ok(PreferenceStore::new(ledger, key))
}

pub(super) fn notifier(cfg: &EngineConfig, ledger: Ledger, metrics: &NotifierMetrics) -> anyhow::Result<Notifier> {
    let prefs = preferences(cfg, ledger.clone())?;
    let webhooks = WebhookChannel::new(cfg.notifier.webhooks.clone(), Duration::from_secs(10))
        .map_err(|e| anyhow::anyhow!("[notifier] {e}"))?
        .with_user_endpoints(cfg.notifier.user_webhooks_allow_private);
    let mut channels: Vec<Arc<dyn Channel>> = vec![Arc::new(InAppChannel::new(ledger.clone())), Arc::new(webhooks)];
    if let Some(email) = &cfg.notifier.email {
        let email = EmailChannel::new(email, Duration::from_secs(30)).map_err(|e| anyhow::anyhow!("[notifier] {e}"))?;
        channels.push(Arc::new(email));
    }
    // Users who set a Slack URL get their alerts there; the links point at this API.
    let link_base = cfg.advertised_url.clone().unwrap_or_else(|| format!("http://{}", cfg.listen));
    let slack = SlackChannel::new(&link_base, cfg.notifier.user_webhooks_allow_private, Duration::from_secs(10))
        .map_err(|e| anyhow::anyhow!("[notifier] {e}"))?;
    channels.push(Arc::new(slack));
    if let Some(sms) = &cfg.notifier.sms {
        let sms = SmsChannel::new(sms, Duration::from_secs(10)).map_err(|e| anyhow::anyhow!("[notifier] {e}"))?;
        channels.push(Arc::new(sms));
    }
    let disable_after_ms = i64::from(cfg.notifier.disable_endpoint_after_hours) * 3_600_000;
    Ok(Notifier::new(ledger, channels)
        .disable_after_ms(disable_after_ms)
        .concurrency(cfg.notifier.concurrency)
        .with_preferences(prefs)
        .with_metrics(metrics.clone()))
}

/// The notifier's routes for the API: the inbox, and the operators' routes that
/// go behind the admin token.
/// None when the notifier is off.
#[derive(Default)]
pub struct Routes(Option<(axum::Router, axum::Router, PreferenceStore)>);

impl Routes {
    /// Every route, the operators' ones checking the admin token of `app`; and
    /// erasing a user in `app` erases the user's preferences too.
    pub fn mount<S: Send + Sync + 'static>(self, app: Arc<AppState<S>>) -> axum::Router {
        let Some((public, admin, prefs)) = self.0 else {
            return axum::Router::new();
        };
        let ledger = prefs.ledger().clone();
        app.on_ready(
            "notifier",
            Arc::new(move || {
                let ledger = ledger.clone();
                Box::pin(async move {
                    let health = ledger.health().await.map_err(|e| format!("the ledger does not answer: {e}"))?;
                    serde_json::to_value(health).map_err(|e| e.to_string())
                })
            }),
        );
        app.on_erase(Arc::new(move |user: String| {
            let prefs = prefs.clone();
            Box::pin(async move {
                prefs.erase(&user).await.map(drop).map_err(|e| format!("the notifier's preferences were not: {e}"))
            })
        }));
        public.merge(riskstream_engine::api::admin_only(app, admin))
    }
}

/// Starts the notifier when the config enables it: its sink joins `sinks`, the
/// retry thread starts, and its routes are returned for the API served on `rt`
/// (no routes when it is off).
pub fn start(
    cfg: &EngineConfig,
    rt: &tokio::runtime::Runtime,
    sinks: &mut Vec<Box<dyn AlertSink>>,
    registry: &prometheus::Registry,
) -> anyhow::Result<Routes> {
    if !cfg.notifier.enabled {
        return Ok(Routes::default());
    }
    let metrics = NotifierMetrics::register(registry).context("cannot register the notifier's metrics")?;
    sinks.push(sink(cfg, &metrics)?);
    let ledger = open(cfg, rt)?;
    let prefs = preferences(cfg, ledger.clone())?;
    let admin = riskstream_notifier::admin_router(ledger.clone(), prefs.clone());
    Ok(Routes(Some((riskstream_notifier::router(Inbox::new(ledger)), admin, prefs))))
}

/// The notifier's sink for the outbox (the outbox thread is not async: the sink
/// drives its deliveries on a runtime of its own), and the retry thread.
fn sink(cfg: &EngineConfig, metrics: &NotifierMetrics) -> anyhow::Result<Box<dyn AlertSink>> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let ledger = open(cfg, &runtime)?;
    let sink = NotifierSink::new(Arc::new(notifier(cfg, ledger, metrics)?), runtime);
    spawn_retries(cfg, metrics)?;
    Ok(Box::new(sink))
}

/// Makes the retries and sends the digests that fall due, every second, for the
/// life of the process.
pub(super) fn spawn_retries(cfg: &EngineConfig, metrics: &NotifierMetrics) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let retries = notifier(cfg, open(cfg, &runtime)?, metrics)?;
    std::thread::Builder::new().name("notifier-retry".into()).spawn(move || loop {
        std::thread::sleep(Duration::from_secs(1));
        if let Err(e) = runtime.block_on(retries.retry_due()) {
            tracing::warn!(error = %e, "notifier retries failed; trying again in a second");
        }
        if let Err(e) = runtime.block_on(retries.send_digests()) {
            tracing::warn!(error = %e, "notifier digests failed; trying again in a second");
        }
    })?;
    Ok(())
}

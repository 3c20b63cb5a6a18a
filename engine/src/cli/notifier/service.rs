//! `riskstream notifier run`: the notifier as a service of its own, for
//! distributed mode. It reads the Kafka alerts topic in a consumer group of its
//! own (any number of notifiers share the partitions), delivers each batch, and
//! commits the batch's offsets only once the ledger holds it; the ledger (on
//! PostgreSQL when several notifiers run) keeps one success per delivery, so a
//! batch read twice after a crash or a rebalance is not delivered twice. It serves
//! the notifier's routes (inboxes, preferences and dead letters behind the admin
//! token), `/metrics`, `/healthz` and `/readyz`.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use axum::routing::get;
use clap::Args;
use riskstream_connectors::kafka::{AlertConsumer, ValueCodec};
use riskstream_engine::config::AdminToken;
use riskstream_engine::EngineConfig;
use riskstream_notifier::{Inbox, Ledger, Notifier, NotifierMetrics};

use super::embedded;

/// Alerts taken from the topic per round: the notifier's own round size.
const BATCH: usize = 256;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Kafka brokers, over `[kafka] brokers` of --config.
    #[arg(long, env = "RISKSTREAM_KAFKA_BROKERS")]
    pub brokers: Option<String>,
    /// The notifiers' consumer group. Default: `<[kafka] group_id>-notifier`.
    #[arg(long)]
    pub group: Option<String>,
    /// Address of the notifier's API (inboxes, preferences, dead letters, /metrics,
    /// /readyz); port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:8081")]
    pub listen: SocketAddr,
    /// Bearer token of the admin routes (preferences, dead letters, endpoints);
    /// prefer the environment variable, a flag shows in the process list.
    #[arg(long, env = "RISKSTREAM_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<AdminToken>,
}

pub fn serve(mut cfg: EngineConfig, args: ServeArgs) -> anyhow::Result<ExitCode> {
    if let Some(brokers) = &args.brokers {
        cfg.kafka.get_or_insert_with(Default::default).brokers = brokers.clone();
    }
    if let Some(token) = &args.admin_token {
        cfg.api.admin_token = Some(token.clone());
    }
    cfg.validate()?;
    let Some(kafka) = cfg.kafka.clone() else {
        anyhow::bail!(
            "`riskstream notifier run` reads the Kafka alerts topic: give --brokers or a [kafka] section in --config \
             (in embedded mode `riskstream run` starts the notifier itself)"
        );
    };
    let group = args.group.clone().unwrap_or_else(|| format!("{}-notifier", kafka.group_id));
    // The key (and a SQLite ledger) live in the data dir.
    crate::cli::announce_data_dir(&cfg.data_dir);
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("cannot create the data dir {}", cfg.data_dir.display()))?;
    let rt = tokio::runtime::Runtime::new()?;
    // The engine's prefix: the same metric names in both modes.
    let registry = prometheus::Registry::new_custom(Some("riskstream".into()), None)?;
    let metrics = NotifierMetrics::register(&registry).context("cannot register the notifier's metrics")?;
    let at = cfg.notifier_ledger();
    let ledger = embedded::open(&cfg, &rt)?;
    let notifier = embedded::notifier(&cfg, ledger.clone(), &metrics)?;
    embedded::spawn_retries(&cfg, &metrics)?;
    let codec = Arc::new(match &kafka.registry_url {
        Some(url) => ValueCodec::with_registry(
            riskstream_connectors::kafka::registry::SchemaRegistry::new(url)
                .map_err(|e| anyhow::anyhow!("schema registry {url}: {e}"))?,
        ),
        None => ValueCodec::embedded(),
    });
    let consumer = AlertConsumer::subscribe(&kafka, &group, codec)
        .with_context(|| format!("cannot join group `{group}` on {}", kafka.brokers))?;

    let stop = Arc::new(AtomicBool::new(false));
    let partitions = Arc::new(Mutex::new(Vec::new()));
    let worker = {
        let (stop, handle, partitions) = (Arc::clone(&stop), rt.handle().clone(), Arc::clone(&partitions));
        std::thread::Builder::new().name("notifier-alerts".into()).spawn(move || {
            let result = consume(&consumer, &notifier, &handle, &stop, &partitions);
            stop.store(true, Ordering::Relaxed);
            result
        })?
    };
    let app = routes(&cfg, ledger, &registry, partitions)?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        eprintln!(
            "riskstream notifier listening on http://{} (group `{group}` on {}, topic {}, ledger {at})",
            listener.local_addr()?,
            kafka.brokers,
            kafka.topics.alerts
        );
        let watch = Arc::clone(&stop);
        let shutdown = async move {
            tokio::select! {
                () = crate::cli::shutdown_signal() => {},
                () = async { while !watch.load(Ordering::Relaxed) { tokio::time::sleep(Duration::from_millis(100)).await } } => {},
            }
        };
        axum::serve(listener, app).with_graceful_shutdown(shutdown).await.context("the notifier's API failed")
    })?;
    stop.store(true, Ordering::Relaxed);
    match worker.join() {
        Ok(Ok(())) => {
            eprintln!("riskstream notifier stopped cleanly");
            Ok(ExitCode::SUCCESS)
        }
        Ok(Err(e)) => Err(e),
        Err(_) => anyhow::bail!("the notifier's consumer thread panicked"),
    }
}

/// Reads, delivers and commits until `stop`. A ledger that does not answer holds
/// the batch (tried again every second, never skipped); the offsets move only past
/// alerts the ledger holds.
fn consume(
    consumer: &AlertConsumer,
    notifier: &Notifier,
    rt: &tokio::runtime::Handle,
    stop: &AtomicBool,
    partitions: &Mutex<Vec<i32>>,
) -> anyhow::Result<()> {
    while !stop.load(Ordering::Relaxed) {
        let batch = consumer.poll(BATCH, Duration::from_millis(100));
        *partitions.lock().unwrap_or_else(|p| p.into_inner()) = consumer.assigned();
        let batch = match batch {
            Ok(batch) => batch,
            Err(e) => {
                tracing::warn!(error = %e, "the alerts topic cannot be read; trying again");
                std::thread::sleep(Duration::from_millis(500));
                continue;
            }
        };
        if batch.is_empty() {
            continue;
        }
        for r in &batch.rejected {
            tracing::error!(partition = r.partition, offset = r.offset, reason = %r.reason,
                "a message of the alerts topic is not an alert; it stays on the topic, skipped");
        }
        loop {
            match rt.block_on(notifier.notify(&batch.alerts)) {
                Ok(_) => break,
                Err(e) if e.is_retryable() && !stop.load(Ordering::Relaxed) => {
                    tracing::warn!(error = %e, "the ledger does not answer; the batch waits");
                    std::thread::sleep(Duration::from_secs(1));
                }
                // Stopping (or an alert the ledger cannot store): its offsets stay, the next reader takes it.
                Err(e) => return Err(anyhow::anyhow!("the notifier stopped with a batch not delivered: {e}")),
            }
        }
        if let Err(e) = consumer.commit(&batch) {
            // The next reader of these partitions reads the batch again: the ledger makes that harmless.
            tracing::warn!(error = %e, "offsets not committed; the batch will be read again");
        }
    }
    Ok(())
}

/// The notifier's routes, the operators' ones behind the admin token, with
/// `/metrics`, `/healthz` and `/readyz` (ready when the ledger answers; it says
/// which partitions of the alerts topic this notifier reads).
fn routes(
    cfg: &EngineConfig,
    ledger: Ledger,
    registry: &prometheus::Registry,
    partitions: Arc<Mutex<Vec<i32>>>,
) -> anyhow::Result<axum::Router> {
    let prefs = embedded::preferences(cfg, ledger.clone())?;
    let admin = riskstream_notifier::admin_router(ledger.clone(), prefs);
    let registry = registry.clone();
    let probe = ledger.clone();
    Ok(riskstream_notifier::router(Inbox::new(ledger))
        .merge(riskstream_engine::api::admin_only_with(cfg.api.admin_token.clone(), admin))
        .route("/healthz", get(|| async { axum::Json(serde_json::json!({ "status": "ok" })) }))
        .route(
            "/readyz",
            get(move || {
                let ledger = probe.clone();
                let partitions = partitions.lock().unwrap_or_else(|p| p.into_inner()).clone();
                async move {
                    use axum::http::StatusCode;
                    // The engine's /readyz shape, with the notifier as the one check.
                    match ledger.health().await {
                        Ok(h) => (
                            StatusCode::OK,
                            axum::Json(serde_json::json!({
                                "ready": true,
                                "checks": { "notifier": h, "alert_partitions": partitions },
                                "reasons": []
                            })),
                        ),
                        Err(e) => (
                            StatusCode::SERVICE_UNAVAILABLE,
                            axum::Json(serde_json::json!({
                                "ready": false,
                                "checks": {},
                                "reasons": [format!("notifier: the ledger does not answer: {e}")]
                            })),
                        ),
                    }
                }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let registry = registry.clone();
                async move {
                    let mut buf = Vec::new();
                    prometheus::Encoder::encode(&prometheus::TextEncoder::new(), &registry.gather(), &mut buf)
                        .expect("text encoding cannot fail");
                    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], buf)
                }
            }),
        ))
}

//! `riskstream run`: the production entry point (HTTP ingest + query API), embedded
//! or, with Kafka settings, as one instance of a consumer group.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use clap::Args;
use riskstream_connectors::kafka::input::partition_count;
use riskstream_connectors::{AlertLogSink, AlertSink};
use riskstream_engine::distributed::{ClusterView, Distributed};
use riskstream_engine::handle::AppState;
use riskstream_engine::runtime;

use super::{open_engine, shutdown_signal, EngineArgs};

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Address of the API.
    #[arg(long, env = "RISKSTREAM_LISTEN", value_parser = super::parse_listen, value_name = "HOST:PORT")]
    pub listen: Option<SocketAddr>,
    /// Run as one instance of a consumer group over these Kafka brokers (distributed
    /// mode); other Kafka settings come from the `[kafka]` section of --config.
    #[arg(long, env = "RISKSTREAM_KAFKA_BROKERS")]
    pub kafka_brokers: Option<String>,
    /// Consumer group of the instances (distributed mode).
    #[arg(long, env = "RISKSTREAM_KAFKA_GROUP")]
    pub kafka_group: Option<String>,
    /// Address other instances and clients use for this instance's API (default: the
    /// address it listens on).
    #[arg(long, env = "RISKSTREAM_ADVERTISED_URL")]
    pub advertised_url: Option<String>,
    /// Do not start the notifier (embedded mode starts it: alerts reach the users'
    /// in-app inboxes, GET /v1/users/{id}/inbox, recorded in <data_dir>/notifier.sqlite).
    #[arg(long)]
    pub no_notifier: bool,
}

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let mut cfg = args.engine.resolve(None)?;
    if let Some(l) = args.listen {
        cfg.listen = l;
    }
    if let Some(b) = &args.kafka_brokers {
        cfg.kafka.get_or_insert_with(Default::default).brokers = b.clone();
    }
    if let (Some(g), Some(k)) = (&args.kafka_group, cfg.kafka.as_mut()) {
        k.group_id = g.clone();
    }
    if args.advertised_url.is_some() {
        cfg.advertised_url = args.advertised_url.clone();
    }
    let mut explicit_shards = args.engine.shards.is_some();
    if let Some(k) = &cfg.kafka {
        // One shard per partition: a new data dir takes the topic's partition count.
        let n = partition_count(k, &k.topics.trades)
            .map_err(|e| anyhow::anyhow!("cannot reach the Kafka brokers {}: {e}", k.brokers))?;
        if n == 0 {
            anyhow::bail!(
                "topic `{}` does not exist on {}; create the topics first: riskstream topics create --brokers {}",
                k.topics.trades,
                k.brokers,
                k.brokers
            );
        }
        if !explicit_shards {
            cfg.shards = n;
            explicit_shards = riskstream_engine::store::RocksDbStore::open_read_only(&cfg.data_dir).is_err();
        }
    }
    super::announce_data_dir(&cfg.data_dir);
    let engine = open_engine(&cfg, explicit_shards)?;
    if cfg.kafka.is_some() {
        return run_distributed(cfg, engine);
    }
    cfg.notifier.enabled &= !args.no_notifier;
    let mut sinks: Vec<Box<dyn AlertSink>> = Vec::new();
    if cfg.alert_log {
        sinks.push(Box::new(AlertLogSink::open(cfg.data_dir.join("alerts.jsonl"))?));
    }
    let rt = tokio::runtime::Runtime::new()?;
    let routes = super::notifier::start(&cfg, &rt, &mut sinks, engine.metrics().registry())?;
    let (wake, outbox) = runtime::start_outbox(Arc::clone(engine.store()), sinks, Arc::clone(engine.metrics()));
    let app = AppState::new(engine, Some(wake));
    app.set_admin_token(cfg.api.admin_token.clone());
    let extra = routes.mount(Arc::clone(&app));
    rt.block_on(async {
        let listener = runtime::bind(cfg.listen).await?;
        eprintln!("riskstream listening on http://{} (data dir {})", listener.local_addr()?, cfg.data_dir.display());
        if cfg.notifier.enabled {
            eprintln!("notifier: alerts go to the in-app inboxes, GET /v1/users/{{id}}/inbox");
        }
        runtime::serve_with(Arc::clone(&app), listener, cfg.max_body_bytes, extra, shutdown_signal()).await
    })?;
    app.outbox_wake.lock().unwrap_or_else(|p| p.into_inner()).take();
    let _ = outbox.join();
    eprintln!("riskstream stopped cleanly");
    Ok(ExitCode::SUCCESS)
}

/// Distributed mode: alerts leave through the shards' Kafka transactions, not the
/// local sinks; the API serves this instance's shards.
fn run_distributed(
    cfg: riskstream_engine::EngineConfig,
    engine: riskstream_engine::Engine<riskstream_engine::store::RocksDbStore>,
) -> anyhow::Result<ExitCode> {
    let kafka = cfg.kafka.clone().expect("distributed mode has Kafka settings");
    let app = AppState::new(engine, None);
    app.set_admin_token(cfg.api.admin_token.clone());
    let rt = tokio::runtime::Runtime::new()?;
    let listener = rt.block_on(runtime::bind(cfg.listen))?;
    let local = listener.local_addr()?;
    let advertised = cfg.advertised_url.clone().unwrap_or_else(|| format!("http://{local}"));
    let view = Arc::new(Mutex::new(ClusterView::default()));
    let _ = app.cluster.set(Arc::clone(&view));
    let stop = Arc::new(AtomicBool::new(false));
    let worker = {
        let (app, stop, batch_max) = (Arc::clone(&app), Arc::clone(&stop), cfg.batch_max);
        std::thread::Builder::new().name("kafka".into()).spawn(move || {
            let result = Distributed::join(app, kafka, &advertised, batch_max, view).and_then(|d| d.run(&stop));
            stop.store(true, Ordering::Relaxed);
            result
        })?
    };
    eprintln!(
        "riskstream listening on http://{local} (data dir {}), group `{}` on {}",
        cfg.data_dir.display(),
        cfg.kafka.as_ref().map_or("", |k| k.group_id.as_str()),
        cfg.kafka.as_ref().map_or("", |k| k.brokers.as_str()),
    );
    let watch = Arc::clone(&stop);
    let shutdown = async move {
        tokio::select! {
            () = shutdown_signal() => {},
            () = async { while !watch.load(Ordering::Relaxed) { tokio::time::sleep(std::time::Duration::from_millis(100)).await } } => {},
        }
    };
    rt.block_on(runtime::serve(Arc::clone(&app), listener, cfg.max_body_bytes, shutdown))?;
    stop.store(true, Ordering::Relaxed);
    match worker.join() {
        Ok(Ok(stats)) => {
            eprintln!("riskstream stopped cleanly ({} events, {} alerts)", stats.events, stats.alerts);
            Ok(ExitCode::SUCCESS)
        }
        Ok(Err(e)) => Err(anyhow::anyhow!("distributed mode stopped: {e}")),
        Err(_) => Err(anyhow::anyhow!("the Kafka thread panicked")),
    }
}

//! `riskstream run`: the production entry point (HTTP ingest + query API).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use riskstream_connectors::{AlertLogSink, AlertSink};
use riskstream_engine::api::AppState;
use riskstream_engine::runtime;

use super::{open_engine, shutdown_signal, EngineArgs};

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Address of the API.
    #[arg(long, env = "RISKSTREAM_LISTEN")]
    pub listen: Option<SocketAddr>,
}

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let mut cfg = args.engine.resolve(None)?;
    if let Some(l) = args.listen {
        cfg.listen = l;
    }
    let engine = open_engine(&cfg, args.engine.shards.is_some())?;
    let mut sinks: Vec<Box<dyn AlertSink>> = Vec::new();
    if cfg.alert_log {
        sinks.push(Box::new(AlertLogSink::open(&cfg.data_dir.join("alerts.jsonl"))?));
    }
    let (wake, outbox) = runtime::start_outbox(Arc::clone(engine.store()), sinks, Arc::clone(engine.metrics()));
    let app = AppState::new(engine, Some(wake));
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let listener = runtime::bind(cfg.listen).await?;
        eprintln!("riskstream listening on http://{} (data dir {})", listener.local_addr()?, cfg.data_dir.display());
        runtime::serve(Arc::clone(&app), listener, cfg.max_body_bytes, shutdown_signal()).await
    })?;
    app.outbox_wake.lock().unwrap_or_else(|p| p.into_inner()).take();
    let _ = outbox.join();
    eprintln!("riskstream stopped cleanly");
    Ok(ExitCode::SUCCESS)
}

//! Offline commands on a data dir: import, query, verify, replay.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use axum::body::Body;
use axum::http::Request;
use clap::Args;
use riskstream_connectors::{AlertLogSink, AlertSink, JsonLinesFileSource, SourceError};
use riskstream_engine::api;
use riskstream_engine::handle::AppState;
use riskstream_engine::metrics::Metrics;
use riskstream_engine::store::{EventStore, RocksDbStore};
use riskstream_engine::{replay as rebuild, runtime, Engine, EngineConfig};
use tower::ServiceExt;

use riskstream_engine::audit::history::AsOf;

use super::{open_engine, EngineArgs};

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// JSON-lines file of events (one event per line), or `-` for standard input.
    /// A file is known by its canonical path and content: importing it again under
    /// any spelling applies only the lines appended since.
    pub file: PathBuf,
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Events per commit.
    #[arg(long, default_value_t = 20_000)]
    pub batch: usize,
    /// Import the file from line 1 as a new source, even if it was imported before
    /// or has changed since: events with an `event_id` already applied are skipped,
    /// events without one apply again.
    #[arg(long)]
    pub restart: bool,
}

/// The data dir of `import` and `run` when neither --data-dir nor a config names one.
pub const DEFAULT_DATA_DIR: &str = "riskstream-data";

pub fn import(args: ImportArgs) -> anyhow::Result<ExitCode> {
    // Inputs first: a bad path fails before a data dir or a thread exists.
    let stdin = args.file.as_os_str() == "-";
    let mut source = if stdin {
        JsonLinesFileSource::stdin()
    } else {
        JsonLinesFileSource::open(&args.file).with_context(|| format!("cannot import {}", args.file.display()))?
    };
    let shown = source.path().map_or_else(|| "standard input".to_string(), |p| p.display().to_string());
    let cfg = args.engine.resolve(Some(DEFAULT_DATA_DIR))?;
    super::announce_data_dir(&cfg.data_dir);
    let engine = open_engine(&cfg, args.engine.shards.is_some())?;
    let mut sinks: Vec<Box<dyn AlertSink>> = Vec::new();
    if cfg.alert_log {
        sinks.push(Box::new(AlertLogSink::open(cfg.data_dir.join("alerts.jsonl"))?));
    }
    let (wake, outbox) = runtime::start_outbox(Arc::clone(engine.store()), sinks, Arc::clone(engine.metrics()));
    let app = AppState::new(engine, Some(wake));
    let started = Instant::now();
    let pumped = resume_import(&app, &mut source, &args, &shown)
        .and_then(|()| Ok(runtime::pump(&app, &mut source, args.batch.max(1), None, &AtomicBool::new(false))?));
    // The outbox thread ends before the store closes, on every path: a process
    // exiting while it is inside RocksDB can die of a signal instead of its error.
    app.outbox_wake.lock().unwrap_or_else(|p| p.into_inner()).take();
    let _ = outbox.join();
    let stats = pumped?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "imported {} lines from {shown} into {} in {secs:.2} s ({:.0} lines/s): {} rejected, {} alerts",
        stats.items,
        cfg.data_dir.display(),
        stats.items as f64 / secs.max(1e-9),
        stats.rejected,
        stats.alerts
    );
    if stats.rejected == 0 {
        return Ok(ExitCode::SUCCESS);
    }
    for r in &stats.first_rejections {
        let field = r.field.as_ref().map_or(String::new(), |f| format!(" (field `{f}`)"));
        eprintln!("rejected line {}{field}: {}", r.index.map_or("?".into(), |i| i.to_string()), r.reason);
    }
    let more = stats.rejected - stats.first_rejections.len() as u64;
    eprintln!(
        "error: {} lines rejected{}; the other lines were applied, the rejected ones are kept: \
         riskstream query --data-dir {} /v1/dead-letters",
        stats.rejected,
        if more > 0 { format!(" ({more} not shown)") } else { String::new() },
        cfg.data_dir.display()
    );
    Ok(super::EXIT_CHECK_FAILED)
}

/// Continues a file where its last import stopped (unless `--restart`), saying so.
fn resume_import(
    app: &AppState<RocksDbStore>,
    source: &mut JsonLinesFileSource,
    args: &ImportArgs,
    shown: &str,
) -> anyhow::Result<()> {
    if source.path().is_none() {
        return Ok(());
    }
    if args.restart {
        eprintln!(
            "importing {shown} from line 1 as a new source (--restart): events with an event_id \
             applied before are skipped, events without one apply again"
        );
        return Ok(());
    }
    match runtime::resume(app, source) {
        Ok(Some(_)) => {
            eprintln!("resuming {shown} after line {} (imported before; --restart imports it again)", source.lines());
            Ok(())
        }
        Ok(None) => Ok(()),
        Err(runtime::PumpError::Source(e @ SourceError::Changed { .. })) => Err(anyhow::anyhow!(
            "{e}; nothing was imported. Import it as a new source with --restart (events without \
             an event_id then apply again), or import the new lines from a file of their own"
        )),
        Err(e) => Err(e.into()),
    }
}

#[derive(Args, Debug)]
pub struct QueryArgs {
    /// Data directory to read.
    #[arg(long, env = "RISKSTREAM_DATA_DIR")]
    pub data_dir: PathBuf,
    /// API path, e.g. /v1/accounts/acc-000001 or '/v1/alerts?since=0'.
    pub path: String,
}

/// Opens a data dir read-only (it may be in use by a running engine).
fn open_read_only(dir: &std::path::Path) -> anyhow::Result<Engine<RocksDbStore>> {
    let store = RocksDbStore::open_read_only(dir)?;
    let shards = store.shard_count()?.context("the data dir holds no shards yet")?;
    let rules = riskstream_engine::stored_rules(&store)?.unwrap_or_default();
    let mut engine = Engine::open(Arc::new(store), shards, rules, Arc::new(Metrics::new()))?;
    // Past states start from the data dir's snapshots (none are taken here).
    engine.enable_snapshots(dir.join("snapshots"), 0, 1)?;
    // The key checkpoints were signed with, so the offline audit routes name it;
    // read, never generated, and nothing is signed here.
    let key = dir.join("checkpoint.key");
    if key.exists() {
        let signer = riskstream_engine::audit::CheckpointSigner::load_or_generate(&key)
            .with_context(|| format!("cannot read the signing key {}", key.display()))?;
        engine.enable_checkpoints(signer, 0)?;
    }
    Ok(engine)
}

pub fn query(args: QueryArgs) -> anyhow::Result<ExitCode> {
    let engine = open_read_only(&args.data_dir)?;
    let app = AppState::new(engine, None);
    let path = if args.path.starts_with('/') { args.path.clone() } else { format!("/{}", args.path) };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (status, body) = rt.block_on(async {
        let request = Request::get(&path).body(Body::empty())?;
        let response = api::router(app, usize::MAX).oneshot(request).await?;
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await?;
        anyhow::Ok((status, bytes))
    })?;
    let json = serde_json::from_slice::<serde_json::Value>(&body);
    if !status.is_success() {
        // Every API error is {"error": ...}; say it on stderr, as every command does.
        let message = match &json {
            Ok(v) => v["error"].as_str().map_or_else(|| v.to_string(), str::to_string),
            Err(_) => String::from_utf8_lossy(&body).into_owned(),
        };
        return Err(super::CheckFailed(format!("GET {path}: {status}: {message}")).into());
    }
    match json {
        Ok(v) => println!("{}", serde_json::to_string_pretty(&v)?),
        Err(_) => print!("{}", String::from_utf8_lossy(&body)),
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Args, Debug)]
#[command(group = clap::ArgGroup::new("mode").required(true).args(["check", "until"]))]
pub struct ReplayArgs {
    /// Data directory whose log is replayed (read-only).
    #[arg(long, env = "RISKSTREAM_DATA_DIR")]
    pub data_dir: PathBuf,
    /// Rebuild into a fresh directory and compare the state digest and the alert
    /// sequence with the live ones; exits 1 on any difference.
    #[arg(long)]
    pub check: bool,
    /// Replay up to this point in every shard: a seq (records 1..=SEQ of each
    /// shard) or an RFC 3339 event time (each shard up to its first record later
    /// than it), e.g. 2026-03-31T23:59:59Z.
    #[arg(long, requires = "out", value_name = "SEQ|TIME", value_parser = AsOf::parse)]
    pub until: Option<AsOf>,
    /// Where to build the replayed data dir (must not exist yet; a temp dir for --check).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Rule settings to replay with (default: those the data dir recorded when it
    /// was created).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

pub fn replay(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let live = RocksDbStore::open_read_only(&args.data_dir)?;
    // The rules the data dir recorded at creation, unless --config overrides them.
    let rules = match (&args.config, riskstream_engine::stored_rules(&live)?) {
        (Some(path), _) => EngineConfig::load(Some(path))?.rules,
        (None, Some(stored)) => stored,
        (None, None) => EngineConfig::default().rules,
    };
    let shards = live.shard_count()?.context("the data dir holds no shards yet")?;
    let temp = tempfile::tempdir()?;
    let out = args.out.clone().unwrap_or_else(|| temp.path().join("replay"));
    anyhow::ensure!(!out.exists(), "{} already exists; replay builds a new data dir", out.display());
    let store = Arc::new(RocksDbStore::open(&out, false)?);
    let mut target = Engine::open(Arc::clone(&store), shards, rules, Arc::new(Metrics::new()))?;
    let started = Instant::now();
    let records = rebuild::rebuild(&live, &mut target, args.until, |n| {
        if n % 100_000 == 0 {
            eprintln!("replayed {n} records");
        }
    })?;
    let secs = started.elapsed().as_secs_f64();
    eprintln!("replayed {records} records in {secs:.2} s ({:.0} records/s)", records as f64 / secs.max(1e-9));
    if !args.check {
        let heads: Vec<String> = (0..shards).map(|s| format!("shard {s} at seq {}", target.head(s).seq)).collect();
        let until = args.until.map_or("the head".to_string(), |u| u.to_string());
        println!("state as of {until} written to {}: {}", out.display(), heads.join(", "));
        return Ok(ExitCode::SUCCESS);
    }
    let report = rebuild::compare(&live, store.as_ref(), shards, records)?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(if report.ok() {
        println!("ok: replay reproduces the live state and alert sequence");
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

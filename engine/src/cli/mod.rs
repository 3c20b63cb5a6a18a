//! Command-line interface: one module per subcommand.

mod audit;
mod demo;
mod demo_receiver;
mod notifier;
mod offline;
mod produce;
mod run;
mod snapshot;
mod topics;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use riskstream_engine::metrics::Metrics;
use riskstream_engine::store::{EventStore, RocksDbStore};
use riskstream_engine::{Engine, EngineConfig};

#[derive(Parser, Debug)]
#[command(
    name = "riskstream",
    version,
    about = "Event-sourced streaming risk engine: portfolios, drift and alerts from a hash-chained event log"
)]
pub struct Cli {
    /// More logging (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Start the engine: HTTP ingest and query API over the data dir (no simulator).
    Run(run::RunArgs),
    /// The main job on embedded defaults: the engine fed by a seeded market and
    /// portfolio simulator, the API on 127.0.0.1:8080, alerts printed as they fire.
    Demo(demo::DemoArgs),
    /// Bulk-load a JSON-lines file into a data dir (offline; resumable).
    Import(offline::ImportArgs),
    /// Print what the API would answer for PATH, read from a data dir (offline).
    Query(offline::QueryArgs),
    /// Check every shard's hash chain, Merkle tree and signed checkpoints (in
    /// parallel, with progress); `--from` a checkpoint walks only the records after it.
    /// Names the first bad (shard, seq or tree size).
    Verify(verify::VerifyArgs),
    /// Rebuild projections from the log: `--check` compares with the live state,
    /// `--until SEQ|TIME --out DIR` builds the state as of a seq or an event time.
    Replay(offline::ReplayArgs),
    /// Publish events (a JSON-lines file or the simulator) to the Kafka input topics.
    Produce(produce::ProduceArgs),
    /// Kafka topics of distributed mode: `topics create` prints or applies the layout.
    Topics(topics::TopicsArgs),
    /// Snapshots of a data dir: `snapshot create`, `snapshot list`, and
    /// `snapshot restore` to start a replica from one plus the live log's tail.
    Snapshot(snapshot::SnapshotArgs),
    /// Check checkpoints and proofs with only the public key (no data dir needed):
    /// `audit checkpoint`, `audit inclusion`, `audit consistency`.
    Audit(audit::AuditArgs),
    /// The notifier's ledger: `notifier dead-letters`, `notifier redrive`,
    /// `notifier endpoints`, `notifier enable` (with the engine running or stopped).
    Notifier(notifier::NotifierArgs),
}

/// Exit status when the command ran but what it checked or imported failed: a
/// broken log, a proof that does not verify, rejected lines, an HTTP error.
/// Usage and I/O errors exit 2 (`main`), success 0 (docs/CLI.md).
pub const EXIT_CHECK_FAILED: ExitCode = ExitCode::FAILURE;

/// A check that ran and did not hold (a proof, a signature): `main` prints it and
/// exits [`EXIT_CHECK_FAILED`], where any other error exits 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CheckFailed(pub String);

/// Refuses a path that holds no data dir, for the commands that must not create one.
pub fn require_data_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    if !RocksDbStore::exists(dir) {
        anyhow::bail!(
            "no riskstream data dir at {} (check --data-dir; `riskstream import`, `run` and `demo` create one)",
            dir.display()
        );
    }
    Ok(())
}

/// A listen address: `HOST:PORT` with a host name (`localhost:8080`) or an IP.
/// The first address the name resolves to is used.
pub fn parse_listen(text: &str) -> Result<std::net::SocketAddr, String> {
    use std::net::ToSocketAddrs;
    let mut addrs = text.to_socket_addrs().map_err(|e| format!("`{text}` is not HOST:PORT: {e}"))?;
    addrs.next().ok_or_else(|| format!("`{text}` resolves to no address"))
}

/// Says on stderr when a command is about to create its data dir, so a mistyped
/// or defaulted path is seen at once.
pub fn announce_data_dir(dir: &std::path::Path) {
    if !dir.exists() {
        eprintln!("creating data dir {}", dir.display());
    }
}

/// Settings shared by the commands that open a data dir for writing.
#[derive(Args, Debug, Clone)]
pub struct EngineArgs {
    /// TOML config file; flags and RISKSTREAM_* variables override it.
    #[arg(long, env = "RISKSTREAM_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data directory (event store and projections). Default: `data_dir` of
    /// --config, else ./riskstream-data (./riskstream-demo for `demo`). `run`,
    /// `import` and `demo` create it when it does not exist, and say so.
    #[arg(long, env = "RISKSTREAM_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Number of in-process shards (fixed when the data dir is created).
    #[arg(long, env = "RISKSTREAM_SHARDS")]
    pub shards: Option<u32>,
    /// fsync every commit (survives power loss, slower).
    #[arg(long, env = "RISKSTREAM_SYNC_WRITES")]
    pub sync_writes: bool,
    /// Bearer token of the admin routes (`POST /v1/users/{id}/erase`); prefer the
    /// environment variable, a flag shows in the process list.
    #[arg(long, env = "RISKSTREAM_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<riskstream_engine::config::AdminToken>,
    /// The notifier's ledger on PostgreSQL (`postgres://user:password@host/database`)
    /// instead of `<data_dir>/notifier.sqlite`; prefer the environment variable.
    #[arg(long, env = "RISKSTREAM_NOTIFIER_LEDGER_URL", hide_env_values = true)]
    pub notifier_ledger_url: Option<riskstream_engine::config::LedgerUrl>,
}

impl EngineArgs {
    /// Defaults, then the file, then environment and flags; validated once.
    pub fn resolve(&self, default_dir: Option<&str>) -> anyhow::Result<EngineConfig> {
        let mut cfg = EngineConfig::load(self.config.as_deref())?;
        if let (None, Some(d)) = (&self.config, default_dir) {
            cfg.data_dir = PathBuf::from(d);
        }
        if let Some(d) = &self.data_dir {
            cfg.data_dir = d.clone();
        }
        if let Some(s) = self.shards {
            cfg.shards = s;
        }
        cfg.sync_writes |= self.sync_writes;
        if let Some(t) = &self.admin_token {
            cfg.api.admin_token = Some(t.clone());
        }
        if let Some(url) = &self.notifier_ledger_url {
            cfg.notifier.ledger_url = Some(url.clone());
        }
        cfg.validate()?;
        Ok(cfg)
    }
}

pub fn init_tracing(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    // Colour codes only for a terminal: logs piped to files or collectors stay greppable.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).init();
}

pub fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run(a) => run::run(a),
        Command::Demo(a) => demo::demo(a),
        Command::Import(a) => offline::import(a),
        Command::Query(a) => offline::query(a),
        Command::Verify(a) => verify::verify(a),
        Command::Replay(a) => offline::replay(a),
        Command::Topics(a) => topics::topics(a),
        Command::Produce(a) => produce::produce(a),
        Command::Audit(a) => audit::audit(a),
        Command::Snapshot(a) => snapshot::snapshot(a),
        Command::Notifier(a) => notifier::notifier(a),
    }
}

/// Opens (or creates) a RocksDB data dir and the engine on it. Unless the shard
/// count was given explicitly, an existing data dir keeps its own.
pub fn open_engine(cfg: &EngineConfig, explicit_shards: bool) -> anyhow::Result<Engine<RocksDbStore>> {
    let store = RocksDbStore::open(&cfg.data_dir, cfg.sync_writes)?;
    let shards = match store.shard_count()? {
        Some(n) if !explicit_shards => n,
        _ => cfg.shards,
    };
    if let Some(stored) = riskstream_engine::stored_rules(&store)?.filter(|r| *r != cfg.rules) {
        eprintln!(
            "warning: the rule settings differ from those {} was created with ({stored:?}); \
             alerts from now on follow the new ones, and `replay --check` from the start will differ",
            cfg.data_dir.display()
        );
    }
    let metrics = Arc::new(Metrics::new());
    let mut engine = Engine::open(Arc::new(store), shards, cfg.rules.clone(), metrics)?;
    let keys = riskstream_engine::privacy::RocksDbKeyStore::open(&cfg.key_dir())?;
    engine.set_key_store(Arc::new(keys));
    if cfg.audit.checkpoint_every > 0 || cfg.audit.checkpoint_every_secs > 0 {
        let signer = riskstream_engine::audit::CheckpointSigner::load_or_generate(&cfg.signing_key_path())?;
        engine.enable_checkpoints(signer, cfg.audit.checkpoint_every)?;
        engine.checkpoint_by_event_time(cfg.audit.checkpoint_every_secs);
    }
    engine.enable_snapshots(cfg.snapshot_dir(), cfg.audit.snapshot_every, cfg.audit.snapshots_keep)?;
    Ok(engine)
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

#[cfg(test)]
mod tests {
    use super::parse_listen;

    #[test]
    fn listen_addresses_take_host_names() {
        let addr = parse_listen("localhost:8080").unwrap();
        assert!(addr.ip().is_loopback() && addr.port() == 8080, "{addr}");
        assert_eq!(parse_listen("127.0.0.1:0").unwrap().to_string(), "127.0.0.1:0");
        let err = parse_listen("localhost").unwrap_err();
        assert!(err.contains("`localhost` is not HOST:PORT"), "{err}");
    }
}

//! `riskstream snapshot`: take, list and restore snapshots (a copy of the data dir
//! tied to each shard's head and a signed checkpoint there). A restore checks the
//! snapshot against its checkpoints, copies it into a new data dir and catches up
//! from a live log: how a new replica starts without replaying the whole log.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use riskstream_engine::audit::public_key;
use riskstream_engine::audit::snapshot::{self, Snapshot};
use riskstream_engine::metrics::Metrics;
use riskstream_engine::store::{hex, EventStore, ProjectionStore, RocksDbStore};
use riskstream_engine::{replay, Engine, EngineConfig};

use super::{open_engine, EngineArgs};

#[derive(Args, Debug)]
pub struct SnapshotArgs {
    #[command(subcommand)]
    pub command: SnapshotCommand,
}

#[derive(Subcommand, Debug)]
pub enum SnapshotCommand {
    /// Take a snapshot of a data dir now (offline: the engine must not be running;
    /// a running engine takes them every [audit] snapshot_every records).
    Create {
        #[command(flatten)]
        engine: EngineArgs,
    },
    /// List a data dir's snapshots, oldest first.
    List {
        /// Data directory whose snapshots to list.
        #[arg(long, env = "RISKSTREAM_DATA_DIR")]
        data_dir: PathBuf,
        /// Where the snapshots are (default: <data-dir>/snapshots).
        #[arg(long)]
        snapshot_dir: Option<PathBuf>,
    },
    /// Start a new data dir (a replica) from a snapshot: check its heads, Merkle
    /// roots, state digests and checkpoint signatures, copy it, then append the
    /// records the live log has after it (`--log`).
    Restore {
        /// The snapshot directory (holding manifest.json and db/).
        snapshot: PathBuf,
        /// The new data directory (must not exist yet).
        #[arg(long)]
        data_dir: PathBuf,
        /// A data dir holding the live log to catch up from (read-only; may be in use).
        #[arg(long)]
        log: Option<PathBuf>,
        /// The engine's public key (hex, from GET /v1/audit/public-key) the
        /// checkpoints must be signed with; without it they are checked against the
        /// key they name, which proves integrity but not origin.
        #[arg(long)]
        public_key: Option<String>,
    },
}

pub fn snapshot(args: SnapshotArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        SnapshotCommand::Create { engine } => create(&engine),
        SnapshotCommand::List { data_dir, snapshot_dir } => {
            if snapshot_dir.is_none() {
                super::require_data_dir(&data_dir)?;
            }
            list(&snapshot_dir.unwrap_or_else(|| data_dir.join("snapshots")))
        }
        SnapshotCommand::Restore { snapshot, data_dir, log, public_key } => {
            restore(&snapshot, &data_dir, log.as_deref(), public_key.as_deref())
        }
    }
}

fn create(args: &EngineArgs) -> anyhow::Result<ExitCode> {
    let mut cfg = args.resolve(Some(super::offline::DEFAULT_DATA_DIR))?;
    // A snapshot of nothing is a mistyped path, not a new data dir.
    super::require_data_dir(&cfg.data_dir)?;
    if cfg.audit.snapshot_every == 0 {
        // Snapshots off for the running engine still allows one on request.
        cfg.audit.snapshot_every = u64::MAX;
    }
    let mut engine = open_engine(&cfg, args.shards.is_some())?;
    let started = Instant::now();
    let taken = engine.take_snapshot()?;
    println!("took {} in {:.2} s", taken.dir.display(), started.elapsed().as_secs_f64());
    print_snapshot(&taken);
    Ok(ExitCode::SUCCESS)
}

fn list(dir: &Path) -> anyhow::Result<ExitCode> {
    let listing = snapshot::scan(dir)?;
    if listing.snapshots.is_empty() && listing.set_aside.is_empty() {
        println!("no snapshots in {}", dir.display());
    }
    for s in &listing.snapshots {
        print_snapshot(s);
    }
    for s in &listing.set_aside {
        let name = s.dir.file_name().map_or_else(|| s.dir.display().to_string(), |n| n.to_string_lossy().into_owned());
        println!("{name}  set aside (unreadable, removed at the next snapshot): {}", s.reason);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_snapshot(s: &Snapshot) {
    let heads: Vec<String> = s
        .manifest
        .heads
        .iter()
        .map(|h| {
            if h.seq == 0 {
                return format!("shard {} empty", h.shard);
            }
            let signed = if s.checkpoint(h.shard).is_some() { "signed" } else { "unsigned" };
            format!("shard {} at seq {} ({}, {signed})", h.shard, h.seq, h.clock.to_rfc3339())
        })
        .collect();
    println!("{}  taken {}  {}", s.manifest.name, s.manifest.created_at, heads.join("; "));
}

fn restore(from: &Path, into: &Path, log: Option<&Path>, key: Option<&str>) -> anyhow::Result<ExitCode> {
    let snap = Snapshot::load(from)?;
    let key = key.map(public_key).transpose().context("--public-key")?;
    if key.is_none() && !snap.manifest.checkpoints.is_empty() {
        eprintln!(
            "warning: no --public-key: checkpoints are checked against the key they name (integrity, not origin)"
        );
    }
    let checked = snapshot::check(&snap, key.as_ref()).context("the snapshot does not hold what its manifest says")?;
    let signed = checked.iter().filter(|c| c.signed == Some(true)).count();
    eprintln!(
        "{}: {} shards match their manifest, {signed} signed checkpoints verified",
        snap.manifest.name,
        checked.len()
    );

    if into.exists() && std::fs::read_dir(into)?.next().is_some() {
        bail!("{} already exists and is not empty; restore builds a new data dir", into.display());
    }
    copy_dir(&snap.db_dir(), into)?;
    let store = Arc::new(RocksDbStore::open(into, false)?);
    // The snapshot's undelivered alerts are the live engine's to deliver.
    loop {
        let pending: Vec<u64> = store.outbox(10_000)?.iter().map(|a| a.number).collect();
        if pending.is_empty() {
            break;
        }
        store.ack_outbox(&pending)?;
    }
    let shards = store.shard_count()?.context("the snapshot holds no shards")?;
    let rules = riskstream_engine::stored_rules(store.as_ref())?.unwrap_or_else(|| EngineConfig::default().rules);
    let mut engine = Engine::open(Arc::clone(&store), shards, rules, Arc::new(Metrics::new()))?;

    let mut appended = 0;
    if let Some(log) = log {
        let live = RocksDbStore::open_read_only(log)?;
        if live.shard_count()? != Some(shards) {
            bail!("{} has {:?} shards, the snapshot {shards}", log.display(), live.shard_count()?);
        }
        for h in snap.manifest.heads.iter().filter(|h| h.seq > 0) {
            let same = live.record(h.shard, h.seq)?.is_some_and(|r| hex(&r.hash) == h.hash);
            if !same {
                bail!(
                    "{} is not the log the snapshot was taken from: shard {} has no record {} with hash {}",
                    log.display(),
                    h.shard,
                    h.seq,
                    h.hash
                );
            }
        }
        let started = Instant::now();
        appended = replay::catch_up(&live, &mut engine, |n| {
            if n % 100_000 == 0 {
                eprintln!("caught up {n} records");
            }
        })?;
        let secs = started.elapsed().as_secs_f64();
        eprintln!("appended {appended} records from {} in {secs:.2} s", log.display());
    }
    let heads: Vec<String> = (0..shards).map(|s| format!("shard {s} at seq {}", engine.head(s).seq)).collect();
    println!(
        "restored {} into {} (+{appended} records from the log): {}",
        snap.manifest.name,
        into.display(),
        heads.join(", ")
    );
    Ok(ExitCode::SUCCESS)
}

/// Copies the snapshot's files (a flat RocksDB directory) into a new directory.
fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("cannot create {}", to.display()))?;
    for entry in std::fs::read_dir(from).with_context(|| format!("cannot read {}", from.display()))? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name()))
                .with_context(|| format!("cannot copy {}", entry.path().display()))?;
        }
    }
    Ok(())
}

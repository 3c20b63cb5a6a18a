//! After the measured run: a restart in a fresh process, and the replay of the whole
//! local log checked against the reopened state.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use riskstream_engine::audit::history::{AsOf, History};
use riskstream_engine::audit::shard_digest;
use riskstream_engine::metrics::Metrics;
use riskstream_engine::store::{ChainHead, RocksDbStore};
use riskstream_engine::Engine;
use riskstream_projections::{RuleConfig, ShardState, Table};
use riskstream_schemas::avro::Codec;

/// Returns the memory of the state just dropped to the system now: mimalloc would
/// only purge it as this thread allocates again, and the next phase (a reopen in
/// another process, or a replay) needs it; a large profile would not fit otherwise.
pub(crate) fn release_freed_memory() {
    // SAFETY: `mi_collect` only walks mimalloc's own heaps; no pointer is passed.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

/// A restart's cost: this binary opens `dir` in a new process (`--reopen-only`), so
/// the figure is not helped or hurt by the memory this process still holds.
pub(crate) fn reopen_in_fresh_process(dir: &std::path::Path, shards: u32) -> anyhow::Result<f64> {
    let out = std::process::Command::new(std::env::current_exe()?)
        .arg("--reopen-only")
        .arg(dir)
        .args(["--shards", &shards.to_string()])
        .output()?;
    anyhow::ensure!(out.status.success(), "reopen failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().parse().context("reopen time")
}

/// `--reopen-only DIR`: opens the data dir with its stored rules and prints the
/// seconds it took.
pub(crate) fn reopen_only(dir: &std::path::Path, shards: u32) -> anyhow::Result<()> {
    let started = Instant::now();
    let store = Arc::new(RocksDbStore::open(dir, false)?);
    let rules = riskstream_engine::stored_rules(store.as_ref())?.unwrap_or_default();
    let engine = Engine::open(store, shards, rules, Arc::new(Metrics::new()))?;
    let secs = started.elapsed().as_secs_f64();
    anyhow::ensure!(engine.account_count() > 0, "nothing to reopen in {}", dir.display());
    println!("{secs}");
    Ok(())
}

/// What the replay check compares against: each shard's head and the digest of its
/// reopened rows, taken before the reopened engine is dropped so the replay never
/// holds a second copy of the state (the full Zipf profile would not fit twice).
pub(crate) struct StoredDigests {
    rules: RuleConfig,
    codec: Codec,
    shards: Vec<(u32, ChainHead, [u8; 32])>,
}

impl StoredDigests {
    pub(crate) fn of(engine: &Engine<RocksDbStore>) -> anyhow::Result<StoredDigests> {
        let shards = (0..engine.shard_count())
            .map(|shard| Ok((shard, engine.head(shard), digest(shard, engine.shard(shard).context("shard")?))))
            .collect::<anyhow::Result<_>>()?;
        Ok(StoredDigests { rules: engine.rules().clone(), codec: engine.codec().clone(), shards })
    }
}

/// The shard's state digest, its rows made one table at a time (all of them at once
/// would be a second copy of the state).
fn digest(shard: u32, state: &ShardState) -> [u8; 32] {
    let mut tables = Table::ALL;
    tables.sort();
    shard_digest(shard, tables.into_iter().flat_map(|table| state.facts_of(table)))
}

/// Rebuilds every shard from its first record in memory, shards in parallel, as a
/// point-in-time query without a snapshot would, and checks that the result equals
/// the reopened state row for row. Returns the records replayed and the time taken
/// (the check is not timed).
pub(crate) fn replay_log(store: &RocksDbStore, stored: &StoredDigests) -> anyhow::Result<(u64, f64)> {
    let started = Instant::now();
    let pasts = std::thread::scope(|scope| {
        let handles: Vec<_> = stored
            .shards
            .iter()
            .map(|&(shard, head, _)| {
                scope.spawn(move || {
                    let history = History { store, snapshots: None, rules: &stored.rules, codec: &stored.codec };
                    history.state_at(shard, AsOf::Seq(head.seq))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("replay thread panicked")).collect::<Result<Vec<_>, _>>()
    })?;
    let secs = started.elapsed().as_secs_f64();
    let mut records = 0;
    for (past, &(shard, _, digest)) in pasts.into_iter().zip(&stored.shards) {
        anyhow::ensure!(
            self::digest(shard, &past.state) == digest,
            "shard {shard}: the replayed state differs from the stored one"
        );
        records += past.info.records_replayed;
    }
    Ok((records, secs))
}

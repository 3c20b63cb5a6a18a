//! Replay (invariant 3): rebuild a data dir from another's log and compare the
//! projection digest and the per-shard alert sequence with the live ones.

use std::collections::BTreeMap;

use riskstream_schemas::Alert;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::audit::history::AsOf;
use crate::pipeline::{Engine, EngineError};
use crate::store::{hex, EventStore, ProjectionStore, StoreError};

/// Records per replay commit.
const CHUNK: usize = 5_000;

/// Copies the records of `live` after `target`'s heads into `target`, applying
/// each: all of them, or in each shard those up to `until` (a seq, or an event
/// time: the shard stops before its first record later than it). Returns the
/// number of records replayed.
pub fn rebuild<L, T>(
    live: &L,
    target: &mut Engine<T>,
    until: Option<AsOf>,
    progress: impl FnMut(u64),
) -> Result<u64, EngineError>
where
    L: EventStore + ?Sized,
    T: EventStore + ProjectionStore,
{
    copy_log(live, target, until, false, progress)
}

/// Brings a replica (a restored snapshot) up to `live`'s heads: like `rebuild`, but
/// the alerts it raises were delivered by `live` already, so they go to the
/// history only, not the outbox.
pub fn catch_up<L, T>(live: &L, target: &mut Engine<T>, progress: impl FnMut(u64)) -> Result<u64, EngineError>
where
    L: EventStore + ?Sized,
    T: EventStore + ProjectionStore,
{
    copy_log(live, target, None, true, progress)
}

fn copy_log<L, T>(
    live: &L,
    target: &mut Engine<T>,
    until: Option<AsOf>,
    delivered: bool,
    mut progress: impl FnMut(u64),
) -> Result<u64, EngineError>
where
    L: EventStore + ?Sized,
    T: EventStore + ProjectionStore,
{
    let apply = |target: &mut Engine<T>, chunk: Vec<_>| {
        if delivered {
            target.restore(chunk, Vec::new()).map(drop)
        } else {
            target.replay(chunk).map(drop)
        }
    };
    let mut total = 0;
    for shard in 0..target.shard_count() {
        let mut chunk = Vec::with_capacity(CHUNK);
        for record in live.records(shard, target.head(shard).seq + 1) {
            let record = record?;
            if matches!(until, Some(AsOf::Seq(u)) if record.seq > u) {
                break;
            }
            let event = target
                .codec()
                .decode(record.fingerprint, &record.payload)
                .map_err(|e| EngineError::Internal(format!("record ({shard}, {}) does not decode: {e}", record.seq)))?;
            if matches!(until, Some(AsOf::Time(t)) if event.ts > t) {
                break;
            }
            chunk.push((record, event));
            if chunk.len() == CHUNK {
                total += chunk.len() as u64;
                apply(target, std::mem::take(&mut chunk))?;
                progress(total);
            }
        }
        total += chunk.len() as u64;
        apply(target, chunk)?;
        progress(total);
    }
    Ok(total)
}

/// SHA-256 over every projection row of every shard, in shard, table, key order.
pub fn state_digest<S: ProjectionStore + ?Sized>(store: &S, shards: u32) -> Result<String, StoreError> {
    let mut h = Sha256::new();
    for shard in 0..shards {
        for row in store.load_shard(shard)? {
            let value = row.value.unwrap_or_default();
            h.update(shard.to_be_bytes());
            h.update(row.table.name().as_bytes());
            h.update((row.key.len() as u32).to_be_bytes());
            h.update(row.key.as_bytes());
            h.update((value.len() as u32).to_be_bytes());
            h.update(&value);
        }
    }
    Ok(hex(&h.finalize().into()))
}

/// Every alert, grouped by the shard of its cause, in commit order.
pub fn alert_sequences<S: ProjectionStore + ?Sized>(store: &S) -> Result<BTreeMap<u32, Vec<Alert>>, StoreError> {
    let mut out: BTreeMap<u32, Vec<Alert>> = BTreeMap::new();
    let mut after = 0;
    loop {
        let page = store.alerts_after(after, 10_000)?;
        let Some(last) = page.last() else { break };
        after = last.number;
        for a in page {
            out.entry(a.alert.caused_by.shard).or_default().push(a.alert);
        }
    }
    Ok(out)
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub records: u64,
    pub live_digest: String,
    pub replay_digest: String,
    pub live_alerts: usize,
    pub replay_alerts: usize,
    /// The first difference found, if any.
    pub difference: Option<String>,
}

impl CheckReport {
    pub fn ok(&self) -> bool {
        self.difference.is_none()
    }
}

/// Compares a live store with one rebuilt from its log.
pub fn compare<L, R>(live: &L, replayed: &R, shards: u32, records: u64) -> Result<CheckReport, StoreError>
where
    L: ProjectionStore + ?Sized,
    R: ProjectionStore + ?Sized,
{
    let live_digest = state_digest(live, shards)?;
    let replay_digest = state_digest(replayed, shards)?;
    let live_alerts = alert_sequences(live)?;
    let replay_alerts = alert_sequences(replayed)?;
    let count = |m: &BTreeMap<u32, Vec<Alert>>| m.values().map(Vec::len).sum();
    let mut difference = None;
    if live_digest != replay_digest {
        difference = Some(format!("state digest differs: live {live_digest}, replay {replay_digest}"));
    }
    for shard in 0..shards {
        let (l, r) = (live_alerts.get(&shard), replay_alerts.get(&shard));
        if difference.is_none() && l != r {
            let (l, r) = (l.cloned().unwrap_or_default(), r.cloned().unwrap_or_default());
            let at = l.iter().zip(&r).position(|(a, b)| a != b).unwrap_or(l.len().min(r.len()));
            difference = Some(format!(
                "shard {shard}: alert sequences differ at position {at} (live has {}, replay has {})",
                l.len(),
                r.len()
            ));
        }
    }
    Ok(CheckReport {
        records,
        live_digest,
        replay_digest,
        live_alerts: count(&live_alerts),
        replay_alerts: count(&replay_alerts),
        difference,
    })
}

//! `MemoryStore`: both store traits over ordered maps behind one lock, for unit
//! tests and for replays that need no directory. Same semantics as RocksDB.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use riskstream_projections::{Change, Table};
use riskstream_schemas::RecordRef;

use super::*;

#[derive(Default)]
struct Inner {
    shards: Option<u32>,
    rules: Option<String>,
    records: BTreeMap<(u32, u64), Record>,
    heads: HashMap<u32, ChainHead>,
    event_ids: HashMap<String, RecordRef>,
    positions: HashMap<String, String>,
    counters: Counters,
    projections: BTreeMap<(Table, u32, String), Vec<u8>>,
    alerts: BTreeMap<u64, StoredAlert>,
    outbox: BTreeMap<u64, StoredAlert>,
    dead_letters: BTreeMap<u64, DeadLetter>,
    merkle: BTreeMap<(u32, u8, u64), Hash>,
    checkpoints: BTreeMap<(u32, u64), crate::audit::Checkpoint>,
}

#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
    /// Each shard's Merkle frontier after the last commit.
    frontiers: Mutex<BTreeMap<u32, crate::audit::Frontier>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl EventStore for MemoryStore {
    fn commit(&self, batch: &CommitBatch, counters: Counters) -> Result<(), StoreError> {
        let mut frontiers = self.frontiers.lock().unwrap_or_else(|p| p.into_inner());
        let (nodes, after) = merkle_nodes(self, &frontiers, &batch.records)?;
        let mut s = self.lock();
        for (shard, (level, index, hash)) in nodes {
            s.merkle.insert((shard, level, index), hash);
        }
        frontiers.extend(after);
        for r in &batch.records {
            s.records.insert((r.shard, r.seq), r.clone());
        }
        for (id, at) in &batch.event_ids {
            s.event_ids.insert(id.clone(), *at);
        }
        for (shard, c) in &batch.changes {
            let key = (c.table, *shard, c.key.clone());
            match &c.value {
                Some(v) => s.projections.insert(key, v.clone()),
                None => s.projections.remove(&key),
            };
        }
        for a in &batch.alerts {
            s.alerts.insert(a.number, a.clone());
            if !batch.alerts_delivered {
                s.outbox.insert(a.number, a.clone());
            }
        }
        for d in &batch.dead_letters {
            s.dead_letters.insert(d.number, d.clone());
        }
        for (source, position) in &batch.positions {
            s.positions.insert(source.clone(), position.clone());
        }
        for (shard, head) in &batch.heads {
            s.heads.insert(*shard, *head);
        }
        s.counters = counters;
        Ok(())
    }

    fn shard_count(&self) -> Result<Option<u32>, StoreError> {
        Ok(self.lock().shards)
    }

    fn set_shard_count(&self, shards: u32) -> Result<(), StoreError> {
        self.lock().shards = Some(shards);
        Ok(())
    }

    fn rules(&self) -> Result<Option<String>, StoreError> {
        Ok(self.lock().rules.clone())
    }

    fn set_rules(&self, rules_json: &str) -> Result<(), StoreError> {
        self.lock().rules = Some(rules_json.to_string());
        Ok(())
    }

    fn head(&self, shard: u32) -> Result<ChainHead, StoreError> {
        Ok(self.lock().heads.get(&shard).copied().unwrap_or_default())
    }

    fn merkle_node(&self, shard: u32, level: u8, index: u64) -> Result<Option<Hash>, StoreError> {
        Ok(self.lock().merkle.get(&(shard, level, index)).copied())
    }

    fn put_checkpoint(&self, c: &crate::audit::Checkpoint) -> Result<(), StoreError> {
        self.lock().checkpoints.insert((c.shard, c.tree_size), c.clone());
        Ok(())
    }

    fn checkpoints(&self, shard: u32, after: u64, limit: usize) -> Result<Vec<crate::audit::Checkpoint>, StoreError> {
        let s = self.lock();
        Ok(s.checkpoints
            .range((shard, after.saturating_add(1))..=(shard, u64::MAX))
            .take(limit)
            .map(|(_, c)| c.clone())
            .collect())
    }

    fn latest_checkpoint(&self, shard: u32) -> Result<Option<crate::audit::Checkpoint>, StoreError> {
        Ok(self.lock().checkpoints.range((shard, 0)..=(shard, u64::MAX)).next_back().map(|(_, c)| c.clone()))
    }

    fn record(&self, shard: u32, seq: u64) -> Result<Option<Record>, StoreError> {
        Ok(self.lock().records.get(&(shard, seq)).cloned())
    }

    fn records(&self, shard: u32, from: u64) -> RecordIter<'_> {
        let rows: Vec<_> =
            self.lock().records.range((shard, from)..=(shard, u64::MAX)).map(|(_, r)| Ok(r.clone())).collect();
        Box::new(rows.into_iter())
    }

    fn event_seen(&self, event_id: &str) -> Result<Option<RecordRef>, StoreError> {
        Ok(self.lock().event_ids.get(event_id).copied())
    }

    fn source_position(&self, source: &str) -> Result<Option<String>, StoreError> {
        Ok(self.lock().positions.get(source).cloned())
    }

    fn counters(&self) -> Result<Counters, StoreError> {
        Ok(self.lock().counters)
    }
}

/// The last commit, read under the store's lock (commits wait; tests only).
struct MemoryCommitted<'a>(std::sync::MutexGuard<'a, Inner>);

impl CommittedRead for MemoryCommitted<'_> {
    fn head(&self, shard: u32) -> Result<ChainHead, StoreError> {
        Ok(self.0.heads.get(&shard).copied().unwrap_or_default())
    }

    fn row(&self, shard: u32, table: Table, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.0.projections.get(&(table, shard, key.to_string())).cloned())
    }

    fn rows_with_prefix(&self, shard: u32, table: Table, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let rows = self.0.projections.range((table, shard, prefix.to_string())..);
        let rows = rows.take_while(|((t, s, k), _)| *t == table && *s == shard && k.starts_with(prefix));
        Ok(rows.map(|((_, _, k), v)| (k.clone(), v.clone())).collect())
    }
}

impl ProjectionStore for MemoryStore {
    fn committed(&self) -> Box<dyn CommittedRead + '_> {
        Box::new(MemoryCommitted(self.lock()))
    }

    fn load_shard(&self, shard: u32) -> Result<Vec<Change>, StoreError> {
        let s = self.lock();
        let rows = s.projections.iter().filter(|((_, sh, _), _)| *sh == shard).map(|((table, _, key), v)| Change {
            table: *table,
            key: key.clone(),
            value: Some(v.clone()),
        });
        Ok(rows.collect())
    }

    fn alerts_after(&self, after: u64, limit: usize) -> Result<Vec<StoredAlert>, StoreError> {
        Ok(self.lock().alerts.range(after.saturating_add(1)..).take(limit).map(|(_, a)| a.clone()).collect())
    }

    fn alert_by_id(&self, alert_id: &str) -> Result<Option<StoredAlert>, StoreError> {
        Ok(self.lock().alerts.values().find(|a| a.alert.alert_id == alert_id).cloned())
    }

    fn account_alerts(&self, account_id: &str, limit: usize) -> Result<Vec<StoredAlert>, StoreError> {
        let s = self.lock();
        let all: Vec<_> = s.alerts.values().filter(|a| a.alert.account_id == account_id).cloned().collect();
        Ok(all[all.len().saturating_sub(limit)..].to_vec())
    }

    fn dead_letters_after(&self, after: u64, limit: usize) -> Result<Vec<DeadLetter>, StoreError> {
        Ok(self.lock().dead_letters.range(after.saturating_add(1)..).take(limit).map(|(_, d)| d.clone()).collect())
    }

    fn outbox(&self, limit: usize) -> Result<Vec<StoredAlert>, StoreError> {
        Ok(self.lock().outbox.values().take(limit).cloned().collect())
    }

    fn ack_outbox(&self, numbers: &[u64]) -> Result<(), StoreError> {
        let mut s = self.lock();
        for n in numbers {
            s.outbox.remove(n);
        }
        Ok(())
    }
}

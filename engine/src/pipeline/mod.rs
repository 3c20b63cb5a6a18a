//! The engine pipeline for one batch: sequence (route, dedupe, conflate) ->
//! append to each shard's chain -> apply to the shard's projection -> rules ->
//! one atomic commit of records, projection changes, alerts (history + outbox),
//! dead letters and the source position. Shards of a batch run in parallel.
//!
//! Write-ahead (invariant 1): state changes in memory before the commit, but
//! readers of that state take the engine lock, which a batch holds until its commit
//! is done, and account queries read the committed store (`views`); if a commit
//! fails the engine refuses further work (restart reloads from disk).

use std::sync::Arc;
use std::time::Instant;

use riskstream_projections::risk::{RiskView, SymbolRiskView};
use riskstream_projections::{AccountView, RuleConfig, ShardState};
use riskstream_schemas::avro::Codec;
use riskstream_schemas::json::Decoded;
use riskstream_schemas::{Alert, Event, EventBody, RecordRef, Rejection};
use serde::Serialize;

mod audit;
mod shard;

use self::audit::{Checkpointing, Snapshotting};
pub use self::shard::load_shard_state;
use self::shard::{process_shard, ShardOutput};
use crate::metrics::Metrics;
use crate::privacy::{KeyStore, KeyStoreError, PersonalData};
use crate::sequencer::{Refused, Routed, Sequencer};
use crate::store::{
    ChainHead, CommitBatch, Counters, DeadLetter, EventStore, ProjectionStore, Record, StoreError, StoredAlert,
};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    KeyStore(#[from] KeyStoreError),
    #[error("internal error: {0}")]
    Internal(String),
    #[error("the engine stopped after a storage failure; restart it to reload the last committed state")]
    Poisoned,
}

/// What happened to a batch, item by item where it matters.
#[derive(Debug, Default, Clone, Serialize)]
pub struct IngestReport {
    pub accepted: usize,
    pub duplicates: usize,
    pub stale_ticks: usize,
    pub rejected: Vec<Rejection>,
    pub records_appended: usize,
    pub alerts: Vec<Alert>,
}

/// One shard's share of a distributed-mode batch.
#[derive(Debug, Default)]
pub struct ShardBatch {
    pub shard: u32,
    /// In merge order; `origin` set to the position after each.
    pub events: Vec<Routed>,
    /// Messages refused before reaching the shard (undecodable, misplaced).
    pub refused: Vec<Refused>,
    /// Where the shard's inputs resume after this batch.
    pub position: String,
}

/// Below this many routed events a batch runs its shards on the calling thread.
const PARALLEL_MIN: usize = 512;

pub struct Engine<S> {
    store: Arc<S>,
    codec: Codec,
    shards: Vec<ShardState>,
    heads: Vec<ChainHead>,
    counters: Counters,
    sequencer: Sequencer,
    metrics: Arc<Metrics>,
    poisoned: bool,
    checkpoints: Option<Checkpointing>,
    snapshots: Option<Snapshotting>,
    rules: RuleConfig,
    /// Seals personal fields before records are made; keys outside the store.
    personal: PersonalData,
}

/// The rule settings a data dir was created with, if it recorded them.
pub fn stored_rules<S: EventStore + ?Sized>(store: &S) -> Result<Option<RuleConfig>, StoreError> {
    store
        .rules()?
        .map(|json| serde_json::from_str(&json).map_err(|e| StoreError::Corrupt(format!("stored rule settings: {e}"))))
        .transpose()
}

impl<S> Engine<S> {
    pub fn store(&self) -> &Arc<S> {
        &self.store
    }

    pub fn codec(&self) -> &Codec {
        &self.codec
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub fn shard_count(&self) -> u32 {
        self.shards.len() as u32
    }

    pub fn shard(&self, shard: u32) -> Option<&ShardState> {
        self.shards.get(shard as usize)
    }

    pub fn head(&self, shard: u32) -> ChainHead {
        self.heads.get(shard as usize).copied().unwrap_or_default()
    }

    /// The next alert and dead-letter numbers, as last committed.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// The rule settings the engine applies.
    pub fn rules(&self) -> &RuleConfig {
        &self.rules
    }

    pub fn account_count(&self) -> usize {
        self.shards.iter().map(ShardState::account_count).sum()
    }

    /// Personal data: its key store, for disclosing and erasing.
    pub fn personal_data(&self) -> &PersonalData {
        &self.personal
    }

    /// Keeps the per-user keys in `keys` (an engine opens with keys in memory). Set
    /// it before the first batch: what was sealed with the previous store stays so.
    pub fn set_key_store(&mut self, keys: Arc<dyn KeyStore>) {
        self.personal = PersonalData::new(keys);
    }
}

impl<S: EventStore + ProjectionStore> Engine<S> {
    /// Opens the engine on a store, loading each shard's projection (no log replay).
    pub fn open(
        store: Arc<S>,
        shard_count: u32,
        rules: RuleConfig,
        metrics: Arc<Metrics>,
    ) -> Result<Self, EngineError> {
        match store.shard_count()? {
            None => {
                store.set_shard_count(shard_count)?;
                store.set_rules(&serde_json::to_string(&rules).expect("rules serialise"))?;
            }
            Some(n) if n != shard_count => {
                return Err(StoreError::Mismatch(format!(
                    "the data dir was created with {n} shards but {shard_count} were asked for; use --shards {n} or a new data dir"
                ))
                .into())
            }
            Some(_) => {}
        }
        let mut shards = Vec::new();
        let mut heads = Vec::new();
        let mut sequencer = Sequencer::new(shard_count, rules.risk.bar_secs);
        let codec = Codec::new();
        // Shards load in parallel: a restart is bound by decoding rows.
        let loaded: Vec<Result<(ShardState, ChainHead), StoreError>> = std::thread::scope(|scope| {
            let (store, rules, codec) = (store.as_ref(), &rules, &codec);
            let handles: Vec<_> = (0..shard_count)
                .map(|shard| scope.spawn(move || load_shard_state(store, shard, rules, codec)))
                .collect();
            handles.into_iter().map(|h| h.join().expect("shard loader panicked")).collect()
        });
        for (shard, loaded) in loaded.into_iter().enumerate() {
            let (state, head) = loaded?;
            for (symbol, p) in state.prices() {
                sequencer.remember_tick(symbol, p.ts);
            }
            metrics.head_seq.with_label_values(&[&shard.to_string()]).set(head.seq as i64);
            shards.push(state);
            heads.push(head);
        }
        let counters = store.counters()?;
        let engine = Engine {
            checkpoints: None,
            snapshots: None,
            rules,
            store,
            codec,
            shards,
            heads,
            counters,
            sequencer,
            metrics,
            poisoned: false,
            personal: PersonalData::default(),
        };
        engine.metrics.accounts.set(engine.account_count() as i64);
        Ok(engine)
    }

    /// Load-test baseline: revalue touched accounts from scratch (same results).
    pub fn set_full_recompute(&mut self, on: bool) {
        self.shards.iter_mut().for_each(|s| s.set_full_recompute(on));
    }

    /// The first view `view` finds among the shards `include` admits, in shard
    /// order, with the shard and the seq it reflects.
    pub fn find_view<T>(
        &self,
        include: impl Fn(u32) -> bool,
        view: impl Fn(&ShardState) -> Option<T>,
    ) -> Option<(u32, u64, T)> {
        self.shards.iter().filter(|s| include(s.shard())).find_map(|s| {
            let found = view(s)?;
            Some((s.shard(), self.heads[s.shard() as usize].seq, found))
        })
    }

    /// The account's view with the shard and the seq it reflects.
    pub fn account_view(&self, account_id: &str) -> Option<(u32, u64, AccountView)> {
        self.find_view(|_| true, |s| s.incremental_view(account_id))
    }

    /// The account's risk numbers with the shard and the seq they reflect.
    pub fn risk_view(&self, account_id: &str) -> Option<(u32, u64, RiskView)> {
        self.find_view(|_| true, |s| s.risk_view(account_id))
    }

    /// A symbol's risk as the lowest-numbered shard's model sees it. Every shard
    /// receives every price batch; their models can still differ slightly: a trade
    /// before a symbol's first tick prices it on the trading account's shard only,
    /// so that shard may model the symbol one bar earlier.
    pub fn symbol_risk_view(&self, symbol: &str) -> Option<(u32, u64, SymbolRiskView)> {
        self.find_view(|_| true, |s| s.symbol_risk_view(symbol))
    }

    /// Sequences, applies and commits one batch from `source`; `position` is where
    /// the source resumes after it and is committed with it.
    pub fn ingest(
        &mut self,
        source: &str,
        position: Option<String>,
        items: Vec<Decoded>,
    ) -> Result<IngestReport, EngineError> {
        self.poison_on_failure(|engine| engine.ingest_batch(source, position, items))
    }

    /// Runs one batch; any failure stops the engine, because memory may have moved
    /// ahead of the store by then.
    fn poison_on_failure(
        &mut self,
        batch: impl FnOnce(&mut Self) -> Result<IngestReport, EngineError>,
    ) -> Result<IngestReport, EngineError> {
        if self.poisoned {
            return Err(EngineError::Poisoned);
        }
        let result = batch(self);
        if let Err(e) = &result {
            self.poisoned = true;
            tracing::error!(error = %e, "batch failed; the engine stops taking events");
        }
        result
    }

    fn ingest_batch(
        &mut self,
        source: &str,
        position: Option<String>,
        items: Vec<Decoded>,
    ) -> Result<IngestReport, EngineError> {
        let started = Instant::now();
        let store = Arc::clone(&self.store);
        let seq = self.sequencer.route(items, |id| store.event_seen(id).map(|r| r.is_some()))?;
        self.observe_stage("sequence", started);
        let report = IngestReport {
            accepted: seq.ticks,
            duplicates: seq.duplicates,
            stale_ticks: seq.stale_ticks,
            ..Default::default()
        };
        let positions = position.map(|p| (source.to_string(), p)).into_iter().collect();
        self.apply_and_commit(source, seq.per_shard, seq.refused, positions, report, started)
    }

    /// The common end of a batch: run the shards, number alerts and dead letters, and
    /// commit everything with the source positions.
    fn apply_and_commit(
        &mut self,
        source: &str,
        mut per_shard: Vec<Vec<Routed>>,
        mut refused: Vec<Refused>,
        positions: Vec<(String, String)>,
        mut report: IngestReport,
        started: Instant,
    ) -> Result<IngestReport, EngineError> {
        // Both ingest paths (embedded and Kafka) come here after deduplication: personal
        // fields are sealed, and new keys stored, before any record is made.
        let applying = Instant::now();
        self.personal.seal(per_shard.iter_mut().flatten().map(|r| &mut r.event))?;
        let outputs = self.run_shards(source, per_shard)?;
        self.observe_stage("apply", applying);
        let mut batch = CommitBatch { positions, ..Default::default() };
        for out in outputs {
            report.accepted += out.accepted;
            report.records_appended += out.records.len();
            batch.records.extend(out.records);
            batch.event_ids.extend(out.event_ids);
            batch.changes.extend(out.changes);
            refused.extend(out.refused);
            report.alerts.extend(out.alerts);
        }
        self.number_alerts(&mut batch, &report.alerts);
        self.number_dead_letters(&mut batch, source, &refused);
        report.rejected = refused.into_iter().map(|r| r.rejection).collect();
        report.rejected.sort_by_key(|r| r.index);
        batch.heads = self.heads.iter().enumerate().map(|(i, h)| (i as u32, *h)).collect();
        self.commit(&batch)?;
        self.observe(&report, &batch, started);
        Ok(report)
    }

    /// Applies and commits batches already ordered per shard (distributed mode: each
    /// shard's merged Kafka inputs), with each shard's resume position. Item indexes
    /// are the caller's, so a rejection can be traced back to its message.
    pub fn ingest_shards(&mut self, source: &str, batches: Vec<ShardBatch>) -> Result<IngestReport, EngineError> {
        self.poison_on_failure(|engine| engine.ingest_shard_batches(source, batches))
    }

    fn ingest_shard_batches(&mut self, source: &str, batches: Vec<ShardBatch>) -> Result<IngestReport, EngineError> {
        let started = Instant::now();
        let mut report = IngestReport::default();
        let mut per_shard: Vec<Vec<Routed>> = vec![Vec::new(); self.shards.len()];
        let mut refused = Vec::new();
        let mut positions = Vec::new();
        let mut ids_in_batch = std::collections::HashSet::new();
        for b in batches {
            let slot = per_shard
                .get_mut(b.shard as usize)
                .ok_or_else(|| EngineError::Internal(format!("no shard {}", b.shard)))?;
            for routed in b.events {
                // A broadcast event reaches every shard through its own input position;
                // only account events are deduplicated by id.
                let account_scoped = routed.event.body.user_id().is_some();
                if let Some(id) = routed.event.event_id.as_deref().filter(|_| account_scoped) {
                    if !ids_in_batch.insert((b.shard, id.to_string())) || self.store.event_seen(id)?.is_some() {
                        report.duplicates += 1;
                        continue;
                    }
                }
                slot.push(routed);
            }
            refused.extend(b.refused);
            positions.push((format!("{source}/shard/{}", b.shard), b.position));
        }
        self.apply_and_commit(source, per_shard, refused, positions, report, started)
    }

    /// Appends one shard's records read back from the audit topic (a new owner
    /// restoring it): each must extend the chain. Their alerts were published with
    /// them, so they go to the history, not the outbox. `positions` are committed
    /// with them (where the shard's inputs resume).
    pub fn restore(
        &mut self,
        records: Vec<(Record, Event)>,
        positions: Vec<(String, String)>,
    ) -> Result<usize, EngineError> {
        let n = records.len();
        self.apply_stored(records, positions, true)?;
        Ok(n)
    }

    fn run_shards(&mut self, source: &str, per_shard: Vec<Vec<Routed>>) -> Result<Vec<ShardOutput>, EngineError> {
        let codec = &self.codec;
        let total: usize = per_shard.iter().map(Vec::len).sum();
        let work = self.shards.iter_mut().zip(self.heads.iter_mut()).zip(per_shard);
        if total < PARALLEL_MIN {
            return work.map(|((state, head), list)| process_shard(state, head, list, codec, source)).collect();
        }
        std::thread::scope(|scope| {
            let handles: Vec<_> = work
                .map(|((state, head), list)| scope.spawn(move || process_shard(state, head, list, codec, source)))
                .collect();
            handles.into_iter().map(|h| h.join().expect("shard worker panicked")).collect()
        })
    }

    fn number_alerts(&mut self, batch: &mut CommitBatch, alerts: &[Alert]) {
        for alert in alerts {
            self.counters.alerts += 1;
            batch.alerts.push(StoredAlert { number: self.counters.alerts, alert: alert.clone() });
        }
    }

    fn number_dead_letters(&mut self, batch: &mut CommitBatch, source: &str, refused: &[Refused]) {
        let now = riskstream_schemas::Timestamp(wall_clock_micros()).to_rfc3339();
        for r in refused {
            self.counters.dead_letters += 1;
            batch.dead_letters.push(DeadLetter {
                number: self.counters.dead_letters,
                received_at: now.clone(),
                source: source.to_string(),
                index: r.rejection.index,
                field: r.rejection.field.clone(),
                reason: r.rejection.reason.clone(),
                // A rejected event is not sealed, so its personal values are dropped.
                raw: crate::privacy::redact_raw(&r.raw).into_owned(),
            });
        }
    }

    fn commit(&mut self, batch: &CommitBatch) -> Result<(), EngineError> {
        let committing = Instant::now();
        self.store.commit(batch, self.counters).map_err(|e| {
            // Replay calls this directly; ingest also poisons on its own errors.
            self.poisoned = true;
            EngineError::from(e)
        })?;
        self.observe_stage("commit", committing);
        self.metrics.accounts.set(self.account_count() as i64);
        // The batch is durable from here: what follows cannot un-commit it.
        let auditing = Instant::now();
        self.sign_due_checkpoints_after_commit();
        self.take_due_snapshot();
        self.observe_stage("audit", auditing);
        Ok(())
    }

    fn observe_stage(&self, stage: &str, since: Instant) {
        self.metrics.stage_seconds.with_label_values(&[stage]).observe(since.elapsed().as_secs_f64());
    }

    fn observe(&self, report: &IngestReport, batch: &CommitBatch, started: Instant) {
        let m = &self.metrics;
        m.events.with_label_values(&["accepted"]).inc_by(report.accepted as u64);
        m.events.with_label_values(&["rejected"]).inc_by(report.rejected.len() as u64);
        m.events.with_label_values(&["duplicate"]).inc_by(report.duplicates as u64);
        m.events.with_label_values(&["stale_tick"]).inc_by(report.stale_ticks as u64);
        let mut per_shard = vec![0u64; self.shards.len()];
        for r in &batch.records {
            per_shard[r.shard as usize] += 1;
        }
        for (shard, n) in per_shard.into_iter().enumerate().filter(|(_, n)| *n > 0) {
            m.records.with_label_values(&[&shard.to_string()]).inc_by(n);
        }
        for (shard, head) in &batch.heads {
            m.head_seq.with_label_values(&[&shard.to_string()]).set(head.seq as i64);
        }
        for a in &report.alerts {
            let state = if a.state == riskstream_schemas::AlertState::Raised { "raised" } else { "cleared" };
            m.alerts.with_label_values(&[a.kind.as_str(), state]).inc();
        }
        m.outbox_depth.add(report.alerts.len() as i64);
        m.batch_seconds.observe(started.elapsed().as_secs_f64());
    }

    /// Appends an already-stored record (replay): it must extend the chain exactly.
    pub fn replay(&mut self, records: Vec<(Record, Event)>) -> Result<Vec<Alert>, EngineError> {
        self.apply_stored(records, Vec::new(), false)
    }

    fn apply_stored(
        &mut self,
        records: Vec<(Record, Event)>,
        positions: Vec<(String, String)>,
        alerts_delivered: bool,
    ) -> Result<Vec<Alert>, EngineError> {
        if self.poisoned {
            return Err(EngineError::Poisoned);
        }
        let mut batch = CommitBatch::default();
        let mut alerts = Vec::new();
        for (record, event) in records {
            let shard = record.shard as usize;
            let head =
                self.heads.get(shard).copied().ok_or_else(|| EngineError::Internal(format!("no shard {shard}")))?;
            if record.seq != head.seq + 1 || record.prev_hash != head.hash {
                return Err(EngineError::Internal(format!(
                    "record ({shard}, {}) does not extend the chain at seq {}",
                    record.seq, head.seq
                )));
            }
            let at = RecordRef { shard: record.shard, seq: record.seq };
            let out = self.shards[shard]
                .apply(at, &event)
                .map_err(|r| EngineError::Internal(format!("record ({shard}, {}) does not apply: {r}", record.seq)))?;
            alerts.extend(out);
            if let Some(id) = event.event_id.filter(|_| !matches!(event.body, EventBody::PriceBatch(_))) {
                batch.event_ids.push((id, at));
            }
            self.heads[shard] = record.head();
            batch.records.push(record);
        }
        for state in &mut self.shards {
            let shard = state.shard();
            batch.changes.extend(state.drain_changes().into_iter().map(|c| (shard, c)));
        }
        self.number_alerts(&mut batch, &alerts);
        batch.heads = self.heads.iter().enumerate().map(|(i, h)| (i as u32, *h)).collect();
        batch.positions = positions;
        batch.alerts_delivered = alerts_delivered;
        self.commit(&batch)?;
        Ok(alerts)
    }
}

pub(super) fn wall_clock_micros() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or_default()
}

//! Distributed mode: this instance is one member of a consumer group over Kafka.
//! Owning partition `n` of the trades topic means owning shard `n`:
//!
//! - on assignment the shard's producer fences any earlier owner, the shard restores
//!   the tail of its log from the audit topic (records after the local head), ships
//!   any local records the audit topic lacks, and its inputs resume from the
//!   position stored with its last record;
//! - each round, every owned shard's inputs are merged by event time
//!   ([`riskstream_connectors::kafka::Merge`]) and the shards' batches are applied and
//!   committed in one RocksDB write batch with their positions (the source of truth
//!   for where to resume);
//! - then each shard's new records and the alerts they caused are published to the
//!   audit and alerts topics in one Kafka transaction; the outbox entries are cleared
//!   only after the commit is acknowledged;
//! - on revocation the shard publishes what it has and stops reading.
//!
//! Kafka does membership, replication and fencing; nothing here votes or replicates.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use riskstream_connectors::kafka::merge::{Merged, Position};
use riskstream_connectors::kafka::publish::{read_audit, DeadLetterOut, DeadLetterProducer, PublishError};
use riskstream_connectors::kafka::{KafkaConfig, Membership, OwnershipChange, ShardInput, ShardPublisher, ValueCodec};
use riskstream_connectors::SourceError;
use riskstream_schemas::Rejection;

use crate::handle::AppState;
use crate::pipeline::{EngineError, ShardBatch};
use crate::sequencer::{Refused, Routed};
use crate::store::{CommitBatch, EventStore, ProjectionStore, Record, StoreError};

/// Source name of the Kafka inputs; a shard's position is stored as `kafka/shard/<n>`.
pub const SOURCE: &str = "kafka";

/// Messages moved from one input's fetch queue into the merge per fill.
const FILL_BUDGET: usize = 10_000;

/// Longest a shard keeps reading its inputs within one round.
const FILL_TIME: Duration = Duration::from_millis(100);

/// Records per audit transaction.
const PUBLISH_CHUNK: usize = 5_000;

#[derive(Debug, thiserror::Error)]
pub enum DistributedError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Setup(String),
}

/// Which shards this instance owns and which are restoring; read by the API.
#[derive(Debug, Default, Clone)]
pub struct ClusterView {
    pub owned: BTreeSet<u32>,
    pub restoring: BTreeSet<u32>,
    /// This instance's advertised API address.
    pub me: String,
    /// Last seq on the audit topic, per owned shard.
    pub published: BTreeMap<u32, u64>,
    /// The API address of each shard's owner, as the group describes it (refreshed
    /// every few seconds; may lag a rebalance briefly).
    pub owners: BTreeMap<u32, String>,
    /// Messages of the owned shards' inputs not yet applied (refreshed every second
    /// and after each shard opens; -1 until first measured).
    pub lag: i64,
}

/// How a distributed run ended.
#[derive(Debug, Default, Clone, Copy)]
pub struct RunStats {
    pub rounds: u64,
    pub events: u64,
    pub alerts: u64,
}

struct Owned {
    input: ShardInput,
    publisher: ShardPublisher,
    /// Last seq on the audit topic.
    published: u64,
}

pub struct Distributed<S> {
    app: Arc<AppState<S>>,
    config: KafkaConfig,
    codec: Arc<ValueCodec>,
    membership: Membership,
    dead_letters: DeadLetterProducer,
    owned: BTreeMap<u32, Owned>,
    view: Arc<Mutex<ClusterView>>,
    batch_max: usize,
}

impl<S: EventStore + ProjectionStore + 'static> Distributed<S> {
    /// Joins the group. The data dir's shard count must equal the partition count of
    /// the account topics.
    pub fn join(
        app: Arc<AppState<S>>,
        config: KafkaConfig,
        advertised: &str,
        batch_max: usize,
        view: Arc<Mutex<ClusterView>>,
    ) -> Result<Self, DistributedError> {
        let codec = Arc::new(match &config.registry_url {
            Some(url) => ValueCodec::with_registry(
                riskstream_connectors::kafka::registry::SchemaRegistry::new(url)
                    .map_err(|e| DistributedError::Setup(e.to_string()))?,
            ),
            None => ValueCodec::embedded(),
        });
        let membership = Membership::join(&config, &format!("riskstream@{advertised}"))?;
        let partitions = membership.partition_count()?;
        let shards = app.read().shard_count();
        if partitions != shards {
            return Err(DistributedError::Setup(format!(
                "topic `{}` has {partitions} partitions but the data dir has {shards} shards; \
                 run with --shards {partitions} (and a new data dir) or create the topics with `riskstream topics create --partitions {shards}`",
                config.topics.trades
            )));
        }
        let dead_letters = DeadLetterProducer::open(&config)?;
        {
            let mut v = view.lock().expect("view lock");
            v.me = advertised.to_string();
            v.lag = -1; // unknown until measured
        }
        Ok(Distributed { app, config, codec, membership, dead_letters, owned: BTreeMap::new(), view, batch_max })
    }

    /// Runs until `stop` is set, then publishes what is committed and leaves the group.
    pub fn run(mut self, stop: &AtomicBool) -> Result<RunStats, DistributedError> {
        let mut stats = RunStats::default();
        let mut last_lag = Instant::now();
        let mut idle = false;
        while !stop.load(Ordering::Relaxed) {
            let wait = if idle || self.owned.is_empty() { Duration::from_millis(20) } else { Duration::ZERO };
            for change in self.membership.poll(wait) {
                self.app.read().metrics().rebalances.set(self.membership.rebalances() as i64);
                match change {
                    OwnershipChange::Revoked(shards) => shards.into_iter().try_for_each(|s| self.close_shard(s))?,
                    OwnershipChange::Assigned(shards) => shards.into_iter().try_for_each(|s| self.open_shard(s))?,
                }
            }
            let (events, alerts) = self.round()?;
            idle = events == 0;
            stats.rounds += 1;
            stats.events += events;
            stats.alerts += alerts;
            if last_lag.elapsed() > Duration::from_secs(1) {
                self.export_lag();
                match self.membership.owners(&self.config.group_id) {
                    Ok(owners) => self.view.lock().expect("view lock").owners = owners,
                    Err(e) => tracing::debug!(error = %e, "cannot describe the group"),
                }
                last_lag = Instant::now();
            }
        }
        let shards: Vec<u32> = self.owned.keys().copied().collect();
        for s in shards {
            self.publish(s)?;
        }
        Ok(stats)
    }

    /// One round: fill, merge, apply and commit, then publish. Returns (events, alerts).
    fn round(&mut self) -> Result<(u64, u64), DistributedError> {
        if self.owned.is_empty() {
            return Ok((0, 0));
        }
        let per_shard = (self.batch_max / self.owned.len()).max(1);
        let mut batches = Vec::new();
        let mut letters: Vec<(Merged, Option<Rejection>)> = Vec::new();
        let mut sources: Vec<Merged> = Vec::new();
        for (&shard, owned) in &mut self.owned {
            // Ticks conflate into few items: keep reading while fetched messages
            // remain, so a round is not one fetch budget of ticks per transaction.
            let until = Instant::now() + FILL_TIME;
            let mut items = Vec::new();
            loop {
                let got = owned.input.fill(FILL_BUDGET)?;
                items.extend(owned.input.pull(per_shard - items.len()));
                if items.len() >= per_shard || got == 0 || Instant::now() > until {
                    break;
                }
            }
            if items.is_empty() {
                continue;
            }
            let mut batch = ShardBatch { shard, position: owned.input.applied().encode(), ..Default::default() };
            for item in items {
                match &item {
                    Merged::Event { event, position, .. } => {
                        let index = sources.len();
                        batch.events.push(Routed {
                            index: Some(index),
                            event: event.clone(),
                            origin: Some(position.clone()),
                        });
                        sources.push(item);
                    }
                    Merged::Refused { rejection, raw, .. } => {
                        batch.refused.push(Refused {
                            rejection: rejection.clone(),
                            raw: String::from_utf8_lossy(raw).into_owned(),
                        });
                        letters.push((item.clone(), None));
                    }
                }
            }
            batches.push(batch);
        }
        if batches.is_empty() {
            return Ok((0, 0));
        }
        let report = self.app.write().ingest_shards(SOURCE, batches)?;
        // Rejected by the shard's state (e.g. a sell of more than is held).
        for r in &report.rejected {
            if let Some(item) = r.index.and_then(|i| sources.get(i)) {
                letters.push((item.clone(), Some(r.clone())));
            }
        }
        self.send_dead_letters(&letters)?;
        let shards: Vec<u32> = self.owned.keys().copied().collect();
        for s in shards {
            self.publish(s)?;
        }
        Ok((report.accepted as u64 + report.rejected.len() as u64, report.alerts.len() as u64))
    }

    fn send_dead_letters(&self, letters: &[(Merged, Option<Rejection>)]) -> Result<(), DistributedError> {
        let out: Vec<DeadLetterOut<'_>> = letters
            .iter()
            .filter_map(|(item, state_rejection)| match (item, state_rejection) {
                (Merged::Refused { input, offset, raw, rejection }, _) => Some(DeadLetterOut {
                    input,
                    offset: *offset,
                    raw,
                    field: rejection.field.as_deref(),
                    reason: &rejection.reason,
                }),
                (Merged::Event { source: Some((input, offset, raw)), .. }, Some(r)) => {
                    Some(DeadLetterOut { input, offset: *offset, raw, field: r.field.as_deref(), reason: &r.reason })
                }
                _ => None,
            })
            .collect();
        if !out.is_empty() {
            self.dead_letters.send(&out)?;
        }
        Ok(())
    }

    /// Takes shard `s`: fence, restore the tail from the audit topic, publish what
    /// the audit topic lacks, then start reading at the stored position.
    fn open_shard(&mut self, s: u32) -> Result<(), DistributedError> {
        let started = Instant::now();
        let label = s.to_string();
        self.set_restoring(s, true);
        let publisher = ShardPublisher::open(&self.config, Arc::clone(&self.codec), s)?;
        let store = Arc::clone(self.app.read().store());
        let local = self.app.read().head(s);
        // Incremental: start at the audit offset of a record this data dir already has
        // (recorded when it published or restored it), else at the partition's start.
        let from = match store.source_position(&audit_key(s))?.as_deref().and_then(parse_audit_mark) {
            Some((seq, offset)) if seq <= local.seq => offset,
            _ => 0,
        };
        // Read without the engine lock: queries go on, marked as restoring.
        let audit = read_audit(&self.config, s, from)?;
        let mut last_offset = None;
        let mut published = 0;
        let mut tail = Vec::new();
        for (offset, key, value) in audit {
            let (shard, seq) = Record::parse_key(&key)?;
            last_offset = Some((seq, offset));
            if shard != s {
                return Err(StoreError::Corrupt(format!(
                    "audit {}/{s} offset {offset} holds a record of shard {shard}",
                    self.config.topics.audit
                ))
                .into());
            }
            if seq <= published {
                continue; // a repeated publish (a retried transaction)
            }
            published = seq;
            if seq == local.seq {
                let record = Record::decode_value(shard, seq, &value)?;
                if record.hash != local.hash {
                    return Err(DistributedError::Setup(format!(
                        "shard {s}: the local log and the audit topic differ at seq {seq}; start this instance with an empty data dir"
                    )));
                }
            }
            if seq > local.seq {
                let record = Record::decode_value(shard, seq, &value)?;
                let event = self
                    .app
                    .read()
                    .codec()
                    .decode(record.fingerprint, &record.payload)
                    .map_err(|e| StoreError::Corrupt(format!("audit record ({s}, {seq}) does not decode: {e}")))?;
                tail.push((record, event));
            }
        }
        if let Some((first, _)) = tail.first() {
            if first.prev_hash != local.hash {
                return Err(DistributedError::Setup(format!(
                    "shard {s}: audit record {} does not extend the local log at seq {}; start this instance with an empty data dir",
                    first.seq, local.seq
                )));
            }
        }
        let restored = tail.len();
        let chunks = chunked(tail, PUBLISH_CHUNK);
        let n = chunks.len();
        for (i, chunk) in chunks.into_iter().enumerate() {
            let position = chunk.last().map(|(r, _)| r.source.clone()).filter(|p| p.starts_with("kafka:"));
            let mut positions: Vec<_> = position.into_iter().map(|p| (position_key(s), p)).collect();
            if let Some((seq, offset)) = last_offset.filter(|_| i + 1 == n) {
                positions.push((audit_key(s), format!("{seq}@{offset}")));
            }
            self.app.write().restore(chunk, positions)?;
        }
        tracing::debug!(shard = s, from, "audit read");
        let metrics = Arc::clone(self.app.read().metrics());
        metrics.restored_records.with_label_values(&[&label]).inc_by(restored as u64);
        // Alerts of records already on the audit topic left with them.
        let stale: Vec<u64> = store
            .outbox(usize::MAX)?
            .into_iter()
            .filter(|a| a.alert.caused_by.shard == s && a.alert.caused_by.seq <= published)
            .map(|a| a.number)
            .collect();
        store.ack_outbox(&stale)?;
        metrics.outbox_depth.sub(stale.len() as i64);
        let start = match store.source_position(&position_key(s))? {
            Some(p) => Position::parse(&p).map_err(DistributedError::Setup)?,
            None => Position::default(),
        };
        let last_ticks: Vec<_> = {
            let engine = self.app.read();
            engine.shard(s).map(|st| st.prices().map(|(sym, p)| (sym.to_string(), p.ts)).collect()).unwrap_or_default()
        };
        let input = ShardInput::open(
            &self.config,
            Arc::clone(&self.codec),
            s,
            self.app.read().shard_count(),
            start,
            last_ticks,
        )?;
        self.owned.insert(s, Owned { input, publisher, published });
        self.view.lock().expect("view lock").published.insert(s, published);
        self.publish(s)?;
        self.set_restoring(s, false);
        self.export_lag();
        tracing::info!(
            shard = s,
            restored,
            audit_from = from,
            local_seq = local.seq,
            audit_seq = published,
            ms = started.elapsed().as_millis() as u64,
            "shard opened"
        );
        Ok(())
    }

    fn close_shard(&mut self, s: u32) -> Result<(), DistributedError> {
        if self.owned.contains_key(&s) {
            // Best effort: a new owner restores whatever reached the audit topic.
            if let Err(e) = self.publish(s) {
                tracing::warn!(shard = s, error = %e, "could not publish before giving the shard up");
            }
            self.owned.remove(&s);
        }
        let mut view = self.view.lock().expect("view lock");
        view.owned.remove(&s);
        view.restoring.remove(&s);
        view.published.remove(&s);
        tracing::info!(shard = s, "shard closed");
        Ok(())
    }

    /// Publishes shard `s`'s records after the audit topic's last seq, with their alerts.
    fn publish(&mut self, s: u32) -> Result<(), DistributedError> {
        let Some(owned) = self.owned.get_mut(&s) else { return Ok(()) };
        let (store, head, metrics) = {
            let engine = self.app.read();
            (Arc::clone(engine.store()), engine.head(s).seq, Arc::clone(engine.metrics()))
        };
        while owned.published < head {
            let records: Vec<Record> = store
                .records(s, owned.published + 1)
                .take(PUBLISH_CHUNK)
                .take_while(|r| r.as_ref().map_or(true, |r| r.seq <= head))
                .collect::<Result<_, _>>()?;
            let Some(last) = records.last().map(|r| r.seq) else { break };
            let pending: Vec<_> = store
                .outbox(usize::MAX)?
                .into_iter()
                .filter(|a| a.alert.caused_by.shard == s && a.alert.caused_by.seq <= last)
                .collect();
            let encoded: Vec<(Vec<u8>, Vec<u8>)> =
                records.iter().map(|r| (Record::key(r.shard, r.seq).to_vec(), r.encode_value())).collect();
            let alerts: Vec<_> =
                pending.iter().filter(|a| a.alert.caused_by.seq > owned.published).map(|a| a.alert.clone()).collect();
            owned.publisher.publish(&encoded, &alerts)?;
            let numbers: Vec<u64> = pending.iter().map(|a| a.number).collect();
            store.ack_outbox(&numbers)?;
            let offset = owned.publisher.last_audit_offset();
            if offset >= 0 {
                // Where a later restore of this shard can start reading.
                let mark =
                    CommitBatch { positions: vec![(audit_key(s), format!("{last}@{offset}"))], ..Default::default() };
                store.commit(&mark, self.app.read().counters())?;
            }
            metrics.outbox_depth.sub(numbers.len() as i64);
            owned.published = last;
            self.view.lock().expect("view lock").published.insert(s, last);
            metrics.published_seq.with_label_values(&[&s.to_string()]).set(last as i64);
        }
        Ok(())
    }

    fn set_restoring(&self, s: u32, on: bool) {
        let mut view = self.view.lock().expect("view lock");
        view.owned.insert(s);
        if on {
            view.restoring.insert(s);
        } else {
            view.restoring.remove(&s);
        }
        self.app.read().metrics().restoring.with_label_values(&[&s.to_string()]).set(on as i64);
    }

    fn export_lag(&self) {
        let metrics = Arc::clone(self.app.read().metrics());
        let mut total = 0;
        for owned in self.owned.values() {
            for (id, lag) in owned.input.lag() {
                metrics.consumer_lag.with_label_values(&[&id.topic, &id.partition.to_string()]).set(lag);
                total += lag;
            }
        }
        self.view.lock().expect("view lock").lag = total;
    }
}

/// Key of the (seq, offset) of a record of this shard on the audit topic.
fn audit_key(shard: u32) -> String {
    format!("audit/shard/{shard}")
}

fn parse_audit_mark(text: &str) -> Option<(u64, i64)> {
    let (seq, offset) = text.split_once('@')?;
    Some((seq.parse().ok()?, offset.parse().ok()?))
}

/// Key of a shard's stored input position.
pub fn position_key(shard: u32) -> String {
    format!("{SOURCE}/shard/{shard}")
}

fn chunked<T>(items: Vec<T>, size: usize) -> Vec<Vec<T>> {
    let mut out = Vec::new();
    let mut it = items.into_iter().peekable();
    while it.peek().is_some() {
        out.push(it.by_ref().take(size).collect());
    }
    out
}

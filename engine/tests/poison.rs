//! Invariants 1 and 2 when storage fails: a failed commit leaves nothing of the
//! batch on disk, and the engine refuses further batches instead of serving or
//! extending state the store does not hold; reopening resumes from disk.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use riskstream_engine::metrics::Metrics;
use riskstream_engine::store::*;
use riskstream_engine::{Engine, EngineError};
use riskstream_projections::{Change, RuleConfig};
use riskstream_schemas::RecordRef;

/// A memory store whose commits fail while `broken` is set.
#[derive(Default)]
struct FlakyStore {
    inner: MemoryStore,
    broken: AtomicBool,
}

impl EventStore for FlakyStore {
    fn commit(&self, batch: &CommitBatch, counters: Counters) -> Result<(), StoreError> {
        if self.broken.load(Ordering::SeqCst) {
            return Err(StoreError::Io("disk full".into()));
        }
        self.inner.commit(batch, counters)
    }
    fn shard_count(&self) -> Result<Option<u32>, StoreError> {
        self.inner.shard_count()
    }
    fn set_shard_count(&self, shards: u32) -> Result<(), StoreError> {
        self.inner.set_shard_count(shards)
    }
    fn rules(&self) -> Result<Option<String>, StoreError> {
        self.inner.rules()
    }
    fn set_rules(&self, rules_json: &str) -> Result<(), StoreError> {
        self.inner.set_rules(rules_json)
    }
    fn head(&self, shard: u32) -> Result<ChainHead, StoreError> {
        self.inner.head(shard)
    }
    fn record(&self, shard: u32, seq: u64) -> Result<Option<Record>, StoreError> {
        self.inner.record(shard, seq)
    }
    fn records(&self, shard: u32, from: u64) -> RecordIter<'_> {
        self.inner.records(shard, from)
    }
    fn event_seen(&self, event_id: &str) -> Result<Option<RecordRef>, StoreError> {
        self.inner.event_seen(event_id)
    }
    fn source_position(&self, source: &str) -> Result<Option<String>, StoreError> {
        self.inner.source_position(source)
    }
    fn counters(&self) -> Result<Counters, StoreError> {
        self.inner.counters()
    }
    fn merkle_node(&self, shard: u32, level: u8, index: u64) -> Result<Option<[u8; 32]>, StoreError> {
        self.inner.merkle_node(shard, level, index)
    }
    fn put_checkpoint(&self, c: &riskstream_engine::audit::Checkpoint) -> Result<(), StoreError> {
        self.inner.put_checkpoint(c)
    }
    fn checkpoints(
        &self,
        shard: u32,
        after: u64,
        limit: usize,
    ) -> Result<Vec<riskstream_engine::audit::Checkpoint>, StoreError> {
        self.inner.checkpoints(shard, after, limit)
    }
    fn latest_checkpoint(&self, shard: u32) -> Result<Option<riskstream_engine::audit::Checkpoint>, StoreError> {
        self.inner.latest_checkpoint(shard)
    }
}

impl ProjectionStore for FlakyStore {
    fn committed(&self) -> Box<dyn riskstream_engine::store::CommittedRead + '_> {
        self.inner.committed()
    }
    fn load_shard(&self, shard: u32) -> Result<Vec<Change>, StoreError> {
        self.inner.load_shard(shard)
    }
    fn alerts_after(&self, after: u64, limit: usize) -> Result<Vec<StoredAlert>, StoreError> {
        self.inner.alerts_after(after, limit)
    }
    fn alert_by_id(&self, alert_id: &str) -> Result<Option<StoredAlert>, StoreError> {
        self.inner.alert_by_id(alert_id)
    }
    fn account_alerts(&self, account_id: &str, limit: usize) -> Result<Vec<StoredAlert>, StoreError> {
        self.inner.account_alerts(account_id, limit)
    }
    fn dead_letters_after(&self, after: u64, limit: usize) -> Result<Vec<DeadLetter>, StoreError> {
        self.inner.dead_letters_after(after, limit)
    }
    fn outbox(&self, limit: usize) -> Result<Vec<StoredAlert>, StoreError> {
        self.inner.outbox(limit)
    }
    fn ack_outbox(&self, numbers: &[u64]) -> Result<(), StoreError> {
        self.inner.ack_outbox(numbers)
    }
}

fn open(store: &Arc<FlakyStore>) -> Engine<FlakyStore> {
    Engine::open(Arc::clone(store), 2, RuleConfig::default(), Arc::new(Metrics::new())).unwrap()
}

#[test]
fn a_failed_commit_stops_the_engine_and_loses_nothing_committed() {
    let store = Arc::new(FlakyStore::default());
    let mut engine = open(&store);
    let events = common::workload(4, 20);
    engine.ingest("test", None, common::items(&events)).unwrap();
    let heads: Vec<_> = (0..2).map(|s| store.head(s).unwrap()).collect();
    let cash = engine.account_view("acc-0").unwrap().2.cash;

    store.broken.store(true, Ordering::SeqCst);
    let deposit = common::ev("late", 999, common::deposit("acc-0", "user-0", "5"));
    let err = engine.ingest("test", None, common::items(std::slice::from_ref(&deposit))).unwrap_err();
    assert!(matches!(err, EngineError::Store(StoreError::Io(_))), "{err}");
    assert_eq!((0..2).map(|s| store.head(s).unwrap()).collect::<Vec<_>>(), heads, "nothing of the batch is stored");
    // Queries read the committed store: the failed batch is not visible to them,
    // although the engine's memory applied it.
    assert_eq!(engine.account_view("acc-0").unwrap().2.cash, cash + common::d("5"));
    let read = riskstream_engine::views::account_view(store.as_ref(), 2, &RuleConfig::default(), "acc-0");
    let (_, seq, view) = read.unwrap().unwrap();
    assert_eq!(view.cash, cash);
    assert!(heads.iter().any(|h| h.seq == seq));

    store.broken.store(false, Ordering::SeqCst);
    let again = engine.ingest("test", None, common::items(std::slice::from_ref(&deposit))).unwrap_err();
    assert!(matches!(again, EngineError::Poisoned), "{again}");

    // A restart loads what the store holds, and the event can be sent again.
    let mut reopened = open(&store);
    assert_eq!(reopened.account_view("acc-0").unwrap().2.cash, cash);
    let report = reopened.ingest("test", None, common::items(&[deposit])).unwrap();
    assert_eq!(report.accepted, 1);
    assert_eq!(reopened.account_view("acc-0").unwrap().2.cash, cash + common::d("5"));
}

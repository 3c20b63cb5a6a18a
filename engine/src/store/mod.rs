//! The event store and the projection store: the durable side of the flow.
//! One `commit` writes a batch's records, projection changes, alerts (history and
//! outbox), dead letters and source positions atomically (invariant 2), so both
//! traits are implemented by one backing store.

mod memory;
mod record;
mod rocks;

use std::collections::BTreeMap;

use riskstream_projections::{Change, Table};
use riskstream_schemas::{Alert, RecordRef};
use serde::{Deserialize, Serialize};

use crate::audit::{Checkpoint, Frontier, Node};

pub use memory::MemoryStore;
pub use record::{chain_hash, hex, ChainHead, Hash, Record, GENESIS};
pub use rocks::{RocksDbStore, META_FAMILY, RECORDS_FAMILY};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backing store failed; the engine stops rather than diverge from disk.
    #[error("storage failed: {0}")]
    Io(String),
    /// Stored bytes do not decode; run `riskstream verify`.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The data dir was made with other settings.
    #[error("{0}")]
    Mismatch(String),
}

/// A stored row that does not load is corrupt data.
impl From<riskstream_schemas::Rejection> for StoreError {
    fn from(r: riskstream_schemas::Rejection) -> Self {
        StoreError::Corrupt(r.reason)
    }
}

/// An alert as kept in the history and the outbox, numbered in commit order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredAlert {
    pub number: u64,
    #[serde(flatten)]
    pub alert: Alert,
}

/// A rejected event, kept with why and where it came from (invariant 6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub number: u64,
    /// Wall-clock time of the rejection (provenance only; no rule reads it).
    pub received_at: String,
    pub source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub reason: String,
    pub raw: String,
}

/// Everything one batch writes, committed atomically.
#[derive(Debug, Default)]
pub struct CommitBatch {
    pub records: Vec<Record>,
    pub event_ids: Vec<(String, RecordRef)>,
    pub changes: Vec<(u32, Change)>,
    pub alerts: Vec<StoredAlert>,
    pub dead_letters: Vec<DeadLetter>,
    pub positions: Vec<(String, String)>,
    pub heads: Vec<(u32, ChainHead)>,
    /// The alerts already left (a shard restored from the audit topic, whose alerts
    /// were published with its records): history only, not the outbox.
    pub alerts_delivered: bool,
}

impl CommitBatch {
    pub fn is_empty(&self) -> bool {
        self.records.is_empty() && self.dead_letters.is_empty() && self.positions.is_empty()
    }
}

/// Next numbers to hand out; stored with each commit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub alerts: u64,
    pub dead_letters: u64,
}

/// Called with each projection row a scan lends: table, key, value.
pub type RowVisitor<'a> = dyn FnMut(Table, &str, &[u8]) -> Result<(), StoreError> + 'a;

pub type RecordIter<'a> = Box<dyn Iterator<Item = Result<Record, StoreError>> + 'a>;

/// The hash-chained log, per shard.
pub trait EventStore: Send + Sync {
    /// Writes the whole batch or nothing.
    fn commit(&self, batch: &CommitBatch, counters: Counters) -> Result<(), StoreError>;
    /// The shard count the data dir was created with (`None` when new).
    fn shard_count(&self) -> Result<Option<u32>, StoreError>;
    fn set_shard_count(&self, shards: u32) -> Result<(), StoreError>;
    /// The rule settings (JSON) the data dir was created with, so a replay applies
    /// the same rules (`None` when new).
    fn rules(&self) -> Result<Option<String>, StoreError>;
    fn set_rules(&self, rules_json: &str) -> Result<(), StoreError>;
    fn head(&self, shard: u32) -> Result<ChainHead, StoreError>;
    fn record(&self, shard: u32, seq: u64) -> Result<Option<Record>, StoreError>;
    /// Records of `shard` with seq >= `from`, in key order, as stored (gaps and all).
    fn records(&self, shard: u32, from: u64) -> RecordIter<'_>;
    fn event_seen(&self, event_id: &str) -> Result<Option<RecordRef>, StoreError>;
    fn source_position(&self, source: &str) -> Result<Option<String>, StoreError>;
    fn counters(&self) -> Result<Counters, StoreError>;
    /// A node of the shard's Merkle tree over its records' chain hashes (RFC 6962;
    /// leaf i is record seq i + 1): the root of leaves [index * 2^level,
    /// (index + 1) * 2^level). `commit` writes the nodes its records complete.
    fn merkle_node(&self, shard: u32, level: u8, index: u64) -> Result<Option<Hash>, StoreError>;
    /// Keeps a signed checkpoint (after the commit of the records it covers).
    fn put_checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), StoreError>;
    /// The shard's checkpoints with tree size above `after`, oldest first, at most `limit`.
    fn checkpoints(&self, shard: u32, after: u64, limit: usize) -> Result<Vec<Checkpoint>, StoreError>;
    /// The shard's newest checkpoint.
    fn latest_checkpoint(&self, shard: u32) -> Result<Option<Checkpoint>, StoreError>;
    /// Writes a consistent, openable copy of the whole store (log and projections,
    /// as of the last commit) to `dir`, which must not exist yet.
    fn snapshot(&self, dir: &std::path::Path) -> Result<(), StoreError> {
        Err(StoreError::Mismatch(format!("this store keeps no snapshots (asked for {})", dir.display())))
    }
}

/// Nodes to write (shard, node) and each shard's frontier after them.
pub(crate) type MerkleGrowth = (Vec<(u32, Node)>, BTreeMap<u32, Frontier>);

/// The Merkle nodes a batch's records add, shard by shard, from each shard's
/// frontier: taken from `cache`, else loaded from the store, else (a data dir made
/// before the tree existed) rebuilt from the shard's records. Returns the nodes and
/// the frontiers after the batch, to cache once the batch is written.
pub(crate) fn merkle_nodes<S: EventStore + ?Sized>(
    store: &S,
    cache: &BTreeMap<u32, Frontier>,
    records: &[Record],
) -> Result<MerkleGrowth, StoreError> {
    let mut nodes = Vec::new();
    let mut after: BTreeMap<u32, Frontier> = BTreeMap::new();
    for r in records {
        let frontier = match after.entry(r.shard) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => e.insert(match cache.get(&r.shard) {
                Some(f) => f.clone(),
                None => load_frontier(store, r.shard, &mut nodes)?,
            }),
        };
        if r.seq != frontier.size() + 1 {
            return Err(StoreError::Corrupt(format!(
                "record ({}, {}) does not extend shard {}'s Merkle tree of {} leaves",
                r.shard,
                r.seq,
                r.shard,
                frontier.size()
            )));
        }
        let mut out = Vec::new();
        frontier.append(&r.hash, &mut out);
        nodes.extend(out.into_iter().map(|n| (r.shard, n)));
    }
    Ok((nodes, after))
}

/// A shard's frontier at its head; rebuilt from its records (their nodes pushed to
/// `nodes`) when the tree was never written.
fn load_frontier<S: EventStore + ?Sized>(
    store: &S,
    shard: u32,
    nodes: &mut Vec<(u32, Node)>,
) -> Result<Frontier, StoreError> {
    let size = store.head(shard)?.seq;
    if let Some(f) = Frontier::load(size, |level, index| store.merkle_node(shard, level, index))? {
        return Ok(f);
    }
    tracing::info!(shard, records = size, "building the Merkle tree of a log written before it existed");
    let mut frontier = Frontier::default();
    let mut out = Vec::new();
    for r in store.records(shard, 1).take_while(|r| r.as_ref().map_or(true, |r| r.seq <= size)) {
        frontier.append(&r?.hash, &mut out);
    }
    nodes.extend(out.into_iter().map(|n| (shard, n)));
    Ok(frontier)
}

/// Key of a checkpoint: shard (u32 BE), tree size (u64 BE).
pub(crate) fn checkpoint_key(shard: u32, tree_size: u64) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..4].copy_from_slice(&shard.to_be_bytes());
    k[4..].copy_from_slice(&tree_size.to_be_bytes());
    k
}

/// Key of a Merkle node: shard (u32 BE), level (u8), index (u64 BE).
pub(crate) fn merkle_key(shard: u32, level: u8, index: u64) -> [u8; 13] {
    let mut k = [0u8; 13];
    k[..4].copy_from_slice(&shard.to_be_bytes());
    k[4] = level;
    k[5..].copy_from_slice(&index.to_be_bytes());
    k
}

/// One consistent read of what is committed (a RocksDB snapshot): a reader sees
/// whole batches only (invariant 1) and never waits for one in flight.
pub trait CommittedRead {
    fn head(&self, shard: u32) -> Result<ChainHead, StoreError>;
    /// The projection row `key` of `table` in `shard`.
    fn row(&self, shard: u32, table: Table, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// The rows of `table` in `shard` whose key starts with `prefix`, in key order.
    fn rows_with_prefix(&self, shard: u32, table: Table, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
}

/// The projections, alert history, outbox and dead letters.
pub trait ProjectionStore: Send + Sync {
    /// A consistent read of the last commit, for the query path.
    fn committed(&self) -> Box<dyn CommittedRead + '_>;
    /// Every projection row of a shard, in table then key order.
    fn load_shard(&self, shard: u32) -> Result<Vec<Change>, StoreError>;
    /// The same rows handed to `row` one at a time, so opening a large shard does
    /// not hold a copy of all of it.
    fn for_each_row(&self, shard: u32, row: &mut RowVisitor<'_>) -> Result<(), StoreError> {
        for c in self.load_shard(shard)? {
            row(c.table, &c.key, c.value.as_deref().unwrap_or_default())?;
        }
        Ok(())
    }
    /// Alerts numbered above `after`, oldest first.
    fn alerts_after(&self, after: u64, limit: usize) -> Result<Vec<StoredAlert>, StoreError>;
    /// The alert with this id (ids are unique: they hash the causing record).
    fn alert_by_id(&self, alert_id: &str) -> Result<Option<StoredAlert>, StoreError>;
    /// The last `limit` alerts of one account, oldest first.
    fn account_alerts(&self, account_id: &str, limit: usize) -> Result<Vec<StoredAlert>, StoreError>;
    fn dead_letters_after(&self, after: u64, limit: usize) -> Result<Vec<DeadLetter>, StoreError>;
    /// Alerts not yet delivered to every sink, oldest first.
    fn outbox(&self, limit: usize) -> Result<Vec<StoredAlert>, StoreError>;
    fn ack_outbox(&self, numbers: &[u64]) -> Result<(), StoreError>;
}

/// Key of a projection row: shard (u32 BE) then the row key.
pub(crate) fn projection_key(shard: u32, key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(4 + key.len());
    k.extend_from_slice(&shard.to_be_bytes());
    k.extend_from_slice(key.as_bytes());
    k
}

/// Key of an account's alert index entry: account id, 0x1f, alert number (u64 BE).
pub(crate) fn account_alert_key(account_id: &str, number: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(account_id.len() + 9);
    k.extend_from_slice(account_id.as_bytes());
    k.push(0x1f);
    k.extend_from_slice(&number.to_be_bytes());
    k
}

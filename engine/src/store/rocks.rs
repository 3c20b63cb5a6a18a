//! `RocksDbStore`: both store traits over one RocksDB, one column family per kind
//! of data (key layout in ARCHITECTURE.md). A batch is one `WriteBatch`.

use std::path::Path;

use riskstream_projections::{Change, Table};
use riskstream_schemas::RecordRef;
use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, Direction, IteratorMode, Options, ReadOptions, WriteBatch,
    WriteOptions, DB,
};

use super::*;

/// One raw row of a column family.
type KeyValue = (Box<[u8]>, Box<[u8]>);

const RECORDS: &str = "records";
const META: &str = "meta";
const EVENT_IDS: &str = "event_ids";
const ALERTS: &str = "alerts";
const ACCOUNT_ALERTS: &str = "account_alerts";
const OUTBOX: &str = "outbox";
const DEAD_LETTERS: &str = "dead_letters";
const MERKLE: &str = "merkle";
const CHECKPOINTS: &str = "checkpoints";
const ALERT_IDS: &str = "alert_ids";
const LOG_FAMILIES: [&str; 10] =
    [RECORDS, META, EVENT_IDS, ALERTS, ACCOUNT_ALERTS, OUTBOX, DEAD_LETTERS, MERKLE, CHECKPOINTS, ALERT_IDS];

const SHARDS_KEY: &[u8] = b"shards";
/// Most write-ahead log kept unflushed (see `open`).
const WAL_LIMIT_BYTES: u64 = 128 << 20;
/// One block cache for every column family. Left unset, RocksDB gives each of the
/// ~25 families its own 32 MiB cache; the engine keeps its state in memory and
/// reads the store mostly for queries and replays, so one small cache serves.
const BLOCK_CACHE_BYTES: usize = 32 << 20;
/// The price rows' memtable (see `families`).
const PRICES_MEMTABLE_BYTES: usize = 4 << 20;
/// The risk marks' memtable (see `families`).
const MARKS_MEMTABLE_BYTES: usize = 8 << 20;
/// The id families' memtable Bloom filter, as a share of the memtable (64 MiB): 1.3
/// MiB, about ten bits for each of the million-odd ids a memtable holds.
const ID_MEMTABLE_BLOOM_RATIO: f64 = 0.02;
const COUNTERS_KEY: &[u8] = b"counters";
const RULES_KEY: &[u8] = b"rules";

fn head_key(shard: u32) -> Vec<u8> {
    [b"head/".as_slice(), &shard.to_be_bytes()].concat()
}

fn position_key(source: &str) -> Vec<u8> {
    [b"pos/".as_slice(), source.as_bytes()].concat()
}

fn io(e: rocksdb::Error) -> StoreError {
    StoreError::Io(e.to_string())
}

fn json<T: serde::Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("stored types serialise")
}

fn parse<T: serde::de::DeserializeOwned>(what: &str, v: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(v).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

fn decode_head(shard: u32, value: Option<Vec<u8>>) -> Result<ChainHead, StoreError> {
    let Some(v) = value else { return Ok(ChainHead::default()) };
    if v.len() != 40 {
        return Err(StoreError::Corrupt(format!("head of shard {shard}")));
    }
    Ok(ChainHead { seq: u64::from_be_bytes(v[..8].try_into().expect("8")), hash: v[8..].try_into().expect("32") })
}

/// Every column family, each with the one shared block cache.
fn families() -> Vec<ColumnFamilyDescriptor> {
    let cache = Cache::new_lru_cache(BLOCK_CACHE_BYTES);
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(&cache);
    let mut family = Options::default();
    family.set_block_based_table_factory(&table);
    // Every tick rewrites its symbol's price row in each shard: a few thousand keys,
    // each rewritten many times a second. In a default (64 MiB) memtable each insert
    // searches a skip list of a million versions, most of it out of cache (a fifth of
    // a paced run's ingest, by `perf`); a small one stays in cache, and its flush keeps
    // one version of each key.
    let mut prices = family.clone();
    prices.set_write_buffer_size(PRICES_MEMTABLE_BYTES);
    prices.set_max_write_buffer_number(4);
    // An account's risk marks are rewritten on each new high or new deepest drawdown:
    // nine in ten rows of a busy batch. In a 64 MiB memtable (a quarter of a million
    // versions) they were most of the skip-list searches that took a fifth of a paced
    // run's ingest thread; 8 MiB stays in cache, and four let a flush finish before
    // writes wait.
    let mut marks = family.clone();
    marks.set_write_buffer_size(MARKS_MEMTABLE_BYTES);
    marks.set_max_write_buffer_number(4);
    // Every event with an id is looked up before it is sequenced, and nearly every
    // lookup misses: without filters a miss searches the memtable's skip list (a
    // million keys) and every table's index (a tenth of the ingest thread at
    // saturation, by `perf`). Bloom filters, on the tables and the memtable, answer a
    // miss from a few bits. Alert ids are looked up the same way.
    let mut ids = family.clone();
    let mut filtered = BlockBasedOptions::default();
    filtered.set_block_cache(&cache);
    filtered.set_bloom_filter(10.0, false);
    ids.set_block_based_table_factory(&filtered);
    ids.set_memtable_whole_key_filtering(true);
    ids.set_memtable_prefix_bloom_ratio(ID_MEMTABLE_BLOOM_RATIO);
    let names = LOG_FAMILIES.iter().copied().chain(Table::ALL.iter().map(|t| t.name()));
    let options = |name: &str| match name {
        n if n == Table::Prices.name() => prices.clone(),
        n if n == Table::RiskMarks.name() => marks.clone(),
        EVENT_IDS | ALERT_IDS => ids.clone(),
        _ => family.clone(),
    };
    names.map(|name| ColumnFamilyDescriptor::new(name, options(name))).collect()
}

pub struct RocksDbStore {
    db: DB,
    write: WriteOptions,
    /// Each shard's Merkle frontier after the last commit (loaded on first use).
    frontiers: std::sync::Mutex<std::collections::BTreeMap<u32, crate::audit::Frontier>>,
}

impl RocksDbStore {
    /// Opens (or creates) the store in `dir`. With `sync`, every commit waits for
    /// fsync; without it a commit survives a process crash but not a power loss.
    pub fn open(dir: &Path, sync: bool) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Io(format!("cannot create {}: {e}", dir.display())))?;
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
        // Bounds what a restart after a crash replays from the write-ahead log: past
        // this, the column families holding the oldest writes are flushed.
        opts.set_max_total_wal_size(WAL_LIMIT_BYTES);
        let db = DB::open_cf_descriptors(&opts, dir, families()).map_err(|e| {
            StoreError::Io(format!("cannot open the data dir {} (is another riskstream using it?): {e}", dir.display()))
        })?;
        let mut write = WriteOptions::default();
        write.set_sync(sync);
        Ok(RocksDbStore { db, write, frontiers: Default::default() })
    }

    /// Whether `dir` holds a data dir (RocksDB writes `CURRENT` when it creates one).
    pub fn exists(dir: &Path) -> bool {
        dir.join("CURRENT").exists()
    }

    /// Opens an existing store for reading only, beside a running engine.
    pub fn open_read_only(dir: &Path) -> Result<Self, StoreError> {
        if !Self::exists(dir) {
            return Err(StoreError::Io(format!("no riskstream data dir at {}", dir.display())));
        }
        let opts = Options::default();
        let db = DB::open_cf_descriptors_read_only(&opts, dir, families(), false)
            .map_err(|e| StoreError::Io(format!("cannot open the data dir {}: {e}", dir.display())))?;
        Ok(RocksDbStore { db, write: WriteOptions::default(), frontiers: Default::default() })
    }

    fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        self.db.cf_handle(name).expect("every column family is created at open")
    }

    fn get(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.db.get_cf(self.cf(cf), key).map_err(io)
    }

    /// Entries of `cf` from `start` while the key starts with `prefix`.
    fn scan<'a>(
        &'a self,
        cf: &str,
        start: &[u8],
        prefix: Vec<u8>,
    ) -> impl Iterator<Item = Result<KeyValue, StoreError>> + 'a {
        self.db
            .iterator_cf(self.cf(cf), IteratorMode::From(start, Direction::Forward))
            .map(|r| r.map_err(io))
            .take_while(move |r| r.as_ref().map_or(true, |(k, _)| k.starts_with(&prefix)))
    }

    /// Deletes a stored key: only for the tamper tests and repair tools.
    pub fn raw_delete(&self, cf: &str, key: &[u8]) -> Result<(), StoreError> {
        self.db.delete_cf(self.cf(cf), key).map_err(io)
    }

    /// Overwrites a stored value: only for the tamper tests and repair tools.
    pub fn raw_put(&self, cf: &str, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.db.put_cf(self.cf(cf), key, value).map_err(io)
    }

    pub fn raw_get(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.get(cf, key)
    }

    fn put_changes(&self, wb: &mut WriteBatch, changes: &[(u32, Change)]) {
        for (shard, c) in changes {
            let key = projection_key(*shard, &c.key);
            let cf = self.cf(c.table.name());
            match &c.value {
                Some(v) => wb.put_cf(cf, key, v),
                None => wb.delete_cf(cf, key),
            }
        }
    }

    fn put_alerts(&self, wb: &mut WriteBatch, alerts: &[StoredAlert], delivered: bool) {
        for a in alerts {
            let value = json(a);
            wb.put_cf(self.cf(ALERTS), a.number.to_be_bytes(), &value);
            if !delivered {
                wb.put_cf(self.cf(OUTBOX), a.number.to_be_bytes(), &value);
            }
            wb.put_cf(self.cf(ACCOUNT_ALERTS), account_alert_key(&a.alert.account_id, a.number), []);
            wb.put_cf(self.cf(ALERT_IDS), a.alert.alert_id.as_bytes(), a.number.to_be_bytes());
        }
    }
}

impl EventStore for RocksDbStore {
    fn commit(&self, batch: &CommitBatch, counters: Counters) -> Result<(), StoreError> {
        let mut frontiers = self.frontiers.lock().unwrap_or_else(|p| p.into_inner());
        let (nodes, after) = merkle_nodes(self, &frontiers, &batch.records)?;
        let mut wb = WriteBatch::default();
        for r in &batch.records {
            wb.put_cf(self.cf(RECORDS), Record::key(r.shard, r.seq), r.encode_value());
        }
        for (shard, (level, index, hash)) in &nodes {
            wb.put_cf(self.cf(MERKLE), merkle_key(*shard, *level, *index), hash);
        }
        for (id, at) in &batch.event_ids {
            wb.put_cf(self.cf(EVENT_IDS), id.as_bytes(), Record::key(at.shard, at.seq));
        }
        self.put_changes(&mut wb, &batch.changes);
        self.put_alerts(&mut wb, &batch.alerts, batch.alerts_delivered);
        for d in &batch.dead_letters {
            wb.put_cf(self.cf(DEAD_LETTERS), d.number.to_be_bytes(), json(d));
        }
        for (source, position) in &batch.positions {
            wb.put_cf(self.cf(META), position_key(source), position.as_bytes());
        }
        for (shard, head) in &batch.heads {
            wb.put_cf(self.cf(META), head_key(*shard), [head.seq.to_be_bytes().as_slice(), &head.hash].concat());
        }
        wb.put_cf(
            self.cf(META),
            COUNTERS_KEY,
            [counters.alerts.to_be_bytes(), counters.dead_letters.to_be_bytes()].concat(),
        );
        self.db.write_opt(wb, &self.write).map_err(io)?;
        frontiers.extend(after);
        Ok(())
    }

    fn merkle_node(&self, shard: u32, level: u8, index: u64) -> Result<Option<Hash>, StoreError> {
        let Some(v) = self.get(MERKLE, &merkle_key(shard, level, index))? else { return Ok(None) };
        let hash = v.as_slice().try_into().map_err(|_| {
            StoreError::Corrupt(format!("Merkle node ({shard}, level {level}, index {index}) is {} bytes", v.len()))
        })?;
        Ok(Some(hash))
    }

    fn put_checkpoint(&self, c: &crate::audit::Checkpoint) -> Result<(), StoreError> {
        self.db.put_cf_opt(self.cf(CHECKPOINTS), checkpoint_key(c.shard, c.tree_size), json(c), &self.write).map_err(io)
    }

    fn checkpoints(&self, shard: u32, after: u64, limit: usize) -> Result<Vec<crate::audit::Checkpoint>, StoreError> {
        let start = checkpoint_key(shard, after.saturating_add(1));
        let mut out = Vec::new();
        for row in self.scan(CHECKPOINTS, &start, shard.to_be_bytes().to_vec()).take(limit) {
            let (_, v) = row?;
            out.push(parse("checkpoint", &v)?);
        }
        Ok(out)
    }

    fn latest_checkpoint(&self, shard: u32) -> Result<Option<crate::audit::Checkpoint>, StoreError> {
        let end = checkpoint_key(shard, u64::MAX);
        let mode = IteratorMode::From(&end, Direction::Reverse);
        match self.db.iterator_cf(self.cf(CHECKPOINTS), mode).next() {
            Some(Ok((k, v))) if k.starts_with(&shard.to_be_bytes()) => Ok(Some(parse("checkpoint", &v)?)),
            Some(Err(e)) => Err(io(e)),
            _ => Ok(None),
        }
    }

    fn snapshot(&self, dir: &Path) -> Result<(), StoreError> {
        let checkpoint = rocksdb::checkpoint::Checkpoint::new(&self.db).map_err(io)?;
        checkpoint
            .create_checkpoint(dir)
            .map_err(|e| StoreError::Io(format!("cannot write a snapshot to {}: {e}", dir.display())))
    }

    fn shard_count(&self) -> Result<Option<u32>, StoreError> {
        match self.get(META, SHARDS_KEY)? {
            None => Ok(None),
            Some(v) => Ok(Some(u32::from_be_bytes(
                v.as_slice().try_into().map_err(|_| StoreError::Corrupt("shard count".into()))?,
            ))),
        }
    }

    fn set_shard_count(&self, shards: u32) -> Result<(), StoreError> {
        self.db.put_cf_opt(self.cf(META), SHARDS_KEY, shards.to_be_bytes(), &self.write).map_err(io)
    }

    fn rules(&self) -> Result<Option<String>, StoreError> {
        Ok(self.get(META, RULES_KEY)?.map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    fn set_rules(&self, rules_json: &str) -> Result<(), StoreError> {
        self.db.put_cf_opt(self.cf(META), RULES_KEY, rules_json.as_bytes(), &self.write).map_err(io)
    }

    fn head(&self, shard: u32) -> Result<ChainHead, StoreError> {
        decode_head(shard, self.get(META, &head_key(shard))?)
    }

    fn record(&self, shard: u32, seq: u64) -> Result<Option<Record>, StoreError> {
        self.get(RECORDS, &Record::key(shard, seq))?.map(|v| Record::decode_value(shard, seq, &v)).transpose()
    }

    fn records(&self, shard: u32, from: u64) -> RecordIter<'_> {
        let it = self.scan(RECORDS, &Record::key(shard, from), shard.to_be_bytes().to_vec()).map(|r| {
            let (k, v) = r?;
            let (shard, seq) = Record::parse_key(&k)?;
            Record::decode_value(shard, seq, &v)
        });
        Box::new(it)
    }

    fn event_seen(&self, event_id: &str) -> Result<Option<RecordRef>, StoreError> {
        let Some(v) = self.get(EVENT_IDS, event_id.as_bytes())? else { return Ok(None) };
        let (shard, seq) = Record::parse_key(&v)?;
        Ok(Some(RecordRef { shard, seq }))
    }

    fn source_position(&self, source: &str) -> Result<Option<String>, StoreError> {
        Ok(self.get(META, &position_key(source))?.map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    fn counters(&self) -> Result<Counters, StoreError> {
        let Some(v) = self.get(META, COUNTERS_KEY)? else { return Ok(Counters::default()) };
        if v.len() != 16 {
            return Err(StoreError::Corrupt("counters".into()));
        }
        Ok(Counters {
            alerts: u64::from_be_bytes(v[..8].try_into().expect("8")),
            dead_letters: u64::from_be_bytes(v[8..].try_into().expect("8")),
        })
    }
}

/// The last commit as a RocksDB snapshot: heads and rows agree with each other
/// whatever commits while it is read, and reading it takes no lock.
struct RocksDbCommitted<'a> {
    store: &'a RocksDbStore,
    snapshot: rocksdb::SnapshotWithThreadMode<'a, DB>,
}

impl CommittedRead for RocksDbCommitted<'_> {
    fn head(&self, shard: u32) -> Result<ChainHead, StoreError> {
        decode_head(shard, self.snapshot.get_cf(self.store.cf(META), head_key(shard)).map_err(io)?)
    }

    fn row(&self, shard: u32, table: Table, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.snapshot.get_cf(self.store.cf(table.name()), projection_key(shard, key)).map_err(io)
    }

    fn rows_with_prefix(&self, shard: u32, table: Table, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let start = projection_key(shard, prefix);
        let mut it = self.snapshot.raw_iterator_cf(self.store.cf(table.name()));
        it.seek(&start);
        let mut out = Vec::new();
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            if !k.starts_with(&start) {
                break;
            }
            let key = std::str::from_utf8(&k[4..])
                .map_err(|_| StoreError::Corrupt(format!("{} key is not UTF-8", table.name())))?;
            out.push((key.to_string(), v.to_vec()));
            it.next();
        }
        it.status().map_err(io)?;
        Ok(out)
    }
}

impl ProjectionStore for RocksDbStore {
    fn committed(&self) -> Box<dyn CommittedRead + '_> {
        Box::new(RocksDbCommitted { store: self, snapshot: self.db.snapshot() })
    }

    fn load_shard(&self, shard: u32) -> Result<Vec<Change>, StoreError> {
        let prefix = shard.to_be_bytes().to_vec();
        let mut out = Vec::new();
        for table in Table::ALL {
            for row in self.scan(table.name(), &prefix, prefix.clone()) {
                let (k, v) = row?;
                let key = String::from_utf8(k[4..].to_vec())
                    .map_err(|_| StoreError::Corrupt(format!("{} key is not UTF-8", table.name())))?;
                out.push(Change { table, key, value: Some(v.into_vec()) });
            }
        }
        Ok(out)
    }

    fn for_each_row(&self, shard: u32, row: &mut RowVisitor<'_>) -> Result<(), StoreError> {
        let prefix = shard.to_be_bytes();
        for table in Table::ALL {
            // A raw iterator lends keys and values: no allocation per row. The load
            // reads each row once, so its blocks stay out of the cache.
            let mut scan = ReadOptions::default();
            scan.fill_cache(false);
            let mut it = self.db.raw_iterator_cf_opt(self.cf(table.name()), scan);
            it.seek(prefix);
            while let (Some(k), Some(v)) = (it.key(), it.value()) {
                if !k.starts_with(&prefix) {
                    break;
                }
                let key = std::str::from_utf8(&k[4..])
                    .map_err(|_| StoreError::Corrupt(format!("{} key is not UTF-8", table.name())))?;
                row(table, key, v)?;
                it.next();
            }
            it.status().map_err(io)?;
        }
        Ok(())
    }

    fn alerts_after(&self, after: u64, limit: usize) -> Result<Vec<StoredAlert>, StoreError> {
        let start = after.saturating_add(1).to_be_bytes();
        self.scan(ALERTS, &start, Vec::new()).take(limit).map(|r| parse("alert", &r?.1)).collect()
    }

    fn alert_by_id(&self, alert_id: &str) -> Result<Option<StoredAlert>, StoreError> {
        let Some(number) = self.get(ALERT_IDS, alert_id.as_bytes())? else { return Ok(None) };
        self.get(ALERTS, &number)?.map(|v| parse("alert", &v)).transpose()
    }

    fn account_alerts(&self, account_id: &str, limit: usize) -> Result<Vec<StoredAlert>, StoreError> {
        let prefix = [account_id.as_bytes(), &[0x1f]].concat();
        let keys: Vec<Box<[u8]>> =
            self.scan(ACCOUNT_ALERTS, &prefix, prefix.clone()).map(|r| r.map(|(k, _)| k)).collect::<Result<_, _>>()?;
        let skip = keys.len().saturating_sub(limit);
        keys[skip..]
            .iter()
            .filter_map(|k| {
                let number = &k[k.len() - 8..];
                self.get(ALERTS, number).transpose()
            })
            .map(|v| parse("alert", &v?))
            .collect()
    }

    fn dead_letters_after(&self, after: u64, limit: usize) -> Result<Vec<DeadLetter>, StoreError> {
        let start = after.saturating_add(1).to_be_bytes();
        self.scan(DEAD_LETTERS, &start, Vec::new()).take(limit).map(|r| parse("dead letter", &r?.1)).collect()
    }

    fn outbox(&self, limit: usize) -> Result<Vec<StoredAlert>, StoreError> {
        self.scan(OUTBOX, &[], Vec::new()).take(limit).map(|r| parse("outbox entry", &r?.1)).collect()
    }

    fn ack_outbox(&self, numbers: &[u64]) -> Result<(), StoreError> {
        let mut wb = WriteBatch::default();
        for n in numbers {
            wb.delete_cf(self.cf(OUTBOX), n.to_be_bytes());
        }
        self.db.write_opt(wb, &self.write).map_err(io)
    }
}

pub const RECORDS_FAMILY: &str = RECORDS;
pub const META_FAMILY: &str = META;

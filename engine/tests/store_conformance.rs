//! One conformance suite, run against every store implementation (memory and
//! RocksDB), so the engine can rely on the same semantics from both.

mod common;

use riskstream_engine::audit::{leaf_hash, node_hash, root_of, MerkleTree, NodeStore};
use riskstream_engine::store::*;
use riskstream_projections::{Change, Table};
use riskstream_schemas::{AlertKind, AlertState, Priority, RecordRef};

fn alert(number: u64, account: &str) -> StoredAlert {
    StoredAlert {
        number,
        alert: riskstream_schemas::Alert {
            alert_id: format!("id-{number}"),
            kind: AlertKind::Drift,
            state: AlertState::Raised,
            priority: Priority::Medium,
            account_id: account.into(),
            user_id: "u".into(),
            ts: common::ts(0),
            caused_by: RecordRef { shard: 1, seq: number },
            rule: "drift".into(),
            value: common::d("0.07"),
            threshold: common::d("0.05"),
            message: "m".into(),
            details: None,
        },
    }
}

fn conformance<S: EventStore + ProjectionStore>(store: &S) {
    assert_eq!(store.shard_count().unwrap(), None);
    store.set_shard_count(2).unwrap();
    assert_eq!(store.shard_count().unwrap(), Some(2));
    assert_eq!(store.head(1).unwrap(), ChainHead::default());

    let r1 = Record::next(ChainHead::default(), 1, "t#0".into(), 9, b"one".to_vec());
    let r2 = Record::next(r1.head(), 1, "t#1".into(), 9, b"two".to_vec());
    let other = Record::next(ChainHead::default(), 0, "t#2".into(), 9, b"zero".to_vec());
    let batch = CommitBatch {
        records: vec![r1.clone(), r2.clone(), other.clone()],
        event_ids: vec![("e1".into(), RecordRef { shard: 1, seq: 1 })],
        changes: vec![
            (1, Change { table: Table::Cash, key: "b".into(), value: Some(b"\"2\"".to_vec()) }),
            (1, Change { table: Table::Accounts, key: "a".into(), value: Some(b"{}".to_vec()) }),
            (0, Change { table: Table::Cash, key: "z".into(), value: Some(b"\"9\"".to_vec()) }),
        ],
        alerts: vec![alert(1, "acc-x"), alert(2, "acc-y"), alert(3, "acc-x")],
        dead_letters: vec![DeadLetter {
            number: 1,
            received_at: "now".into(),
            source: "t".into(),
            index: Some(4),
            field: Some("quantity".into()),
            reason: "must be positive".into(),
            raw: "{}".into(),
        }],
        positions: vec![("file:x".into(), "17".into())],
        heads: vec![(0, other.head()), (1, r2.head())],
        alerts_delivered: false,
    };
    store.commit(&batch, Counters { alerts: 3, dead_letters: 1 }).unwrap();

    assert_eq!(store.head(1).unwrap(), r2.head());
    assert_eq!(store.record(1, 2).unwrap(), Some(r2.clone()));
    // The commit extended each shard's Merkle tree over its record hashes (RFC 6962).
    let (l1, l2) = (leaf_hash(&r1.hash), leaf_hash(&r2.hash));
    assert_eq!(store.merkle_node(1, 0, 0).unwrap(), Some(l1));
    assert_eq!(store.merkle_node(1, 0, 1).unwrap(), Some(l2));
    assert_eq!(store.merkle_node(1, 1, 0).unwrap(), Some(node_hash(&l1, &l2)));
    assert_eq!(store.merkle_node(0, 0, 0).unwrap(), Some(leaf_hash(&other.hash)));
    assert_eq!(store.merkle_node(0, 1, 0).unwrap(), None, "one leaf completes no parent");
    assert_eq!(store.record(1, 3).unwrap(), None);
    let shard1: Vec<Record> = store.records(1, 0).map(Result::unwrap).collect();
    assert_eq!(shard1, vec![r1, r2.clone()], "records of one shard only, in seq order");
    let from2: Vec<u64> = store.records(1, 2).map(|r| r.unwrap().seq).collect();
    assert_eq!(from2, vec![2]);
    assert_eq!(store.event_seen("e1").unwrap(), Some(RecordRef { shard: 1, seq: 1 }));
    assert_eq!(store.event_seen("e2").unwrap(), None);
    assert_eq!(store.source_position("file:x").unwrap().as_deref(), Some("17"));
    assert_eq!(store.counters().unwrap(), Counters { alerts: 3, dead_letters: 1 });

    // The read path's view of the same commit: heads and rows of one shard.
    {
        let read = store.committed();
        assert_eq!(read.head(1).unwrap(), r2.head());
        assert_eq!(read.head(0).unwrap(), other.head());
        assert_eq!(read.row(1, Table::Cash, "b").unwrap().as_deref(), Some(b"\"2\"".as_slice()));
        assert_eq!(read.row(0, Table::Cash, "b").unwrap(), None, "rows are per shard");
        assert_eq!(read.rows_with_prefix(1, Table::Cash, "").unwrap(), vec![("b".to_string(), b"\"2\"".to_vec())]);
        assert_eq!(read.rows_with_prefix(1, Table::Accounts, "a").unwrap().len(), 1);
        assert!(read.rows_with_prefix(1, Table::Accounts, "ab").unwrap().is_empty());
    }

    let rows = store.load_shard(1).unwrap();
    let keys: Vec<(Table, &str)> = rows.iter().map(|c| (c.table, c.key.as_str())).collect();
    assert_eq!(keys, vec![(Table::Accounts, "a"), (Table::Cash, "b")], "table order, then key order, one shard");

    assert_eq!(store.alerts_after(1, 10).unwrap().iter().map(|a| a.number).collect::<Vec<_>>(), vec![2, 3]);
    assert_eq!(store.alerts_after(0, 2).unwrap().len(), 2);
    assert_eq!(store.account_alerts("acc-x", 10).unwrap().iter().map(|a| a.number).collect::<Vec<_>>(), vec![1, 3]);
    assert_eq!(store.account_alerts("acc-x", 1).unwrap().iter().map(|a| a.number).collect::<Vec<_>>(), vec![3]);
    assert_eq!(store.dead_letters_after(0, 10).unwrap()[0].field.as_deref(), Some("quantity"));

    assert_eq!(store.outbox(10).unwrap().len(), 3);
    store.ack_outbox(&[1, 3]).unwrap();
    assert_eq!(store.outbox(10).unwrap().iter().map(|a| a.number).collect::<Vec<_>>(), vec![2]);
    assert_eq!(store.alerts_after(0, 10).unwrap().len(), 3, "acking leaves the history");

    let delete = CommitBatch {
        changes: vec![(1, Change { table: Table::Cash, key: "b".into(), value: None })],
        ..Default::default()
    };
    store.commit(&delete, Counters { alerts: 3, dead_letters: 1 }).unwrap();
    assert_eq!(store.load_shard(1).unwrap().len(), 1);

    // Alerts restored with their records (already published) skip the outbox.
    let restored = CommitBatch { alerts: vec![alert(4, "acc-z")], alerts_delivered: true, ..Default::default() };
    store.commit(&restored, Counters { alerts: 4, dead_letters: 1 }).unwrap();
    assert_eq!(store.alerts_after(3, 10).unwrap().iter().map(|a| a.number).collect::<Vec<_>>(), vec![4]);
    assert_eq!(store.outbox(10).unwrap().iter().map(|a| a.number).collect::<Vec<_>>(), vec![2]);

    // A record that does not extend its shard's tree is refused, and nothing is written.
    let stray = Record::next(r2.head(), 1, "t#9".into(), 9, b"gap".to_vec());
    let gap = Record { seq: 5, ..stray };
    let refused = store.commit(&CommitBatch { records: vec![gap], ..Default::default() }, Counters::default());
    assert!(matches!(&refused, Err(StoreError::Corrupt(m)) if m.contains("does not extend")), "{refused:?}");
    assert_eq!(store.record(1, 5).unwrap(), None);
}

/// Appends `n` chained records to shard 0 in batches of `per_batch`.
fn append_records<S: EventStore>(store: &S, n: usize, per_batch: usize) -> Vec<Record> {
    let mut head = store.head(0).unwrap();
    let mut all = Vec::new();
    let mut left = n;
    while left > 0 {
        let mut batch = CommitBatch::default();
        for _ in 0..per_batch.min(left) {
            let r = Record::next(head, 0, "t".into(), 1, head.seq.to_be_bytes().to_vec());
            head = r.head();
            batch.records.push(r);
            left -= 1;
        }
        batch.heads.push((0, head));
        all.extend(batch.records.clone());
        store.commit(&batch, Counters::default()).unwrap();
    }
    all
}

/// Every root of the stored tree equals the root computed from scratch.
fn assert_tree_matches<S: EventStore>(store: &S, records: &[Record]) {
    struct Stored<'a, S>(&'a S);
    impl<S: EventStore> NodeStore for Stored<'_, S> {
        type Error = StoreError;
        fn node(&self, level: u8, index: u64) -> Result<Option<[u8; 32]>, StoreError> {
            self.0.merkle_node(0, level, index)
        }
        fn put_node(&mut self, _: u8, _: u64, _: [u8; 32]) -> Result<(), StoreError> {
            unreachable!("read only")
        }
    }
    let leaves: Vec<[u8; 32]> = records.iter().map(|r| leaf_hash(&r.hash)).collect();
    let tree = MerkleTree::open(Stored(store), leaves.len() as u64);
    for size in 1..=leaves.len() {
        assert_eq!(tree.root(size as u64).unwrap(), root_of(&leaves[..size]), "root of {size} leaves");
    }
}

#[test]
fn merkle_tree_grows_across_batches_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut records = {
        let store = RocksDbStore::open(dir.path(), false).unwrap();
        append_records(&store, 37, 5)
    };
    let store = RocksDbStore::open(dir.path(), false).unwrap();
    records.extend(append_records(&store, 40, 7));
    assert_tree_matches(&store, &records);
    let memory = MemoryStore::new();
    let in_memory = append_records(&memory, 77, 11);
    assert_tree_matches(&memory, &in_memory);
}

#[test]
fn memory_store_conforms() {
    conformance(&MemoryStore::new());
}

#[test]
fn rocksdb_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    conformance(&RocksDbStore::open(dir.path(), false).unwrap());
}

/// A committed read is a RocksDB snapshot: a commit made while it is open is not
/// part of it (so one query's rows and head agree), and the next read sees it.
#[test]
fn a_rocksdb_committed_read_does_not_see_later_commits() {
    let dir = tempfile::tempdir().unwrap();
    let store = RocksDbStore::open(dir.path(), false).unwrap();
    let row = |v: &str| CommitBatch {
        changes: vec![(0, Change { table: Table::Cash, key: "a".into(), value: Some(v.as_bytes().to_vec()) })],
        heads: vec![(0, ChainHead { seq: v.len() as u64, hash: [0; 32] })],
        ..Default::default()
    };
    store.commit(&row("\"1\""), Counters::default()).unwrap();
    let read = store.committed();
    store.commit(&row("\"22\""), Counters::default()).unwrap();
    assert_eq!(read.row(0, Table::Cash, "a").unwrap().as_deref(), Some(b"\"1\"".as_slice()));
    assert_eq!(read.head(0).unwrap().seq, 3);
    drop(read);
    assert_eq!(store.committed().row(0, Table::Cash, "a").unwrap().as_deref(), Some(b"\"22\"".as_slice()));
    assert_eq!(store.committed().head(0).unwrap().seq, 4);
}

#[test]
fn rocksdb_store_keeps_everything_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let r1 = Record::next(ChainHead::default(), 0, "t".into(), 1, b"x".to_vec());
    {
        let store = RocksDbStore::open(dir.path(), true).unwrap();
        store.set_shard_count(1).unwrap();
        let batch = CommitBatch { records: vec![r1.clone()], heads: vec![(0, r1.head())], ..Default::default() };
        store.commit(&batch, Counters { alerts: 0, dead_letters: 0 }).unwrap();
    }
    let store = RocksDbStore::open_read_only(dir.path()).unwrap();
    assert_eq!(store.shard_count().unwrap(), Some(1));
    assert_eq!(store.head(0).unwrap(), r1.head());
    assert_eq!(store.record(0, 1).unwrap(), Some(r1));
}

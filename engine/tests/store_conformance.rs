//! One conformance suite, run against every store implementation (memory and
//! RocksDB), so the engine can rely on the same semantics from both.

mod common;

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
    assert_eq!(store.record(1, 3).unwrap(), None);
    let shard1: Vec<Record> = store.records(1, 0).map(Result::unwrap).collect();
    assert_eq!(shard1, vec![r1, r2.clone()], "records of one shard only, in seq order");
    let from2: Vec<u64> = store.records(1, 2).map(|r| r.unwrap().seq).collect();
    assert_eq!(from2, vec![2]);
    assert_eq!(store.event_seen("e1").unwrap(), Some(RecordRef { shard: 1, seq: 1 }));
    assert_eq!(store.event_seen("e2").unwrap(), None);
    assert_eq!(store.source_position("file:x").unwrap().as_deref(), Some("17"));
    assert_eq!(store.counters().unwrap(), Counters { alerts: 3, dead_letters: 1 });

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

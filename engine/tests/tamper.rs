//! Invariant 5: verify detects a modified, deleted, inserted or swapped record and
//! names the first bad (shard, seq). Each case tampers with a real RocksDB dir.

mod common;

use std::sync::Arc;

use riskstream_engine::metrics::Metrics;
use riskstream_engine::store::*;
use riskstream_engine::verify::verify;
use riskstream_engine::Engine;
use riskstream_projections::RuleConfig;

/// A data dir with one shard and a chain of at least 10 records.
fn chain() -> (tempfile::TempDir, RocksDbStore, u64) {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Arc::new(RocksDbStore::open(dir.path(), false).unwrap());
        let mut engine = Engine::open(store, 1, RuleConfig::default(), Arc::new(Metrics::new())).unwrap();
        for chunk in common::workload(3, 30).chunks(4) {
            engine.ingest("test", None, common::items(chunk)).unwrap();
        }
    }
    let store = RocksDbStore::open(dir.path(), false).unwrap();
    let head = store.head(0).unwrap().seq;
    assert!(head >= 10, "workload too small: {head}");
    (dir, store, head)
}

fn first_bad(store: &RocksDbStore) -> (u32, u64, String) {
    let report = verify(store, |_, _| {}).unwrap();
    let b = report.first_bad.expect("tampering must be detected");
    (b.shard, b.seq, b.reason)
}

fn value(store: &RocksDbStore, seq: u64) -> Vec<u8> {
    store.raw_get(RECORDS_FAMILY, &Record::key(0, seq)).unwrap().unwrap()
}

#[test]
fn intact_chain_verifies() {
    let (_dir, store, head) = chain();
    let report = verify(&store, |_, _| {}).unwrap();
    assert_eq!(report.first_bad, None);
    assert_eq!(report.records, head);
}

#[test]
fn modified_payload_is_named() {
    let (_dir, store, _) = chain();
    let mut v = value(&store, 5);
    *v.last_mut().unwrap() ^= 0x01;
    store.raw_put(RECORDS_FAMILY, &Record::key(0, 5), &v).unwrap();
    let (shard, seq, reason) = first_bad(&store);
    assert_eq!((shard, seq), (0, 5));
    assert!(reason.contains("hash does not match"), "{reason}");
}

#[test]
fn modified_and_rehashed_record_breaks_the_next_link() {
    let (_dir, store, _) = chain();
    let mut r = Record::decode_value(0, 5, &value(&store, 5)).unwrap();
    r.payload.push(0);
    r.hash = chain_hash(&r.prev_hash, 0, 5, r.fingerprint, &r.payload);
    store.raw_put(RECORDS_FAMILY, &Record::key(0, 5), &r.encode_value()).unwrap();
    let (_, seq, reason) = first_bad(&store);
    assert_eq!(seq, 6);
    assert!(reason.contains("prev_hash"), "{reason}");
}

#[test]
fn deleted_record_is_named() {
    let (_dir, store, _) = chain();
    store.raw_delete(RECORDS_FAMILY, &Record::key(0, 7)).unwrap();
    let (_, seq, reason) = first_bad(&store);
    assert_eq!(seq, 7);
    assert!(reason.contains("missing"), "{reason}");
}

#[test]
fn deleted_tail_disagrees_with_the_head() {
    let (_dir, store, head) = chain();
    store.raw_delete(RECORDS_FAMILY, &Record::key(0, head)).unwrap();
    let (_, seq, reason) = first_bad(&store);
    assert_eq!(seq, head);
    assert!(reason.contains("stored head"), "{reason}");
}

#[test]
fn inserted_record_is_named() {
    let (_dir, store, head) = chain();
    // Shift records 5.. up by one and put a well-linked forgery at 5.
    for seq in (5..=head).rev() {
        store.raw_put(RECORDS_FAMILY, &Record::key(0, seq + 1), &value(&store, seq)).unwrap();
    }
    let prev = Record::decode_value(0, 4, &value(&store, 4)).unwrap();
    let forged = Record::next(prev.head(), 0, "forged".into(), prev.fingerprint, prev.payload.clone());
    store.raw_put(RECORDS_FAMILY, &Record::key(0, 5), &forged.encode_value()).unwrap();
    let (_, seq, _) = first_bad(&store);
    assert_eq!(seq, 6, "the first original record after the forgery no longer links");
}

#[test]
fn appended_record_without_head_is_named() {
    let (_dir, store, head) = chain();
    let last = Record::decode_value(0, head, &value(&store, head)).unwrap();
    let extra = Record::next(last.head(), 0, "forged".into(), last.fingerprint, last.payload.clone());
    store.raw_put(RECORDS_FAMILY, &Record::key(0, head + 1), &extra.encode_value()).unwrap();
    let (_, seq, reason) = first_bad(&store);
    assert_eq!(seq, head + 1);
    assert!(reason.contains("stored head"), "{reason}");
}

#[test]
fn swapped_records_are_named() {
    let (_dir, store, _) = chain();
    let (v5, v6) = (value(&store, 5), value(&store, 6));
    store.raw_put(RECORDS_FAMILY, &Record::key(0, 5), &v6).unwrap();
    store.raw_put(RECORDS_FAMILY, &Record::key(0, 6), &v5).unwrap();
    let (_, seq, _) = first_bad(&store);
    assert_eq!(seq, 5);
}

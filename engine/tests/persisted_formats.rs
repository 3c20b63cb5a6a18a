//! Every persisted format reads back every value that can reach it, edge values
//! first, then generated ones: snapshot manifests, checkpoints, chain heads,
//! counters, records, stored alerts and dead letters, through the real RocksDB
//! store where the store encodes them. (A snapshot manifest once wrote an empty
//! shard's clock, `i64::MIN`, in a form its reader refused, and the data dir could
//! not be opened again.) Projection rows are round-tripped by
//! `projections/tests/properties.rs`, event times by `schemas/tests/codec_roundtrip.rs`.

use std::path::Path;

use proptest::prelude::*;
use riskstream_engine::audit::snapshot::{self, Manifest, SnapshotHead};
use riskstream_engine::audit::CheckpointSigner;
use riskstream_engine::store::{
    hex, ChainHead, CommitBatch, Counters, DeadLetter, EventStore, ProjectionStore, Record, RocksDbStore, StoredAlert,
};
use riskstream_schemas::Timestamp;

// The contract's strategies (alerts, edge times) from the schemas crate's tests.
#[path = "../../schemas/tests/common/mod.rs"]
mod contract;
use contract::{alert, EDGE_MICROS};

const EDGE_U64: [u64; 4] = [0, 1, u64::MAX - 1, u64::MAX];

fn any_ts() -> impl Strategy<Value = Timestamp> {
    prop_oneof![1 => proptest::sample::select(EDGE_MICROS.to_vec()), 2 => any::<i64>()].prop_map(Timestamp)
}

fn any_u64() -> impl Strategy<Value = u64> {
    prop_oneof![1 => proptest::sample::select(EDGE_U64.to_vec()), 2 => any::<u64>()]
}

/// Text of any kind: control characters, quotes, non-ASCII.
fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), "\\PC{0,40}", any::<String>()]
}

fn head(shard: u32, seq: u64, clock: Timestamp) -> SnapshotHead {
    SnapshotHead { shard, seq, hash: hex(&[seq as u8; 32]), clock }
}

fn manifest(heads: Vec<SnapshotHead>, checkpoint_ts: Timestamp) -> Manifest {
    let signer = CheckpointSigner::from_seed([7; 32]);
    let checkpoints = heads
        .iter()
        .filter(|h| h.seq > 0)
        .map(|h| signer.sign(h.shard, h.seq, &[1; 32], &[2; 32], checkpoint_ts))
        .collect();
    Manifest { name: snapshot::name_for(&heads), created_at: Timestamp(0).to_rfc3339(), heads, checkpoints }
}

/// A store with one committed record in shard 0, so a snapshot has a log to copy.
fn store(dir: &Path) -> RocksDbStore {
    let store = RocksDbStore::open(dir, false).unwrap();
    let record = Record::next(ChainHead { seq: 0, hash: [0; 32] }, 0, "test".into(), 1, b"{}".to_vec());
    let batch = CommitBatch { heads: vec![(0, record.head())], records: vec![record], ..Default::default() };
    store.commit(&batch, Counters::default()).unwrap();
    store
}

#[test]
fn a_snapshot_of_empty_shards_reads_back_and_is_used() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store(&tmp.path().join("db"));
    let dir = tmp.path().join("snapshots");
    // Shard 0 holds a record; the others are empty, with the clock of a shard that
    // has applied nothing (what the engine wrote and could not read back).
    let live = store.head(0).unwrap();
    let mut heads = vec![SnapshotHead { shard: 0, seq: live.seq, hash: hex(&live.hash), clock: Timestamp(0) }];
    heads.extend((1..4).map(|shard| head(shard, 0, Timestamp(i64::MIN))));
    let m = manifest(heads, Timestamp(0));
    let taken = snapshot::take(&store, &dir, m.clone(), 3).unwrap();
    let listing = snapshot::scan(&dir).unwrap();
    assert!(listing.set_aside.is_empty(), "{:?}", listing.set_aside);
    assert_eq!(listing.snapshots.len(), 1);
    assert_eq!(listing.snapshots[0].manifest, m);
    assert_eq!(listing.snapshots[0].head(2).unwrap().clock, Timestamp(i64::MIN));
    let checked = snapshot::check(&listing.snapshots[0], None);
    // The manifest's checkpoint was signed over made-up roots: `check` must refuse
    // it for that reason, having read the manifest.
    let err = checked.unwrap_err().to_string();
    assert!(err.contains("does not have the checkpoint's root"), "{err} ({})", taken.dir.display());
}

#[test]
fn manifests_round_trip_at_the_edges() {
    let path = Path::new("manifest.json");
    for micros in EDGE_MICROS {
        let heads = EDGE_U64.iter().enumerate().map(|(i, &seq)| head(i as u32, seq, Timestamp(micros))).collect();
        let m = manifest(heads, Timestamp(micros));
        assert_eq!(Manifest::from_json(&m.to_json(), path).unwrap(), m, "clock {micros}");
    }
}

#[test]
fn heads_and_counters_round_trip_at_the_edges() {
    let tmp = tempfile::tempdir().unwrap();
    let store = RocksDbStore::open(tmp.path(), false).unwrap();
    for (i, &seq) in EDGE_U64.iter().enumerate() {
        let shard = [0, 1, u32::MAX - 1, u32::MAX][i];
        let head = ChainHead { seq, hash: [i as u8; 32] };
        let counters = Counters { alerts: seq, dead_letters: EDGE_U64[3 - i] };
        store.commit(&CommitBatch { heads: vec![(shard, head)], ..Default::default() }, counters).unwrap();
        assert_eq!(store.head(shard).unwrap(), head);
        assert_eq!(store.counters().unwrap(), counters);
    }
}

fn dead_letter() -> impl Strategy<Value = DeadLetter> {
    (
        any_text(),
        any_text(),
        proptest::option::of(any::<usize>()),
        proptest::option::of(any_text()),
        any_text(),
        any_text(),
    )
        .prop_map(|(received_at, source, index, field, reason, raw)| DeadLetter {
            number: 0,
            received_at,
            source,
            index,
            field,
            reason,
            raw,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn manifests_round_trip(
        heads in proptest::collection::vec((any::<u32>(), any_u64(), any_ts()), 0..6),
        checkpoint_ts in any_ts(),
    ) {
        let heads = heads.into_iter().map(|(shard, seq, clock)| head(shard, seq, clock)).collect();
        let m = manifest(heads, checkpoint_ts);
        prop_assert_eq!(Manifest::from_json(&m.to_json(), Path::new("manifest.json")).unwrap(), m);
    }

    /// Checkpoints go through the store, and their signatures still verify: the
    /// signed text holds the time as the checkpoint's JSON does.
    #[test]
    fn checkpoints_round_trip_and_still_verify(
        shard in any::<u32>(), size in any_u64(), ts in any_ts(), root in any::<[u8; 32]>(),
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let store = RocksDbStore::open(tmp.path(), false).unwrap();
        let signer = CheckpointSigner::from_seed([9; 32]);
        let c = signer.sign(shard, size, &root, &[3; 32], ts);
        store.put_checkpoint(&c).unwrap();
        let back = store.latest_checkpoint(shard).unwrap().unwrap();
        prop_assert_eq!(&back, &c);
        prop_assert!(back.verify(&signer.public_key()).is_ok());
    }

    #[test]
    fn records_round_trip(
        shard in any::<u32>(), seq in any_u64(), fingerprint in any_u64(),
        source in prop_oneof![any_text(), Just("é".repeat(32_767)), Just("x".repeat(65_535))],
        payload in proptest::collection::vec(any::<u8>(), 0..300),
        prev in any::<[u8; 32]>(),
    ) {
        let r = Record::next(ChainHead { seq: seq.saturating_sub(1), hash: prev }, shard, source, fingerprint, payload);
        let back = Record::decode_value(r.shard, r.seq, &r.encode_value()).unwrap();
        prop_assert_eq!(back, r);
    }

    /// Alerts (history, outbox, index by id) and dead letters go through the store.
    #[test]
    fn alerts_and_dead_letters_round_trip(
        alerts in proptest::collection::vec(alert(), 1..4),
        letters in proptest::collection::vec(dead_letter(), 1..4),
        first in 0u64..u64::MAX - 8,
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let store = RocksDbStore::open(tmp.path(), false).unwrap();
        let alerts: Vec<StoredAlert> =
            alerts.into_iter().enumerate().map(|(i, alert)| StoredAlert { number: first + 1 + i as u64, alert }).collect();
        let letters: Vec<DeadLetter> =
            letters.into_iter().enumerate().map(|(i, d)| DeadLetter { number: first + 1 + i as u64, ..d }).collect();
        let batch = CommitBatch { alerts: alerts.clone(), dead_letters: letters.clone(), ..Default::default() };
        store.commit(&batch, Counters::default()).unwrap();
        prop_assert_eq!(&store.alerts_after(first, 10).unwrap(), &alerts);
        prop_assert_eq!(&store.outbox(10).unwrap(), &alerts);
        prop_assert_eq!(&store.dead_letters_after(first, 10).unwrap(), &letters);
        for a in &alerts {
            prop_assert_eq!(store.alert_by_id(&a.alert.alert_id).unwrap().map(|s| s.alert.alert_id.clone()),
                Some(a.alert.alert_id.clone()));
        }
    }
}

//! `verify` beyond the chain (tamper.rs): the Merkle tree and the signed checkpoints
//! are re-derived from the records, and `--from` a checkpoint walks only the tail.
//! Each case tampers with a real RocksDB dir written by the engine.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use riskstream_engine::audit::checkpoint::unhex;
use riskstream_engine::audit::{Checkpoint, CheckpointSigner};
use riskstream_engine::metrics::Metrics;
use riskstream_engine::store::*;
use riskstream_engine::verify::{verify_with, Defect, Start, VerifyError, VerifyOptions, VerifyReport};
use riskstream_engine::Engine;
use riskstream_projections::RuleConfig;

const SEED: [u8; 32] = [9; 32];
const SHARDS: u32 = 2;

/// A data dir of two shards, a checkpoint signed every 4 records of a shard.
fn signed_log() -> (tempfile::TempDir, RocksDbStore) {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Arc::new(RocksDbStore::open(dir.path(), false).unwrap());
        let mut engine = Engine::open(store, SHARDS, RuleConfig::default(), Arc::new(Metrics::new())).unwrap();
        engine.enable_checkpoints(CheckpointSigner::from_seed(SEED), 4).unwrap();
        for chunk in common::workload(8, 40).chunks(5) {
            engine.ingest("test", None, common::items(chunk)).unwrap();
        }
    }
    let store = RocksDbStore::open(dir.path(), false).unwrap();
    for shard in 0..SHARDS {
        assert!(store.checkpoints(shard, 0, 100).unwrap().len() >= 3, "workload too small for shard {shard}");
    }
    (dir, store)
}

fn key() -> Option<ed25519_dalek::VerifyingKey> {
    Some(CheckpointSigner::from_seed(SEED).public_key())
}

fn check(store: &RocksDbStore, start: Start) -> VerifyReport {
    let opts = VerifyOptions { public_key: key(), start, all_nodes: false };
    verify_with(store, &opts, &|_, _| {}).unwrap()
}

fn head(store: &RocksDbStore, shard: u32) -> u64 {
    store.head(shard).unwrap().seq
}

fn checkpoints(store: &RocksDbStore, shard: u32) -> Vec<Checkpoint> {
    store.checkpoints(shard, 0, 1000).unwrap()
}

fn put_checkpoint(store: &RocksDbStore, c: &Checkpoint) {
    let key = [c.shard.to_be_bytes().as_slice(), &c.tree_size.to_be_bytes()].concat();
    store.raw_put("checkpoints", &key, &serde_json::to_vec(c).unwrap()).unwrap();
}

fn put_node(store: &RocksDbStore, shard: u32, level: u8, index: u64, hash: &Hash) {
    let key = [shard.to_be_bytes().as_slice(), &[level], &index.to_be_bytes()].concat();
    store.raw_put("merkle", &key, hash).unwrap();
}

fn record(store: &RocksDbStore, shard: u32, seq: u64) -> Record {
    store.record(shard, seq).unwrap().unwrap()
}

fn first_bad(report: &VerifyReport) -> &riskstream_engine::verify::Broken {
    report.first_bad.as_ref().expect("tampering must be detected")
}

#[test]
fn clean_log_verifies_with_its_tree_and_checkpoints() {
    let (_dir, store) = signed_log();
    let report = check(&store, Start::Genesis);
    assert_eq!(report.first_bad, None, "{report:?}");
    assert_eq!(report.records, (0..SHARDS).map(|s| head(&store, s)).sum::<u64>());
    let stored: usize = (0..SHARDS).map(|s| checkpoints(&store, s).len()).sum();
    assert_eq!(report.checkpoints, stored as u64, "every stored checkpoint is checked");
    assert!(report.public_key.is_some() && report.bytes > report.records * 75 && report.skipped == 0);

    let opts = VerifyOptions { public_key: None, start: Start::Genesis, all_nodes: true };
    let every_node = verify_with(&store, &opts, &|_, _| {}).unwrap();
    assert_eq!(every_node.first_bad, None, "{every_node:?}");
    assert_eq!((every_node.public_key, every_node.checkpoints), (None, stored as u64), "roots checked without a key");
}

#[test]
fn tampered_merkle_node_is_caught() {
    let (_dir, store) = signed_log();
    let h = head(&store, 0);
    // The largest complete subtree: part of the root at the head and at every size past it.
    let level = (u64::BITS - 1 - h.leading_zeros()) as u8;
    put_node(&store, 0, level, 0, &[7; 32]);
    let report = check(&store, Start::Genesis);
    let bad = first_bad(&report);
    assert_eq!((bad.shard, bad.kind), (0, Defect::Tree), "{bad}");
    assert!(bad.tree_size.unwrap() >= 1 << level && bad.reason.contains("stored nodes give root"), "{bad}");
    assert_eq!(report.broken.len(), 1, "shard 1 is intact");
}

#[test]
fn a_tampered_leaf_node_is_caught_comparing_every_node() {
    let (_dir, store) = signed_log();
    put_node(&store, 1, 0, 2, &[7; 32]);
    let opts = VerifyOptions { public_key: key(), start: Start::Genesis, all_nodes: true };
    let report = verify_with(&store, &opts, &|_, _| {}).unwrap();
    let bad = first_bad(&report);
    assert_eq!((bad.shard, bad.seq, bad.kind), (1, 3, Defect::Tree), "{bad}");
    assert!(bad.reason.contains("(level 0, index 2)"), "{bad}");
}

#[test]
fn checkpoint_with_altered_root_or_forged_signature_is_caught() {
    let (_dir, store) = signed_log();
    let c = checkpoints(&store, 1)[1].clone();
    put_checkpoint(&store, &Checkpoint { root: "ab".repeat(32), ..c.clone() });
    let bad = first_bad(&check(&store, Start::Genesis)).clone();
    assert_eq!((bad.shard, bad.kind, bad.tree_size), (1, Defect::Checkpoint, Some(c.tree_size)));
    assert!(bad.reason.contains("signature does not verify"), "{bad}");
    let unkeyed = verify_with(&store, &VerifyOptions::default(), &|_, _| {}).unwrap();
    assert!(first_bad(&unkeyed).reason.contains("give root"), "without a key the root still differs");

    let mut forged = c.clone();
    let flipped = if forged.signature.starts_with('0') { "1" } else { "0" };
    forged.signature.replace_range(0..1, flipped);
    put_checkpoint(&store, &forged);
    let bad = first_bad(&check(&store, Start::Genesis)).clone();
    assert_eq!((bad.kind, bad.tree_size), (Defect::Checkpoint, Some(c.tree_size)));
    assert!(bad.to_string().starts_with(&format!("shard 1 checkpoint at tree size {}", c.tree_size)), "{bad}");
}

/// Records 5.. rewritten, rehashed and re-linked, with a matching head: every chain
/// check passes, but the first checkpoint signed after record 5 no longer matches.
#[test]
fn a_consistently_rewritten_chain_is_caught_by_a_signed_checkpoint() {
    let (_dir, store) = signed_log();
    let h = head(&store, 0);
    let mut prev = record(&store, 0, 4).head();
    for seq in 5..=h {
        let r = record(&store, 0, seq);
        let mut payload = r.payload.clone();
        if seq == 5 {
            payload.push(0);
        }
        let forged = Record::next(prev, 0, r.source.clone(), r.fingerprint, payload);
        store.raw_put(RECORDS_FAMILY, &Record::key(0, seq), &forged.encode_value()).unwrap();
        prev = forged.head();
    }
    let head_value = [prev.seq.to_be_bytes().as_slice(), &prev.hash].concat();
    store.raw_put(META_FAMILY, &[b"head/".as_slice(), &0u32.to_be_bytes()].concat(), &head_value).unwrap();
    let signed_after = checkpoints(&store, 0).into_iter().find(|c| c.tree_size >= 5).unwrap();
    let bad = first_bad(&check(&store, Start::Genesis)).clone();
    assert_eq!((bad.kind, bad.tree_size), (Defect::Checkpoint, Some(signed_after.tree_size)), "{bad}");
    assert!(bad.reason.contains("rewritten after it was signed"), "{bad}");
}

#[test]
fn from_a_checkpoint_only_the_tail_is_walked() {
    let (_dir, store) = signed_log();
    let c = checkpoints(&store, 0)[1].clone();
    let (h0, h1) = (head(&store, 0), head(&store, 1));
    assert!(c.tree_size < h0);
    let report = check(&store, Start::Checkpoints(vec![c.clone()]));
    assert_eq!(report.first_bad, None, "{report:?}");
    assert_eq!(report.records, h0 - c.tree_size + h1, "shard 1 has no checkpoint given: walked whole");
    assert_eq!((report.skipped, report.started_from.clone()), (c.tree_size, vec![(0, c.tree_size)]));
    let stored_after =
        checkpoints(&store, 0).iter().filter(|x| x.tree_size > c.tree_size).count() + checkpoints(&store, 1).len();
    assert_eq!(report.checkpoints, stored_after as u64, "checkpoints inside the tail are checked");

    let latest = check(&store, Start::Latest);
    assert_eq!(latest.first_bad, None, "{latest:?}");
    let covered: u64 = (0..SHARDS).map(|s| store.latest_checkpoint(s).unwrap().unwrap().tree_size).sum();
    assert_eq!((latest.records, latest.skipped), (h0 + h1 - covered, covered));
}

#[test]
fn from_a_checkpoint_a_tampered_tail_or_anchor_record_is_caught() {
    let (_dir, store) = signed_log();
    let c = checkpoints(&store, 0)[1].clone();
    let tail = c.tree_size + 2;
    let original = store.raw_get(RECORDS_FAMILY, &Record::key(0, tail)).unwrap().unwrap();
    let mut v = original.clone();
    *v.last_mut().unwrap() ^= 1;
    store.raw_put(RECORDS_FAMILY, &Record::key(0, tail), &v).unwrap();
    let report = check(&store, Start::Checkpoints(vec![c.clone()]));
    let bad = first_bad(&report);
    assert_eq!((bad.shard, bad.seq, bad.kind), (0, tail, Defect::Record), "{bad}");
    assert!(bad.reason.contains("hash does not match"), "{bad}");
    store.raw_put(RECORDS_FAMILY, &Record::key(0, tail), &original).unwrap();

    let mut anchor = record(&store, 0, c.tree_size);
    anchor.payload.push(1);
    anchor.hash = chain_hash(&anchor.prev_hash, 0, anchor.seq, anchor.fingerprint, &anchor.payload);
    store.raw_put(RECORDS_FAMILY, &Record::key(0, c.tree_size), &anchor.encode_value()).unwrap();
    let report = check(&store, Start::Checkpoints(vec![c.clone()]));
    let bad = first_bad(&report);
    assert_eq!((bad.seq, bad.kind), (c.tree_size, Defect::Record), "{bad}");
    assert!(bad.reason.contains("not the last leaf of the signed tree"), "{bad}");
}

#[test]
fn from_a_checkpoint_of_another_key_or_without_a_key_is_refused() {
    let (_dir, store) = signed_log();
    let c = checkpoints(&store, 0)[1].clone();
    let digest = unhex::<32>("state digest", &c.state_digest).unwrap();
    let other = CheckpointSigner::from_seed([8; 32]).sign(0, c.tree_size, &c.root_hash().unwrap(), &digest, c.ts);
    let report = check(&store, Start::Checkpoints(vec![other]));
    let bad = first_bad(&report);
    assert_eq!((bad.kind, bad.tree_size), (Defect::Checkpoint, Some(c.tree_size)), "{bad}");
    assert!(bad.reason.contains("not by the expected key"), "{bad}");
    assert_eq!(report.records, head(&store, 1), "shard 0 is not walked from an untrusted start");

    let unkeyed = VerifyOptions { public_key: None, start: Start::Checkpoints(vec![c]), all_nodes: false };
    let refused = verify_with(&store, &unkeyed, &|_, _| {});
    assert!(matches!(refused, Err(VerifyError::BadStart(ref m)) if m.contains("public key")), "{refused:?}");
}

fn riskstream(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_riskstream")).args(args).output().expect("the binary runs");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

fn write_key(dir: &Path) {
    std::fs::write(dir.join("checkpoint.key"), hex(&SEED)).unwrap();
}

#[test]
fn cli_verifies_from_latest_without_progress_output_when_not_a_terminal() {
    let (dir, store) = signed_log();
    let covered: u64 = (0..SHARDS).map(|s| store.latest_checkpoint(s).unwrap().unwrap().tree_size).sum();
    let total: u64 = (0..SHARDS).map(|s| head(&store, s)).sum();
    drop(store);
    let d = dir.path().to_str().unwrap();

    let (code, out, err) = riskstream(&["verify", "--data-dir", d]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.starts_with(&format!("ok: {total} records in 2 shards verified in ")), "{out}");
    assert!(out.contains("records/s") && out.contains("MB/s") && out.contains("signatures NOT checked"), "{out}");
    assert_eq!(err, "", "no progress bar when stderr is not a terminal");

    write_key(dir.path());
    let (code, out, err) = riskstream(&["verify", "--data-dir", d, "--from", "latest"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.starts_with(&format!("ok: {} records in 2 shards", total - covered)), "{out}");
    assert!(
        out.contains("(roots and signatures, key ") && out.contains(&format!("{covered} records covered")),
        "{out}"
    );
    assert_eq!(err, "");

    let (code, out, _) = riskstream(&["verify", "--data-dir", d, "--from", "latest", "--json"]);
    assert_eq!(code, Some(0));
    let json = &out[..out.find("\nok: ").unwrap()];
    let report: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!((report["records"].as_u64(), report["skipped"].as_u64()), (Some(total - covered), Some(covered)));
}

#[test]
fn cli_starts_from_a_checkpoint_file_and_refuses_one_of_another_key() {
    let (dir, store) = signed_log();
    let c = checkpoints(&store, 1)[0].clone();
    drop(store);
    write_key(dir.path());
    let d = dir.path().to_str().unwrap();
    let save = |name: &str, c: &Checkpoint| {
        let file = dir.path().join(name);
        std::fs::write(&file, serde_json::to_vec(c).unwrap()).unwrap();
        file.to_str().unwrap().to_string()
    };
    let (code, out, err) = riskstream(&["verify", "--data-dir", d, "--from", &save("cp.json", &c)]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains(&format!("shard 1 at {}", c.tree_size)), "{out}");

    let digest = unhex::<32>("state digest", &c.state_digest).unwrap();
    let other = CheckpointSigner::from_seed([8; 32]).sign(1, c.tree_size, &c.root_hash().unwrap(), &digest, c.ts);
    let (code, out, _) = riskstream(&["verify", "--data-dir", d, "--from", &save("other.json", &other)]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.starts_with(&format!("BROKEN: shard 1 checkpoint at tree size {}", c.tree_size)), "{out}");
    assert!(out.contains("not by the expected key"), "{out}");
}

//! Snapshots never stop the engine: a data dir with empty shards snapshots, reopens
//! and answers (the empty shard's clock once made its manifest unreadable, which
//! stopped ingest and every later open); an unreadable snapshot is set aside and
//! removed by the next snapshot's housekeeping; a snapshot that cannot be written
//! leaves its batch committed and acknowledged once, and is tried again later.
//! Through the real binary (`import`, `query`, `snapshot list`, `verify`,
//! `replay --check`) and the engine on RocksDB.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use riskstream_engine::audit::snapshot;
use riskstream_engine::metrics::Metrics;
use riskstream_engine::store::RocksDbStore;
use riskstream_engine::Engine;
use riskstream_projections::RuleConfig;
use riskstream_schemas::{json, placement::shard_for, Event};
use rust_decimal::Decimal;
use serde_json::Value;

const SHARDS: u32 = 4;
const SNAPSHOT_EVERY: u64 = 200;

fn riskstream(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_riskstream")).args(args).output().expect("the binary runs")
}

fn ok(out: Output, what: &str) -> String {
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{what} failed: {stdout}{stderr}");
    assert!(!stderr.contains("batch failed"), "{what}: {stderr}");
    format!("{stdout}{stderr}")
}

fn query(dir: &Path, path: &str) -> Value {
    let out = riskstream(&["query", "--data-dir", dir.to_str().unwrap(), path]);
    let stdout = out.stdout.clone();
    ok(out, &format!("query {path}"));
    serde_json::from_slice(&stdout).unwrap()
}

fn cash(view: &Value) -> Decimal {
    view["cash"].as_str().unwrap().parse().unwrap()
}

/// The first `n` user ids `user-<i>` placed on each of `shards` (of SHARDS).
fn users_on(shards: &[u32]) -> Vec<String> {
    shards.iter().map(|&s| (0..).map(|i| format!("user-{i}")).find(|u| shard_for(u, SHARDS) == s).unwrap()).collect()
}

/// Each user opens account `acc-<user>`, then `deposits` deposits of 1.25 go
/// round-robin over the accounts, event ids numbered from `first`.
fn events(users: &[String], deposits: usize, first: usize, open: bool) -> Vec<Event> {
    let mut out = Vec::new();
    if open {
        for u in users {
            out.push(common::ev(&format!("open-{u}"), 0, common::opened(&format!("acc-{u}"), u)));
        }
    }
    for i in first..first + deposits {
        let u = &users[i % users.len()];
        out.push(common::ev(&format!("dep-{i}"), 1 + i as i64, common::deposit(&format!("acc-{u}"), u, "1.25")));
    }
    out
}

fn write_jsonl(path: &Path, events: &[Event]) {
    std::fs::write(path, events.iter().map(json::encode).collect::<Vec<_>>().join("\n") + "\n").unwrap();
}

struct DataDir {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    data: PathBuf,
    config: PathBuf,
}

impl DataDir {
    fn new() -> DataDir {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        let config = root.join("cfg.toml");
        std::fs::write(&config, format!("[audit]\nsnapshot_every = {SNAPSHOT_EVERY}\ncheckpoint_every = 50\n"))
            .unwrap();
        DataDir { data: root.join("data"), root, config, _tmp: tmp }
    }

    fn import(&self, name: &str, events: &[Event]) -> String {
        let file = self.root.join(name);
        write_jsonl(&file, events);
        let d = self.data.to_str().unwrap();
        let c = self.config.to_str().unwrap();
        let shards = SHARDS.to_string();
        let args =
            ["import", file.to_str().unwrap(), "--data-dir", d, "--config", c, "--shards", &shards, "--batch", "64"];
        ok(riskstream(&args), &format!("import {name}"))
    }

    fn snapshot_list(&self) -> String {
        ok(riskstream(&["snapshot", "list", "--data-dir", self.data.to_str().unwrap()]), "snapshot list")
    }

    fn verify_and_replay(&self) {
        let d = self.data.to_str().unwrap();
        assert!(ok(riskstream(&["verify", "--data-dir", d]), "verify").starts_with("ok:"));
        let check = ok(riskstream(&["replay", "--data-dir", d, "--check"]), "replay --check");
        assert!(check.contains("\"difference\": null"), "{check}");
    }
}

/// Ingest past several snapshots, reopen (a second import), query now and in the
/// past, verify and replay; `users` decides which shards stay empty.
fn snapshots_with_empty_shards(users: &[String]) {
    let dir = DataDir::new();
    let first = events(users, 1_500, 0, true);
    let out = dir.import("first.jsonl", &first);
    assert!(out.contains(&format!("imported {} lines", first.len())), "{out}");

    let list = dir.snapshot_list();
    assert_eq!(list.lines().filter(|l| l.starts_with("snap-")).count(), 3, "the newest 3 are kept:\n{list}");
    assert!(!list.contains("set aside"), "{list}");
    // An empty shard's clock is written as the integer the build before this one
    // wrote and could not read back: those manifests read back now.
    let snaps = snapshot::list(&dir.data.join("snapshots")).unwrap();
    let newest = snaps.last().unwrap();
    let empty: Vec<u32> = (0..SHARDS).filter(|s| users.iter().all(|u| shard_for(u, SHARDS) != *s)).collect();
    assert!(!empty.is_empty());
    for s in &empty {
        assert_eq!(newest.head(*s).unwrap().seq, 0);
    }
    let manifest = std::fs::read_to_string(newest.dir.join(snapshot::MANIFEST)).unwrap();
    assert!(manifest.contains("\"clock\": \"-9223372036854775808\""), "{manifest}");

    let per_user = |deposits: usize, u: usize| (deposits + users.len() - 1 - u) / users.len();
    for (i, u) in users.iter().enumerate() {
        let view = query(&dir.data, &format!("/v1/accounts/acc-{u}"));
        assert_eq!(cash(&view), Decimal::new(125, 2) * Decimal::from(per_user(1_500, i)), "{view}");
    }

    // Restart: the data dir and its snapshots open for the next import.
    let out = dir.import("second.jsonl", &events(users, 300, 1_500, false));
    assert!(out.contains("imported 300 lines"), "{out}");
    for (i, u) in users.iter().enumerate() {
        let view = query(&dir.data, &format!("/v1/accounts/acc-{u}"));
        assert_eq!(cash(&view), Decimal::new(125, 2) * Decimal::from(per_user(1_800, i)), "{view}");
    }

    // A point in the past starts from a snapshot and replays the rest.
    let u = &users[0];
    let now = query(&dir.data, &format!("/v1/accounts/acc-{u}"));
    let seq = now["as_of_seq"].as_u64().unwrap() - 100;
    let past = query(&dir.data, &format!("/v1/accounts/acc-{u}?as_of={seq}"));
    assert_eq!(past["as_of_seq"], seq, "{past}");
    assert!(past["as_of"]["past"]["from_snapshot"].as_str().unwrap().starts_with("snap-"), "{past}");
    // Each user has a shard of its own: seq 1 opened the account, the rest are its deposits.
    assert_eq!(cash(&past), Decimal::new(125, 2) * Decimal::from(seq - 1), "{past}");
    dir.verify_and_replay();
}

#[test]
fn one_user_on_four_shards_snapshots_reopens_and_answers() {
    snapshots_with_empty_shards(&users_on(&[1]));
}

#[test]
fn three_users_leave_one_shard_empty_and_all_still_works() {
    snapshots_with_empty_shards(&users_on(&[0, 1, 3]));
}

#[test]
fn an_unreadable_snapshot_is_set_aside_then_removed_by_housekeeping() {
    let dir = DataDir::new();
    let users = users_on(&[2]);
    // Commits of 64: snapshots at 256 and 512 records.
    dir.import("first.jsonl", &events(&users, 520, 0, true));
    let snaps = dir.data.join("snapshots");
    let kept = snapshot::list(&snaps).unwrap();
    assert_eq!(kept.len(), 2);
    // A manifest cut short, and a manifest whose store is gone.
    let newest = &kept[1];
    let text = std::fs::read(newest.dir.join(snapshot::MANIFEST)).unwrap();
    std::fs::write(newest.dir.join(snapshot::MANIFEST), &text[..text.len() / 2]).unwrap();
    std::fs::remove_dir_all(kept[0].db_dir()).unwrap();

    let list = dir.snapshot_list();
    assert_eq!(list.matches("set aside").count(), 2, "{list}");
    assert!(list.contains("EOF while parsing"), "the reason is given:\n{list}");
    // The data dir opens as it would without snapshots: now and in the past.
    let u = &users[0];
    assert_eq!(cash(&query(&dir.data, &format!("/v1/accounts/acc-{u}"))), Decimal::new(125 * 520, 2));
    let past = query(&dir.data, &format!("/v1/accounts/acc-{u}?as_of=301"));
    assert_eq!(past["as_of"]["past"]["from_snapshot"], Value::Null, "{past}");
    assert_eq!(cash(&past), Decimal::new(125 * 300, 2));

    // Reopened, the engine warns and goes on; its next snapshot clears them away.
    let out = dir.import("second.jsonl", &events(&users, 250, 520, false));
    assert!(out.contains("snapshot set aside"), "{out}");
    let list = dir.snapshot_list();
    assert!(!list.contains("set aside"), "{list}");
    assert!(!newest.dir.exists() && !kept[0].dir.exists());
    assert_eq!(snapshot::list(&snaps).unwrap().len(), 1, "{list}");
    dir.verify_and_replay();
}

#[test]
fn a_snapshot_that_cannot_be_written_leaves_its_batch_acknowledged_once() {
    let tmp = tempfile::tempdir().unwrap();
    let snaps = tmp.path().join("snapshots");
    // A file where the snapshot directory should be: every snapshot fails.
    std::fs::write(&snaps, "not a directory").unwrap();
    let store = Arc::new(RocksDbStore::open(&tmp.path().join("data"), false).unwrap());
    let metrics = Arc::new(Metrics::new());
    let mut engine = Engine::open(store, SHARDS, RuleConfig::default(), Arc::clone(&metrics)).unwrap();
    engine.enable_snapshots(snaps.clone(), 100, 3).unwrap();
    let users = users_on(&[3]);
    let batch = events(&users, 149, 0, true);

    let report = engine.ingest("test", None, common::items(&batch)).unwrap();
    assert_eq!(report.accepted, 150);
    assert_eq!(metrics.audit_failures.with_label_values(&["snapshot"]).get(), 1);
    // Sent again, the batch is a duplicate: it was applied once.
    let again = engine.ingest("test", None, common::items(&batch)).unwrap();
    assert_eq!((again.accepted, again.duplicates), (0, 150));
    let account = format!("acc-{}", users[0]);
    assert_eq!(engine.account_view(&account).unwrap().2.cash, Decimal::new(125 * 149, 2));
    // Not retried before the next interval; taken there once the disk is fixed.
    engine.ingest("test", None, common::items(&events(&users, 50, 149, false))).unwrap();
    assert_eq!(metrics.audit_failures.with_label_values(&["snapshot"]).get(), 1);
    std::fs::remove_file(&snaps).unwrap();
    engine.ingest("test", None, common::items(&events(&users, 60, 199, false))).unwrap();
    assert_eq!(snapshot::list(&snaps).unwrap().len(), 1);
    assert_eq!(metrics.audit_failures.with_label_values(&["snapshot"]).get(), 1);
}

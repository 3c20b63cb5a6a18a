//! Point-in-time answers, alert explanations and snapshots on a real server
//! (127.0.0.1:0, RocksDB in a temp dir) that signs checkpoints and takes snapshots
//! as it goes: an account as of any seq or event time equals the same account in a
//! fresh replay of the log to that point; the state behind it equals the replay's
//! row for row; every alert's explanation replays to the same alert and proves its
//! record against a signed checkpoint; a snapshot holds what its manifest says,
//! and a replica restored from one plus the log tail equals the live data dir.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use common::server::{Audit, Server};
use common::*;
use reqwest::StatusCode;
use riskstream_engine::audit::history::{AsOf, History};
use riskstream_engine::audit::snapshot::{self, Snapshot};
use riskstream_engine::audit::{leaf_hash, shard_digest, verify_inclusion, Checkpoint, CheckpointSigner, Hash};
use riskstream_engine::metrics::Metrics;
use riskstream_engine::replay::{alert_sequences, rebuild, state_digest};
use riskstream_engine::store::{hex, EventStore, MemoryStore, RocksDbStore};
use riskstream_engine::Engine;
use riskstream_projections::RuleConfig;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_riskstream");
const SHARDS: u32 = 2;
const SEED: [u8; 32] = [11; 32];

fn unhex(v: &Value) -> Hash {
    let s = v.as_str().unwrap_or_else(|| panic!("not a hex string: {v}"));
    let bytes: Vec<u8> = (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect();
    bytes.try_into().unwrap()
}

/// A server that checkpoints every 10 records of a shard and snapshots every 40
/// records, fed the book in one batch and then its ticks two per batch, so each
/// shard's log has well over a hundred records and several snapshots.
async fn busy_server() -> Server {
    let server =
        Server::start_audited(SHARDS, RuleConfig::default(), Some(Audit { seed: SEED, every: 10, snapshot_every: 40 }));
    let events = workload(6, 240);
    let setup = 3 + 6 * 6;
    server.post(&events[..setup]).await;
    for chunk in events[setup..].chunks(2) {
        server.post(chunk).await;
    }
    server
}

/// The log of the server's store replayed into a fresh engine up to `until`.
fn replayed(server: &Server, until: AsOf) -> Engine<MemoryStore> {
    let store = Arc::clone(server.app().read().store());
    let mut fresh =
        Engine::open(Arc::new(MemoryStore::new()), SHARDS, RuleConfig::default(), Arc::new(Metrics::new())).unwrap();
    rebuild(store.as_ref(), &mut fresh, Some(until), |_| {}).unwrap();
    fresh
}

fn without_stamps(mut body: Value) -> Value {
    for k in ["shard", "as_of_seq", "as_of"] {
        body.as_object_mut().unwrap().remove(k);
    }
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_as_of_a_seq_or_a_time_equal_a_fresh_replay_to_that_point() {
    let server = busy_server().await;
    let snapshots = snapshot::list(&server.data_dir().join("snapshots")).unwrap();
    assert!(!snapshots.is_empty() && snapshots.len() <= 3, "snapshots are taken and pruned: {snapshots:?}");
    let mut from_snapshot = 0;
    for account in ["acc-0", "acc-3"] {
        let now = server.get(&format!("/v1/accounts/{account}")).await;
        let (shard, head) = (now["shard"].as_u64().unwrap() as u32, now["as_of_seq"].as_u64().unwrap());
        assert!(head > 100, "{account}'s shard has {head} records");
        let mut seqs = vec![1, 2, head / 3, head / 2, head - 1, head];
        for s in &snapshots {
            let at = s.head(shard).unwrap().seq;
            seqs.extend([at.saturating_sub(1), at, at + 1]);
        }
        for seq in seqs.into_iter().filter(|s| (1..=head).contains(s)) {
            let (status, body) = server.get_any(&format!("/v1/accounts/{account}?as_of={seq}")).await;
            let expected = replayed(&server, AsOf::Seq(seq)).account_view(account).map(|(_, _, v)| v);
            match expected {
                None => assert_eq!(status, StatusCode::NOT_FOUND, "{account} did not exist at {seq}: {body}"),
                Some(view) => {
                    assert_eq!(status, StatusCode::OK, "{account} at {seq}: {body}");
                    assert_eq!(body["as_of_seq"], seq);
                    let past = &body["as_of"]["past"];
                    if !past["from_snapshot"].is_null() {
                        from_snapshot += 1;
                        assert!(past["records_replayed"].as_u64().unwrap() < seq, "{past}");
                    }
                    assert_eq!(without_stamps(body), serde_json::to_value(view).unwrap(), "{account} at seq {seq}");
                }
            }
        }
        // By event time: the ticks are 37 minutes apart, so a time between two of
        // them stops the replay before the later one.
        for minute in [2, 3 + 37 * 50 + 5, 3 + 37 * 200 + 36] {
            let t = ts(minute);
            let body = server.get(&format!("/v1/accounts/{account}?as_of={}", t.to_rfc3339())).await;
            let (_, seq, view) = replayed(&server, AsOf::Time(t)).account_view(account).unwrap();
            assert_eq!(body["as_of_seq"], seq, "{account} at {}", t.to_rfc3339());
            assert_eq!(without_stamps(body), serde_json::to_value(view).unwrap(), "{account} at {}", t.to_rfc3339());
        }
    }
    assert!(from_snapshot > 0, "some answers start from a snapshot");

    // The whole shard state, row for row, and the alerts on the way.
    let store = Arc::clone(server.app().read().store());
    let snapshot_dir = server.data_dir().join("snapshots");
    let codec = server.app().read().codec().clone();
    let history =
        History { store: store.as_ref(), snapshots: Some(&snapshot_dir), rules: &RuleConfig::default(), codec: &codec };
    for shard in 0..SHARDS {
        let head = store.head(shard).unwrap().seq;
        for seq in [head / 4, head / 2 + 1, head] {
            let past = history.state_at(shard, AsOf::Seq(seq)).unwrap();
            let fresh = replayed(&server, AsOf::Seq(seq));
            assert_eq!(
                hex(&shard_digest(shard, past.state.facts())),
                hex(&shard_digest(shard, fresh.shard(shard).unwrap().facts())),
                "shard {shard} at seq {seq} (from {:?})",
                past.info.from_snapshot
            );
        }
    }

    let (status, body) = server.get_any("/v1/accounts/acc-0?as_of=999999").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("beyond its head"), "{body}");
    let (status, body) = server.get_any("/v1/accounts/acc-0?as_of=yesterday").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("RFC 3339"), "{body}");
    let (status, _) = server.get_any("/v1/accounts/nobody?as_of=3").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_alert_explains_itself_and_replays_to_the_same_id() {
    let server = busy_server().await;
    let key = CheckpointSigner::from_seed(SEED).public_key();
    let alerts = server.get("/v1/alerts?limit=10000").await["alerts"].as_array().unwrap().clone();
    assert!(alerts.len() >= 5, "the shock raises alerts: {}", alerts.len());
    let mut proved_by_checkpoint = 0;
    for alert in &alerts {
        let id = alert["alert_id"].as_str().unwrap();
        let x = server.get(&format!("/v1/alerts/{id}/explain")).await;
        assert_eq!(x["replay"]["reproduced"], true, "{x}");
        assert_eq!(x["replay"]["identical"], true, "{x}");
        assert_eq!(x["alert"]["alert_id"], id);
        assert_eq!(x["rule"], alert["rule"]);
        assert_eq!((&x["value"], &x["threshold"]), (&alert["value"], &alert["threshold"]));
        let record = &x["cause"]["record"];
        assert_eq!((&record["shard"], &record["seq"]), (&alert["caused_by"]["shard"], &alert["caused_by"]["seq"]));
        // The rule saw the account the alert names.
        assert_eq!(x["inputs"]["account"]["account_id"], alert["account_id"], "{x}");
        // The record is in the log: its proof leads from its hash to the root.
        let p = &x["cause"]["inclusion"];
        let seq = record["seq"].as_u64().unwrap();
        let path: Vec<Hash> = p["proof"].as_array().unwrap().iter().map(unhex).collect();
        let size = p["tree_size"].as_u64().unwrap();
        assert_eq!(p["record_hash"], record["hash"]);
        verify_inclusion(&leaf_hash(&unhex(&record["hash"])), seq - 1, size, &path, &unhex(&p["root"]))
            .unwrap_or_else(|e| panic!("{id}: {e}"));
        if !x["cause"]["checkpoint"].is_null() {
            let c: Checkpoint = serde_json::from_value(x["cause"]["checkpoint"].clone()).unwrap();
            c.verify(&key).unwrap();
            assert_eq!((c.tree_size, c.root.as_str()), (size, p["root"].as_str().unwrap()));
            assert!(c.tree_size >= seq);
            proved_by_checkpoint += 1;
        }
    }
    assert!(proved_by_checkpoint > 0, "alerts before the last checkpoint are proved against it");
    let (status, body) = server.get_any("/v1/alerts/00000000000000000000000000000000/explain").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let openapi = server.get("/v1/openapi.json").await;
    assert_route_documented(&openapi, "get", "/v1/alerts/{alert_id}/explain", "AlertExplanation");
    let id = alerts[0]["alert_id"].as_str().unwrap();
    let x = server.get(&format!("/v1/alerts/{id}/explain")).await;
    assert_described(&openapi, "AlertExplanation", &x);
    let schemas = &openapi["components"]["schemas"];
    for part in ["cause", "inputs", "replay"] {
        assert_described_by(part, &schemas["AlertExplanation"]["properties"][part], &x[part]);
    }
    assert_described(&openapi, "Checkpoint", &x["cause"]["checkpoint"]);
    let past = server.get("/v1/accounts/acc-0?as_of=40").await;
    assert_described(&openapi, "Account", &past);
    assert_described(&openapi, "PastInfo", &past["as_of"]["past"]);
}

fn run(args: &[&str]) -> (bool, String) {
    let out = Command::new(BIN).args(args).env_remove("RISKSTREAM_CONFIG").output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_starts_from_a_checked_snapshot_and_the_log_tail() {
    let server = busy_server().await;
    let live_dir = server.data_dir().to_path_buf();
    let snaps = snapshot::list(&live_dir.join("snapshots")).unwrap();
    let oldest = snaps.first().unwrap();
    let key = hex(CheckpointSigner::from_seed(SEED).public_key().as_bytes());
    for s in &snaps {
        let checked = snapshot::check(s, Some(&CheckpointSigner::from_seed(SEED).public_key())).unwrap();
        assert!(checked.iter().all(|c| c.signed == Some(true)), "{checked:?}");
    }

    let work = tempfile::tempdir().unwrap();
    let replica = work.path().join("replica");
    let (ok, out) = run(&[
        "snapshot",
        "restore",
        path(&oldest.dir),
        "--data-dir",
        path(&replica),
        "--log",
        path(&live_dir),
        "--public-key",
        &key,
    ]);
    assert!(ok, "{out}");
    let behind: u64 = (0..SHARDS).map(|s| oldest.head(s).unwrap().seq).sum();
    let live = Arc::clone(server.app().read().store());
    let total: u64 = (0..SHARDS).map(|s| live.head(s).unwrap().seq).sum();
    assert!(out.contains(&format!("+{} records from the log", total - behind)), "{out}");
    let restored = RocksDbStore::open_read_only(&replica).unwrap();
    for shard in 0..SHARDS {
        assert_eq!(restored.head(shard).unwrap(), live.head(shard).unwrap(), "shard {shard}");
    }
    assert_eq!(state_digest(&restored, SHARDS).unwrap(), state_digest(live.as_ref(), SHARDS).unwrap());
    let ids = |m: std::collections::BTreeMap<u32, Vec<riskstream_schemas::Alert>>| -> Vec<String> {
        m.into_values().flatten().map(|a| a.alert_id).collect()
    };
    assert_eq!(ids(alert_sequences(&restored).unwrap()), ids(alert_sequences(live.as_ref()).unwrap()));
    use riskstream_engine::store::ProjectionStore;
    assert!(restored.outbox(10).unwrap().is_empty(), "a replica does not deliver the live engine's alerts again");

    // A snapshot whose rows were changed, or checked with another key, is refused.
    let (ok, out) = run(&[
        "snapshot",
        "restore",
        path(&oldest.dir),
        "--data-dir",
        path(&work.path().join("x")),
        "--public-key",
        &hex(CheckpointSigner::from_seed([12; 32]).public_key().as_bytes()),
    ]);
    assert!(!ok && out.contains("key"), "{out}");
    let forged = work.path().join("forged");
    copy_tree(&oldest.dir, &forged);
    let mut manifest: Value = serde_json::from_slice(&std::fs::read(forged.join("manifest.json")).unwrap()).unwrap();
    manifest["checkpoints"][0]["state_digest"] = Value::String("00".repeat(32));
    std::fs::write(forged.join("manifest.json"), manifest.to_string()).unwrap();
    let (ok, out) = run(&["snapshot", "restore", path(&forged), "--data-dir", path(&work.path().join("y"))]);
    assert!(!ok && out.contains("state digest"), "{out}");
    assert!(Snapshot::load(&forged).is_ok());

    let (ok, out) = run(&["snapshot", "list", "--data-dir", path(&live_dir)]);
    assert!(ok && out.contains(&oldest.manifest.name) && out.contains("signed"), "{out}");
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &to.join(entry.file_name()));
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

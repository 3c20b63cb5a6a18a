//! The audit routes end to end on a real server (127.0.0.1:0, RocksDB in a temp
//! dir): each shard's Merkle root, inclusion and consistency proofs, checked against
//! a tree computed in the test from scratch out of the record hashes that
//! `GET /v1/events/{shard}/{seq}` shows (RFC 6962 section 2.1), and verified with the
//! strict RFC 9162 verifiers an auditor would run.

mod common;

use common::server::Server;
use common::*;
use reqwest::StatusCode;
use riskstream_engine::audit::{
    leaf_hash, public_key, root_of, shard_digest, verify_consistency, verify_inclusion, Checkpoint, Hash,
};
use riskstream_projections::RuleConfig;
use serde_json::Value;

const SHARDS: u32 = 2;

fn unhex(v: &Value) -> Hash {
    let s = v.as_str().unwrap_or_else(|| panic!("not a hex string: {v}"));
    let bytes: Vec<u8> = (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect();
    bytes.try_into().unwrap()
}

fn proof(v: &Value) -> Vec<Hash> {
    v.as_array().unwrap().iter().map(unhex).collect()
}

/// The leaf hashes of a shard, from the records the API shows.
async fn leaves(server: &Server, shard: u32, head: u64) -> Vec<Hash> {
    let mut out = Vec::new();
    for seq in 1..=head {
        let record = server.get(&format!("/v1/events/{shard}/{seq}")).await;
        out.push(leaf_hash(&unhex(&record["hash"])));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roots_and_proofs_match_a_tree_built_from_the_records() {
    let server = Server::start(SHARDS, RuleConfig::default());
    server.post(&workload(6, 30)).await;
    let health = server.get("/healthz").await;
    for shard in 0..SHARDS {
        let head = server.get(&format!("/v1/audit/{shard}/root")).await["tree_size"].as_u64().unwrap();
        assert!(head >= 10, "shard {shard} has {head} records: {health}");
        let leaves = leaves(&server, shard, head).await;
        for size in 1..=head {
            let root = server.get(&format!("/v1/audit/{shard}/root?size={size}")).await;
            assert_eq!(unhex(&root["root"]), root_of(&leaves[..size as usize]), "shard {shard}, size {size}");
        }
        for size in [1, head / 2, head - 1, head] {
            let root = root_of(&leaves[..size as usize]);
            for seq in 1..=size {
                let p = server.get(&format!("/v1/audit/{shard}/inclusion?seq={seq}&tree_size={size}")).await;
                assert_eq!(unhex(&p["leaf_hash"]), leaves[seq as usize - 1]);
                assert_eq!(unhex(&p["root"]), root);
                verify_inclusion(&leaves[seq as usize - 1], seq - 1, size, &proof(&p["proof"]), &root)
                    .unwrap_or_else(|e| panic!("shard {shard}, seq {seq}, size {size}: {e}"));
            }
        }
        for from in 1..=head {
            let p = server.get(&format!("/v1/audit/{shard}/consistency?from={from}")).await;
            let (old, new) = (root_of(&leaves[..from as usize]), root_of(&leaves));
            assert_eq!((unhex(&p["from_root"]), unhex(&p["to_root"])), (old, new));
            verify_consistency(from, head, &old, &new, &proof(&p["proof"]))
                .unwrap_or_else(|e| panic!("shard {shard}, {from} -> {head}: {e}"));
        }
        // A forged proof (one byte flipped) does not verify.
        let p = server.get(&format!("/v1/audit/{shard}/inclusion?seq=1")).await;
        let mut forged = proof(&p["proof"]);
        forged[0][0] ^= 1;
        assert!(verify_inclusion(&leaves[0], 0, head, &forged, &root_of(&leaves)).is_err());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_proof_requests_name_what_is_wrong() {
    let server = Server::start(SHARDS, RuleConfig::default());
    server.post(&workload(2, 3)).await;
    let head = server.get("/v1/audit/0/root").await["tree_size"].as_u64().unwrap();
    let cases = [
        ("/v1/audit/9/root".to_string(), StatusCode::NOT_FOUND, "no shard 9"),
        ("/v1/audit/0/inclusion".to_string(), StatusCode::BAD_REQUEST, "`seq` is required"),
        ("/v1/audit/0/inclusion?seq=0".to_string(), StatusCode::BAD_REQUEST, "starts at 1"),
        (format!("/v1/audit/0/inclusion?seq={}", head + 1), StatusCode::BAD_REQUEST, "is not in a tree of size"),
        (format!("/v1/audit/0/root?size={}", head + 1), StatusCode::BAD_REQUEST, "tree"),
        ("/v1/audit/0/consistency?from=3&to=2".to_string(), StatusCode::BAD_REQUEST, "3"),
    ];
    // Every field served is described in the API document.
    let openapi = server.get("/v1/openapi.json").await;
    for (path, schema) in [
        ("/v1/audit/0/root", "AuditRoot"),
        ("/v1/audit/0/inclusion?seq=1", "AuditInclusion"),
        ("/v1/audit/0/consistency?from=1", "AuditConsistency"),
    ] {
        let body = server.get(path).await;
        let described = &openapi["components"]["schemas"][schema]["properties"];
        for field in body.as_object().unwrap().keys() {
            assert!(described.get(field).is_some(), "{schema} lacks `{field}`");
        }
    }
    for (path, status, says) in cases {
        let (got, body) = server.get_any(&path).await;
        assert_eq!(got, status, "{path}: {body}");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.contains(says), "{path}: {error}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_are_signed_bind_roots_and_state_and_extend_each_other() {
    let server = Server::start_signing(SHARDS, RuleConfig::default(), Some(([9; 32], 4)));
    // Several batches, so checkpoints fall at several sizes.
    let events = workload(6, 30);
    for chunk in events.chunks(7) {
        server.post(chunk).await;
    }
    let key = server.get("/v1/audit/public-key").await;
    assert_eq!(key["algorithm"], "ed25519");
    let key = public_key(key["public_key"].as_str().unwrap()).unwrap();
    for shard in 0..SHARDS {
        let body = server.get(&format!("/v1/audit/{shard}/checkpoints")).await;
        let list: Vec<Checkpoint> = serde_json::from_value(body["checkpoints"].clone()).unwrap();
        assert!(list.len() >= 2, "shard {shard}: {body}");
        for pair in list.windows(2) {
            assert!(pair[1].tree_size >= pair[0].tree_size + 4, "one per 4 records at most: {pair:?}");
            let p = server
                .get(&format!("/v1/audit/{shard}/consistency?from={}&to={}", pair[0].tree_size, pair[1].tree_size))
                .await;
            let (old, new) = (pair[0].root_hash().unwrap(), pair[1].root_hash().unwrap());
            verify_consistency(pair[0].tree_size, pair[1].tree_size, &old, &new, &proof(&p["proof"])).unwrap();
        }
        for c in &list {
            c.verify(&key).unwrap_or_else(|e| panic!("{c:?}: {e}"));
            let root = server.get(&format!("/v1/audit/{shard}/root?size={}", c.tree_size)).await;
            assert_eq!(root["root"], c.root.as_str());
        }
        // The newest checkpoint at the head binds the state the engine holds now.
        let last = list.last().unwrap();
        let head = server.get(&format!("/v1/audit/{shard}/root")).await["tree_size"].as_u64().unwrap();
        if last.tree_size == head {
            let engine = server.app().read();
            let (_, _, digest) = engine.find_view(|s| s == shard, |s| Some(shard_digest(shard, s.facts()))).unwrap();
            assert_eq!(last.state_digest, riskstream_engine::store::hex(&digest));
        }
        // A checkpoint whose root was altered does not verify.
        let forged = Checkpoint { root: "00".repeat(32), ..last.clone() };
        assert!(forged.verify(&key).is_err());
        let page = server.get(&format!("/v1/audit/{shard}/checkpoints?after={}", list[0].tree_size)).await;
        assert_eq!(page["checkpoints"].as_array().unwrap().len(), list.len() - 1, "`after` pages");
    }
    let unsigned = Server::start(SHARDS, RuleConfig::default());
    let (status, _) = unsigned.get_any("/v1/audit/public-key").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

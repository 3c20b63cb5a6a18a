//! Personal data (docs/EVENTS.md, "Personal data"): sealed before the record is made,
//! disclosed by `GET /v1/events/{shard}/{seq}` only, and erased by destroying the
//! user's key, which leaves the hash chain, the Merkle trees, the checkpoints and
//! replay exactly as they were. Real RocksDB in a temp dir, real HTTP on 127.0.0.1.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::server::Server;
use common::{assert_described, deposit, ev, items, opened};
use reqwest::StatusCode;
use riskstream_engine::metrics::Metrics;
use riskstream_engine::privacy::{self, KeyStore, RocksDbKeyStore, UserKey, ERASURE_LOG};
use riskstream_engine::replay::{alert_sequences, compare, rebuild, state_digest};
use riskstream_engine::sequencer::Routed;
use riskstream_engine::store::{EventStore, MemoryStore, Record, RocksDbStore, RECORDS_FAMILY};
use riskstream_engine::{Engine, ShardBatch};
use riskstream_projections::RuleConfig;
use riskstream_schemas::{Event, EventBody, RecordRef};
use serde_json::{json, Value};

const SHARDS: u32 = 2;
const TOKEN: &str = "test-admin-token-0123456789abcdef";
const ANN: (&str, &str) = ("Ann Leigh-Personal", "ann.personal@example.com");
const BO: (&str, &str) = ("Bo Chan-Personal", "bo.personal@example.org");

/// `opened` with the holder's name and e-mail address.
fn opened_by(account: &str, user: &str, (name, email): (&str, &str)) -> EventBody {
    let mut body = opened(account, user);
    let EventBody::AccountOpened(e) = &mut body else { unreachable!() };
    e.holder_name = Some(name.into());
    e.holder_email = Some(email.into());
    body
}

fn events() -> Vec<Event> {
    vec![
        ev("open-ann", 1, opened_by("acc-ann", "u-ann", ANN)),
        ev("open-bo", 1, opened_by("acc-bo", "u-bo", BO)),
        ev("open-cy", 1, opened("acc-cy", "u-cy")),
        ev("dep-ann", 2, deposit("acc-ann", "u-ann", "1000")),
        ev("dep-bo", 2, deposit("acc-bo", "u-bo", "500")),
    ]
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Every file under `dir`, recursively, with its bytes.
fn files(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files(&path));
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.push((path, bytes));
        }
    }
    out
}

fn where_is(server: &Server, event_id: &str) -> RecordRef {
    server.app().read().store().event_seen(event_id).unwrap().unwrap_or_else(|| panic!("{event_id} not stored"))
}

fn holder(view: &Value) -> (&str, &str) {
    let event = &view["event"];
    (event["holder_name"].as_str().unwrap(), event["holder_email"].as_str().unwrap())
}

async fn erase(server: &Server, user: &str, token: Option<&str>) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new().post(format!("{}/v1/users/{user}/erase", server.base));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

/// Each shard's Merkle root and newest checkpoint, as the API serves them.
async fn audit_state(server: &Server) -> Vec<(Value, Value)> {
    let mut out = Vec::new();
    for shard in 0..SHARDS {
        let root = server.get(&format!("/v1/audit/{shard}/root")).await;
        let checkpoints = server.get(&format!("/v1/audit/{shard}/checkpoints")).await;
        out.push((root, checkpoints));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn personal_data_is_sealed_disclosed_and_erased_without_changing_the_log() {
    let server = Server::start_signing(SHARDS, RuleConfig::default(), Some(([7; 32], 1)));
    let report = server.post(&events()).await;
    assert_eq!(report["accepted"], 5, "{report}");
    let (ann, bo) = (where_is(&server, "open-ann"), where_is(&server, "open-bo"));

    // The stored record holds sealed values only: not its payload, nor any file of the
    // data dir (write-ahead logs included), nor the key store, holds the plaintext.
    {
        let engine = server.app().read();
        let raw = engine.store().raw_get(RECORDS_FAMILY, &Record::key(ann.shard, ann.seq)).unwrap().unwrap();
        assert!(contains(&raw, privacy::SEALED_PREFIX), "the record holds no sealed value");
        let record = engine.store().record(ann.shard, ann.seq).unwrap().unwrap();
        for secret in [ANN.0, ANN.1] {
            assert!(!contains(&raw, secret) && !contains(&record.payload, secret), "{secret} is in the record");
        }
    }
    let on_disk = files(server.data_dir());
    // The scan sees what the batch wrote (the write-ahead log holds it in clear)...
    assert!(on_disk.iter().any(|(_, bytes)| contains(bytes, "acc-ann")), "the scan reads no record");
    // ... but no personal value.
    for (path, bytes) in on_disk {
        for secret in [ANN.0, ANN.1, BO.0, BO.1] {
            assert!(!contains(&bytes, secret), "{secret} is in {}", path.display());
        }
    }

    // GET /v1/events discloses; other views do not show personal data.
    let view = server.get(&format!("/v1/events/{}/{}", ann.shard, ann.seq)).await;
    assert_eq!(holder(&view), ANN, "{view}");
    assert_eq!(view["event"]["user_id"], "u-ann");
    let account = server.get("/v1/accounts/acc-ann").await.to_string();
    assert!(!account.contains(ANN.0) && !account.contains("holder_"), "{account}");
    let before = audit_state(&server).await;
    assert!(before.iter().all(|(_, c)| !c["checkpoints"].as_array().unwrap().is_empty()), "{before:?}");

    // Without a configured token the route is off; then only the right token erases.
    let (status, body) = erase(&server, "u-ann", Some(TOKEN)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body["error"].as_str().unwrap().contains("RISKSTREAM_ADMIN_TOKEN"), "{body}");
    server.app().set_admin_token(Some(riskstream_engine::config::AdminToken(TOKEN.into())));
    let (status, body) = erase(&server, "u-ann", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body["error"].as_str().unwrap().contains("Authorization: Bearer"), "{body}");
    let (status, body) = erase(&server, "u-ann", Some("test-admin-token-0123456789abcdeX")).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("wrong admin token")));
    assert_eq!(server.get(&format!("/v1/events/{}/{}", ann.shard, ann.seq)).await["event"]["holder_name"], ANN.0);

    let (status, erased) = erase(&server, "u-ann", Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK, "{erased}");
    assert_eq!((&erased["user_id"], &erased["key_existed"]), (&json!("u-ann"), &json!(true)));
    let erased_at = erased["erased_at"].as_str().unwrap().to_string();
    assert!(riskstream_schemas::Timestamp::parse(&erased_at).is_ok(), "{erased}");

    // The erased user's fields read as erased; the other user's still read.
    let view = server.get(&format!("/v1/events/{}/{}", ann.shard, ann.seq)).await;
    assert_eq!(holder(&view), (privacy::ERASED, privacy::ERASED), "{view}");
    assert_eq!(holder(&server.get(&format!("/v1/events/{}/{}", bo.shard, bo.seq)).await), BO);
    let cy = where_is(&server, "open-cy");
    let cy_view = server.get(&format!("/v1/events/{}/{}", cy.shard, cy.seq)).await;
    assert!(cy_view["event"].get("holder_name").is_none(), "{cy_view}");

    // Nothing in the log changed: roots, checkpoints, heads; the chain verifies.
    assert_eq!(audit_state(&server).await, before);
    {
        let engine = server.app().read();
        let store = engine.store().as_ref();
        let report = riskstream_engine::verify::verify(store, |_: u32, _: u64| {}).unwrap();
        assert_eq!(report.first_bad, None, "{report:?}");
        assert_eq!(report.records, (0..SHARDS).map(|s| engine.head(s).seq).sum::<u64>());
        // Replay from the log gives the live state and alerts.
        let mut replayed =
            Engine::open(Arc::new(MemoryStore::new()), SHARDS, RuleConfig::default(), metrics()).unwrap();
        let records = rebuild(store, &mut replayed, None, |_| {}).unwrap();
        let check = compare(store, replayed.store().as_ref(), SHARDS, records).unwrap();
        assert!(check.ok(), "{check:?}");
    }

    // The erasure is recorded for operators, and erasing again changes nothing.
    let log = std::fs::read_to_string(server.data_dir().join("keys").join(ERASURE_LOG)).unwrap();
    let logged: Vec<Value> = log.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(logged, std::slice::from_ref(&erased));
    let (status, again) = erase(&server, "u-ann", Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again, json!({ "user_id": "u-ann", "key_existed": false, "erased_at": erased_at }));
    assert_eq!(std::fs::read_to_string(server.data_dir().join("keys").join(ERASURE_LOG)).unwrap(), log);
    assert_eq!(audit_state(&server).await, before);

    // A user who never sent personal data: recorded too, no key destroyed.
    let (status, none) = erase(&server, "u-cy", Some(TOKEN)).await;
    assert_eq!((status, &none["key_existed"]), (StatusCode::OK, &json!(false)), "{none}");
    let (status, bad) = erase(&server, &"x".repeat(129), Some(TOKEN)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");

    // The route is documented as served.
    let openapi = server.get("/v1/openapi.json").await;
    let responses = &openapi["paths"]["/v1/users/{id}/erase"]["post"]["responses"];
    assert_eq!(responses["200"]["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/Erasure");
    for status in ["400", "401", "403", "503"] {
        assert!(responses.get(status).is_some(), "POST /v1/users/{{id}}/erase documents no {status}");
    }
    assert_described(&openapi, "Erasure", &erased);
}

fn metrics() -> Arc<Metrics> {
    Arc::new(Metrics::new())
}

/// A rejected event is not sealed: its dead letter keeps no personal value either,
/// and the rejection names the field without quoting it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_personal_fields_are_rejected_by_name_and_not_kept() {
    let server = Server::start(SHARDS, RuleConfig::default());
    let mut bad = ev("open-bad", 1, opened_by("acc-x", "u-x", ("Xena Secret-Name", "xena.secret@localhost")));
    let body = json!([serde_json::to_value(&bad).unwrap()]);
    let (status, report) = server.post_json("/v1/events", &body).await;
    assert_eq!(status, StatusCode::MULTI_STATUS, "{report}");
    let rejection = &report["rejected"][0];
    assert_eq!(rejection["field"], "holder_email", "{report}");
    assert!(rejection["reason"].as_str().unwrap().starts_with("must be an e-mail address"), "{report}");
    assert!(!report.to_string().contains("xena.secret"), "{report}");
    let letters = server.get("/v1/dead-letters").await;
    let raw = letters["dead_letters"][0]["raw"].as_str().unwrap();
    assert!(!raw.contains("Xena") && !raw.contains("xena.secret"), "{raw}");
    assert!(raw.contains(privacy::REDACTED) && raw.contains("u-x"), "{raw}");

    // Corrected and re-sent with the same id, it is accepted and sealed.
    let EventBody::AccountOpened(e) = &mut bad.body else { unreachable!() };
    e.holder_email = Some("xena.secret@example.com".into());
    server.post(&[bad]).await;
    let at = where_is(&server, "open-bad");
    assert_eq!(holder(&server.get(&format!("/v1/events/{}/{}", at.shard, at.seq)).await).1, "xena.secret@example.com");
}

/// The projections neither store nor depend on personal fields: the same events with
/// and without them give the same state digest and the same alerts.
#[test]
fn personal_fields_change_no_state_and_no_alert() {
    let plain = common::workload(8, 120);
    let with_holders: Vec<Event> = plain
        .iter()
        .cloned()
        .map(|mut e| {
            if let EventBody::AccountOpened(o) = &mut e.body {
                o.holder_name = Some(format!("Holder of {}", o.account_id));
                o.holder_email = Some(format!("{}@example.com", o.account_id));
            }
            e
        })
        .collect();
    assert_ne!(plain, with_holders);
    let run = |events: &[Event]| {
        let mut engine = Engine::open(Arc::new(MemoryStore::new()), SHARDS, RuleConfig::default(), metrics()).unwrap();
        for chunk in events.chunks(25) {
            let report = engine.ingest("test", None, items(chunk)).unwrap();
            assert!(report.rejected.is_empty(), "{:?}", report.rejected);
        }
        engine
    };
    let (a, b) = (run(&plain), run(&with_holders));
    assert_eq!(state_digest(a.store().as_ref(), SHARDS).unwrap(), state_digest(b.store().as_ref(), SHARDS).unwrap());
    let alerts = alert_sequences(a.store().as_ref()).unwrap();
    assert!(alerts.values().map(Vec::len).sum::<usize>() > 0, "the workload must raise alerts");
    assert_eq!(alerts, alert_sequences(b.store().as_ref()).unwrap());
    // And the sealed log replays to the same state.
    let mut replayed = Engine::open(Arc::new(MemoryStore::new()), SHARDS, RuleConfig::default(), metrics()).unwrap();
    let records = rebuild(b.store().as_ref(), &mut replayed, None, |_| {}).unwrap();
    assert!(compare(b.store().as_ref(), replayed.store().as_ref(), SHARDS, records).unwrap().ok());
}

/// Distributed mode ingests through `ingest_shards`: it seals too.
#[test]
fn shard_batches_are_sealed_like_embedded_ones() {
    let mut engine = Engine::open(Arc::new(MemoryStore::new()), SHARDS, RuleConfig::default(), metrics()).unwrap();
    let event = ev("open-ann", 1, opened_by("acc-ann", "u-ann", ANN));
    let shard = riskstream_schemas::placement::shard_for("u-ann", SHARDS);
    let routed = Routed { index: Some(0), event, origin: Some("riskstream.actions/0@1".into()) };
    let batch = ShardBatch { shard, events: vec![routed], refused: Vec::new(), position: "p".into() };
    let report = engine.ingest_shards("kafka", vec![batch]).unwrap();
    assert_eq!(report.accepted, 1);
    let record = engine.store().record(shard, 1).unwrap().unwrap();
    assert!(!contains(&record.payload, ANN.0) && !contains(&record.payload, ANN.1));
    let stored = engine.codec().decode(record.fingerprint, &record.payload).unwrap();
    let EventBody::AccountOpened(e) = &stored.body else { panic!("{stored:?}") };
    assert!(e.holder_name.as_deref().is_some_and(privacy::is_sealed), "{stored:?}");
    let mut shown = stored.clone();
    engine.personal_data().disclose(&mut shown);
    let EventBody::AccountOpened(e) = &shown.body else { unreachable!() };
    assert_eq!((e.holder_name.as_deref(), e.holder_email.as_deref()), (Some(ANN.0), Some(ANN.1)));
}

/// The key store on disk: keys survive a reopen; an erased key's bytes are gone from
/// every file of the store, and the erasure survives a reopen.
#[test]
fn an_erased_key_is_gone_from_the_key_store_files() {
    let dir = tempfile::tempdir().unwrap();
    let (kept, erased) = (UserKey::generate(), UserKey::generate());
    {
        let store = RocksDbKeyStore::open(dir.path()).unwrap();
        store.insert(&[("u-kept".into(), kept.clone()), ("u-erased".into(), erased.clone())]).unwrap();
    }
    // Reopened, so the keys sit in RocksDB's files (write-ahead log, then a table).
    let store = RocksDbKeyStore::open(dir.path()).unwrap();
    assert_eq!(store.key("u-erased").unwrap(), Some(erased.clone()));
    let has = |key: &UserKey| files(dir.path()).iter().any(|(_, bytes)| bytes.windows(32).any(|w| w == key.as_bytes()));
    assert!(has(&erased), "the key is stored in the directory");

    let erasure = store.erase("u-erased", "2026-05-01T10:00:00Z").unwrap();
    assert!(erasure.key_existed);
    assert!(!has(&erased), "the erased key's bytes are still in the key store's files");
    assert!(has(&kept), "the other user's key must stay");
    drop(store);

    let store = RocksDbKeyStore::open(dir.path()).unwrap();
    assert_eq!(store.key("u-erased").unwrap(), None);
    assert_eq!(store.key("u-kept").unwrap(), Some(kept));
    assert_eq!(store.erasure("u-erased").unwrap(), Some(erasure.clone()));
    let again = store.erase("u-erased", "2026-05-02T10:00:00Z").unwrap();
    assert_eq!(again, riskstream_engine::privacy::Erasure { key_existed: false, ..erasure });
}

/// Snapshots copy the event store, not the keys: a replica started from one (or the
/// data dir opened without its key store) reads the personal fields as unavailable,
/// never as data.
#[test]
fn a_snapshot_holds_no_keys_and_reads_no_personal_data() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (snapshot, key) = {
        let store = Arc::new(RocksDbStore::open(&data, false).unwrap());
        let mut engine = Engine::open(store, SHARDS, RuleConfig::default(), metrics()).unwrap();
        engine.set_key_store(Arc::new(RocksDbKeyStore::open(&data.join("keys")).unwrap()));
        engine.enable_snapshots(data.join("snapshots"), 0, 1).unwrap();
        engine.ingest("test", None, items(&events())).unwrap();
        let key = engine.personal_data().key_store().key("u-ann").unwrap().unwrap();
        (engine.take_snapshot().unwrap(), key)
    };
    let copied = files(&snapshot.dir);
    assert!(!copied.is_empty());
    for (path, bytes) in &copied {
        assert!(!bytes.windows(32).any(|w| w == key.as_bytes()), "a key is in {}", path.display());
        for secret in [ANN.0, ANN.1] {
            assert!(!contains(bytes, secret), "{secret} is in {}", path.display());
        }
    }
    for opened in [snapshot.open().unwrap(), RocksDbStore::open_read_only(&data).unwrap()] {
        let engine = Engine::open(Arc::new(opened), SHARDS, RuleConfig::default(), metrics()).unwrap();
        let at = engine.store().event_seen("open-ann").unwrap().unwrap();
        let record = engine.store().record(at.shard, at.seq).unwrap().unwrap();
        let mut event = engine.codec().decode(record.fingerprint, &record.payload).unwrap();
        engine.personal_data().disclose(&mut event);
        let EventBody::AccountOpened(e) = &event.body else { panic!("{event:?}") };
        assert_eq!(e.holder_name.as_deref(), Some(privacy::KEY_UNAVAILABLE));
        assert_eq!(e.holder_email.as_deref(), Some(privacy::KEY_UNAVAILABLE));
    }
}

/// What every key store does, run against both.
fn key_store_conformance(store: &dyn KeyStore) {
    let (a, b) = (UserKey::generate(), UserKey::generate());
    assert_eq!(store.key("u-a").unwrap(), None);
    store.insert(&[]).unwrap();
    store.insert(&[("u-a".into(), a.clone()), ("u-b".into(), b.clone())]).unwrap();
    assert_eq!((store.key("u-a").unwrap(), store.key("u-b").unwrap()), (Some(a), Some(b.clone())));
    assert_eq!(store.erasure("u-a").unwrap(), None);

    let first = store.erase("u-a", "2026-05-01T10:00:00Z").unwrap();
    let expected =
        privacy::Erasure { user_id: "u-a".into(), key_existed: true, erased_at: "2026-05-01T10:00:00Z".into() };
    assert_eq!(first, expected);
    assert_eq!(store.key("u-a").unwrap(), None);
    assert_eq!(store.key("u-b").unwrap(), Some(b));
    assert_eq!(store.erasure("u-a").unwrap(), Some(first.clone()));
    let again = store.erase("u-a", "2026-05-02T10:00:00Z").unwrap();
    assert_eq!(again, privacy::Erasure { key_existed: false, ..first.clone() });

    // A user without a key is recorded at the first request; a new key after an
    // erasure is destroyed by the next one, which then is the erasure in force.
    let never = store.erase("u-c", "2026-05-03T10:00:00Z").unwrap();
    assert!(!never.key_existed);
    assert_eq!(store.erase("u-c", "2026-05-04T10:00:00Z").unwrap().erased_at, never.erased_at);
    store.insert(&[("u-a".into(), UserKey::generate())]).unwrap();
    let later = store.erase("u-a", "2026-05-05T10:00:00Z").unwrap();
    assert_eq!((later.key_existed, later.erased_at.as_str()), (true, "2026-05-05T10:00:00Z"));
    assert_eq!(store.erasure("u-a").unwrap(), Some(later));
}

#[test]
fn key_stores_conform() {
    key_store_conformance(&privacy::MemoryKeyStore::new());
    let dir = tempfile::tempdir().unwrap();
    key_store_conformance(&RocksDbKeyStore::open(dir.path()).unwrap());
    let log = std::fs::read_to_string(dir.path().join(ERASURE_LOG)).unwrap();
    assert_eq!(log.lines().count(), 3, "one line per erasure that changed something:\n{log}");
}

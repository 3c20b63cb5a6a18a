//! Distributed mode against real Kafka-protocol brokers started per test on
//! 127.0.0.1 (see `broker.rs`). Each test names the broker its guarantees were
//! checked on: noida-db 0.2.3 unless it says tansu.
//!
//! Determinism is what makes the cluster checkable: a shard's log depends only on
//! the topics' contents, so a cluster run (with kills, joins and restores) must
//! publish exactly the audit records, hash for hash, and the alerts of a
//! single-instance run over the same input topics.

mod broker;
mod cluster;
mod notifiers;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use broker::Broker;
use cluster::{config, read_topic, riskstream, topics_create, wait_settled, Instance, Msg};
use riskstream_connectors::kafka::wire::ValueFormat;
use riskstream_connectors::kafka::{EventProducer, KafkaConfig, ValueCodec};
use riskstream_engine::store::Record;
use riskstream_schemas::{json, Alert, Event};

const SETTLE: Duration = Duration::from_secs(180);

/// One event of every input type, in event-time order.
const EVERY_TYPE: &str = r#"
{"type":"SecurityListed","ts":"2026-03-02T14:00:00Z","symbol":"AAA","asset_class":"equity","sector":"tech","wash_group":"AAA"}
{"type":"SecurityListed","ts":"2026-03-02T14:00:00Z","symbol":"BBB","asset_class":"bond","sector":"gov","wash_group":"BBB"}
{"type":"AccountOpened","event_id":"open-1","ts":"2026-03-02T14:01:00Z","account_id":"acc-1","user_id":"u-1","tax_status":"taxable","base_currency":"USD"}
{"type":"AlertPreferencesSet","ts":"2026-03-02T14:01:30Z","user_id":"u-1","channels":["email"]}
{"type":"CashMovement","event_id":"dep-1","ts":"2026-03-02T14:02:00Z","account_id":"acc-1","user_id":"u-1","kind":"deposit","amount":"10000"}
{"type":"MarketTick","ts":"2026-03-02T14:02:30Z","symbol":"AAA","price":"100"}
{"type":"MarketTick","ts":"2026-03-02T14:02:31Z","symbol":"BBB","price":"50"}
{"type":"TradeExecuted","event_id":"t-1","ts":"2026-03-02T14:03:00Z","trade_id":"T-1","account_id":"acc-1","user_id":"u-1","symbol":"AAA","side":"buy","quantity":"10","price":"100","fees":"1"}
{"type":"TradeExecuted","event_id":"t-2","ts":"2026-03-02T14:03:30Z","trade_id":"T-2","account_id":"acc-1","user_id":"u-1","symbol":"BBB","side":"buy","quantity":"20","price":"50","fees":"0"}
{"type":"TargetAllocationSet","ts":"2026-03-02T14:04:00Z","account_id":"acc-1","user_id":"u-1","targets":{"AAA":"0.5","BBB":"0.5"}}
{"type":"RiskLimitsSet","ts":"2026-03-02T14:04:30Z","account_id":"acc-1","user_id":"u-1","max_position_weight":"0.9"}
{"type":"MarketTick","ts":"2026-03-02T14:05:00Z","symbol":"AAA","price":"110"}
"#;

fn events(text: &str) -> Vec<Event> {
    text.lines().filter(|l| !l.trim().is_empty()).map(|l| json::decode_line(0, l).result.unwrap()).collect()
}

fn kafka_config(bootstrap: &str, json_topics: &[&str]) -> KafkaConfig {
    KafkaConfig {
        brokers: bootstrap.into(),
        json_topics: json_topics.iter().map(|t| t.to_string()).collect(),
        ..KafkaConfig::default()
    }
}

fn produce(k: &KafkaConfig, partitions: u32, events: &[Event]) {
    let p = EventProducer::open(k, Arc::new(ValueCodec::embedded()), partitions).unwrap();
    for e in events {
        p.send(e).unwrap();
    }
    p.flush().unwrap();
}

#[test]
fn every_event_type_round_trips_through_the_broker_in_avro_and_json() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    topics_create(&config(dir.path(), &broker.bootstrap, "g", None, ""), 2);
    let codec = ValueCodec::embedded();
    for format in [ValueFormat::Avro, ValueFormat::Json] {
        let all = ["riskstream.trades", "riskstream.cash", "riskstream.actions", "riskstream.ticks"];
        let k = kafka_config(&broker.bootstrap, if format == ValueFormat::Json { &all } else { &[] });
        let mut sent = events(EVERY_TYPE);
        // The second round is told apart by its ids and prices.
        for e in &mut sent {
            e.event_id = e.event_id.as_ref().map(|id| format!("{id}-{format:?}"));
            e.body.normalize();
        }
        let before: BTreeMap<&str, usize> = all.iter().map(|t| (*t, read_topic(&broker.bootstrap, t).len())).collect();
        produce(&k, 2, &sent);
        let mut got = Vec::new();
        for topic in all {
            for m in read_topic(&broker.bootstrap, topic).into_iter().skip(before[topic]) {
                got.push(codec.decode(format, &m.value).unwrap_or_else(|r| panic!("{topic} {format:?}: {r}")));
            }
        }
        let key = |e: &Event| json::encode(e);
        let mut a: Vec<String> = sent.iter().map(key).collect();
        let mut b: Vec<String> = got.iter().map(key).collect();
        a.sort();
        b.sort();
        assert_eq!(a, b, "{format:?}: what was produced reads back unchanged");
        assert_eq!(b.len(), 12);
    }
}

#[test]
fn an_instance_applies_mixed_avro_and_json_topics_and_dead_letters_bad_messages() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &broker.bootstrap, "mixed", None, "json_topics = [\"riskstream.actions\"]");
    topics_create(&cfg, 2);
    let k = kafka_config(&broker.bootstrap, &["riskstream.actions"]);
    let good = events(EVERY_TYPE);
    produce(&k, 2, &good[..9]);

    // Bad messages between the good ones, each with its own reason.
    let p = EventProducer::open(&k, Arc::new(ValueCodec::embedded()), 2).unwrap();
    let user_shard = riskstream_schemas::placement::shard_for("u-1", 2);
    let sell_too_much = events(
        r#"{"type":"TradeExecuted","ts":"2026-03-02T14:03:40Z","trade_id":"T-9","account_id":"acc-1","user_id":"u-1","symbol":"AAA","side":"sell","quantity":"1000","price":"100","fees":"0"}"#,
    );
    p.send_raw(&sell_too_much[0], Some(b"\x00\x00\x00\x00\x63garbage")).unwrap(); // unknown schema id 99
    p.send_raw(&sell_too_much[0], Some(br#"{"type":"TradeExecuted"}"#)).unwrap(); // JSON on an Avro topic
    p.send(&sell_too_much[0]).unwrap(); // valid, but more than is held
    p.flush().unwrap();
    // Misplaced: u-1 on the other partition of the trades topic.
    let misplaced = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &broker.bootstrap)
        .create::<rdkafka::producer::BaseProducer>()
        .unwrap();
    let other = ValueCodec::embedded().encode(ValueFormat::Avro, &good[7]).unwrap();
    misplaced
        .send(
            rdkafka::producer::BaseRecord::to("riskstream.trades")
                .partition(1 - user_shard as i32)
                .key("u-1")
                .payload(&other),
        )
        .map_err(|(e, _)| e)
        .unwrap();
    rdkafka::producer::Producer::flush(&misplaced, Duration::from_secs(10)).unwrap();
    produce(&k, 2, &good[9..]);

    let data = dir.path().join("data");
    let instance = Instance::start(&cfg, &data);
    wait_settled(&[&instance], 2, SETTLE);

    // Every good event applied once: 10 AAA and 20 BBB, cash 10000 - 1001 - 1000.
    let (status, view) = instance.get("/v1/accounts/acc-1");
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["cash"], "7999");
    assert_eq!(view["shard"], user_shard);
    let qty: BTreeMap<String, String> = view["positions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["symbol"].as_str().unwrap().to_string(), p["quantity"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(qty, BTreeMap::from([("AAA".into(), "10".into()), ("BBB".into(), "20".into())]));
    assert_eq!(view["market_value"], "10099", "cash 7999 + AAA 10 at the last tick 110 + BBB 20 at 50");

    // Four dead letters on the topic, original bytes kept, reason and origin in headers.
    let letters = read_topic(&broker.bootstrap, "riskstream.dead-letters");
    let reasons: Vec<&str> = letters.iter().map(|m| m.headers["reason"].as_str()).collect();
    assert_eq!(letters.len(), 4, "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("unknown schema id 99")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("first byte is 0x7b")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("belongs to partition")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("sell")), "{reasons:?}");
    for m in &letters {
        assert_eq!(m.headers["source.topic"], "riskstream.trades");
        assert!(m.headers.contains_key("source.offset"));
    }
    assert!(letters.iter().any(|m| m.value == br#"{"type":"TradeExecuted"}"#), "the raw value is kept");
    // And in the local dead-letter store.
    let (_, local) = instance.get("/v1/dead-letters");
    assert_eq!(local["dead_letters"].as_array().map(Vec::len), Some(4), "{local}");
}

/// The seeded simulator's events on the input topics.
fn produce_workload(bootstrap: &str, events: u64, accounts: usize) {
    riskstream(&[
        "produce",
        "--brokers",
        bootstrap,
        "--simulate",
        &events.to_string(),
        "--accounts",
        &accounts.to_string(),
    ]);
}

/// Audit records per shard, deduplicated by seq (a repeat must be byte-identical).
fn audit_log(bootstrap: &str, topic: &str) -> BTreeMap<u32, Vec<Record>> {
    let mut out: BTreeMap<u32, Vec<Record>> = BTreeMap::new();
    for m in read_topic(bootstrap, topic) {
        let (shard, seq) = Record::parse_key(&m.key).unwrap();
        assert_eq!(shard as i32, m.partition, "{topic}: record of shard {shard} on partition {}", m.partition);
        let record = Record::decode_value(shard, seq, &m.value).unwrap();
        let log = out.entry(shard).or_default();
        match log.last() {
            Some(last) if seq <= last.seq => {
                assert_eq!(&log[seq as usize - 1], &record, "{topic}: seq {seq} published twice, differently");
            }
            _ => {
                assert_eq!(seq, log.len() as u64 + 1, "{topic}: gap before ({shard}, {seq})");
                log.push(record);
            }
        }
    }
    out
}

/// Alerts by id, and how many ids were seen more than once.
fn alerts(bootstrap: &str, topic: &str) -> (BTreeMap<String, Alert>, usize) {
    let codec = ValueCodec::embedded();
    let mut by_id = BTreeMap::new();
    let mut repeats = 0;
    for Msg { value, headers, .. } in read_topic(bootstrap, topic) {
        let alert = codec.decode_alert(&value).unwrap();
        assert_eq!(headers.get("alert_id"), Some(&alert.alert_id));
        if let Some(prev) = by_id.insert(alert.alert_id.clone(), alert.clone()) {
            assert_eq!(prev, alert, "one alert id, two contents");
            repeats += 1;
        }
    }
    (by_id, repeats)
}

struct Reference {
    audit: BTreeMap<u32, Vec<Record>>,
    alerts: BTreeMap<String, Alert>,
}

/// One instance alone over the same input topics, with its own group and outputs.
fn reference_run(broker: &Broker, dir: &std::path::Path, shards: u64) -> Reference {
    let cfg = config(dir, &broker.bootstrap, "reference", Some("ref"), "");
    topics_create(&cfg, shards as u32);
    let one = Instance::start(&cfg, &dir.join("ref-data"));
    wait_settled(&[&one], shards, SETTLE);
    drop(one);
    let (alerts, repeats) = alerts(&broker.bootstrap, "ref.alerts");
    assert_eq!(repeats, 0);
    Reference { audit: audit_log(&broker.bootstrap, "ref.audit"), alerts }
}

fn assert_same_as_reference(broker: &Broker, reference: &Reference, repeats_allowed: bool) {
    let audit = audit_log(&broker.bootstrap, "riskstream.audit");
    assert_eq!(audit.len(), reference.audit.len(), "every shard published");
    for (shard, log) in &reference.audit {
        let got = &audit[shard];
        assert_eq!(got.len(), log.len(), "shard {shard}: every input applied exactly once");
        let first_diff = got.iter().zip(log).position(|(a, b)| a != b);
        assert_eq!(first_diff, None, "shard {shard}: the cluster's log differs from the single instance's");
    }
    let (cluster, repeats) = alerts(&broker.bootstrap, "riskstream.alerts");
    assert!(!reference.alerts.is_empty(), "the workload raises alerts");
    assert_eq!(cluster.len(), reference.alerts.len(), "same number of distinct alerts");
    assert_eq!(cluster, reference.alerts, "the union of alerts equals the single-instance run's");
    if !repeats_allowed {
        assert_eq!(repeats, 0, "no alert id published twice");
    }
}

fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// On tansu: noida-db never expires a member killed without leaving the group, so
/// the survivor would wait forever. tansu's `read_committed` shows aborted records,
/// so an alert of a transaction cut by the kill may be read twice here: the check is
/// the deduplicated set (on a broker that hides aborted records, each id is once).
#[test]
fn a_killed_instance_s_shards_move_to_the_survivor_with_nothing_lost() {
    const SHARDS: u64 = 4;
    let broker = Broker::start_tansu();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &broker.bootstrap, "riskstream", None, "");
    topics_create(&cfg, SHARDS as u32);
    // tansu serves fetches far slower than noida-db: a smaller book.
    produce_workload(&broker.bootstrap, 40_000, 200);
    let reference = reference_run(&broker, dir.path(), SHARDS);

    let a = Instance::start(&cfg, &dir.path().join("a"));
    let b = Instance::start(&cfg, &dir.path().join("b"));
    // Both own shards and B has published part of its work: kill it mid-stream.
    wait_for("both instances to own shards", SETTLE, || !a.owned().is_empty() && !b.owned().is_empty());
    let b_shards = b.owned();
    wait_for("B to publish", SETTLE, || b.has_published());
    let b_progress = b.health().unwrap()["cluster"]["published"].clone();
    b.kill();
    wait_settled(&[&a], SHARDS, SETTLE);
    assert!(a.owned().is_superset(&b_shards.iter().copied().collect::<BTreeSet<_>>()));
    let restored = a
        .logs()
        .lines()
        .filter(|l| l.contains("shard opened") && l.contains(" restored=") && !l.contains(" restored=0 "))
        .count();
    assert!(restored > 0, "the survivor restored B's shards from the audit topic (B had published {b_progress})");
    assert_same_as_reference(&broker, &reference, true);
}

#[test]
fn scale_out_from_one_instance_to_two_and_restore_on_an_empty_data_dir() {
    const SHARDS: u64 = 4;
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &broker.bootstrap, "riskstream", None, "");
    topics_create(&cfg, SHARDS as u32);
    produce_workload(&broker.bootstrap, 100_000, 300);
    let reference = reference_run(&broker, dir.path(), SHARDS);

    let a = Instance::start(&cfg, &dir.path().join("a"));
    wait_for("A to own every shard", SETTLE, || a.owned().len() as u64 == SHARDS);
    wait_for("A to publish", SETTLE, || a.has_published());
    let b = Instance::start(&cfg, &dir.path().join("b"));
    wait_settled(&[&a, &b], SHARDS, SETTLE);
    assert!(!b.owned().is_empty(), "the new instance took shards");
    assert!(a.owned().len() < SHARDS as usize, "the first instance gave shards up");
    assert_same_as_reference(&broker, &reference, false);

    // Query routing: either instance answers for any account, forwarding to the owner.
    let mut forwarded = 0;
    for n in 1..=20 {
        let account = format!("acc-{n:06}");
        let (status, via_a) = a.get(&format!("/v1/accounts/{account}"));
        assert_eq!(status, 200, "{account} via A: {via_a}");
        let (_, via_b) = b.get(&format!("/v1/accounts/{account}"));
        assert_eq!(via_a, via_b, "{account}: the same answer from both instances");
        let shard = via_a["shard"].as_u64().unwrap();
        let owner = if a.owned().contains(&shard) { &a } else { &b };
        assert_eq!(via_a["served_by"], owner.url.as_str(), "{account}: answered by its shard's owner");
        assert_eq!(via_a["restoring"], false);
        let other = if owner.url == a.url { &b } else { &a };
        assert_eq!(other.get(&format!("/v1/accounts/{account}?local=true")).0, 404, "not owned there");
        forwarded += usize::from(owner.url == b.url);
    }
    assert!(forwarded > 0, "some queries to A were forwarded to B");

    // A replacement machine: both stop, a new instance with an empty data dir
    // restores every shard from the audit topic alone.
    let heads: Vec<serde_json::Value> = [&a, &b].iter().map(|i| i.health().unwrap()["shards"].clone()).collect();
    a.stop();
    b.stop();
    let c = Instance::start(&cfg, &dir.path().join("c-empty"));
    wait_settled(&[&c], SHARDS, SETTLE);
    let h = c.health().unwrap();
    for shard in 0..SHARDS as usize {
        let expected = &reference.audit[&(shard as u32)];
        assert_eq!(h["shards"][shard]["seq"].as_u64(), Some(expected.len() as u64), "{heads:?}");
        assert_eq!(
            h["shards"][shard]["hash"].as_str().unwrap(),
            riskstream_engine::store::hex(&expected.last().unwrap().hash),
            "shard {shard}: restored head equals the published one"
        );
    }
    assert_eq!(h["accounts"].as_u64(), Some(300), "every account restored");
    assert_same_as_reference(&broker, &reference, false);

    // A restart on that data dir restores incrementally: it reads the audit topic from
    // the offset it recorded, not from the start, and has nothing to apply.
    c.stop();
    let c = Instance::start(&cfg, &dir.path().join("c-empty"));
    wait_settled(&[&c], SHARDS, SETTLE);
    let opened: Vec<String> = c.logs().lines().filter(|l| l.contains("shard opened")).map(str::to_string).collect();
    assert_eq!(opened.len(), SHARDS as usize, "{opened:?}");
    for line in &opened {
        assert!(line.contains("restored=0"), "nothing to apply after a restart: {line}");
        let from: i64 =
            line.split("audit_from=").nth(1).and_then(|r| r.split_whitespace().next()).unwrap().parse().unwrap();
        assert!(from > 0, "read from the recorded offset, not the start: {line}");
    }
}

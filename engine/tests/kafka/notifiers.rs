//! `riskstream notifier run` as real processes: two notifiers in one consumer group
//! on the alerts topic (tansu, which expires a killed member), sharing one ledger on
//! a real PostgreSQL server. One is SIGKILLed mid-stream: the other takes its
//! partitions and every alert still reaches its user's inbox once, and the group's
//! offsets end past every message once the ledger holds everything.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use riskstream_connectors::kafka::ValueCodec;
use riskstream_notifier::Ledger;
use riskstream_schemas::{Alert, AlertKind, AlertState, Priority, RecordRef, Timestamp};

use crate::broker::Broker;
use crate::cluster::{config, topics_create, Instance};
use crate::wait_for;

#[allow(dead_code)]
#[path = "../../../connectors/notifier/tests/common/db.rs"]
mod db;

const TOPIC: &str = "riskstream.alerts";
const PARTITIONS: i32 = 4;
const USERS: usize = 20;

fn alert(n: usize) -> Alert {
    Alert {
        alert_id: format!("al-{n:05}"),
        kind: AlertKind::Drift,
        state: AlertState::Raised,
        priority: Priority::High,
        // One account per alert: no two alerts of one signal, so none waits on another.
        account_id: format!("acc-{n:05}"),
        user_id: format!("usr-{:02}", n % USERS),
        ts: Timestamp::parse("2026-03-02T14:00:00Z").unwrap().plus_seconds(n as i64),
        caused_by: RecordRef { shard: (n % 4) as u32, seq: n as u64 + 1 },
        rule: "drift".into(),
        value: "0.31".parse().unwrap(),
        threshold: "0.25".parse().unwrap(),
        message: format!("alert {n}"),
        details: None,
    }
}

/// Publishes alerts as the engine does: Avro in the wire format, keyed by `user_id`.
fn publish(bootstrap: &str, alerts: impl Iterator<Item = Alert>) {
    let codec = ValueCodec::embedded();
    let producer: BaseProducer = ClientConfig::new().set("bootstrap.servers", bootstrap).create().unwrap();
    for a in alerts {
        let value = codec.encode_alert(&a).unwrap();
        producer.send(BaseRecord::to(TOPIC).key(a.user_id.as_bytes()).payload(&value)).unwrap();
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(30)).unwrap();
}

/// The group's committed offsets, summed over the partitions. Published without
/// transactions, the messages have offsets 0, 1, 2, ... in each partition, so the sum
/// is the count of messages the group is past (tansu's watermarks count batches, not
/// records, so they cannot say where a partition ends).
fn committed(bootstrap: &str, group: &str) -> i64 {
    let consumer: BaseConsumer =
        ClientConfig::new().set("bootstrap.servers", bootstrap).set("group.id", group).create().unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition(TOPIC, p);
    }
    let committed = consumer.committed_offsets(tpl, Duration::from_secs(10)).unwrap();
    committed
        .elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(n) => n,
            _ => 0,
        })
        .sum()
}

fn delivered(rt: &tokio::runtime::Runtime, ledger: &Ledger) -> i64 {
    rt.block_on(ledger.delivery_count()).unwrap()
}

/// On tansu (noida-db never expires a member killed without leaving the group).
#[test]
fn notifiers_share_the_alerts_topic_and_one_postgres_ledger_and_a_killed_one_loses_nothing() {
    let broker = Broker::start_tansu();
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let at = rt.block_on(db::LedgerAt::new(db::Db::Postgres, dir.path()));
    // Both notifiers seal preferences under one key, as notifiers sharing a ledger must.
    let key = dir.path().join("shared.key");
    let notifier = format!("[notifier]\nledger_url = \"{}\"\nkey = \"{}\"\n", at.url(), key.display());
    let cfg = config(dir.path(), &broker.bootstrap, "desk", None, &notifier);
    topics_create(&cfg, PARTITIONS as u32);

    let a = Instance::start_notifier(&cfg, &dir.path().join("a"));
    let b = Instance::start_notifier(&cfg, &dir.path().join("b"));
    // Publish once the group has split the partitions, so both do part of the work.
    let partitions = |n: &Instance| {
        let (status, ready) = n.get("/readyz");
        assert_eq!(status, 200, "{ready}");
        ready["checks"]["alert_partitions"].as_array().map_or(0, Vec::len)
    };
    wait_for("both notifiers to read partitions", Duration::from_secs(60), || {
        let (pa, pb) = (partitions(&a), partitions(&b));
        pa > 0 && pb > 0 && pa + pb == PARTITIONS as usize
    });
    let ledger = rt.block_on(at.open());
    publish(&broker.bootstrap, (0..200).map(alert));
    wait_for("the first 200 alerts in the ledger", Duration::from_secs(120), || delivered(&rt, &ledger) == 200);

    a.kill();
    publish(&broker.bootstrap, (200..400).map(alert));
    wait_for("the survivor to deliver the rest", Duration::from_secs(180), || delivered(&rt, &ledger) == 400);
    wait_for("the group's offsets past all 400 messages", Duration::from_secs(60), || {
        committed(&broker.bootstrap, "desk-notifier") == 400
    });
    // One success per alert (the ledger's key) and none missing: 400 deliveries of 400 alerts.
    assert_eq!(delivered(&rt, &ledger), 400);
    for user in ["usr-00", "usr-07", "usr-19"] {
        let (status, page) = b.get(&format!("/v1/users/{user}/inbox?limit=100"));
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["unread"], 400 / USERS as u64, "{user}: {page}");
    }
    let metrics = reqwest::blocking::get(format!("{}/metrics", b.url)).unwrap().text().unwrap();
    let survivor_delivered: i64 = metrics
        .lines()
        .find(|l| l.starts_with("riskstream_notifier_delivered_total{channel=\"in_app\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no in-app deliveries counted:\n{metrics}"));
    assert!(
        (200..400).contains(&survivor_delivered),
        "the killed notifier delivered part of the first half, the survivor the rest: {survivor_delivered}"
    );
    assert!(key.exists(), "the shared key was created");
    b.stop();
}

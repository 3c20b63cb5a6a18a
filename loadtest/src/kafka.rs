//! `--kafka BROKERS`: the seeded workload produced to a broker and consumed by 1..N
//! `riskstream run` processes in one consumer group (the binary next to this one).
//!
//! - Throughput: steady-state events / (first produce -> every instance settled:
//!   no input lag, every shard's records on the audit topic).
//! - Latency: an alert read from the alerts topic (read_committed) minus the
//!   produce time of the newest input event at or before the alert's event time:
//!   broker, merge, apply, commit, transaction and consumer included.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hdrhistogram::Histogram;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::ClientConfig;
use riskstream_connectors::kafka::{EventProducer, KafkaConfig, Topics, ValueCodec};
use riskstream_connectors::{EventSource, SimulatorSource};
use riskstream_schemas::Timestamp;

use crate::Args;

#[derive(Debug, Clone, serde::Serialize)]
pub struct KafkaResult {
    pub instances: usize,
    pub shards: u32,
    pub events: u64,
    pub produce_secs: f64,
    pub secs: f64,
    pub events_per_sec: f64,
    pub alerts: u64,
    pub latency_ms_p50: u64,
    pub latency_ms_p99: u64,
    pub latency_ms_p999: u64,
}

struct Instance {
    child: Child,
    url: String,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
    }
}

fn riskstream_bin() -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe()?;
    let bin = me.with_file_name("riskstream");
    if !bin.is_file() {
        bail!("{} not found: build it first (cargo build --bins)", bin.display());
    }
    Ok(bin)
}

fn health(url: &str) -> Option<serde_json::Value> {
    reqwest::blocking::Client::new()
        .get(format!("{url}/healthz"))
        .timeout(Duration::from_secs(5))
        .send()
        .ok()?
        .json()
        .ok()
}

/// Every shard owned, no lag, everything published, on every instance.
fn settled(instances: &[Instance], shards: u32) -> bool {
    let mut owned = 0;
    for i in instances {
        let Some(h) = health(&i.url) else { return false };
        let c = &h["cluster"];
        if c["lag"].as_i64() != Some(0) || c["restoring"].as_array().is_none_or(|r| !r.is_empty()) {
            return false;
        }
        for s in c["owned"].as_array().cloned().unwrap_or_default() {
            let s = s.as_u64().unwrap_or_default();
            owned += 1;
            if c["published"][s.to_string()].as_u64() != h["shards"][s as usize]["seq"].as_u64() {
                return false;
            }
        }
    }
    owned == shards as usize
}

pub fn run(args: &Args, brokers: &str, instances: usize) -> anyhow::Result<KafkaResult> {
    let bin = riskstream_bin()?;
    let dir = tempfile::tempdir()?;
    // Fresh topics and group per run, so runs never see each other's data.
    let run_id = format!("lt{}", std::process::id() as u64 * 1000 + instances as u64);
    let topics = Topics {
        trades: format!("{run_id}.trades"),
        cash: format!("{run_id}.cash"),
        actions: format!("{run_id}.actions"),
        ticks: format!("{run_id}.ticks"),
        alerts: format!("{run_id}.alerts"),
        audit: format!("{run_id}.audit"),
        dead_letters: format!("{run_id}.dead-letters"),
    };
    let k =
        KafkaConfig { brokers: brokers.into(), group_id: run_id.clone(), topics: topics.clone(), ..Default::default() };
    let cfg = dir.path().join("riskstream.toml");
    let mut toml_text = format!(
        "batch_max = {}\n[kafka]\nbrokers = \"{brokers}\"\ngroup_id = \"{run_id}\"\n[kafka.topics]\n",
        args.batch
    );
    for (name, value) in [
        ("trades", &topics.trades),
        ("cash", &topics.cash),
        ("actions", &topics.actions),
        ("ticks", &topics.ticks),
        ("alerts", &topics.alerts),
        ("audit", &topics.audit),
        ("dead_letters", &topics.dead_letters),
    ] {
        toml_text.push_str(&format!("{name} = \"{value}\"\n"));
    }
    std::fs::write(&cfg, toml_text)?;
    let status = Command::new(&bin)
        .args(["topics", "create", "--replication-factor", "1", "--min-insync-replicas", "1", "--partitions"])
        .arg(args.shards.to_string())
        .arg("--config")
        .arg(&cfg)
        .stdout(Stdio::null())
        .status()?;
    if !status.success() {
        bail!("riskstream topics create failed");
    }

    let started: Vec<Instance> = (0..instances)
        .map(|i| start_instance(&bin, &cfg, &dir.path().join(format!("data-{i}"))))
        .collect::<anyhow::Result<_>>()?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while !settled(&started, args.shards) {
        if Instant::now() > deadline {
            bail!("the instances did not take the {} shards within 120 s", args.shards);
        }
        std::thread::sleep(Duration::from_millis(200));
    }

    let alerts = Arc::new(Mutex::new(Vec::<(Instant, Timestamp)>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let reader = spawn_alert_reader(brokers, &topics.alerts, Arc::clone(&alerts), Arc::clone(&stop))?;

    // Setup and steady state alike: the simulator in event-time order, stamped as sent.
    let producer = EventProducer::open(&k, Arc::new(ValueCodec::embedded()), args.shards)?;
    let mut source = SimulatorSource::new(crate::simulator(args));
    let mut sent: Vec<(Timestamp, Instant)> = Vec::new();
    let first = Instant::now();
    let total = args.events;
    let mut n = 0u64;
    while n < total {
        let batch = source.next_batch(1_000)?;
        for item in batch.items {
            let event = item.result.map_err(|r| anyhow::anyhow!("simulator made a bad event: {r}"))?;
            producer.send(&event)?;
            sent.push((event.ts, Instant::now()));
            n += 1;
        }
        if let Some(rate) = args.rate {
            let due = Duration::from_secs_f64(n as f64 / rate);
            if let Some(wait) = due.checked_sub(first.elapsed()) {
                std::thread::sleep(wait);
            }
        }
    }
    producer.flush()?;
    let produce_secs = first.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(1800);
    while !settled(&started, args.shards) {
        if Instant::now() > deadline {
            bail!("the instances did not catch up within 30 min");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let secs = first.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    reader.join().map_err(|_| anyhow::anyhow!("alert reader panicked"))?;
    drop(started);

    let mut hist = Histogram::<u64>::new(3)?;
    let seen = alerts.lock().expect("alerts lock");
    for (arrived, ts) in seen.iter() {
        // The newest input event at or before the alert's event time caused it.
        let i = sent.partition_point(|(t, _)| t <= ts);
        if i > 0 {
            let latency = arrived.saturating_duration_since(sent[i - 1].1);
            hist.record(latency.as_millis() as u64)?;
        }
    }
    Ok(KafkaResult {
        instances,
        shards: args.shards,
        events: total,
        produce_secs,
        secs,
        events_per_sec: total as f64 / secs,
        alerts: seen.len() as u64,
        latency_ms_p50: hist.value_at_quantile(0.5),
        latency_ms_p99: hist.value_at_quantile(0.99),
        latency_ms_p999: hist.value_at_quantile(0.999),
    })
}

fn start_instance(bin: &Path, cfg: &Path, data: &Path) -> anyhow::Result<Instance> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let log = std::fs::File::create(data.with_extension("log"))?;
    let child = Command::new(bin)
        .args(["run", "--listen", &format!("127.0.0.1:{port}"), "--config"])
        .arg(cfg)
        .arg("--data-dir")
        .arg(data)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("cannot start riskstream run")?;
    Ok(Instance { child, url: format!("http://127.0.0.1:{port}") })
}

fn spawn_alert_reader(
    brokers: &str,
    topic: &str,
    out: Arc<Mutex<Vec<(Instant, Timestamp)>>>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<std::thread::JoinHandle<()>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("{topic}-loadtest"))
        .set("isolation.level", "read_committed")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()?;
    consumer.subscribe(&[topic])?;
    let codec = ValueCodec::embedded();
    Ok(std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
                if let Ok(alert) = codec.decode_alert(m.payload().unwrap_or_default()) {
                    out.lock().expect("alerts lock").push((Instant::now(), alert.ts));
                }
            }
        }
    }))
}

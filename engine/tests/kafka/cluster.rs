//! Engine instances as real processes against the test broker, and readers of the
//! output topics.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_riskstream");

/// A config file for one deployment: its group and, with `outputs`, its own alert,
/// audit and dead-letter topics (the input topics are shared).
pub fn config(dir: &Path, bootstrap: &str, group: &str, outputs: Option<&str>, extra: &str) -> PathBuf {
    let mut text = format!("[kafka]\nbrokers = \"{bootstrap}\"\ngroup_id = \"{group}\"\n{extra}\n");
    if let Some(p) = outputs {
        text.push_str(&format!(
            "[kafka.topics]\nalerts = \"{p}.alerts\"\naudit = \"{p}.audit\"\ndead_letters = \"{p}.dead-letters\"\n"
        ));
    }
    let path = dir.join(format!("{group}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

pub fn riskstream(args: &[&str]) -> String {
    let out = Command::new(BIN).args(args).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "riskstream {args:?} failed:\n{text}");
    text
}

pub fn topics_create(config: &Path, partitions: u32) {
    riskstream(&[
        "topics",
        "create",
        "--config",
        config.to_str().unwrap(),
        "--partitions",
        &partitions.to_string(),
        "--replication-factor",
        "1",
        "--min-insync-replicas",
        "1",
    ]);
}

pub struct Instance {
    child: Child,
    pub url: String,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Instance {
    pub fn start(config: &Path, data_dir: &Path) -> Instance {
        Instance::spawn(&["-v", "run", "--listen", "127.0.0.1:0"], config, data_dir)
    }

    /// `riskstream notifier run` on the same config.
    pub fn start_notifier(config: &Path, data_dir: &Path) -> Instance {
        Instance::spawn(&["-v", "notifier", "run", "--listen", "127.0.0.1:0"], config, data_dir)
    }

    fn spawn(command: &[&str], config: &Path, data_dir: &Path) -> Instance {
        let mut child = Command::new(BIN)
            .args(command)
            .arg("--config")
            .arg(config)
            .arg("--data-dir")
            .arg(data_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let _ = tx.send(rest.split_whitespace().next().unwrap_or_default().to_string());
                }
                lines.lock().unwrap().push(line);
            }
        });
        let addr = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|_| {
            panic!("instance did not start:\n{}", log.lock().unwrap().join("\n"));
        });
        Instance { child, url: format!("http://{addr}"), log }
    }

    pub fn health(&self) -> Option<Value> {
        let r = reqwest::blocking::Client::new()
            .get(format!("{}/healthz", self.url))
            .timeout(Duration::from_secs(5))
            .send()
            .ok()?;
        r.json().ok()
    }

    pub fn owned(&self) -> BTreeSet<u64> {
        self.health()
            .and_then(|h| h["cluster"]["owned"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(Value::as_u64)
            .collect()
    }

    /// Some shard of this instance has records on the audit topic.
    pub fn has_published(&self) -> bool {
        self.health().is_some_and(|h| {
            h["cluster"]["published"].as_object().is_some_and(|p| p.values().any(|v| v.as_u64() > Some(0)))
        })
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        let r = reqwest::blocking::get(format!("{}{path}", self.url)).unwrap();
        let status = r.status().as_u16();
        (status, r.json().unwrap_or(Value::Null))
    }

    /// SIGTERM: publish, leave the group, exit.
    pub fn stop(mut self) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "instance did not stop on SIGTERM:\n{}", self.logs());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: no shutdown, no last publish.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub fn logs(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until the instances together own all `shards`, none restoring, every
/// owned shard published up to its head and no input lag, three polls in a row.
pub fn wait_settled(instances: &[&Instance], shards: u64, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    let mut calm = 0;
    let mut last = String::new();
    while calm < 3 {
        assert!(
            Instant::now() < deadline,
            "cluster did not settle; last health: {last}\nlogs:\n{}",
            instances.iter().map(|i| i.logs()).collect::<Vec<_>>().join("\n---\n")
        );
        std::thread::sleep(Duration::from_secs(1));
        let healths: Vec<Value> = instances.iter().filter_map(|i| i.health()).collect();
        last = serde_json::to_string(&healths).unwrap();
        let mut owned = BTreeSet::new();
        let mut ok = healths.len() == instances.len();
        for h in &healths {
            let c = &h["cluster"];
            ok &= c["restoring"].as_array().is_some_and(|r| r.is_empty());
            ok &= c["lag"].as_i64() == Some(0);
            for s in c["owned"].as_array().cloned().unwrap_or_default() {
                let s = s.as_u64().unwrap();
                owned.insert(s);
                let head = h["shards"][s as usize]["seq"].as_u64();
                ok &= c["published"][s.to_string()].as_u64() == head;
            }
        }
        ok &= owned.len() as u64 == shards;
        calm = if ok { calm + 1 } else { 0 };
    }
}

/// A message read back from a topic.
#[derive(Debug, Clone)]
pub struct Msg {
    pub partition: i32,
    pub offset: i64,
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub headers: BTreeMap<String, String>,
}

/// Every committed message of `topic`, partition by partition, in offset order.
pub fn read_topic(bootstrap: &str, topic: &str) -> Vec<Msg> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "riskstream-test-reader")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .unwrap();
    let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).unwrap();
    let parts: Vec<i32> = md.topics()[0].partitions().iter().map(|p| p.id()).collect();
    let mut out = Vec::new();
    for p in parts {
        let (_, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(10)).unwrap();
        if high == 0 {
            continue;
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, p, Offset::Beginning).unwrap();
        consumer.assign(&tpl).unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            assert!(Instant::now() < deadline, "timed out reading {topic}/{p}");
            match consumer.poll(Duration::from_millis(500)) {
                Some(Ok(m)) => {
                    let mut headers = BTreeMap::new();
                    if let Some(h) = m.headers() {
                        for hd in h.iter() {
                            headers.insert(
                                hd.key.to_string(),
                                String::from_utf8_lossy(hd.value.unwrap_or_default()).into_owned(),
                            );
                        }
                    }
                    let done = m.offset() + 1 >= high;
                    out.push(Msg {
                        partition: p,
                        offset: m.offset(),
                        key: m.key().unwrap_or_default().to_vec(),
                        value: m.payload().unwrap_or_default().to_vec(),
                        headers,
                    });
                    if done {
                        break;
                    }
                }
                Some(Err(KafkaError::PartitionEOF(_))) => break,
                Some(Err(e)) => panic!("reading {topic}/{p}: {e}"),
                // Transaction markers end a partition without a message at high - 1.
                None => {
                    let pos = consumer.position().unwrap();
                    let at = pos.find_partition(topic, p).and_then(|e| e.offset().to_raw()).unwrap_or(0);
                    if at >= high {
                        break;
                    }
                }
            }
        }
    }
    out
}

//! The notifier beside `riskstream run` (embedded mode), through the real binary:
//! every raised alert reaches its user's in-app inbox exactly once, and a SIGKILL
//! and restart deliver nothing twice and lose nothing (the ledger holds one success
//! per alert).

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use riskstream_schemas::json;
use serde_json::Value;

struct Run {
    child: Child,
    base: String,
}

impl Run {
    fn start(data: &Path) -> Run {
        Self::start_with(data, &[])
    }

    fn start_with(data: &Path, extra: &[&str]) -> Run {
        let mut child = Command::new(env!("CARGO_BIN_EXE_riskstream"))
            .args(["run", "--listen", "127.0.0.1:0", "--shards", "2", "--data-dir", data.to_str().unwrap()])
            .args(extra)
            .env_remove("RISKSTREAM_CONFIG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let base = loop {
            let line = lines.next().expect("run prints where it listens").unwrap();
            if let Some(rest) = line.strip_prefix("riskstream listening on ") {
                break rest.split_whitespace().next().unwrap().to_string();
            }
        };
        std::thread::spawn(move || lines.for_each(drop));
        Run { child, base }
    }

    fn get(&self, path: &str) -> Value {
        let response = reqwest::blocking::get(format!("{}{path}", self.base)).unwrap();
        assert!(response.status().is_success(), "GET {path}: {}", response.status());
        response.json().unwrap()
    }

    /// Raised alerts per user, from the engine's alert history.
    fn raised(&self) -> BTreeMap<String, Vec<String>> {
        let alerts = self.get("/v1/alerts?since=0&limit=10000");
        let mut by_user: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for a in alerts["alerts"].as_array().unwrap().iter().filter(|a| a["state"] == "raised") {
            by_user
                .entry(a["user_id"].as_str().unwrap().into())
                .or_default()
                .push(a["alert_id"].as_str().unwrap().into());
        }
        by_user.values_mut().for_each(|ids| ids.sort());
        by_user
    }

    /// Alert ids in a user's inbox (archived included), sorted.
    fn inbox(&self, user: &str) -> Vec<String> {
        let page = self.get(&format!("/v1/users/{user}/inbox?limit=1000&archived=true"));
        let mut ids: Vec<String> =
            page["items"].as_array().unwrap().iter().map(|i| i["alert_id"].as_str().unwrap().to_string()).collect();
        ids.sort();
        ids
    }

    /// Waits until every raised alert is in its user's inbox.
    fn wait_delivered(&self) -> BTreeMap<String, Vec<String>> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let raised = self.raised();
            if raised.iter().all(|(user, ids)| &self.inbox(user) == ids) {
                return raised;
            }
            assert!(Instant::now() < deadline, "alerts not delivered in 60 s: {raised:?}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn every_raised_alert_reaches_its_inbox_once_across_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let run = Run::start(&data);
    post_workload(&run);
    let delivered = run.wait_delivered();
    let total: usize = delivered.values().map(Vec::len).sum();
    assert!(total >= 5, "the workload must raise alerts for this test to mean anything: {delivered:?}");

    // SIGKILL, no clean stop: the restart re-sends whatever the outbox had not
    // acknowledged, and the ledger turns those into no-ops.
    run.kill();
    let run = Run::start(&data);
    assert_eq!(run.wait_delivered(), delivered);
    let user = delivered.keys().next().unwrap();
    let page = run.get(&format!("/v1/users/{user}/inbox"));
    assert_eq!(page["unread"], delivered[user].len());
    run.kill();

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let ledger = rt.block_on(riskstream_notifier::Ledger::open(&data.join("notifier.sqlite"))).unwrap();
    assert_eq!(rt.block_on(ledger.delivery_count()).unwrap(), total as i64, "one success per alert");
    for id in delivered.values().flatten() {
        let attempts = rt.block_on(ledger.attempts(id)).unwrap();
        assert!(attempts.iter().filter(|a| a.ok).count() == 1, "{id}: {attempts:?}");
    }
}

fn post_workload(run: &Run) {
    let events: Vec<Value> =
        common::workload(6, 300).iter().map(|e| serde_json::from_str(&json::encode(e)).unwrap()).collect();
    let http = reqwest::blocking::Client::new();
    for chunk in events.chunks(40) {
        let response = http.post(format!("{}/v1/events", run.base)).json(&chunk).send().unwrap();
        assert!(response.status().is_success(), "{}", response.text().unwrap());
    }
}

/// A webhook from the config receives every alert, raised and cleared, once, each
/// signature checked by the Standard Webhooks reference library
/// (connectors/notifier/tests/receiver.py); a 503 is retried later without holding
/// up the alerts behind it.
#[test]
fn a_configured_webhook_receives_every_alert_signed_once() {
    let dir = tempfile::tempdir().unwrap();
    let (log, port_file) = (dir.path().join("hooks.log"), dir.path().join("port"));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../connectors/notifier/tests/receiver.py");
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let mut receiver = Command::new("python3")
        .arg(script)
        .args([secret, "503,200", log.to_str().unwrap(), port_file.to_str().unwrap()])
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let port = loop {
        if let Some(p) = std::fs::read_to_string(&port_file).ok().and_then(|p| p.trim().parse::<u16>().ok()) {
            break p;
        }
        assert!(Instant::now() < deadline, "the receiver did not start");
        std::thread::sleep(Duration::from_millis(50));
    };
    let config = dir.path().join("rs.toml");
    std::fs::write(
        &config,
        format!(
            "[notifier]\n[[notifier.webhooks]]\nid = \"ops\"\nurl = \"http://127.0.0.1:{port}/hooks\"\n\
             secrets = [\"{secret}\"]\nallow_private = true\n"
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let run = Run::start_with(&data, &["--config", config.to_str().unwrap()]);
    post_workload(&run);
    let alerts = run.get("/v1/alerts?since=0&limit=10000");
    let mut expected: Vec<String> =
        alerts["alerts"].as_array().unwrap().iter().map(|a| a["alert_id"].as_str().unwrap().to_string()).collect();
    expected.sort();
    let received = || -> Vec<Value> {
        std::fs::read_to_string(&log).unwrap_or_default().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    };
    // The receiver's first answer is a 503: that delivery is retried about 5 s later
    // by the retry thread, and the others do not wait for it.
    let delivered = || received().iter().filter(|r| r["status"] == 200).count();
    let deadline = Instant::now() + Duration::from_secs(60);
    while delivered() < expected.len() {
        assert!(Instant::now() < deadline, "{} of {} alerts reached the webhook", delivered(), expected.len());
        std::thread::sleep(Duration::from_millis(200));
    }
    let first = &received()[0];
    assert_eq!(first["status"], 503);
    let retried: Vec<Value> = received().into_iter().filter(|r| r["id"] == first["id"]).collect();
    assert_eq!(retried.len(), 2, "the failed delivery was retried once, under the same webhook-id");
    assert!(received().iter().position(|r| r["status"] == 200).unwrap() == 1, "the next alerts did not wait");
    run.kill();
    // After a SIGKILL and a restart, nothing is sent again.
    let run = Run::start_with(&data, &["--config", config.to_str().unwrap()]);
    run.wait_delivered();
    std::thread::sleep(Duration::from_millis(500));
    run.kill();
    let _ = receiver.kill();
    let _ = receiver.wait();
    let requests = received();
    let mut got: Vec<String> =
        requests.iter().filter(|r| r["status"] == 200).map(|r| r["alert_id"].as_str().unwrap().to_string()).collect();
    got.sort();
    assert_eq!(got, expected, "every alert, raised and cleared, delivered once");
    assert_eq!(requests.len(), expected.len() + 1, "and only the 503 was sent twice");
    assert!(requests.iter().all(|r| r["verified"] == true), "{:?}", requests.iter().find(|r| r["verified"] != true));
}

#[test]
fn no_notifier_means_no_inbox_and_no_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut child = Command::new(env!("CARGO_BIN_EXE_riskstream"))
        .args(["run", "--listen", "127.0.0.1:0", "--no-notifier", "--data-dir", data.to_str().unwrap()])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let base = loop {
        let line = lines.next().unwrap().unwrap();
        if let Some(rest) = line.strip_prefix("riskstream listening on ") {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    let response = reqwest::blocking::get(format!("{base}/v1/users/u1/inbox")).unwrap();
    assert_eq!(response.status().as_u16(), 404);
    let _ = child.kill();
    let _ = child.wait();
    assert!(!data.join("notifier.sqlite").exists());
}

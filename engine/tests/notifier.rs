//! The notifier beside `riskstream run` (embedded mode), through the real binary:
//! every raised alert reaches its user's in-app inbox exactly once, and a SIGKILL
//! and restart deliver nothing twice and lose nothing (the ledger holds one success
//! per alert).

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
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
    let ready = run.get("/readyz");
    assert_eq!((ready["ready"].as_bool(), ready["checks"]["engine"].as_str()), (Some(true), Some("ok")), "{ready}");
    assert_eq!(ready["checks"]["notifier"]["pending"], 0, "the notifier's ledger answers: {ready}");

    // A ledger that cannot answer makes the instance not ready, saying why: a table
    // its health query reads is moved away (by another process, as a damaged or
    // foreign file would be), then put back.
    let ledger_file = data.join("notifier.sqlite");
    let move_table = |from: &str, to: &str| {
        let sql = format!("import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute('ALTER TABLE {from} RENAME TO {to}'); c.commit()");
        let out = Command::new("python3").args(["-c", &sql, ledger_file.to_str().unwrap()]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    move_table("dead_letters", "dead_letters_away");
    let response = reqwest::blocking::get(format!("{}/readyz", run.base)).unwrap();
    assert_eq!(response.status().as_u16(), 503);
    let body: Value = response.json().unwrap();
    assert_eq!(body["ready"], false);
    assert!(body["reasons"][0].as_str().unwrap().starts_with("notifier: the ledger does not answer"), "{body}");
    run.kill();

    move_table("dead_letters_away", "dead_letters");
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

/// Starts connectors/notifier/tests/receiver.py answering `statuses`: the child,
/// its port and its request log.
fn start_receiver(dir: &Path, secret: &str, statuses: &str) -> (Child, u16, std::path::PathBuf) {
    start_slow_receiver(dir, secret, statuses, 0)
}

/// The same, answering each request after `delay_ms`.
fn start_slow_receiver(dir: &Path, secret: &str, statuses: &str, delay_ms: u64) -> (Child, u16, std::path::PathBuf) {
    let (log, port_file) = (dir.join("hooks.log"), dir.join("port"));
    let dir =
        std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from).unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into());
    let script = dir.join("../connectors/notifier/tests/receiver.py");
    let receiver = Command::new("python3")
        .arg(script)
        .args([secret, statuses, log.to_str().unwrap(), port_file.to_str().unwrap(), &delay_ms.to_string()])
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
    (receiver, port, log)
}

fn requests(log: &Path) -> Vec<Value> {
    std::fs::read_to_string(log).unwrap_or_default().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// A config file with one operator webhook, `ops`, at the receiver on `port`.
fn ops_webhook_config(dir: &Path, port: u16, secret: &str) -> std::path::PathBuf {
    let config = dir.join("rs.toml");
    let toml = format!(
        "[notifier]\n[[notifier.webhooks]]\nid = \"ops\"\nurl = \"http://127.0.0.1:{port}/hooks\"\n\
         secrets = [\"{secret}\"]\nallow_private = true\n"
    );
    std::fs::write(&config, toml).unwrap();
    config
}

/// `riskstream notifier ...` on a data dir: exit code, stdout, stderr.
fn notifier_cli(data: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_riskstream"))
        .arg("notifier")
        .args(args)
        .args(["--data-dir", data.to_str().unwrap()])
        .env_remove("RISKSTREAM_CONFIG")
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap(), text(&out.stdout), text(&out.stderr))
}

/// A webhook answering 410 is disabled: the alerts after it are not sent but kept
/// as dead letters (those already in flight beside it are sent), which the operator sees (CLI, and the API behind the admin
/// token), enables the endpoint and re-drives (CLI by alert, API the rest); every
/// alert then arrives once more under its own webhook-id, verified.
#[test]
fn a_gone_webhook_is_disabled_and_its_dead_letters_re_driven_by_the_operator() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let token = "0123456789abcdef0123456789abcdef";
    let (mut receiver, port, log) = start_receiver(dir.path(), secret, "410,200");
    let config = ops_webhook_config(dir.path(), port, secret);
    let data = dir.path().join("data");
    let run = Run::start_with(&data, &["--config", config.to_str().unwrap(), "--admin-token", token]);
    post_workload(&run);
    let alerts = run.get("/v1/alerts?since=0&limit=10000");
    let mut expected: Vec<String> =
        alerts["alerts"].as_array().unwrap().iter().map(|a| a["alert_id"].as_str().unwrap().to_string()).collect();
    expected.sort();
    assert!(expected.len() >= 3, "{expected:?}");

    let deadline = Instant::now() + Duration::from_secs(60);
    let delivered = || requests(&log).into_iter().filter(|r| r["status"] == 200).collect::<Vec<_>>();
    // Every alert settles: delivered (in flight beside the 410), or a dead letter.
    let dead = loop {
        let (code, out, err) = notifier_cli(&data, &["dead-letters", "--json", "--limit", "10000"]);
        assert_eq!(code, 0, "{err}");
        let dead: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        if dead.len() + delivered().len() == expected.len() {
            break dead;
        }
        assert!(Instant::now() < deadline, "{} of {} alerts are dead letters", dead.len(), expected.len());
        std::thread::sleep(Duration::from_millis(200));
    };
    let sent = requests(&log);
    assert_eq!(sent[0]["status"], 410, "{sent:?}");
    assert!(sent.len() <= 1 + riskstream_notifier::CONCURRENCY, "only what was in flight beside the 410: {sent:?}");
    let unsent =
        dead.iter().filter(|d| d["reason"].as_str().unwrap().starts_with("not sent: the endpoint is disabled"));
    assert_eq!(unsent.count(), expected.len() - sent.len(), "nothing is sent after the 410: {dead:?}");
    assert!(expected.len() > sent.len(), "some alerts came after the 410: {} alerts", expected.len());
    let health = run.get("/v1/notifier/health");
    assert_eq!(
        (health["dead_letters"].as_u64(), health["disabled_endpoints"].as_u64()),
        (Some(dead.len() as u64), Some(1))
    );
    let (_, out, _) = notifier_cli(&data, &["endpoints"]);
    assert!(out.starts_with("webhook/ops  disabled since ") && out.contains("410"), "{out}");

    let http = reqwest::blocking::Client::new();
    let url = |path: &str| format!("{}{path}", run.base);
    assert_eq!(http.get(url("/v1/notifier/dead-letters")).send().unwrap().status().as_u16(), 401);
    let listed: Vec<Value> =
        http.get(url("/v1/notifier/dead-letters?channel=webhook")).bearer_auth(token).send().unwrap().json().unwrap();
    assert_eq!(listed.len(), dead.len());
    let bad = http.get(url("/v1/notifier/dead-letters?from=yesterday")).bearer_auth(token).send().unwrap();
    assert_eq!(bad.status().as_u16(), 400);
    assert!(bad.text().unwrap().contains("`from` is not an RFC 3339 time"));

    let (code, _, err) = notifier_cli(&data, &["redrive"]);
    assert!(code == 2 && err.contains("say which dead letters"), "{code} {err}");
    let (code, out, _) = notifier_cli(&data, &["enable", "webhook", "ops"]);
    assert!(code == 0 && out.contains("enabled webhook/ops"), "{out}");
    let (code, _, err) = notifier_cli(&data, &["enable", "webhook", "ops"]);
    assert!(code == 2 && err.contains("is not disabled"), "{err}");
    let first = dead[0]["alert_id"].as_str().unwrap();
    let (code, out, _) = notifier_cli(&data, &["redrive", "--alert-id", first]);
    assert!(code == 0 && out.contains("re-driven: 1"), "{out}");
    let redriven: Value = http
        .post(url("/v1/notifier/dead-letters/redrive"))
        .bearer_auth(token)
        .json(&serde_json::json!({}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(redriven["redriven"], dead.len() - 1);

    while delivered().len() < expected.len() {
        assert!(Instant::now() < deadline, "{} of {} re-driven alerts arrived", delivered().len(), expected.len());
        std::thread::sleep(Duration::from_millis(200));
    }
    run.kill();
    let _ = receiver.kill();
    let _ = receiver.wait();
    let mut got: Vec<String> = delivered().iter().map(|r| r["alert_id"].as_str().unwrap().to_string()).collect();
    got.sort();
    assert_eq!(got, expected, "each alert delivered once after the re-drive");
    assert!(requests(&log).iter().all(|r| r["verified"] == true));
    assert_eq!(notifier_cli(&data, &["dead-letters"]).1, "");
}

/// A webhook from the config receives every alert, raised and cleared, once, each
/// signature checked by the Standard Webhooks reference library
/// (connectors/notifier/tests/receiver.py); a 503 is retried later without holding
/// up the alerts behind it.
#[test]
fn a_configured_webhook_receives_every_alert_signed_once() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let (mut receiver, port, log) = start_receiver(dir.path(), secret, "503,200");
    let config = ops_webhook_config(dir.path(), port, secret);
    let data = dir.path().join("data");
    let run = Run::start_with(&data, &["--config", config.to_str().unwrap()]);
    post_workload(&run);
    let alerts = run.get("/v1/alerts?since=0&limit=10000");
    let mut expected: Vec<String> =
        alerts["alerts"].as_array().unwrap().iter().map(|a| a["alert_id"].as_str().unwrap().to_string()).collect();
    expected.sort();
    let received = || requests(&log);
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
    let metrics = reqwest::blocking::get(format!("{}/metrics", run.base)).unwrap().text().unwrap();
    let line = |name: &str| {
        metrics.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{name}:\n{metrics}")).to_string()
    };
    assert_eq!(
        line("riskstream_notifier_delivered_total{channel=\"webhook\"}"),
        format!("riskstream_notifier_delivered_total{{channel=\"webhook\"}} {}", expected.len())
    );
    assert!(line("riskstream_notifier_failures_total{channel=\"webhook\",outcome=\"retry\"}").ends_with(" 1"));
    assert!(line("riskstream_notifier_delivery_latency_seconds_count{channel=\"webhook\"}")
        .ends_with(&format!(" {}", expected.len())));
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

/// Preferences through the binary: set by the admin only (a bad document is refused
/// naming its field), answered with secrets masked; the user's own webhook then
/// receives that user's alerts, raised and cleared as asked, and no one else's;
/// erasing the user erases the preferences.
#[test]
fn a_users_preferences_route_their_alerts_to_their_webhook_until_the_user_is_erased() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let token = "0123456789abcdef0123456789abcdef";
    let (mut receiver, port, log) = start_receiver(dir.path(), secret, "200");
    let config = dir.path().join("rs.toml");
    std::fs::write(&config, "[notifier]\nuser_webhooks_allow_private = true\n").unwrap();
    let data = dir.path().join("data");
    let run = Run::start_with(&data, &["--config", config.to_str().unwrap(), "--admin-token", token]);
    let http = reqwest::blocking::Client::new();
    let url = format!("{}/v1/users/user-0/preferences", run.base);
    let doc = serde_json::json!({
        "clears": ["webhook"],
        "webhooks": [{ "id": "crm", "url": format!("http://127.0.0.1:{port}/hooks"), "secrets": [secret] }],
    });
    assert_eq!(http.put(&url).json(&doc).send().unwrap().status().as_u16(), 401);
    let bad =
        http.put(&url).bearer_auth(token).json(&serde_json::json!({"channels": {"drift": ["fax"]}})).send().unwrap();
    assert_eq!(bad.status().as_u16(), 400);
    assert!(bad.text().unwrap().contains("channels.drift: unknown channel `fax`"));
    let set: Value = http.put(&url).bearer_auth(token).json(&doc).send().unwrap().json().unwrap();
    assert_eq!(set["preferences"]["webhooks"][0]["secrets"][0], "whsec_...LaSw");
    let got: Value = http.get(&url).bearer_auth(token).send().unwrap().json().unwrap();
    assert_eq!(got["preferences"], set["preferences"]);

    post_workload(&run);
    let alerts = run.get("/v1/alerts?since=0&limit=10000");
    let mut expected: Vec<String> = alerts["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["user_id"] == "user-0")
        .map(|a| a["alert_id"].as_str().unwrap().to_string())
        .collect();
    expected.sort();
    assert!(!expected.is_empty());
    // Each request is an alert, or a market event's group of them (a digest).
    let received = || {
        let mut ids: Vec<String> = requests(&log)
            .iter()
            .flat_map(|r| match r["alerts"].as_array() {
                Some(group) => group.iter().map(|a| a.as_str().unwrap().to_string()).collect(),
                None => vec![r["alert_id"].as_str().unwrap().to_string()],
            })
            .collect();
        ids.sort();
        ids
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while received().len() < expected.len() {
        assert!(
            Instant::now() < deadline,
            "{} of {} alerts reached the user's webhook",
            received().len(),
            expected.len()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(received(), expected, "user-0's alerts, raised and cleared, and no one else's");
    assert!(requests(&log).iter().any(|r| r["alerts"].is_array()), "a market move to several accounts, grouped");
    assert!(requests(&log).iter().all(|r| r["verified"] == true));

    let erased = http.post(format!("{}/v1/users/user-0/erase", run.base)).bearer_auth(token).send().unwrap();
    assert!(erased.status().is_success(), "{}", erased.text().unwrap());
    assert_eq!(http.get(&url).bearer_auth(token).send().unwrap().status().as_u16(), 404);
    run.kill();
    let _ = receiver.kill();
    let _ = receiver.wait();
}

/// The notifier SIGKILLed mid-delivery, again and again (the receiver answers each
/// request after 40 ms, so a kill lands while deliveries are in flight): no alert is
/// lost, each is re-sent at most once per kill (those of the round the kill cut
/// short: a round is one ledger transaction) and always under its first
/// webhook-id, and the ledger holds one success per alert and endpoint.
#[test]
fn killed_mid_delivery_again_and_again_the_notifier_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let (mut receiver, port, log) = start_slow_receiver(dir.path(), secret, "200", 40);
    let config = ops_webhook_config(dir.path(), port, secret);
    let data = dir.path().join("data");
    let args = ["--config", config.to_str().unwrap()];
    let mut run = Run::start_with(&data, &args);
    post_workload(&run);
    let alerts = run.get("/v1/alerts?since=0&limit=10000");
    let mut expected: Vec<String> =
        alerts["alerts"].as_array().unwrap().iter().map(|a| a["alert_id"].as_str().unwrap().to_string()).collect();
    expected.sort();
    assert!(expected.len() >= 20, "enough alerts to be mid-delivery when killed: {}", expected.len());
    let kills = 6;
    let mut seen_at_kill = Vec::new();
    for k in 0..kills {
        std::thread::sleep(Duration::from_millis(150 + 60 * k));
        seen_at_kill.push(requests(&log).len());
        run.kill();
        run = Run::start_with(&data, &args);
    }
    let deadline = Instant::now() + Duration::from_secs(90);
    let received = || {
        let mut ids: Vec<String> = requests(&log).iter().map(|r| r["alert_id"].as_str().unwrap().to_string()).collect();
        ids.sort();
        ids.dedup();
        ids
    };
    while received() != expected {
        assert!(Instant::now() < deadline, "{} of {} alerts arrived", received().len(), expected.len());
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(500));
    run.kill();
    let _ = receiver.kill();
    let _ = receiver.wait();
    assert!(
        seen_at_kill.iter().any(|n| *n > 0 && *n < expected.len()),
        "at least one kill landed mid-delivery: {seen_at_kill:?} of {}",
        expected.len()
    );

    let requests = requests(&log);
    assert!(requests.iter().all(|r| r["verified"] == true));
    let mut per_alert: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for r in &requests {
        per_alert.entry(r["alert_id"].as_str().unwrap()).or_default().push(r["id"].as_str().unwrap());
    }
    for (alert, ids) in &per_alert {
        assert!(ids.len() <= 1 + kills as usize, "{alert} sent {} times over {kills} kills", ids.len());
        assert!(ids.iter().all(|id| *id == ids[0]), "{alert}: one webhook-id for every send: {ids:?}");
    }

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let ledger = rt.block_on(riskstream_notifier::Ledger::open(&data.join("notifier.sqlite"))).unwrap();
    for id in &expected {
        let attempts = rt.block_on(ledger.attempts(id)).unwrap();
        let ok = attempts.iter().filter(|a| a.ok && a.channel == "webhook" && a.endpoint == "ops").count();
        assert_eq!(ok, 1, "{id}: one success recorded: {attempts:?}");
    }
}

//! A webhook receiver for the notifier's tests: tests/receiver.py, which checks
//! every signature with the Standard Webhooks reference library (`standardwebhooks`
//! from PyPI, installed by deploy/dev/install-test-brokers.sh) and answers from a
//! script of statuses.

#![allow(dead_code)]

mod db;
#[allow(unused_imports)]
pub use db::{Db, LedgerAt};

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use std::sync::atomic::{AtomicI64, Ordering};

use riskstream_notifier::{Clock, WebhookConfig};
use riskstream_schemas::{Alert, AlertKind, AlertState, Priority, RecordRef, Timestamp};
use serde_json::Value;

pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// A second secret, as during a rotation: both sign, the receiver knows only one.
pub const NEW_SECRET: &str = "whsec_c2Vjb25kLXNlY3JldC1mb3Itcm90YXRpb24=";

/// A test server of tests/: a Python script that logs one JSON line per request or
/// message to a file; killed when dropped.
pub struct Logged {
    child: Child,
    pub port: u16,
    log: PathBuf,
}

impl Logged {
    /// Runs tests/`script` with `before`, the log's path (`dir`/`name`.log), `after`.
    pub fn start(dir: &Path, script: &str, name: &str, before: &[&str], after: &[&str]) -> Logged {
        let (log, port_file) = (dir.join(format!("{name}.log")), dir.join(format!("{name}.port")));
        let args: Vec<&str> =
            before.iter().copied().chain([log.to_str().unwrap()]).chain(after.iter().copied()).collect();
        let (child, port) = spawn_python(script, &args, &port_file);
        Logged { child, port, log }
    }

    /// The lines logged so far.
    pub fn lines(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// tests/receiver.py: a webhook receiver answering from a script of statuses.
pub struct Receiver {
    server: Logged,
    pub port: u16,
}

impl Receiver {
    pub fn start(dir: &Path, statuses: &str) -> Receiver {
        let name = format!("receiver-{}", statuses.replace('/', "_"));
        let server = Logged::start(dir, "receiver.py", &name, &[SECRET, statuses], &[]);
        Receiver { port: server.port, server }
    }

    pub fn requests(&self) -> Vec<Value> {
        self.server.lines()
    }

    pub fn endpoint(&self, id: &str, allow_private: bool) -> WebhookConfig {
        WebhookConfig {
            id: id.into(),
            url: format!("http://127.0.0.1:{}/hooks", self.port),
            secrets: vec![NEW_SECRET.into(), SECRET.into()],
            allow_private,
            rate_limit: None,
        }
    }
}

/// The package's directory as the test runner sets it at run time: a test binary built
/// from another checkout sharing the target dir must not read that checkout's files.
pub fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from).unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into())
}

/// Runs tests/`script` with `args` and the path of the file it writes its port to;
/// waits for the port.
/// The caller owns the child (its `Drop` kills and waits for it).
#[allow(clippy::zombie_processes)]
pub fn spawn_python(script: &str, args: &[&str], port_file: &Path) -> (Child, u16) {
    let path = manifest_dir().join("tests").join(script);
    let mut child = Command::new("python3")
        .arg(path)
        .args(args)
        .arg(port_file)
        .spawn()
        .unwrap_or_else(|e| panic!("python3 runs {script}: {e}"));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(port) = std::fs::read_to_string(port_file).ok().and_then(|p| p.trim().parse().ok()) {
            return (child, port);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{script} did not start (are standardwebhooks and aiosmtpd installed? deploy/dev/install-test-brokers.sh)");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An alert for the tests to vary with `..alert(id)`: a high market move of
/// account acc-1, user u1.
pub fn alert(id: &str) -> Alert {
    Alert {
        alert_id: id.to_string(),
        kind: AlertKind::MarketMove,
        state: AlertState::Raised,
        priority: Priority::High,
        account_id: "acc-1".into(),
        user_id: "u1".into(),
        ts: Timestamp::parse("2026-01-05T14:30:00Z").unwrap(),
        caused_by: RecordRef { shard: 0, seq: 7 },
        rule: "market_move".into(),
        value: "-0.12".parse().unwrap(),
        threshold: "0.10".parse().unwrap(),
        message: "VTI moved -12.00% against the previous close".into(),
        details: None,
    }
}

/// A wall clock the test moves: retries, quiet hours and throttles follow it.
pub struct TestClock(AtomicI64);

impl TestClock {
    pub fn at_ms(ms: i64) -> TestClock {
        TestClock(AtomicI64::new(ms))
    }

    /// 2023-11-14T22:13:20Z, an arbitrary fixed start.
    pub fn new() -> TestClock {
        Self::at_ms(1_700_000_000_000)
    }

    pub fn advance_ms(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }

    pub fn advance_secs(&self, secs: i64) {
        self.advance_ms(secs * 1_000);
    }

    pub fn set_ms(&self, ms: i64) {
        self.0.store(ms, Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

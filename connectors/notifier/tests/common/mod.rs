//! A webhook receiver for the notifier's tests: tests/receiver.py, which checks
//! every signature with the Standard Webhooks reference library (`standardwebhooks`
//! from PyPI, installed by deploy/dev/install-test-brokers.sh) and answers from a
//! script of statuses.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use std::sync::atomic::{AtomicI64, Ordering};

use riskstream_notifier::{Clock, WebhookConfig};
use serde_json::Value;

pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// A second secret, as during a rotation: both sign, the receiver knows only one.
pub const NEW_SECRET: &str = "whsec_c2Vjb25kLXNlY3JldC1mb3Itcm90YXRpb24=";

pub struct Receiver {
    child: Child,
    pub port: u16,
    log: PathBuf,
}

impl Receiver {
    pub fn start(dir: &Path, statuses: &str) -> Receiver {
        let name = statuses.replace('/', "_");
        let (log, port_file) = (dir.join(format!("log-{name}")), dir.join(format!("port-{name}")));
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/receiver.py");
        let child = Command::new("python3")
            .arg(script)
            .args([SECRET, statuses, log.to_str().unwrap(), port_file.to_str().unwrap()])
            .spawn()
            .expect("python3 runs the receiver");
        let deadline = Instant::now() + Duration::from_secs(20);
        let port = loop {
            if let Some(port) = std::fs::read_to_string(&port_file).ok().and_then(|p| p.trim().parse().ok()) {
                break port;
            }
            assert!(Instant::now() < deadline, "the receiver did not start (is standardwebhooks installed?)");
            std::thread::sleep(Duration::from_millis(50));
        };
        Receiver { child, port, log }
    }

    pub fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
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

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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

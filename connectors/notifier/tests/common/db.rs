//! The ledger's two databases for tests: a SQLite file in the test's dir, or a
//! database of its own on a real PostgreSQL server on 127.0.0.1. `make test`
//! starts one server for the suite (deploy/dev/run-tests.sh sets
//! RISKSTREAM_TEST_POSTGRES); a test run on its own starts its own
//! (deploy/dev/test-postgres.sh) and stops it when done.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use riskstream_notifier::Ledger;
use sqlx::{Connection, PgConnection};

/// Which database a test's ledger is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// Runs the test function `name(db: Db)` once on each database, as `name::sqlite`
/// and `name::postgres`, under the test attribute given (`tokio::test`, ...).
#[macro_export]
macro_rules! on_each_db {
    ($test:meta, $name:ident) => {
        mod $name {
            #[$test]
            async fn sqlite() {
                super::$name($crate::common::Db::Sqlite).await
            }
            #[$test]
            async fn postgres() {
                super::$name($crate::common::Db::Postgres).await
            }
        }
    };
}

/// Where a test's ledger lives; [`LedgerAt::open`] opens it again after a "restart".
pub struct LedgerAt {
    /// A SQLite file, or a PostgreSQL URL.
    file: Option<PathBuf>,
    url: String,
    _server: Option<Server>,
}

impl LedgerAt {
    /// A new, empty ledger: `dir`/n.sqlite, or a new database on the test server.
    pub async fn new(db: Db, dir: &Path) -> LedgerAt {
        match db {
            Db::Sqlite => {
                let file = dir.join("n.sqlite");
                LedgerAt { url: file.display().to_string(), file: Some(file), _server: None }
            }
            Db::Postgres => {
                let (base, server) = match std::env::var("RISKSTREAM_TEST_POSTGRES") {
                    Ok(url) => (url, None),
                    Err(_) => {
                        let server = Server::start();
                        (server.url.clone(), Some(server))
                    }
                };
                static NEXT: AtomicU32 = AtomicU32::new(0);
                let name = format!("t{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
                let mut admin = PgConnection::connect(&format!("{base}/postgres")).await.unwrap();
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut admin)
                    .await
                    .unwrap();
                admin.close().await.unwrap();
                LedgerAt { file: None, url: format!("{base}/{name}"), _server: server }
            }
        }
    }

    pub async fn open(&self) -> Ledger {
        match &self.file {
            Some(file) => Ledger::open(file).await.unwrap(),
            None => Ledger::connect(&self.url).await.unwrap(),
        }
    }

    /// The PostgreSQL URL, or the SQLite file's path.
    pub fn url(&self) -> &str {
        &self.url
    }
}

/// A PostgreSQL server of this test's own, stopped when dropped.
struct Server {
    url: String,
    dir: PathBuf,
}

impl Server {
    fn start() -> Server {
        // Not under the test's dir: when run as root the server runs as `postgres`,
        // which must be able to reach its cluster.
        let dir = std::env::temp_dir().join(format!("riskstream-pg-{}-{}", std::process::id(), nanos()));
        let out = Command::new(script()).arg("start").arg(&dir).output().unwrap();
        assert!(out.status.success(), "test-postgres.sh: {}", String::from_utf8_lossy(&out.stderr));
        Server { url: String::from_utf8(out.stdout).unwrap().trim().to_string(), dir }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new(script()).arg("stop").arg(&self.dir).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn script() -> PathBuf {
    // From the package directory the test runner sets at run time (not the one this
    // binary was built in), up to the repository root; the engine's tests include
    // this file too.
    let dir: PathBuf =
        std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), PathBuf::from);
    let script = dir.ancestors().map(|d| d.join("deploy/dev/test-postgres.sh")).find(|p| p.exists());
    script.unwrap_or_else(|| panic!("deploy/dev/test-postgres.sh not found above {}", dir.display()))
}

fn nanos() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
}

//! A real engine on RocksDB in a temp dir, served on 127.0.0.1:0 from its own
//! thread and runtime. Tests keep a handle on the shared state to read the
//! engine's own view. Dropping it stops the server and waits until RocksDB is
//! closed.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::CONTENT_TYPE;
use reqwest::StatusCode;
use riskstream_connectors::{AlertSink, MemoryAlertSink};
use riskstream_engine::api::AppState;
use riskstream_engine::metrics::Metrics;
use riskstream_engine::store::RocksDbStore;
use riskstream_engine::{runtime, Engine};
use riskstream_projections::RuleConfig;
use riskstream_schemas::Event;
use serde_json::{json, Value};
use tokio::sync::oneshot;

const JSON: &str = "application/json";

pub struct Server {
    pub base: String,
    http: reqwest::Client,
    app: Option<Arc<AppState<RocksDbStore>>>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Server {
    pub fn start(shards: u32, rules: RuleConfig) -> Server {
        Self::start_signing(shards, rules, None)
    }

    /// A server that signs a checkpoint every `every` records with the key of `seed`.
    pub fn start_signing(shards: u32, rules: RuleConfig, checkpoints: Option<([u8; 32], u64)>) -> Server {
        let audit = checkpoints.map(|(seed, every)| Audit { seed, every, snapshot_every: 0 });
        Self::start_audited(shards, rules, audit)
    }

    /// A server that signs checkpoints and, with `snapshot_every` > 0, takes
    /// snapshots into `<data dir>/snapshots`.
    pub fn start_audited(shards: u32, rules: RuleConfig, audit: Option<Audit>) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let (app_tx, app_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let path = dir.path().to_path_buf();
        let thread = std::thread::spawn(move || serve_until(&path, shards, rules, audit, app_tx, stopped));
        let (addr, app) = app_rx.recv_timeout(Duration::from_secs(30)).expect("the server starts");
        let base = format!("http://{addr}");
        Server { base, http: reqwest::Client::new(), app: Some(app), stop: Some(stop), thread: Some(thread), _dir: dir }
    }

    pub fn data_dir(&self) -> &Path {
        self._dir.path()
    }

    pub fn app(&self) -> &AppState<RocksDbStore> {
        self.app.as_ref().unwrap()
    }

    /// Posts events that must all be accepted; returns the ingest report.
    pub async fn post(&self, events: &[Event]) -> Value {
        let body: Vec<Value> = events.iter().map(|e| serde_json::to_value(e).unwrap()).collect();
        let url = format!("{}/v1/events", self.base);
        let response = self.http.post(url).header(CONTENT_TYPE, JSON).json(&body).send().await.unwrap();
        let status = response.status();
        let report: Value = response.json().await.unwrap();
        assert_eq!(status, StatusCode::OK, "{report}");
        assert_eq!(report["rejected"], json!([]), "{report}");
        report
    }

    /// Posts a JSON body to `path`; the status and the answer.
    pub async fn post_json(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        let response = self.http.post(format!("{}{path}", self.base)).json(body).send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    pub async fn get_any(&self, path: &str) -> (StatusCode, Value) {
        let response = self.http.get(format!("{}{path}", self.base)).send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    pub async fn get(&self, path: &str) -> Value {
        let (status, body) = self.get_any(path).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Closes the client's idle connections, so the graceful shutdown is immediate;
        // releases the state so the server thread's drop closes RocksDB.
        self.http = reqwest::Client::new();
        self.app = None;
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

type Started = (SocketAddr, Arc<AppState<RocksDbStore>>);

/// Checkpoints signed with the key of `seed` every `every` records of a shard;
/// snapshots every `snapshot_every` records over all shards (0: none).
#[derive(Debug, Clone, Copy)]
pub struct Audit {
    pub seed: [u8; 32],
    pub every: u64,
    pub snapshot_every: u64,
}

/// Runs the engine, its outbox and the API until `stopped`, then stops the outbox
/// and drops the store (once the test released its handle).
fn serve_until(
    dir: &Path,
    shards: u32,
    rules: RuleConfig,
    audit: Option<Audit>,
    started: std::sync::mpsc::Sender<Started>,
    stopped: oneshot::Receiver<()>,
) {
    let store = Arc::new(RocksDbStore::open(dir, false).unwrap());
    let mut engine = Engine::open(store, shards, rules, Arc::new(Metrics::new())).unwrap();
    // Personal data keys where `riskstream run` keeps them.
    engine.set_key_store(Arc::new(riskstream_engine::privacy::RocksDbKeyStore::open(&dir.join("keys")).unwrap()));
    if let Some(a) = audit {
        engine.enable_checkpoints(riskstream_engine::audit::CheckpointSigner::from_seed(a.seed), a.every).unwrap();
        engine.enable_snapshots(dir.join("snapshots"), a.snapshot_every, 3).unwrap();
    }
    let sinks: Vec<Box<dyn AlertSink>> = vec![Box::new(MemoryAlertSink::new())];
    let (wake, outbox) = runtime::start_outbox(Arc::clone(engine.store()), sinks, Arc::clone(engine.metrics()));
    let app = AppState::new(engine, Some(wake));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        started.send((listener.local_addr().unwrap(), Arc::clone(&app))).unwrap();
        let shutdown = async {
            let _ = stopped.await;
        };
        runtime::serve(Arc::clone(&app), listener, 1 << 20, shutdown).await.unwrap();
    });
    drop(rt);
    app.outbox_wake.lock().unwrap().take();
    outbox.join().unwrap();
}

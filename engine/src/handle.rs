//! The engine handle every front end shares: the HTTP API, the runtime that pumps
//! sources, the Kafka runner and the CLI. It lives outside the HTTP module, so
//! none of them depends on another through it.

use std::sync::atomic::AtomicU64;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, RwLock};

use crate::pipeline::{Engine, EngineError};
use crate::store::{EventStore, ProjectionStore};

/// Event posts admitted at once: one applying, the rest waiting for it. Past
/// this an ingest answers 503 with `Retry-After` instead of queueing without bound.
pub const MAX_PENDING_POSTS: usize = 8;

/// The engine handle: the engine behind its lock for the writers (ingest, the
/// Kafka runner) and the views that need its live state, plus what the read path
/// reads without it (the store, metrics, codec, shard count and rules).
pub struct AppState<S> {
    pub engine: RwLock<Engine<S>>,
    /// The store the engine commits to, for the read path (`views`): account
    /// queries read its last commit and never take the engine lock.
    pub(crate) store: Arc<S>,
    pub(crate) shards: u32,
    pub(crate) rules: riskstream_projections::RuleConfig,
    pub(crate) metrics: Arc<crate::metrics::Metrics>,
    pub(crate) codec: riskstream_schemas::avro::Codec,
    /// Admission of event posts (`MAX_PENDING_POSTS`).
    pub(crate) ingest_slots: tokio::sync::Semaphore,
    /// Wakes the outbox delivery after a commit.
    pub outbox_wake: Mutex<Option<Sender<()>>>,
    /// Distributed mode: the shards this instance owns (set once, when it joins).
    pub cluster: std::sync::OnceLock<Arc<Mutex<crate::distributed::ClusterView>>>,
    /// The bearer token of the admin routes (set once, at start); none: they answer 403.
    pub(crate) admin_token: std::sync::OnceLock<crate::config::AdminToken>,
    /// What else erasing a user erases (the notifier's preferences), set once at start.
    pub(crate) erasure_hook: std::sync::OnceLock<ErasureHook>,
    /// What else must answer for the instance to be ready (the notifier's ledger).
    pub(crate) readiness: Mutex<Vec<(String, ReadinessCheck)>>,
    pub(crate) requests: AtomicU64,
}

/// Erases a user's data held outside the engine; the error says what was not erased.
pub type ErasureHook = Arc<
    dyn Fn(String) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>> + Send + Sync,
>;

/// A component that must answer for `/readyz`: its name, and what it says (shown
/// in the answer) or why it cannot serve.
pub type ReadinessCheck = Arc<
    dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<serde_json::Value, String>> + Send>>
        + Send
        + Sync,
>;

impl<S: EventStore + ProjectionStore> AppState<S> {
    pub fn new(engine: Engine<S>, outbox_wake: Option<Sender<()>>) -> Arc<Self> {
        Arc::new(AppState {
            store: Arc::clone(engine.store()),
            shards: engine.shard_count(),
            rules: engine.rules().clone(),
            metrics: Arc::clone(engine.metrics()),
            codec: engine.codec().clone(),
            ingest_slots: tokio::sync::Semaphore::new(MAX_PENDING_POSTS),
            engine: RwLock::new(engine),
            outbox_wake: Mutex::new(outbox_wake),
            cluster: std::sync::OnceLock::new(),
            admin_token: std::sync::OnceLock::new(),
            erasure_hook: std::sync::OnceLock::new(),
            readiness: Mutex::default(),
            requests: AtomicU64::new(0),
        })
    }
}

impl<S: Send + Sync + 'static> AppState<S> {
    /// Reads the engine's state on the blocking pool: a batch in flight holds it,
    /// and that wait must not hold an async worker, so the read path, probes and
    /// metrics go on answering meanwhile.
    pub async fn on_engine<T: Send + 'static>(
        self: &Arc<Self>,
        read: impl FnOnce(&Engine<S>) -> T + Send + 'static,
    ) -> Result<T, EngineError> {
        let app = Arc::clone(self);
        tokio::task::spawn_blocking(move || read(&app.read()))
            .await
            .map_err(|e| EngineError::Internal(format!("query task failed: {e}")))
    }
}

impl<S> AppState<S> {
    /// Event posts admitted and not yet answered.
    pub fn pending_posts(&self) -> usize {
        MAX_PENDING_POSTS - self.ingest_slots.available_permits()
    }

    pub fn read(&self) -> std::sync::RwLockReadGuard<'_, Engine<S>> {
        self.engine.read().unwrap_or_else(|p| p.into_inner())
    }

    pub fn write(&self) -> std::sync::RwLockWriteGuard<'_, Engine<S>> {
        self.engine.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Has `POST /v1/users/{id}/erase` also run `hook` (only the first hook set counts).
    pub fn on_erase(&self, hook: ErasureHook) {
        let _ = self.erasure_hook.set(hook);
    }

    /// Makes `/readyz` ask `check` too, under `name`.
    pub fn on_ready(&self, name: &str, check: ReadinessCheck) {
        self.readiness.lock().unwrap_or_else(|p| p.into_inner()).push((name.to_string(), check));
    }

    /// Enables the admin routes with `token` (`[api] admin_token`); only the first
    /// token set counts.
    pub fn set_admin_token(&self, token: Option<crate::config::AdminToken>) {
        if let Some(token) = token {
            let _ = self.admin_token.set(token);
        }
    }

    pub fn wake_outbox(&self) {
        if let Some(tx) = self.outbox_wake.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            let _ = tx.send(());
        }
    }
}

//! The audit routes: each shard's Merkle root, inclusion and consistency proofs,
//! signed checkpoints and the key that signs them (README, "Audit a riskstream log"),
//! accounts as of a past point and the explanation of an alert.

use std::path::PathBuf;

use riskstream_projections::RuleConfig;
use riskstream_schemas::avro::Codec;

use super::*;
use crate::audit::history::{AsOf, History};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AuditQuery {
    /// Tree size (the shard's head seq when absent).
    size: Option<u64>,
    tree_size: Option<u64>,
    seq: Option<u64>,
    from: Option<u64>,
    to: Option<u64>,
}

/// Proofs of a shard's log, as of its committed head.
fn proof_reader<S: EventStore>(
    store: &S,
    shard: u32,
    shards: u32,
) -> Result<crate::audit::ProofReader<'_, S>, ApiError> {
    if shard >= shards {
        return Err(ApiError::NotFound(format!("no shard {shard} (the data dir has {shards})")));
    }
    Ok(crate::audit::ProofReader::new(store, shard)?)
}

/// The root of a shard's Merkle tree over its record hashes (RFC 6962).
pub(super) async fn get_audit_root<S: EventStore + ProjectionStore + 'static>(
    State(app): Shared<S>,
    Path(shard): Path<u32>,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    let reader = proof_reader(app.store.as_ref(), shard, app.shards)?;
    Ok(Json(serde_json::to_value(reader.root(q.size.or(q.tree_size))?).expect("views serialise")))
}

/// The inclusion proof of record `seq` in the tree of `tree_size` records.
pub(super) async fn get_audit_inclusion<S: EventStore + ProjectionStore + 'static>(
    State(app): Shared<S>,
    Path(shard): Path<u32>,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    let seq = q.seq.ok_or_else(|| ApiError::BadRequest("query parameter `seq` is required".into()))?;
    let reader = proof_reader(app.store.as_ref(), shard, app.shards)?;
    Ok(Json(serde_json::to_value(reader.inclusion(seq, q.tree_size.or(q.size))?).expect("views serialise")))
}

/// The consistency proof between the trees of `from` and `to` records.
pub(super) async fn get_audit_consistency<S: EventStore + ProjectionStore + 'static>(
    State(app): Shared<S>,
    Path(shard): Path<u32>,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    let from = q.from.ok_or_else(|| ApiError::BadRequest("query parameter `from` is required".into()))?;
    let reader = proof_reader(app.store.as_ref(), shard, app.shards)?;
    Ok(Json(serde_json::to_value(reader.consistency(from, q.to)?).expect("views serialise")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CheckpointQuery {
    /// Checkpoints with a tree size above this (0 when absent).
    after: Option<u64>,
    limit: Option<usize>,
}

/// A shard's signed checkpoints, oldest first.
pub(super) async fn get_audit_checkpoints<S: EventStore + ProjectionStore + 'static>(
    State(app): Shared<S>,
    Path(shard): Path<u32>,
    Query(q): Query<CheckpointQuery>,
) -> Result<Json<Value>, ApiError> {
    if shard >= app.shards {
        return Err(ApiError::NotFound(format!("no shard {shard} (the data dir has {})", app.shards)));
    }
    let list = app.store.checkpoints(shard, q.after.unwrap_or(0), q.limit.unwrap_or(100).clamp(1, 10_000))?;
    Ok(Json(json!({ "shard": shard, "checkpoints": list })))
}

/// The Ed25519 public key checkpoints are signed with (hex).
pub(super) async fn get_audit_public_key<S: EventStore + ProjectionStore + 'static>(
    State(app): Shared<S>,
) -> Result<Json<Value>, ApiError> {
    let key = app
        .on_engine(|e| e.checkpoint_key())
        .await?
        .ok_or_else(|| ApiError::NotFound("this engine signs no checkpoints ([audit] checkpoint_every = 0)".into()))?;
    Ok(Json(json!({ "algorithm": "ed25519", "public_key": hex(key.as_bytes()) })))
}

/// What a replay of the past needs, cloned out of the engine so that it runs
/// without holding the engine lock: ingest goes on meanwhile.
struct PastReader<S> {
    store: Arc<S>,
    snapshots: Option<PathBuf>,
    rules: RuleConfig,
    codec: Codec,
}

impl<S: EventStore + ProjectionStore> PastReader<S> {
    fn of(engine: &Engine<S>) -> Self {
        PastReader {
            store: Arc::clone(engine.store()),
            snapshots: engine.snapshot_dir().map(|p| p.to_path_buf()),
            rules: engine.rules().clone(),
            codec: engine.codec().clone(),
        }
    }

    fn history(&self) -> History<'_, S> {
        History {
            store: self.store.as_ref(),
            snapshots: self.snapshots.as_deref(),
            rules: &self.rules,
            codec: &self.codec,
        }
    }
}

/// Runs a replay of the past on the blocking pool.
async fn replaying<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work).await.map_err(|e| ApiError::BadRequest(format!("replay task failed: {e}")))?
}

/// `GET /v1/accounts/{id}?as_of=`: the account as of a seq of its shard or an event
/// time, rebuilt from the newest snapshot at or before it plus the log tail.
pub(super) async fn past_account<S: EventStore + ProjectionStore + 'static>(
    app: &Arc<AppState<S>>,
    id: String,
    as_of: &str,
) -> Result<Json<Value>, ApiError> {
    let at = AsOf::parse(as_of).map_err(|e| ApiError::BadRequest(format!("`as_of`: {e}")))?;
    let (served, key) = (served_shards(app), id.clone());
    let (reader, shard) = app
        .on_engine(move |engine| {
            let found = engine.find_view(served, |s| s.account(&key).map(|_| ()));
            (PastReader::of(engine), found.map(|(shard, _, ())| shard))
        })
        .await?;
    let shard = shard.ok_or_else(|| {
        let scope = if app.cluster.get().is_some() { " in the shards this instance owns" } else { "" };
        ApiError::NotFound(format!("no account `{id}`{scope}"))
    })?;
    let (view, info) = replaying(move || {
        let past = reader.history().state_at(shard, at)?;
        Ok((past.state.incremental_view(&id).map(to_json), past.info))
    })
    .await?;
    let view = view.ok_or_else(|| {
        ApiError::NotFound(format!("the account did not exist yet as of {at} (shard {shard}, seq {})", info.seq))
    })?;
    let mut body = stamped(view, shard, info.seq);
    body["as_of"] = json!({ "requested": as_of, "past": info });
    Ok(Json(body))
}

/// `GET /v1/alerts/{alert_id}/explain`: the causing record with its inclusion
/// proof, what the rule saw, and whether a replay raises the alert again.
pub(super) async fn get_alert_explain<S: EventStore + ProjectionStore + 'static>(
    State(app): Shared<S>,
    Path(alert_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let reader = app.on_engine(|e| PastReader::of(e)).await?;
    let explanation = replaying(move || Ok(reader.history().explain(&alert_id)?)).await?;
    Ok(Json(to_json(explanation)))
}

//! The audit routes: each shard's Merkle root, inclusion and consistency proofs,
//! signed checkpoints and the key that signs them (README, "Audit a riskstream log").

use super::*;

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
    let engine = app.read();
    let reader = proof_reader(engine.store().as_ref(), shard, engine.shard_count())?;
    Ok(Json(serde_json::to_value(reader.root(q.size.or(q.tree_size))?).expect("views serialise")))
}

/// The inclusion proof of record `seq` in the tree of `tree_size` records.
pub(super) async fn get_audit_inclusion<S: EventStore + ProjectionStore + 'static>(
    State(app): Shared<S>,
    Path(shard): Path<u32>,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    let seq = q.seq.ok_or_else(|| ApiError::BadRequest("query parameter `seq` is required".into()))?;
    let engine = app.read();
    let reader = proof_reader(engine.store().as_ref(), shard, engine.shard_count())?;
    Ok(Json(serde_json::to_value(reader.inclusion(seq, q.tree_size.or(q.size))?).expect("views serialise")))
}

/// The consistency proof between the trees of `from` and `to` records.
pub(super) async fn get_audit_consistency<S: EventStore + ProjectionStore + 'static>(
    State(app): Shared<S>,
    Path(shard): Path<u32>,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    let from = q.from.ok_or_else(|| ApiError::BadRequest("query parameter `from` is required".into()))?;
    let engine = app.read();
    let reader = proof_reader(engine.store().as_ref(), shard, engine.shard_count())?;
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
    let engine = app.read();
    if shard >= engine.shard_count() {
        return Err(ApiError::NotFound(format!("no shard {shard} (the data dir has {})", engine.shard_count())));
    }
    let list = engine.store().checkpoints(shard, q.after.unwrap_or(0), q.limit.unwrap_or(100).clamp(1, 10_000))?;
    Ok(Json(json!({ "shard": shard, "checkpoints": list })))
}

/// The Ed25519 public key checkpoints are signed with (hex).
pub(super) async fn get_audit_public_key<S: EventStore + ProjectionStore + 'static>(
    State(app): Shared<S>,
) -> Result<Json<Value>, ApiError> {
    let key = app
        .read()
        .checkpoint_key()
        .ok_or_else(|| ApiError::NotFound("this engine signs no checkpoints ([audit] checkpoint_every = 0)".into()))?;
    Ok(Json(json!({ "algorithm": "ed25519", "public_key": hex(key.as_bytes()) })))
}

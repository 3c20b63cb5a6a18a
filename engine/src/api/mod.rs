//! The query and ingest API (REST over axum): the "query API" box of the flow.
//! Handlers are generic over the store traits; `riskstream query` runs the same
//! router in-process so offline answers equal online ones.

mod audit;
mod error;
mod privacy;
mod tax;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use riskstream_schemas::json::{self, Decoded};
use riskstream_schemas::{Rejection, Timestamp};
use serde::Deserialize;
use serde_json::{json, Value};

pub use error::ApiError;
pub use privacy::{admin_only, admin_only_with};

pub use crate::handle::{AppState, ErasureHook, ReadinessCheck, MAX_PENDING_POSTS};

use crate::pipeline::Engine;
use crate::store::{hex, EventStore, ProjectionStore};

type Shared<S> = State<Arc<AppState<S>>>;

pub fn router<S: EventStore + ProjectionStore + 'static>(state: Arc<AppState<S>>, max_body_bytes: usize) -> Router {
    router_with(state, max_body_bytes, Router::new())
}

/// The API with `extra` routes beside it (the notifier's, when it runs), under the
/// same body limit and error shape.
pub fn router_with<S: EventStore + ProjectionStore + 'static>(
    state: Arc<AppState<S>>,
    max_body_bytes: usize,
    extra: Router,
) -> Router {
    Router::new()
        .route("/v1/events", post(post_events::<S>))
        .route("/v1/events/{shard}/{seq}", get(get_record::<S>))
        .route("/v1/accounts/{id}", get(get_account::<S>))
        .route("/v1/accounts/{id}/alerts", get(get_account_alerts::<S>))
        .route("/v1/accounts/{id}/risk", get(get_account_risk::<S>))
        .route("/v1/accounts/{id}/lots", get(tax::get_account_lots::<S>))
        .route("/v1/accounts/{id}/realized", get(tax::get_account_realized::<S>))
        .route("/v1/accounts/{id}/harvest", get(tax::get_account_harvest::<S>))
        .route("/v1/accounts/{id}/what-if", post(tax::post_what_if::<S>))
        .route("/v1/users/{id}/wash-sales", get(tax::get_wash_sales::<S>))
        .route("/v1/users/{id}/erase", post(privacy::post_user_erase::<S>))
        .route("/v1/securities/{symbol}/risk", get(get_security_risk::<S>))
        .route("/v1/audit/{shard}/root", get(audit::get_audit_root::<S>))
        .route("/v1/audit/{shard}/inclusion", get(audit::get_audit_inclusion::<S>))
        .route("/v1/audit/{shard}/consistency", get(audit::get_audit_consistency::<S>))
        .route("/v1/audit/{shard}/checkpoints", get(audit::get_audit_checkpoints::<S>))
        .route("/v1/audit/public-key", get(audit::get_audit_public_key::<S>))
        .route("/v1/alerts", get(get_alerts::<S>))
        .route("/v1/alerts/{alert_id}/explain", get(audit::get_alert_explain::<S>))
        .route("/v1/dead-letters", get(get_dead_letters::<S>))
        .route("/v1/schemas", get(get_schemas::<S>))
        .route("/v1/openapi.json", get(openapi))
        .route("/healthz", get(healthz::<S>))
        .route("/readyz", get(readyz::<S>))
        .route("/metrics", get(metrics::<S>))
        .with_state(state)
        .merge(extra)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::middleware::from_fn(error::json_errors))
}

fn content_type(headers: &HeaderMap) -> String {
    let raw = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("application/json");
    raw.split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

/// Turns a body into items; a body that cannot be split into events becomes one
/// rejected item, so it is still kept as a dead letter.
fn decode_body<S>(app: &AppState<S>, kind: &str, body: &[u8]) -> Result<(Vec<Decoded>, bool), ApiError> {
    let decoded = match kind {
        "application/json" | "application/x-ndjson" | "application/jsonl" => json::decode_batch(body),
        "application/avro" | "avro/binary" => app.codec.decode_body(body),
        other => return Err(ApiError::UnsupportedMediaType(other.to_string())),
    };
    Ok(match decoded {
        Ok(items) => (items, true),
        Err(rejection) => {
            let raw = String::from_utf8_lossy(&body[..body.len().min(64 * 1024)]).into_owned();
            (vec![Decoded { index: 0, raw, result: Err(rejection) }], false)
        }
    })
}

async fn post_events<S: EventStore + ProjectionStore + 'static>(
    State(app): Shared<S>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    if app.cluster.get().is_some() {
        // Events must reach their shard's owner in topic order, with the others.
        return Err(ApiError::BadRequest(
            "this instance runs in distributed mode: publish events to the Kafka input topics (riskstream produce)"
                .into(),
        ));
    }
    // Back-pressure: a full pipeline answers at once rather than queueing for ever.
    let Ok(_admitted) = app.ingest_slots.try_acquire() else {
        return Err(ApiError::Busy(format!(
            "the engine is applying and queueing {MAX_PENDING_POSTS} event posts; send this one again shortly"
        )));
    };
    let kind = content_type(&headers);
    let (items, whole) = decode_body(&app, &kind, &body)?;
    let source = format!("http:{}", app.requests.fetch_add(1, Ordering::Relaxed));
    let worker = Arc::clone(&app);
    let report = tokio::task::spawn_blocking(move || worker.write().ingest(&source, None, items))
        .await
        .map_err(|e| ApiError::BadRequest(format!("ingest task failed: {e}")))??;
    app.wake_outbox();
    if !whole {
        let reason = report.rejected.first().map(Rejection::to_string).unwrap_or_default();
        return Err(ApiError::BadRequest(format!("{reason} (the body is kept as a dead letter)")));
    }
    let status = if report.rejected.is_empty() { StatusCode::OK } else { StatusCode::MULTI_STATUS };
    let body = json!({
        "accepted": report.accepted,
        "duplicates": report.duplicates,
        "stale_ticks": report.stale_ticks,
        "rejected": report.rejected,
        "records_appended": report.records_appended,
        "alerts": report.alerts.len(),
    });
    Ok((status, Json(body)))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AccountQuery {
    /// Answer from this instance only (no forwarding); used between instances.
    local: Option<bool>,
    /// The account's user: lets a non-owner forward straight to the owner of its shard.
    user_id: Option<String>,
    /// A seq of the account's shard or an RFC 3339 event time (`/v1/accounts/{id}` only).
    as_of: Option<String>,
}

async fn get_account<S: EventStore + ProjectionStore + 'static>(
    State(app): Shared<S>,
    Path(id): Path<String>,
    Query(q): Query<AccountQuery>,
) -> Result<Json<Value>, ApiError> {
    if let Some(as_of) = &q.as_of {
        return audit::past_account(&app, id, as_of).await;
    }
    // The committed store, not the engine: no wait for a batch in flight.
    let found = crate::views::account_view(app.store.as_ref(), app.shards, &app.rules, &id)?;
    let found = found.map(|(shard, seq, v)| (shard, seq, to_json(v)));
    answer_for_account(&app, &id, found, &[], q, None).await
}

/// Every risk number of the account, each stamped with its method, confidence,
/// horizon and conventions.
async fn get_account_risk<S: EventStore + ProjectionStore + 'static>(
    State(app): Shared<S>,
    Path(id): Path<String>,
    Query(q): Query<AccountQuery>,
) -> Result<Json<Value>, ApiError> {
    if q.as_of.is_some() {
        return Err(ApiError::BadRequest("`as_of` is answered by /v1/accounts/{id} only".into()));
    }
    let key = id.clone();
    let found = app.on_engine(move |e| e.risk_view(&key).map(|(shard, seq, v)| (shard, seq, to_json(v)))).await?;
    answer_for_account(&app, &id, found, &["risk"], q, None).await
}

/// A symbol's risk from the lowest-numbered shard that models it; in distributed
/// mode only the shards this instance owns count (the others' state in memory is
/// not fed, so it may be empty or frozen at a handover).
async fn get_security_risk<S: EventStore + ProjectionStore + 'static>(
    State(app): Shared<S>,
    Path(symbol): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let cluster = app.cluster.get().map(|v| v.lock().unwrap_or_else(|p| p.into_inner()).clone());
    let (served, key) = (served_shards(&app), symbol.clone());
    let found = app.on_engine(move |e| e.find_view(served, |s| s.symbol_risk_view(&key))).await?;
    let (shard, seq, view) = found.ok_or_else(|| {
        let scope = if cluster.is_some() { " in the shards this instance owns" } else { "" };
        ApiError::NotFound(format!(
            "no risk for `{symbol}` yet{scope} (a symbol enters the model at its first bar close)"
        ))
    })?;
    let mut body = stamped(to_json(view), shard, seq);
    if let Some(c) = &cluster {
        body["restoring"] = json!(c.restoring.contains(&shard));
        body["served_by"] = json!(c.me);
    }
    Ok(Json(body))
}

/// The shards whose state this instance serves (all of them when embedded).
fn served_shards<S>(app: &AppState<S>) -> impl Fn(u32) -> bool {
    let cluster = app.cluster.get().map(|v| v.lock().unwrap_or_else(|p| p.into_inner()).owned.clone());
    move |s| cluster.as_ref().is_none_or(|owned| owned.contains(&s))
}

/// A view with the shard and the seq it reflects.
fn stamped(mut body: Value, shard: u32, seq: u64) -> Value {
    body["shard"] = json!(shard);
    body["as_of_seq"] = json!(seq);
    body
}

fn to_json(view: impl serde::Serialize) -> Value {
    serde_json::to_value(view).expect("views serialise")
}

/// Answers an account query (`/v1/accounts/{id}` plus `tail`): from this instance
/// when it owns the account's shard (or runs embedded), otherwise forwarded to the
/// owners named by the group description.
async fn answer_for_account<S: EventStore + ProjectionStore + 'static>(
    app: &Arc<AppState<S>>,
    id: &str,
    found: Option<(u32, u64, Value)>,
    tail: &[&str],
    q: AccountQuery,
    year: Option<i32>,
) -> Result<Json<Value>, ApiError> {
    let Some(cluster) = app.cluster.get().map(|v| v.lock().unwrap_or_else(|p| p.into_inner()).clone()) else {
        let (shard, seq, body) = found.ok_or_else(|| ApiError::NotFound(format!("no account `{id}`")))?;
        return Ok(Json(stamped(body, shard, seq)));
    };
    // Distributed mode: answer for owned shards, forward the rest to their owners.
    if let Some((shard, seq, body)) = found.filter(|(s, _, _)| cluster.owned.contains(s)) {
        let mut body = stamped(body, shard, seq);
        body["restoring"] = json!(cluster.restoring.contains(&shard));
        body["served_by"] = json!(cluster.me);
        return Ok(Json(body));
    }
    if q.local == Some(true) {
        return Err(ApiError::NotFound(format!("no account `{id}` in the shards this instance owns")));
    }
    let mut peers: Vec<String> = match &q.user_id {
        Some(user) => {
            let shard = riskstream_schemas::placement::shard_for(user, app.shards);
            cluster.owners.get(&shard).cloned().into_iter().collect()
        }
        None => cluster.owners.values().cloned().collect(),
    };
    peers.sort();
    peers.dedup();
    peers.retain(|p| *p != cluster.me);
    let client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(5)).build().expect("client");
    for peer in &peers {
        let Ok(mut url) = reqwest::Url::parse(peer) else { continue };
        let Ok(mut path) = url.path_segments_mut() else { continue };
        path.extend(["v1", "accounts", id]);
        path.extend(tail);
        drop(path);
        match year {
            Some(y) => url.set_query(Some(&format!("local=true&year={y}"))),
            None => url.set_query(Some("local=true")),
        }
        match client.get(url).send().await {
            Ok(r) if r.status().is_success() => {
                if let Ok(body) = r.json::<Value>().await {
                    return Ok(Json(body));
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(peer = %peer, error = %e, "cannot forward an account query"),
        }
    }
    Err(ApiError::NotFound(format!("no account `{id}` on this instance or on {} other(s) asked", peers.len())))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Page {
    since: Option<String>,
    limit: Option<usize>,
}

impl Page {
    fn limit(&self) -> usize {
        self.limit.unwrap_or(100).clamp(1, 10_000)
    }
}

async fn get_account_alerts<S: EventStore + ProjectionStore + 'static>(
    State(app): Shared<S>,
    Path(id): Path<String>,
    Query(page): Query<Page>,
) -> Result<Json<Value>, ApiError> {
    if !crate::views::account_exists(app.store.as_ref(), app.shards, &id)? {
        return Err(ApiError::NotFound(format!("no account `{id}`")));
    }
    let alerts = app.store.account_alerts(&id, page.limit())?;
    Ok(Json(json!({ "account_id": id, "alerts": alerts })))
}

/// `since` is an alert number (a cursor from `next`) or an RFC 3339 event time.
async fn get_alerts<S: EventStore + ProjectionStore + 'static>(
    State(app): Shared<S>,
    Query(page): Query<Page>,
) -> Result<Json<Value>, ApiError> {
    let store = &app.store;
    let since = page.since.as_deref().unwrap_or("0");
    let alerts = match since.parse::<u64>() {
        Ok(after) => store.alerts_after(after, page.limit())?,
        Err(_) => {
            let ts = Timestamp::parse(since).map_err(|e| {
                ApiError::BadRequest(format!("`since` must be an alert number or an RFC 3339 time: {e}"))
            })?;
            let mut found = Vec::new();
            let mut after = 0;
            while found.len() < page.limit() {
                let chunk = store.alerts_after(after, 10_000)?;
                let Some(last) = chunk.last() else { break };
                after = last.number;
                found.extend(chunk.into_iter().filter(|a| a.alert.ts >= ts));
            }
            found.truncate(page.limit());
            found
        }
    };
    let next = alerts.last().map(|a| a.number);
    Ok(Json(json!({ "alerts": alerts, "next": next })))
}

async fn get_dead_letters<S: EventStore + ProjectionStore + 'static>(
    State(app): Shared<S>,
    Query(page): Query<Page>,
) -> Result<Json<Value>, ApiError> {
    let store = &app.store;
    let after = match page.since.as_deref() {
        None => 0,
        Some(s) => {
            s.parse().map_err(|_| ApiError::BadRequest(format!("`since` must be a dead-letter number, got `{s}`")))?
        }
    };
    let letters = store.dead_letters_after(after, page.limit())?;
    let next = letters.last().map(|d| d.number);
    Ok(Json(json!({ "dead_letters": letters, "next": next })))
}

async fn get_record<S: EventStore + ProjectionStore + 'static>(
    State(app): Shared<S>,
    Path((shard, seq)): Path<(u32, u64)>,
) -> Result<Json<Value>, ApiError> {
    let record =
        app.store.record(shard, seq)?.ok_or_else(|| ApiError::NotFound(format!("no record ({shard}, {seq})")))?;
    let personal = app.on_engine(|e| e.personal_data().clone()).await?;
    // The one view that shows personal data: opened with the user's key, when it exists.
    let personal = crate::privacy::Disclosure::Disclosed(&personal);
    Ok(Json(crate::audit::history::record_view(&record, &app.codec, personal)))
}

async fn get_schemas<S: EventStore + ProjectionStore + 'static>(State(app): Shared<S>) -> Json<Value> {
    let codec = &app.codec;
    let schemas: Vec<Value> = codec
        .schemas()
        .map(|(name, schema)| {
            let fp = codec.fingerprint(name).map(|f| format!("{f:016x}"));
            json!({ "type": name, "fingerprint": fp, "schema": serde_json::from_str::<Value>(schema).unwrap_or(Value::Null) })
        })
        .collect();
    Json(json!({ "schemas": schemas }))
}

/// From the last commit and the metrics it set: a probe never waits for a batch.
async fn healthz<S: EventStore + ProjectionStore + 'static>(State(app): Shared<S>) -> Result<Json<Value>, ApiError> {
    let read = app.store.committed();
    let mut shards = Vec::new();
    for s in 0..app.shards {
        let h = read.head(s)?;
        shards.push(json!({ "shard": s, "seq": h.seq, "hash": hex(&h.hash) }));
    }
    drop(read);
    let mut body = json!({ "status": "ok", "accounts": app.metrics.accounts.get(), "shards": shards });
    if let Some(view) = app.cluster.get() {
        let v = view.lock().unwrap_or_else(|p| p.into_inner()).clone();
        body["cluster"] =
            json!({ "me": v.me, "owned": v.owned, "restoring": v.restoring, "published": v.published, "lag": v.lag });
    }
    Ok(Json(body))
}

/// Ready to serve: the store answers, no owned shard is still being restored (Kafka
/// mode), and every component that registered a check (the notifier's ledger)
/// answers. 503 with the reasons otherwise, for a load balancer or an orchestrator.
async fn readyz<S: EventStore + ProjectionStore + 'static>(State(app): Shared<S>) -> Response {
    let mut reasons = Vec::new();
    let mut checks = serde_json::Map::new();
    let engine = (0..app.shards).try_for_each(|s| app.store.committed().head(s).map(drop));
    match engine {
        Ok(()) => {
            checks.insert("engine".into(), json!("ok"));
        }
        Err(e) => reasons.push(format!("engine: the store does not answer: {e}")),
    }
    if let Some(view) = app.cluster.get() {
        let restoring = view.lock().unwrap_or_else(|p| p.into_inner()).restoring.clone();
        if !restoring.is_empty() {
            reasons.push(format!("engine: shards {restoring:?} are still being restored"));
        }
    }
    let registered: Vec<(String, ReadinessCheck)> =
        app.readiness.lock().unwrap_or_else(|p| p.into_inner()).iter().cloned().collect();
    for (name, check) in registered {
        match check().await {
            Ok(state) => {
                checks.insert(name, state);
            }
            Err(e) => reasons.push(format!("{name}: {e}")),
        }
    }
    let ready = reasons.is_empty();
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(json!({ "ready": ready, "checks": checks, "reasons": reasons }))).into_response()
}

async fn metrics<S: EventStore + ProjectionStore + 'static>(State(app): Shared<S>) -> impl IntoResponse {
    let text = app.metrics.render();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], include_str!("openapi.json"))
}

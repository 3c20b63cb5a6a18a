//! The notifier's routes, merged into the engine's API when the notifier runs:
//! a user's inbox, read and marked; and, for operators behind the admin token,
//! the dead letters (listed, re-driven) and the endpoints (listed, enabled).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use riskstream_schemas::Timestamp;

use crate::error::NotifierError;
use crate::inbox::{Inbox, InboxPage};
use crate::ledger::{DeadLetter, DeadLetterFilter, EndpointHealth, Ledger};
use crate::preferences::{PreferenceStore, Preferences};

/// `GET /v1/users/{id}/inbox`, `POST /v1/users/{id}/inbox/{alert_id}/read` and
/// `.../archive`; and `GET /v1/notifier/health`.
pub fn router(inbox: Inbox) -> Router {
    Router::new()
        .route("/v1/notifier/health", get(get_health))
        .route("/v1/users/{id}/inbox", get(get_inbox))
        .route("/v1/users/{id}/inbox/{alert_id}/read", post(post_read))
        .route("/v1/users/{id}/inbox/{alert_id}/archive", post(post_archive))
        .with_state(inbox)
}

/// The operators' routes; the caller puts them behind its admin check:
/// `GET /v1/notifier/dead-letters`, `POST /v1/notifier/dead-letters/redrive`,
/// `GET /v1/notifier/endpoints`, `POST /v1/notifier/endpoints/{channel}/{endpoint}/enable`.
/// Also the users' preferences: `PUT`, `GET` and `DELETE /v1/users/{id}/preferences`
/// and `GET /v1/notifier/preferences` (the users who set some).
pub fn admin_router(ledger: Ledger, preferences: PreferenceStore) -> Router {
    let ops = Router::new()
        .route("/v1/notifier/dead-letters", get(get_dead_letters))
        .route("/v1/notifier/dead-letters/redrive", post(post_redrive))
        .route("/v1/notifier/endpoints", get(get_endpoints))
        .route("/v1/notifier/endpoints/{channel}/{endpoint}/enable", post(post_enable))
        .with_state(ledger);
    let prefs = Router::new()
        .route("/v1/users/{id}/preferences", get(get_preferences).put(put_preferences).delete(delete_preferences))
        .route("/v1/notifier/preferences", get(list_preferences))
        .with_state(preferences);
    ops.merge(prefs)
}

/// The preferences as set, secrets masked.
async fn get_preferences(
    State(store): State<PreferenceStore>,
    Path(user): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let prefs = store
        .get(&user)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("user `{user}` has set no preferences (the defaults apply)")))?;
    Ok(Json(json!({ "user_id": user, "preferences": prefs.masked() })))
}

/// Sets the user's preferences whole. The body is read here, not by the `Json`
/// extractor, so a bad document is answered naming its field.
async fn put_preferences(
    State(store): State<PreferenceStore>,
    Path(user): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    if user.is_empty() || user.len() > 256 || user.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(format!("`{}` is not a user id", user.escape_debug())));
    }
    let prefs: Preferences =
        serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(format!("preferences: {e}")))?;
    prefs.validate().map_err(|e| ApiError::BadRequest(format!("preferences: {e}")))?;
    store.put(&user, &prefs, crate::now_ms()).await?;
    Ok(Json(json!({ "user_id": user, "preferences": prefs.masked() })))
}

async fn delete_preferences(
    State(store): State<PreferenceStore>,
    Path(user): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let deleted = store.erase(&user).await?;
    Ok(Json(json!({ "user_id": user, "deleted": deleted })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// Users after this id (paging).
    #[serde(default)]
    after: String,
    limit: Option<i64>,
}

async fn list_preferences(
    State(store): State<PreferenceStore>,
    Query(q): Query<ListQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let users = store.users(&q.after, q.limit.unwrap_or(100).clamp(1, 1_000)).await?;
    Ok(Json(json!({ "users": users })))
}

/// Which dead letters, as the API and the CLI take them: times are RFC 3339.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterQuery {
    pub alert_id: Option<String>,
    pub channel: Option<String>,
    pub endpoint: Option<String>,
    /// Given up at or after this time.
    pub from: Option<String>,
    /// Given up before this time.
    pub to: Option<String>,
    /// At most this many, oldest first.
    pub limit: Option<i64>,
}

impl DeadLetterQuery {
    /// The ledger's filter; the error names the field that is not a time.
    pub fn filter(self) -> Result<DeadLetterFilter, String> {
        let ms = |field: &str, text: Option<String>| {
            text.map(|t| {
                Timestamp::parse(&t)
                    .map(|ts| ts.micros().div_euclid(1_000))
                    .map_err(|e| format!("`{field}` is not an RFC 3339 time ({t}): {e}"))
            })
            .transpose()
        };
        if self.limit.is_some_and(|l| l < 1) {
            return Err("`limit` must be at least 1".into());
        }
        Ok(DeadLetterFilter {
            from_ms: ms("from", self.from)?,
            to_ms: ms("to", self.to)?,
            alert_id: self.alert_id,
            channel: self.channel,
            endpoint: self.endpoint,
            limit: self.limit,
        })
    }
}

async fn get_dead_letters(
    State(ledger): State<Ledger>,
    Query(q): Query<DeadLetterQuery>,
) -> Result<Json<Vec<DeadLetter>>, ApiError> {
    let filter = q.filter().map_err(ApiError::BadRequest)?;
    let filter = DeadLetterFilter { limit: Some(filter.limit.unwrap_or(1_000).min(10_000)), ..filter };
    Ok(Json(ledger.dead_letters(&filter).await?))
}

/// Re-drives the dead letters the body selects (`{}`: all of them).
async fn post_redrive(
    State(ledger): State<Ledger>,
    body: Option<Json<DeadLetterQuery>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let filter = body.map(|Json(q)| q).unwrap_or_default().filter().map_err(ApiError::BadRequest)?;
    let redriven = ledger.redrive(&filter, crate::now_ms()).await?;
    Ok(Json(json!({ "redriven": redriven })))
}

async fn get_endpoints(State(ledger): State<Ledger>) -> Result<Json<Vec<EndpointHealth>>, ApiError> {
    Ok(Json(ledger.endpoints().await?))
}

async fn post_enable(
    State(ledger): State<Ledger>,
    Path((channel, endpoint)): Path<(String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if !ledger.enable(&channel, &endpoint).await? {
        return Err(ApiError::NotFound(format!("endpoint `{endpoint}` of channel `{channel}` is not disabled")));
    }
    Ok(Json(json!({ "channel": channel, "endpoint": endpoint, "enabled": true })))
}

/// Whether the ledger answers, with its backlog in numbers (no personal data): 200
/// with `status: ok`, or 503 naming what failed.
async fn get_health(State(inbox): State<Inbox>) -> Result<Json<serde_json::Value>, ApiError> {
    let health = inbox.ledger().health().await?;
    Ok(Json(json!({
        "status": "ok",
        "pending": health.pending,
        "dead_letters": health.dead_letters,
        "disabled_endpoints": health.disabled_endpoints,
    })))
}

#[derive(Deserialize)]
struct InboxQuery {
    /// At most this many messages, newest first (default 50, at most 1,000).
    limit: Option<i64>,
    /// Include archived messages.
    #[serde(default)]
    archived: bool,
}

enum ApiError {
    BadRequest(String),
    NotFound(String),
    Notifier(NotifierError),
}

impl From<NotifierError> for ApiError {
    fn from(e: NotifierError) -> Self {
        ApiError::Notifier(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, m),
            ApiError::Notifier(e) => {
                tracing::error!(error = %e, "notifier request failed");
                (StatusCode::SERVICE_UNAVAILABLE, e.to_string())
            }
        };
        (status, Json(json!({ "error": message }))).into_response()
    }
}

async fn get_inbox(
    State(inbox): State<Inbox>,
    Path(user): Path<String>,
    Query(q): Query<InboxQuery>,
) -> Result<Json<InboxPage>, ApiError> {
    let limit = q.limit.unwrap_or(50).clamp(1, 1_000);
    Ok(Json(inbox.page(&user, limit, q.archived).await?))
}

async fn post_read(
    State(inbox): State<Inbox>,
    Path((user, alert)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    mark(&inbox, &user, &alert, false).await
}

async fn post_archive(
    State(inbox): State<Inbox>,
    Path((user, alert)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    mark(&inbox, &user, &alert, true).await
}

async fn mark(inbox: &Inbox, user: &str, alert: &str, archive: bool) -> Result<Response, ApiError> {
    if !inbox.mark(user, alert, archive).await? {
        return Err(ApiError::NotFound(format!("user `{user}` has no message for alert `{alert}`")));
    }
    let unread = inbox.unread(user).await?;
    Ok(Json(json!({ "user_id": user, "alert_id": alert, "unread": unread })).into_response())
}

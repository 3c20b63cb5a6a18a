//! The notifier's routes, merged into the engine's API when the notifier runs:
//! a user's inbox, read and marked.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::error::NotifierError;
use crate::inbox::{Inbox, InboxPage};

/// `GET /v1/users/{id}/inbox`, `POST /v1/users/{id}/inbox/{alert_id}/read` and
/// `.../archive`.
pub fn router(inbox: Inbox) -> Router {
    Router::new()
        .route("/v1/users/{id}/inbox", get(get_inbox))
        .route("/v1/users/{id}/inbox/{alert_id}/read", post(post_read))
        .route("/v1/users/{id}/inbox/{alert_id}/archive", post(post_archive))
        .with_state(inbox)
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

//! The admin route of personal data: erasing a user destroys the user's key, so
//! the log (and everything proven over it) stays as it was while the user's sealed
//! personal fields become unreadable (docs/EVENTS.md, "Personal data").

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap};
use axum::Json;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{ApiError, AppState, Shared};
use crate::config::AdminToken;
use crate::store::{EventStore, ProjectionStore};

/// `POST /v1/users/{id}/erase`: admin only, idempotent.
pub(super) async fn post_user_erase<S: EventStore + ProjectionStore + 'static>(
    State(app): Shared<S>,
    Path(user_id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    authorize_admin(app.admin_token.get(), &headers)?;
    if user_id.trim().is_empty()
        || user_id.len() > riskstream_schemas::MAX_ID_LEN
        || user_id.chars().any(char::is_control)
    {
        return Err(ApiError::BadRequest(format!(
            "`{}` is not a user id (1 to {} bytes, no control characters)",
            user_id.escape_debug(),
            riskstream_schemas::MAX_ID_LEN
        )));
    }
    let personal = app.on_engine(|e| e.personal_data().clone()).await?;
    // Erasing fsyncs and compacts the key store: off the async workers.
    let user = user_id.clone();
    let erasure = tokio::task::spawn_blocking(move || personal.erase(&user))
        .await
        .map_err(|e| ApiError::BadRequest(format!("erase task failed: {e}")))??;
    if let Some(hook) = app.erasure_hook.get() {
        // The key is gone already; erasing again (idempotent) finishes the rest.
        hook(user_id)
            .await
            .map_err(|e| ApiError::Busy(format!("the user's key is erased but {e}; send the erasure again")))?;
    }
    Ok(Json(json!(erasure)))
}

/// Puts `routes` (the notifier's operator routes) behind the admin token.
pub fn admin_only<S: Send + Sync + 'static>(state: Arc<AppState<S>>, routes: axum::Router) -> axum::Router {
    routes.route_layer(axum::middleware::from_fn_with_state(state, require_admin::<S>))
}

/// Puts `routes` behind `token`, for a service without an engine (`riskstream
/// notifier run`); none: they answer 403.
pub fn admin_only_with(token: Option<AdminToken>, routes: axum::Router) -> axum::Router {
    routes.route_layer(axum::middleware::from_fn_with_state(Arc::new(token), require_token))
}

async fn require_admin<S>(
    State(app): State<Arc<AppState<S>>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    match authorize_admin(app.admin_token.get(), request.headers()) {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

async fn require_token(
    State(token): State<Arc<Option<AdminToken>>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    match authorize_admin(token.as_ref().as_ref(), request.headers()) {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

/// An admin route needs `Authorization: Bearer <[api] admin_token>`; without a
/// configured token the admin routes are off.
fn authorize_admin(token: Option<&AdminToken>, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = token else {
        return Err(ApiError::Forbidden(
            "admin routes are disabled: set `admin_token` in the `[api]` section of the config file or \
             RISKSTREAM_ADMIN_TOKEN, then restart"
                .into(),
        ));
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .ok_or_else(|| ApiError::Unauthorized("send the admin token as `Authorization: Bearer <token>`".into()))?;
    // Digests first: equal lengths, so the comparison time says nothing about the token.
    let digest = |token: &str| Sha256::digest(token.as_bytes());
    if bool::from(digest(presented).ct_eq(&digest(&expected.0))) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized("wrong admin token".into()))
    }
}

//! The one place where errors become HTTP status codes.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::pipeline::EngineError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request itself is wrong; the sender must fix it.
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    /// No or a wrong credential for an admin route.
    #[error("{0}")]
    Unauthorized(String),
    /// The route is disabled by configuration.
    #[error("{0}")]
    Forbidden(String),
    /// Ingest is full; the sender retries after `Retry-After`. Nothing was applied.
    #[error("{0}")]
    Busy(String),
    #[error("unsupported content type `{0}`: send application/json, application/x-ndjson or application/avro")]
    UnsupportedMediaType(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    KeyStore(#[from] crate::privacy::KeyStoreError),
}

impl From<crate::audit::ProofRequestError> for ApiError {
    fn from(e: crate::audit::ProofRequestError) -> Self {
        match e {
            crate::audit::ProofRequestError::BadRequest(m) => ApiError::BadRequest(m),
            crate::audit::ProofRequestError::Store(e) => ApiError::Store(e),
        }
    }
}

impl From<crate::audit::history::HistoryError> for ApiError {
    fn from(e: crate::audit::history::HistoryError) -> Self {
        use crate::audit::history::HistoryError;
        match e {
            HistoryError::OutOfRange(m) => ApiError::BadRequest(m),
            HistoryError::NotFound(m) => ApiError::NotFound(m),
            HistoryError::Store(e) => ApiError::Store(e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            // Internal: stop loudly; the operator restarts, clients retry.
            ApiError::Engine(_) | ApiError::Store(_) | ApiError::KeyStore(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        let body = Json(serde_json::json!({ "error": self.to_string() }));
        if let ApiError::Busy(_) = self {
            // Load, not failure: no error log; one second lets a batch or two commit.
            return (status, [(axum::http::header::RETRY_AFTER, "1")], body).into_response();
        }
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        if status == StatusCode::UNAUTHORIZED {
            // RFC 6750: say which scheme the route takes.
            return (status, [(axum::http::header::WWW_AUTHENTICATE, "Bearer")], body).into_response();
        }
        (status, body).into_response()
    }
}

/// Every error answer is `{"error": ...}`: the handlers' come from [`ApiError`],
/// the router's own (unknown route, wrong method, a path or query string that does
/// not parse, a body over the limit) are rewritten here.
pub(super) async fn json_errors(request: Request, next: Next) -> Response {
    let (method, path) = (request.method().clone(), request.uri().path().to_string());
    let response = next.run(request).await;
    let status = response.status();
    let is_json =
        response.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let allow = response.headers().get(header::ALLOW).and_then(|v| v.to_str().ok()).map(str::to_string);
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_string();
    let message = match status {
        StatusCode::NOT_FOUND if text.is_empty() => {
            format!("no route {method} {path}; GET /v1/openapi.json lists the routes")
        }
        StatusCode::METHOD_NOT_ALLOWED => match allow.filter(|a| !a.is_empty()) {
            Some(allowed) => format!("{path} does not take {method}; it takes {allowed}"),
            None => format!("{path} does not take {method}"),
        },
        _ if text.is_empty() => status.canonical_reason().unwrap_or("error").to_lowercase(),
        _ => lowercase_first(&text),
    };
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(serde_json::json!({ "error": message }).to_string()))
}

/// The framework's messages start with a capital; ours do not (STYLE.md).
fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |c| c.to_lowercase().chain(chars).collect())
}

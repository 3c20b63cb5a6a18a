//! The one place where errors become HTTP status codes.

use axum::http::StatusCode;
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
    #[error("unsupported content type `{0}`: send application/json, application/x-ndjson or application/avro")]
    UnsupportedMediaType(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Store(#[from] StoreError),
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
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            // Internal: stop loudly; the operator restarts, clients retry.
            ApiError::Engine(_) | ApiError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        (status, Json(serde_json::json!({ "error": self.to_string() }))).into_response()
    }
}

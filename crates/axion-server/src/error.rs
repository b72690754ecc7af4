//! One error type for every handler, mapped to Langfuse's status codes and JSON bodies.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::store::StoreError;

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// 400 `{"message": "Invalid request data", "error": detail}`.
    #[error("invalid request: {0}")]
    BadRequest(String),
    /// 401 `{"message": …}` (ingestion adds `"error": "UnauthorizedError"`).
    #[error("unauthorized: {message}")]
    Unauthorized {
        /// Human-readable reason.
        message: String,
        /// Use the ingestion route's body shape.
        ingestion: bool,
    },
    /// 403 `{"message": …}`.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// 404 `{"message": …, "error": "LangfuseNotFoundError"}`.
    #[error("not found: {0}")]
    NotFound(String),
    /// 413.
    #[error("payload too large: {0}")]
    PayloadTooLarge(String),
    /// 500: storage failed; nothing was acknowledged.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ApiError {
    /// The status code this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Store(StoreError::Closed) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = match &self {
            Self::BadRequest(detail) => json!({"message": "Invalid request data", "error": detail}),
            Self::Unauthorized {
                message,
                ingestion: true,
            } => {
                json!({"error": "UnauthorizedError", "message": message})
            }
            Self::Unauthorized { message, .. } | Self::Forbidden(message) => {
                json!({"message": message})
            }
            Self::NotFound(message) => {
                json!({"message": message, "error": "LangfuseNotFoundError"})
            }
            Self::PayloadTooLarge(message) => {
                json!({"message": message, "error": "PayloadTooLargeError"})
            }
            Self::Store(error) => {
                log::error!("store error: {error}");
                json!({"message": "Internal Server Error", "error": error.to_string()})
            }
        };
        (status, Json(body)).into_response()
    }
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;

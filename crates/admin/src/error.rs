//! Admin API errors: `{"error":{"code","message"}}` with the matching status.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("this endpoint needs Authorization: Bearer <admin.token>")]
    Unauthorized,
    /// A request a browser page may have sent on someone else's behalf (admin without a token).
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The request body did not arrive in time.
    #[error("{0}")]
    Timeout(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{field}: {message}")]
    BadRequest { field: String, message: String },
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
}

impl AdminError {
    /// A bad query parameter or body field, named.
    pub fn bad(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::BadRequest { field: field.into(), message: message.into() }
    }
}

impl From<tollgate_store::QueryError> for AdminError {
    fn from(error: tollgate_store::QueryError) -> Self {
        match error {
            tollgate_store::QueryError::Invalid { parameter, message } => Self::bad(parameter, message),
            error @ tollgate_store::QueryError::NotRolledUp { .. } => Self::bad("group_by", error.to_string()),
            tollgate_store::QueryError::Store(error) => error.into(),
        }
    }
}

impl From<tollgate_store::StoreError> for AdminError {
    fn from(error: tollgate_store::StoreError) -> Self {
        // Logged once, here at the edge, with its cause chain; the client gets the summary.
        tracing::warn!(error = &error as &dyn std::error::Error, "admin query failed");
        Self::Unavailable(format!("database: {error}"))
    }
}

impl AdminError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            AdminError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            AdminError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            AdminError::UnsupportedMediaType(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            AdminError::Timeout(_) => (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
            AdminError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            AdminError::BadRequest { .. } => (StatusCode::BAD_REQUEST, "invalid_request"),
            AdminError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            AdminError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            AdminError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let mut body = json!({"error": {"code": code, "message": self.to_string()}});
        if let AdminError::BadRequest { field, .. } = &self {
            body["error"]["field"] = json!(field);
        }
        (status, Json(body)).into_response()
    }
}

pub async fn not_found(uri: http::Uri) -> AdminError {
    AdminError::NotFound(format!("no admin endpoint at {}", uri.path()))
}

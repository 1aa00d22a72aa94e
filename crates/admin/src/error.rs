//! Admin API errors: `{"error":{"code","message"}}` with the matching status.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("this endpoint needs Authorization: Bearer <admin.token>")]
    Unauthorized,
    #[error("{0}")]
    NotFound(String),
    #[error("{field}: {message}")]
    BadRequest { field: String, message: String },
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unavailable(String),
}

impl AdminError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            AdminError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            AdminError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            AdminError::BadRequest { .. } => (StatusCode::BAD_REQUEST, "invalid_request"),
            AdminError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            AdminError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
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

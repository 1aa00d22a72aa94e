//! Admin API errors: one edge type, [`AdminError`], and the one body every error response carries, [`ErrorBody`]
//! (the type `into_response` serialises is the type the OpenAPI document describes).

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::Serialize;
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};

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
    /// A query or write the database refused or could not answer; logged with its cause chain when rendered.
    #[error("database: {0}")]
    Database(#[source] tollgate_store::StoreError),
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
        Self::Database(error)
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
            AdminError::Unavailable(_) | AdminError::Database(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            AdminError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        if let AdminError::Database(error) = &self {
            // Logged once, here at the edge, with its cause chain; the client gets the summary.
            tracing::warn!(error = error as &dyn std::error::Error, "admin query failed");
        }
        let (status, code) = self.status_and_code();
        let field = match &self {
            AdminError::BadRequest { field, .. } => Some(field.clone()),
            _ => None,
        };
        let body = ErrorBody { error: ErrorDetail { code, message: self.to_string(), field } };
        (status, Json(body)).into_response()
    }
}

/// Every error: `{"error":{"code","message"}}` (`field` names the bad parameter on 400).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// `unauthorized`, `forbidden`, `unsupported_media_type`, `request_timeout`, `not_found`, `invalid_request`,
    /// `conflict`, `unavailable`, `internal`.
    #[schema(value_type = String)]
    pub code: &'static str,
    pub message: String,
    #[schema(nullable = false)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// A response whose body is an [`ErrorBody`], for the shared responses of the OpenAPI document.
pub(crate) fn error_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    let content = ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build();
    RefOr::T(ResponseBuilder::new().description(description).content("application/json", content).build())
}

/// The shared 503 of every endpoint that reads or writes the database.
pub struct Unavailable;

impl<'s> utoipa::ToResponse<'s> for Unavailable {
    fn response() -> (&'s str, RefOr<utoipa::openapi::Response>) {
        ("Unavailable", error_response("no database is attached, or it did not answer"))
    }
}

pub async fn not_found(uri: http::Uri) -> AdminError {
    AdminError::NotFound(format!("no admin endpoint at {}", uri.path()))
}

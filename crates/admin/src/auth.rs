//! Bearer-token auth for the admin API, compared in constant time, with a short public allow-list.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::{AdminError, AdminState};

/// Paths open without a token when `admin.public_metrics` is set.
pub(crate) const PUBLIC: [&str; 2] = ["/status", "/metrics"];

pub async fn require_token(State(state): State<AdminState>, request: Request, next: Next) -> Response {
    let Some(token) = &state.config.admin.token else {
        // No token: the config only allows this on loopback.
        return next.run(request).await;
    };
    if state.config.admin.public_metrics && PUBLIC.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim);
    match presented {
        Some(value) if token.matches(value.as_bytes()) => next.run(request).await,
        _ => AdminError::Unauthorized.into_response(),
    }
}

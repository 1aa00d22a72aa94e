//! Mutations carry JSON: a `POST`/`PUT`/`PATCH`/`DELETE` with a body in any other media type is 415. A browser
//! sends `text/plain` or form bodies cross-site without asking first; `application/json` it never sends without
//! a CORS preflight, which this server does not answer.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::Method;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, TRANSFER_ENCODING};

use crate::AdminError;

pub async fn require_json_body(request: Request, next: Next) -> Response {
    let mutation = matches!(*request.method(), Method::POST | Method::PUT | Method::PATCH | Method::DELETE);
    if mutation && has_body(request.headers()) && !is_json(request.headers()) {
        let message =
            format!("{} {} needs Content-Type: application/json for its body", request.method(), request.uri().path());
        return AdminError::UnsupportedMediaType(message).into_response();
    }
    next.run(request).await
}

/// A body follows: a non-zero `Content-Length`, or a `Transfer-Encoding` (chunked).
fn has_body(headers: &http::HeaderMap) -> bool {
    headers.contains_key(TRANSFER_ENCODING)
        || headers
            .get(CONTENT_LENGTH)
            .is_some_and(|v| v.to_str().ok().and_then(|v| v.trim().parse::<u64>().ok()) != Some(0))
}

/// `application/json`, in any case, with or without parameters (`; charset=utf-8`).
fn is_json(headers: &http::HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

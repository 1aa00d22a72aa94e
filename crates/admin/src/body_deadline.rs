//! A request body must arrive whole within a deadline: a client that trickles its body cannot hold a
//! connection (and a handler) open for ever.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::AdminError;

/// The largest admin request body, in bytes (axum's own default limit for JSON bodies).
pub const MAX_BODY_BYTES: usize = 2 << 20;

/// Reads the whole body (at most [`MAX_BODY_BYTES`]) within `timeout` of the request head, then hands the
/// request on with the bytes in memory. Too slow: 408 `request_timeout`; too large or cut off: 400 naming
/// `body`.
pub async fn read_body_by_deadline(State(timeout): State<Duration>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    match tokio::time::timeout(timeout, axum::body::to_bytes(body, MAX_BODY_BYTES)).await {
        Ok(Ok(bytes)) => next.run(Request::from_parts(parts, Body::from(bytes))).await,
        Ok(Err(_)) => {
            AdminError::bad("body", format!("could not be read whole (cut off, or larger than {MAX_BODY_BYTES} bytes)"))
                .into_response()
        }
        Err(_) => AdminError::Timeout(format!("the request body did not arrive within {}s", timeout.as_secs_f64()))
            .into_response(),
    }
}

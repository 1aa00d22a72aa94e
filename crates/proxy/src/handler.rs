//! The request path, phase by phase.
//!
//! 1. Classify the path (no body needed); this fixes the client's error format.
//! 2. Read the `cf-aig-*` controls (400 `invalid_header` on a bad one).
//! 3. Read the body, bounded by `server.max_request_body` (413), and peek at `model` / `stream`.
//! 4. Resolve the target provider, upstream path and bare model; rewrite `model` in the body if needed.
//! 5. Credentials: gateway token check, key swap / passthrough / injection; then strip hop-by-hop and
//!    gateway headers.
//! 6. Send upstream with retries and the first-byte deadline (502 / 504).
//! 7. Answer with the upstream head and a tapped body that streams frame by frame; the tap is the finalize
//!    step that sees the end exactly once.

use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use http::{HeaderValue, Request, Response, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tracing::Instrument;

use crate::Gateway;
use crate::body::{ProxyBody, TappedBody};
use crate::credentials;
use crate::error::{ErrorFormat, GatewayError};
use crate::headers::{Controls, prepare_upstream, strip_hop_by_hop};
use crate::route::{self, BodyPeek, Shape};
use crate::tap::RequestRecord;

/// Handles one request; never fails (errors become responses in the client's format).
pub async fn handle(gateway: Arc<Gateway>, request: Request<Incoming>) -> Response<ProxyBody> {
    let started = Instant::now();
    let log_id = uuid::Uuid::now_v7().to_string();
    let span =
        tracing::info_span!("request", log_id = %log_id, method = %request.method(), path = %request.uri().path());
    async move {
        let shape = route::classify(request.uri().path());
        let format = shape.as_ref().map_or(ErrorFormat::OpenAi, |s| s.error_format(&gateway.providers));
        let result = match shape {
            Ok(shape) => proxy(&gateway, request, shape, &log_id, started).await,
            Err(e) => Err(e),
        };
        result.unwrap_or_else(|error| {
            tracing::warn!(code = error.code(), status = error.status().as_u16(), %error, "request refused");
            error_response(&error, format, &log_id)
        })
    }
    .instrument(span)
    .await
}

fn error_response(error: &GatewayError, format: ErrorFormat, log_id: &str) -> Response<ProxyBody> {
    let mut response = Response::new(ProxyBody::full(error.body(format)));
    *response.status_mut() = error.status();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, GatewayError::content_type());
    if let Ok(value) = HeaderValue::from_str(log_id) {
        headers.insert("cf-aig-log-id", value);
    }
    response
}

async fn proxy(
    gateway: &Gateway,
    request: Request<Incoming>,
    shape: Shape,
    log_id: &str,
    started: Instant,
) -> Result<Response<ProxyBody>, GatewayError> {
    let (parts, body) = request.into_parts();
    let controls = Controls::read(&parts.headers, &gateway.config.gateway)?;
    let body = read_body(body, &parts.headers, gateway.config.server.max_request_body).await?;

    // The OpenAI and Anthropic drop-ins need the model; a passthrough body may be anything (multipart...).
    let strict = !matches!(shape, Shape::Passthrough { .. });
    let peek = match BodyPeek::parse(&body) {
        Ok(peek) => peek,
        Err(e) if strict => return Err(e),
        Err(_) => None,
    };
    let target = route::resolve(shape, parts.uri.query(), peek.as_ref(), &gateway.providers)?;
    let body = match (&target.rewrite_model, peek.as_ref().and_then(|p| p.model)) {
        (Some(model), Some(raw)) => splice_model(&body, raw.get(), model),
        _ => body.clone(),
    };

    let mut headers = parts.headers;
    credentials::apply(&mut headers, gateway.config.gateway.auth_token.as_ref(), &target.provider.config, target.auth)?;
    prepare_upstream(&mut headers);

    let url = target.provider.upstream_url(&target.upstream_path, controls.zdr)?;
    let uri: http::Uri =
        url.parse().map_err(|_| GatewayError::UnknownRoute(format!("cannot build an upstream URL from {url:?}")))?;
    let provider = target.provider.name().to_string();
    let (response, attempts) = gateway.client.send(&provider, &parts.method, &uri, &headers, &body, &controls).await?;
    let ttfb = started.elapsed();

    let (mut head, incoming) = response.into_parts();
    strip_hop_by_hop(&mut head.headers);
    if let Ok(value) = HeaderValue::from_str(log_id) {
        head.headers.insert("cf-aig-log-id", value);
    }
    if let Some(step) = target.step {
        head.headers.insert("cf-aig-step", HeaderValue::from(step));
        if let Ok(value) = HeaderValue::from_str(&provider) {
            head.headers.insert("cf-aig-provider", value);
        }
        if let Some(Ok(value)) = target.model.as_deref().map(HeaderValue::from_str) {
            head.headers.insert("cf-aig-model", value);
        }
    }
    let record = RequestRecord {
        log_id: log_id.to_string(),
        started,
        gateway: target.gateway.clone(),
        provider,
        model: target.model.clone(),
        path: parts.uri.path().to_string(),
        api: target.api,
        stream: target.stream,
        status: head.status.as_u16(),
        ttfb,
        attempts,
        step: target.step,
        event_id: controls.event_id.clone(),
        collect_log: controls.collect_log,
    };
    let tap = gateway.taps.tap(record);
    let body = TappedBody::new(incoming, tap, gateway.drain_policy());
    Ok(Response::from_parts(head, ProxyBody::Tapped(body)))
}

/// Reads the request body, refusing it as soon as it passes `limit` bytes.
async fn read_body(body: Incoming, headers: &http::HeaderMap, limit: u64) -> Result<Bytes, GatewayError> {
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(GatewayError::RequestTooLarge { limit });
    }
    let mut body = body;
    let mut buf = BytesMut::with_capacity(declared.unwrap_or(0).min(limit) as usize);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| GatewayError::InvalidJson(format!("could not read the request body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            if (buf.len() + data.len()) as u64 > limit {
                return Err(GatewayError::RequestTooLarge { limit });
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

/// Replaces the JSON text of `model` (a slice of `body`, as serde_json's `RawValue` borrowed it) with `new`,
/// leaving every other byte as the client sent it.
fn splice_model(body: &Bytes, raw_model: &str, new: &str) -> Bytes {
    let start = raw_model.as_ptr() as usize - body.as_ptr() as usize;
    let end = start + raw_model.len();
    let quoted = serde_json::Value::from(new).to_string();
    let mut out = BytesMut::with_capacity(body.len() + quoted.len());
    out.extend_from_slice(&body[..start]);
    out.extend_from_slice(quoted.as_bytes());
    out.extend_from_slice(&body[end..]);
    out.freeze()
}

#[cfg(test)]
mod tests;

//! The request path, phase by phase.
//!
//! 1. Classify the path (no body needed); this fixes the client's error format.
//! 2. Read the `cf-aig-*` controls (400 `invalid_header` on a bad one) and check the gateway credential
//!    (401), before anything else is spent on the request.
//! 3. Read the body, bounded by `server.max_request_body` (413), and peek at `model`, `stream`, `max_tokens`;
//!    parse `cf-aig-custom-cost` and `cf-aig-metadata` (400).
//! 4. Resolve the target provider, upstream path and bare model.
//! 5. Limits: the rate limits, then spend admission, which reserves the worst-case cost in every applicable
//!    bucket (for `dynamic/<route>` models, the first candidate whose budgets admit it); 429 otherwise.
//! 6. Rewrite the body where needed (bare `model`; `stream_options.include_usage` for OpenAI-style streams),
//!    inject the stored key, strip hop-by-hop and gateway headers.
//! 7. Send upstream with retries and the first-byte deadline (502 / 504).
//! 8. Answer with the upstream head and a tapped body that streams frame by frame; the accounting tap is the
//!    finalize step that prices, settles and records exactly once. Every early exit records too.

use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use http::{HeaderValue, Request, Response, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tollgate_accounting::{
    ApiFormat, CustomCost, IncludeUsage, InjectedUsageFilter, Usage, UsageTap, ensure_include_usage,
    estimate_prompt_tokens,
};
use tollgate_limits::{Blocked, Metadata, RequestDims, nanos_to_usd};
use tracing::Instrument;

use crate::Gateway;
use crate::accounting::{AccountingTap, Pending, blank_record};
use crate::body::{ProxyBody, TappedBody};
use crate::credentials;
use crate::error::{ErrorFormat, GatewayError};
use crate::headers::{Controls, prepare_upstream, strip_hop_by_hop};
use crate::route::{self, Api, BodyPeek, Shape, Target};

/// Handles one request; never fails (errors become responses in the client's format, and records).
pub async fn handle(gateway: Arc<Gateway>, request: Request<Incoming>) -> Response<ProxyBody> {
    let started = Instant::now();
    let created_at = jiff::Timestamp::now();
    let log_id = new_log_id();
    let span =
        tracing::info_span!("request", log_id = %log_id, method = %request.method(), path = %request.uri().path());
    async move {
        let mut pending = Some(Pending {
            gateway: gateway.clone(),
            record: blank_record(&log_id, created_at, request.uri().path()),
            started,
            admission: None,
            metadata: Metadata::default(),
            custom_cost: None,
            prompt_estimate: 0,
            date: created_at.to_zoned_datetime(jiff::tz::TimeZone::UTC).date(),
        });
        let shape = route::classify(request.method(), request.uri().path());
        let format = shape.as_ref().map_or_else(
            |_| route::error_format_for_path(request.uri().path(), &gateway.providers),
            |s| s.error_format(&gateway.providers),
        );
        let result = match shape {
            Ok(shape) => proxy(&gateway, request, shape, &mut pending).await,
            Err(e) => Err(e),
        };
        result.unwrap_or_else(|error| {
            tracing::warn!(code = error.code(), status = error.status().as_u16(), %error, "request refused");
            if let Some(pending) = pending.take() {
                pending.finish_without_body(error.status().as_u16(), error.code());
            }
            error_response(&error, format, &log_id)
        })
    }
    .instrument(span)
    .await
}

thread_local! {
    /// Per-thread UUIDv7 context: `Uuid::now_v7` shares one behind a global mutex, which every request would
    /// take. Ids stay unique (74 random bits) and ordered by time.
    static LOG_IDS: uuid::ContextV7 = const { uuid::ContextV7::new() };
}

/// A new log id: a UUIDv7, so ids sort by time and the store's inserts stay append-only.
fn new_log_id() -> String {
    LOG_IDS.with(|context| uuid::Uuid::new_v7(uuid::Timestamp::now(context)).to_string())
}

fn error_response(error: &GatewayError, format: ErrorFormat, log_id: &str) -> Response<ProxyBody> {
    let mut response = Response::new(ProxyBody::full(error.body(format)));
    *response.status_mut() = error.status();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, GatewayError::content_type());
    if let Ok(value) = HeaderValue::from_str(log_id) {
        headers.insert("cf-aig-log-id", value);
    }
    if let Some(seconds) = error.retry_after() {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

async fn proxy(
    gateway: &Arc<Gateway>,
    request: Request<Incoming>,
    shape: Shape,
    pending_slot: &mut Option<Pending>,
) -> Result<Response<ProxyBody>, GatewayError> {
    let Some(pending) = pending_slot.as_mut() else {
        return Err(GatewayError::UnknownRoute("internal: request already finished".into()));
    };
    let (parts, body) = request.into_parts();
    let mut headers = parts.headers;
    let controls = Controls::read(&headers, &gateway.config.gateway)?;
    pending.record.event_id.clone_from(&controls.event_id);
    pending.record.collect_log = controls.collect_log;
    pending.record.collect_log_payload = controls.collect_log_payload;
    pending.record.gateway = shape.gateway().to_string();
    credentials::authenticate(&mut headers, gateway.config.gateway.auth_token.as_ref())?;

    let body = read_body(body, &headers, gateway.config.server.max_request_body).await?;
    // The OpenAI and Anthropic drop-ins need the model; a passthrough body may be anything (multipart...).
    let strict = !matches!(shape, Shape::Passthrough { .. });
    let peek = match BodyPeek::parse(&body) {
        Ok(peek) => peek,
        Err(e) if strict => return Err(e),
        Err(_) => None,
    };
    if let Some(text) = &controls.custom_cost {
        pending.custom_cost =
            Some(CustomCost::parse(text).map_err(|e| GatewayError::InvalidHeader(format!("cf-aig-custom-cost: {e}")))?);
    }
    if let Some(text) = &controls.metadata {
        pending.metadata = Metadata::parse(text, gateway.config.gateway.metadata_max_entries)
            .map_err(|e| GatewayError::InvalidMetadata(format!("cf-aig-metadata: {e}")))?;
        if let Ok(serde_json::Value::Object(map)) = serde_json::to_value(&pending.metadata) {
            pending.record.metadata = map;
        }
    }

    let mut target = route::resolve(shape.clone(), parts.uri.query(), peek.as_ref(), &gateway.providers, 0)?;
    describe(&mut pending.record, &target);
    pending.prompt_estimate = estimate_prompt_tokens(&body);
    admit(gateway, pending, &mut target, &shape, parts.uri.query(), peek.as_ref())?;

    let mut body = match (&target.rewrite_model, peek.as_ref().and_then(|p| p.model)) {
        (Some(model), Some(raw)) => splice_model(&body, raw.get(), model),
        _ => body.clone(),
    };
    let mut filter = None;
    let accounting = gateway.config.gateway.accounting;
    if accounting
        && target.stream
        && target.provider.name() != "openrouter"
        && matches!(target.api, Api::OpenAiChat | Api::OpenAiCompletions)
    {
        // Without include_usage an OpenAI-style stream carries no usage at all: ask for it, and take the extra
        // chunk out again so the client sees the stream it asked for.
        if let Some(IncludeUsage::Injected(rewritten)) = ensure_include_usage(&body) {
            body = Bytes::from(rewritten);
            filter = Some(InjectedUsageFilter::new());
        }
    }
    credentials::inject_stored_key(&mut headers, &target.provider.config, target.auth);
    prepare_upstream(&mut headers);

    let url = target.provider.upstream_url(&target.upstream_path, controls.zdr)?;
    let uri: http::Uri =
        url.parse().map_err(|_| GatewayError::UnknownRoute(format!("cannot build an upstream URL from {url:?}")))?;
    let provider = target.provider.name().to_string();
    pending.record.overhead = Some(pending.started.elapsed());
    let (response, attempts) = gateway.client.send(&provider, &parts.method, &uri, &headers, &body, &controls).await?;

    let (mut head, incoming) = response.into_parts();
    strip_hop_by_hop(&mut head.headers);
    let Some(mut pending) = pending_slot.take() else {
        return Err(GatewayError::UnknownRoute("internal: request already finished".into()));
    };
    let log_id = pending.record.log_id.clone();
    if let Ok(value) = HeaderValue::from_str(&log_id) {
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
    pending.record.status = head.status.as_u16();
    pending.record.ttfb = Some(pending.started.elapsed());
    pending.record.attempts = attempts;
    let event_stream = head
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let usage = match (api_format(target.api), head.status.is_success() && accounting) {
        (Some(format), true) => Some(UsageTap::new(format, event_stream)),
        _ => None,
    };
    let filter = filter.filter(|_| event_stream && head.status.is_success());
    if filter.is_some() {
        head.headers.remove(header::CONTENT_LENGTH);
    }
    if gateway.config.logging.payloads && pending.record.collect_log_payload && pending.record.collect_log {
        pending.record.request_body = Some(body.slice(..body.len().min(crate::record::PAYLOAD_CAP)));
        pending.record.response_body = Some(Vec::new());
    }
    let tap = Box::new(AccountingTap::new(pending, usage));
    let mut body = TappedBody::new(incoming, tap, gateway.drain_policy());
    if let Some(filter) = filter {
        body = body.with_filter(filter);
    }
    Ok(Response::from_parts(head, ProxyBody::Tapped(body)))
}

/// Copies where the request is going onto its record.
fn describe(record: &mut crate::record::UsageRecord, target: &Target) {
    record.gateway.clone_from(&target.gateway);
    record.provider = target.provider.name().to_string();
    record.model.clone_from(&target.model);
    record.api = target.api;
    record.stream = target.stream;
    record.step = target.step;
}

/// Step 5: rate limits, then the spend admission (see the module steps). On success the admission is held by
/// `pending`, so every later exit settles or releases it.
fn admit(
    gateway: &Gateway,
    pending: &mut Pending,
    target: &mut Target,
    shape: &Shape,
    query: Option<&str>,
    peek: Option<&BodyPeek<'_>>,
) -> Result<(), GatewayError> {
    let max_output = peek.and_then(BodyPeek::max_output);
    let worst_case = |provider: &str, model: &str| match &pending.custom_cost {
        Some(custom) => {
            let max_output = max_output?;
            let usage = Usage { input: pending.prompt_estimate, output: max_output, ..Usage::default() };
            Some(custom.price(&usage).cost_nanos)
        }
        None => gateway.catalog.worst_case_cost(provider, model, pending.prompt_estimate, max_output, pending.date),
    };
    let model = target.model.clone().unwrap_or_default();
    let dims = RequestDims::new(target.provider.name(), &model)
        .with_gateway(Some(&target.gateway))
        .with_metadata(&pending.metadata);
    gateway.rates.check(&dims).map_err(|limited| GatewayError::RateLimited {
        rule: limited.rule_id.to_string(),
        bucket: limited.bucket_key.clone(),
        retry_after_secs: limited.retry_after_secs,
    })?;
    let admission = match target.route.as_deref().and_then(|name| gateway.providers.route(name)) {
        Some(route) => {
            let (index, admission) = gateway
                .spend
                .admit_route(route, &dims, |_, candidate| worst_case(&candidate.provider, &candidate.model))
                .map_err(blocked)?;
            if index != 0 {
                *target = route::resolve(shape.clone(), query, peek, &gateway.providers, index)?;
                describe(&mut pending.record, target);
            }
            admission
        }
        None => gateway.spend.admit(&dims, worst_case(target.provider.name(), &model)).map_err(blocked)?,
    };
    pending.record.rule_decisions =
        serde_json::to_value(admission.rule_decisions().collect::<Vec<_>>()).unwrap_or(serde_json::Value::Null);
    if admission.would_block() {
        tracing::warn!(decisions = %pending.record.rule_decisions, "a monitor rule would have blocked this request");
    }
    pending.admission = Some(admission);
    Ok(())
}

#[expect(clippy::needless_pass_by_value, reason = "used as map_err(blocked)")]
fn blocked(b: Blocked) -> GatewayError {
    GatewayError::SpendLimitExceeded {
        rule: b.rule_id.to_string(),
        bucket: b.bucket_key.to_string(),
        budget_usd: nanos_to_usd(b.budget_nanos),
        spent_usd: nanos_to_usd(b.spent_nanos),
        resets_at: b.resets_at.to_string(),
        retry_after_secs: b.retry_after_secs,
    }
}

/// The accounting format of a billable API; `None` for what is forwarded but not billed.
fn api_format(api: Api) -> Option<ApiFormat> {
    match api {
        Api::OpenAiChat => Some(ApiFormat::OpenAiChat),
        Api::OpenAiCompletions => Some(ApiFormat::OpenAiCompletions),
        Api::OpenAiEmbeddings => Some(ApiFormat::OpenAiEmbeddings),
        Api::OpenAiResponses => Some(ApiFormat::OpenAiResponses),
        Api::AnthropicMessages => Some(ApiFormat::AnthropicMessages),
        Api::GeminiGenerate | Api::GeminiStream => Some(ApiFormat::GeminiGenerate),
        Api::OpenAiModels | Api::Unmetered | Api::Other => None,
    }
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

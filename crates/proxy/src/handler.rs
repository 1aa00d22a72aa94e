//! The request path, phase by phase. [`handle`] runs them in a line; each phase is one function below.
//!
//! 1. Classify the path (no body needed); this fixes the client's error format.
//! 2. Authenticate (401) before anything else is read or spent on the request, then read the `cf-aig-*`
//!    controls (400 `invalid_header` on a bad one).
//! 3. Read the body, bounded by `server.max_request_body` (413) and `server.body_timeout` (408), and peek at
//!    `model`, `stream`, `max_tokens`; parse `cf-aig-custom-cost` and `cf-aig-metadata` (400).
//! 4. Resolve the target provider, upstream path and bare model.
//!    Then the response cache ([`crate::cache`]), when it applies: a hit, or a request attached to an
//!    identical one in flight, is answered from the cache after the rate limits alone (no spend admission: it
//!    costs nothing); a miss goes on and is stored by the tap in 8. Identity and access policies belong before
//!    this point, so a caller who may not use a model never gets it from the cache.
//! 5. Limits: the rate limits, then spend admission, which reserves the worst-case cost in every applicable
//!    bucket (for `dynamic/<route>` models, the first candidate whose budgets admit it); 429 otherwise. A
//!    model with no price under an applicable rule is refused here (403) unless `pricing.unpriced = "allow"`.
//! 6. Rewrite the body where needed (bare `model`; `stream_options.include_usage` for OpenAI-style streams),
//!    inject the stored key, strip hop-by-hop and gateway headers.
//! 7. Send upstream with retries and the first-byte deadline (502 / 504). From here on the provider may have
//!    the request: if the client leaves or the deadline passes, the answer is still awaited in the background
//!    and charged (see [`Sending`]).
//! 8. Answer with the upstream head and a tapped body that streams frame by frame; the accounting tap prices
//!    the response at its end.
//!
//! Phases 2–6 borrow the [`RequestCtx`]; from 7 on it is owned by whatever finishes the request. However the
//! request ends, dropping the context records it exactly once (see [`crate::ctx`]).
//!
//! The phases are plain functions in a line rather than tower layers: the path is fixed, every phase needs
//! the same context and may end the request with an error in the client's format, and what each phase
//! leaves for the next is a typed value instead of a request extension. Optional phases (a response cache
//! between routing and the limits, identity and access policies before it, credit holds beside the
//! reservations) fit as one more function in this line.

use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use http::{HeaderValue, Request, Response, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tollgate_accounting::{
    ApiFormat, CustomCost, IncludeUsage, InjectedUsageFilter, UsageTap, canonical_model, ensure_include_usage,
    estimate_prompt,
};
use tollgate_cache::{Cell, Verdict};
use tollgate_config::UnpricedPolicy;
use tollgate_limits::{Blocked, Decision, Metadata, RateLimited, RequestDims, nanos_to_usd};
use tracing::Instrument;

use crate::Gateway;
use crate::body::{ProxyBody, TappedBody, drain};
use crate::cache::{self, CacheWrite, Follow, FollowBody, Hit, Plan, Replay};
use crate::credentials::{self, Credential};
use crate::ctx::{CLIENT_CLOSED, Charge, RequestCtx};
use crate::error::{ErrorCode, ErrorFormat, GatewayError};
use crate::finalize::AccountingTap;
use crate::headers::{Controls, prepare_upstream, strip_hop_by_hop};
use crate::route::{self, Api, BodyPeek, Shape, Target};
use crate::upstream::{InFlight, SendError, UpstreamCall};

/// Handles one request; never fails (errors become responses in the client's format, and records).
pub async fn handle(gateway: Arc<Gateway>, request: Request<Incoming>) -> Response<ProxyBody> {
    let log_id = new_log_id();
    let span =
        tracing::info_span!("request", log_id = %log_id, method = %request.method(), path = %request.uri().path());
    async move {
        let mut ctx = RequestCtx::new(gateway.clone(), log_id.clone(), request.uri().path());
        let shape = route::classify(request.method(), request.uri().path());
        let format = shape.as_ref().map_or_else(
            |_| route::error_format_for_path(request.uri().path(), &gateway.providers),
            |s| s.error_format(&gateway.providers),
        );
        let prepared = match shape {
            Ok(shape) => prepare(&gateway, request, shape, &mut ctx).await,
            Err(error) => Err(error),
        };
        let result = match prepared {
            Ok(Step::Forward(prepared)) => forward(ctx, prepared).await,
            Ok(Step::Hit(hit)) => Ok(Replay::respond(ctx, hit)),
            Ok(Step::Follow(follow, routed)) => follow_or_forward(ctx, follow, routed).await,
            Err(error) => Err(refuse(ctx, error)),
        };
        result.unwrap_or_else(|error| error_response(&error, format, &log_id))
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

/// Ends a request that never reached a provider: logs the refusal, records it (dropping the context).
fn refuse(mut ctx: RequestCtx, error: GatewayError) -> GatewayError {
    tracing::warn!(code = error.code(), status = error.status().as_u16(), %error, "request refused");
    ctx.fail(error.status().as_u16(), error.kind(), Charge::Nothing);
    error
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

/// What phases 2–6 leave for the upstream.
struct Prepared {
    call: UpstreamCall,
    target: Target,
    /// Takes the usage chunk the gateway asked for out of the client's stream.
    filter: Option<InjectedUsageFilter>,
    /// A cache miss that leads: publishes and stores the response.
    cache: Option<CacheWrite>,
}

/// How the request goes on after the cache phase.
#[expect(
    clippy::large_enum_variant,
    reason = "lives on the stack for one call; boxing the common variant would allocate on every request"
)]
enum Step {
    Forward(Prepared),
    Hit(Hit),
    /// Attached to an identical request in flight; `Routed` is what the request needs to go upstream itself
    /// if that one fails before its head.
    Follow(Follow, Box<Routed>),
}

/// The request as phases 2–4 left it.
struct Routed {
    method: http::Method,
    headers: http::HeaderMap,
    query: Option<String>,
    controls: Controls,
    shape: Shape,
    target: Target,
    body: Bytes,
}

/// Phases 2–6, with the cache phase between routing and the limits (see [`crate::cache`]).
async fn prepare(
    gateway: &Arc<Gateway>,
    request: Request<Incoming>,
    shape: Shape,
    ctx: &mut RequestCtx,
) -> Result<Step, GatewayError> {
    let (parts, body) = request.into_parts();
    let mut headers = parts.headers;
    ctx.record.gateway = shape.gateway().to_string();
    let (credential, query) = authenticate(gateway, &mut headers, parts.uri.query(), ctx)?;
    let controls = Controls::read(&headers, &gateway.config.gateway)?;
    ctx.record.event_id.clone_from(&controls.event_id);
    ctx.record.collect_log = controls.collect_log;
    ctx.record.collect_log_payload = controls.collect_log_payload;

    let body = read_body(body, &headers, &gateway.config.server).await?;
    // The OpenAI and Anthropic drop-ins need the model; a passthrough body may be anything (multipart...).
    let strict = !matches!(shape, Shape::Passthrough { .. });
    let peek = match BodyPeek::parse(&body) {
        Ok(peek) => peek,
        Err(e) if strict => return Err(e),
        Err(_) => None,
    };
    read_request_controls(gateway, ctx, &controls, credential)?;

    let mut target = resolve(gateway, ctx, &shape, query.as_deref(), peek.as_ref(), 0)?;
    ctx.prompt = estimate_prompt(&body);
    ctx.max_output = peek.as_ref().and_then(BodyPeek::max_output);
    let plan = cache::lookup(gateway, ctx, &parts.method, &headers, &controls.cache, &target, &body).await?;
    let write = match plan {
        Plan::Off => None,
        Plan::Miss(write) => Some(write),
        Plan::Hit(hit) => {
            check_rates(gateway, ctx, &target).await?;
            return Ok(Step::Hit(hit));
        }
        Plan::Follow(follow) => {
            check_rates(gateway, ctx, &target).await?;
            let routed = Routed { method: parts.method, headers, query, controls, shape, target, body };
            return Ok(Step::Follow(follow, Box::new(routed)));
        }
    };
    check_rates(gateway, ctx, &target).await?;
    admit(gateway, ctx, &mut target, &shape, query.as_deref(), peek.as_ref())?;
    let model_span = peek.as_ref().and_then(|p| p.model).map(|raw| byte_span(&body, raw.get()));
    let routed = Routed { method: parts.method, headers, query, controls, shape, target, body };
    upstream_call(gateway, ctx, routed, model_span, write).map(Step::Forward)
}

/// A follower whose leader failed before its head goes upstream itself: phases 5 and 6 as [`prepare`] runs
/// them (the body is parsed again: this path is rare), then 7 and 8. Its rate limits were counted when it
/// attached, so only the spend admission runs again.
async fn follow_or_forward(
    ctx: RequestCtx,
    follow: Follow,
    routed: Box<Routed>,
) -> Result<Response<ProxyBody>, GatewayError> {
    let mut ctx = match FollowBody::respond(ctx, follow).await {
        Ok(response) => return Ok(response),
        Err(ctx) => ctx,
    };
    let gateway = ctx.gateway.clone();
    let mut routed = *routed;
    let prepared = (|| {
        let body = routed.body.clone();
        let peek = BodyPeek::parse(&body).ok().flatten();
        let (shape, query) = (routed.shape.clone(), routed.query.clone());
        admit(&gateway, &mut ctx, &mut routed.target, &shape, query.as_deref(), peek.as_ref())?;
        let model_span = peek.as_ref().and_then(|p| p.model).map(|raw| byte_span(&body, raw.get()));
        upstream_call(&gateway, &mut ctx, routed, model_span, None)
    })();
    match prepared {
        Ok(prepared) => forward(ctx, prepared).await,
        Err(error) => Err(refuse(ctx, error)),
    }
}

/// Phase 6: the body rewritten, the stored key injected, the upstream URL.
fn upstream_call(
    gateway: &Gateway,
    ctx: &mut RequestCtx,
    routed: Routed,
    model_span: Option<Range<usize>>,
    cache: Option<CacheWrite>,
) -> Result<Prepared, GatewayError> {
    let Routed { method, mut headers, controls, target, body, .. } = routed;
    let (body, filter) = rewrite_body(gateway, &target, body, model_span, cache.is_some());
    credentials::inject_stored_key(&mut headers, &target.provider.config, target.auth);
    prepare_upstream(&mut headers);
    let url = target.provider.upstream_url(&target.upstream_path, controls.zdr)?;
    let uri: http::Uri =
        url.parse().map_err(|_| GatewayError::Internal(format!("cannot build an upstream URL from {url:?}")))?;
    if gateway.config.logging.payloads && ctx.record.collect_log_payload && ctx.record.collect_log {
        ctx.record.request_body = Some(body.slice(..body.len().min(crate::record::PAYLOAD_CAP)));
        ctx.record.response_body = Some(Vec::new());
    }
    ctx.record.overhead = Some(ctx.started.elapsed());
    let call = UpstreamCall { provider: target.provider.name().to_string(), method, uri, headers, body, controls };
    Ok(Prepared { call, target, filter, cache })
}

/// Phase 2: the gateway credential (401 otherwise). Returns how the request authenticated and the query
/// string with any parameter that carried the gateway token taken out.
fn authenticate(
    gateway: &Gateway,
    headers: &mut http::HeaderMap,
    query: Option<&str>,
    ctx: &mut RequestCtx,
) -> Result<(Credential, Option<String>), GatewayError> {
    let token = gateway.config.gateway.auth_token.as_ref();
    let credential = credentials::authenticate(headers, token)?;
    ctx.record.authenticated = true;
    let query = match token {
        Some(token) => credentials::scrub_token(headers, query, token),
        None => query.map(str::to_string),
    };
    Ok((credential, query))
}

/// Phase 3, after the body: `cf-aig-custom-cost` (only from the credentials `gateway.custom_cost_from`
/// names, and at most `gateway.max_custom_cost_usd`) and `cf-aig-metadata`.
fn read_request_controls(
    gateway: &Gateway,
    ctx: &mut RequestCtx,
    controls: &Controls,
    credential: Credential,
) -> Result<(), GatewayError> {
    let config = &gateway.config.gateway;
    if let Some(text) = &controls.custom_cost {
        if !credential.kind().is_some_and(|kind| config.custom_cost_allowed(kind)) {
            return Err(GatewayError::InvalidHeader(
                "cf-aig-custom-cost is not accepted from this request's credential: gateway.custom_cost_from \
                 lists the credentials that may set a request's price (an open gateway vouches for nobody)"
                    .into(),
            ));
        }
        let custom = CustomCost::parse(text, config.max_custom_cost_nanos)
            .map_err(|e| GatewayError::InvalidHeader(e.to_string()))?;
        ctx.custom_cost = Some(custom);
    }
    if let Some(text) = &controls.metadata {
        ctx.metadata = Metadata::parse(text, config.metadata_max_entries)
            .map_err(|e| GatewayError::InvalidMetadata(format!("cf-aig-metadata: {e}")))?;
        if let Ok(serde_json::Value::Object(map)) = serde_json::to_value(&ctx.metadata) {
            ctx.record.metadata = map;
        }
    }
    Ok(())
}

/// Phase 4: the target for route candidate `candidate`, copied onto the record. A model name longer than
/// `gateway.max_model_chars` is refused: it would become a bucket key, a log field and a rollup key.
fn resolve(
    gateway: &Gateway,
    ctx: &mut RequestCtx,
    shape: &Shape,
    query: Option<&str>,
    peek: Option<&BodyPeek<'_>>,
    candidate: usize,
) -> Result<Target, GatewayError> {
    let target = route::resolve(shape.clone(), query, peek, &gateway.providers, candidate)?;
    let max = gateway.config.gateway.max_model_chars;
    if let Some(model) = &target.model
        && model.chars().count() > max
    {
        return Err(GatewayError::ModelTooLong { chars: model.chars().count(), max });
    }
    let record = &mut ctx.record;
    record.gateway.clone_from(&target.gateway);
    record.provider = target.provider.name().to_string();
    record.model.clone_from(&target.model);
    record.api = target.api;
    record.stream = target.stream;
    record.step = target.step;
    Ok(target)
}

/// Phase 5, after [`check_rates`]: the spend admission (see the module steps). On success the admission is
/// held by the context, so every later exit settles or refunds it.
fn admit(
    gateway: &Gateway,
    ctx: &mut RequestCtx,
    target: &mut Target,
    shape: &Shape,
    query: Option<&str>,
    peek: Option<&BodyPeek<'_>>,
) -> Result<(), GatewayError> {
    let model = target.model.clone().unwrap_or_default();
    let dims = RequestDims::new(target.provider.name(), &ctx.model_dimension)
        .with_gateway(Some(&target.gateway))
        .with_metadata(&ctx.metadata);
    let worst_case = |provider: &str, model: &str| worst_case_cost(gateway, ctx, provider, model);
    let route = target.route.as_deref().and_then(|name| gateway.providers.route(name));
    let (admission, index, worst) = if let Some(route) = route {
        let (index, admission) = gateway
            .spend
            .admit_route(route, &dims, |_, candidate| worst_case(&candidate.provider, &candidate.model))
            .map_err(blocked)?;
        let worst = route.candidates().get(index).and_then(|c| worst_case(&c.provider, &c.model));
        (admission, index, worst)
    } else {
        let worst = worst_case(target.provider.name(), &model);
        (gateway.spend.admit(&dims, worst).map_err(blocked)?, 0, worst)
    };
    ctx.worst_case = worst;
    if index != 0 {
        *target = resolve(gateway, ctx, shape, query, peek, index)?;
        ctx.model_dimension = canonical_model(target.model.as_deref().unwrap_or(""));
    }
    ctx.record.rule_decisions =
        serde_json::to_value(admission.rule_decisions().collect::<Vec<_>>()).unwrap_or(serde_json::Value::Null);
    for decision in admission.rule_decisions() {
        match decision.decision {
            Decision::Allowed => ctx.record.decisions.allowed += 1,
            Decision::WouldBlock => ctx.record.decisions.would_block += 1,
            Decision::Blocked => {}
        }
    }
    if admission.would_block() {
        tracing::warn!(decisions = %ctx.record.rule_decisions, "a monitor rule would have blocked this request");
    }
    let under_a_rule = admission.rule_decisions().next().is_some();
    ctx.admission = Some(admission);
    check_priced(gateway, ctx, target, under_a_rule)
}

/// Phase 5, first step (and the only one for a cached answer): the rate limits, which count every request:
/// this replica's own, then the shared ones in one Redis round trip (or, with Redis away, this replica's share
/// of them).
async fn check_rates(gateway: &Gateway, ctx: &mut RequestCtx, target: &Target) -> Result<(), GatewayError> {
    ctx.model_dimension = canonical_model(target.model.as_deref().unwrap_or(""));
    let dims = RequestDims::new(target.provider.name(), &ctx.model_dimension)
        .with_gateway(Some(&target.gateway))
        .with_metadata(&ctx.metadata);
    gateway.rates.check(&dims).map_err(rate_limited)?;
    let Some(shared) = gateway.shared_rates.as_deref() else { return Ok(()) };
    let mut buckets = Vec::new();
    gateway.rates.shared_buckets(&dims, &mut buckets);
    let cells: Vec<Cell<'_>> =
        buckets.iter().map(|b| Cell { key: &b.redis_key, period_us: b.period_us, burst: b.burst }).collect();
    match shared.check(&cells).await {
        Ok(Verdict::Admitted) => Ok(()),
        Ok(Verdict::Refused { index, retry_after_us }) => {
            Err(rate_limited(gateway.rates.shared_refusal(&buckets[index], retry_after_us)))
        }
        Err(_) => gateway.rates.check_shared_locally(&dims).map_err(rate_limited),
    }
}

fn rate_limited(limited: RateLimited) -> GatewayError {
    GatewayError::RateLimited {
        rule: limited.rule_id.to_string(),
        bucket: limited.bucket_key,
        retry_after_secs: limited.retry_after_secs,
    }
}

/// Phase 5, last step: a request the gateway cannot price (a model missing from the catalog, an endpoint
/// whose usage it cannot read) is refused under a spend rule when `pricing.unpriced = "block"`: such a
/// request would otherwise spend without ever being charged.
fn check_priced(
    gateway: &Gateway,
    ctx: &mut RequestCtx,
    target: &Target,
    under_a_rule: bool,
) -> Result<(), GatewayError> {
    if ctx.custom_cost.is_some() {
        return Ok(());
    }
    let priced = match (target.api, api_format(target.api)) {
        (Api::Unmetered, _) => false,
        (_, None) => return Ok(()),
        (_, Some(_)) => gateway.catalog.knows(target.provider.name(), target.model.as_deref().unwrap_or(""), ctx.date),
    };
    if priced {
        return Ok(());
    }
    if under_a_rule && gateway.config.pricing.unpriced == UnpricedPolicy::Block {
        return Err(GatewayError::UnpricedModel {
            provider: target.provider.name().to_string(),
            model: target.model.clone().unwrap_or_default(),
        });
    }
    if target.api == Api::Unmetered {
        ctx.record.cost_source = tollgate_accounting::CostSource::Unpriced;
    }
    Ok(())
}

/// The most a request to `provider`/`model` can cost: a custom cost's own bound, else the catalog's
/// (prompt estimate plus the output the client allows, or the model's output cap).
fn worst_case_cost(gateway: &Gateway, ctx: &RequestCtx, provider: &str, model: &str) -> Option<u64> {
    match &ctx.custom_cost {
        Some(custom) => Some(custom.worst_case_nanos(&ctx.prompt, ctx.max_output)),
        None => gateway.catalog.worst_case_cost_for(provider, model, &ctx.prompt, ctx.max_output, ctx.date),
    }
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

/// Phase 6, the body: the bare model name where the client's had a prefix, and for OpenAI-style streams
/// without `include_usage` (when accounting or the cache needs it), a request for it (with the filter that takes the extra chunk out again, so the
/// client sees the stream it asked for). Each rewrite consumes the body it rewrites, so at most two copies of a
/// large body are alive at once.
fn rewrite_body(
    gateway: &Gateway,
    target: &Target,
    body: Bytes,
    model_span: Option<Range<usize>>,
    caching: bool,
) -> (Bytes, Option<InjectedUsageFilter>) {
    let mut body = match (&target.rewrite_model, model_span) {
        (Some(model), Some(span)) => {
            let spliced = splice_model(&body, span, model);
            drop(body);
            spliced
        }
        _ => body,
    };
    let mut filter = None;
    if cache::injects_usage(gateway, target, caching)
        && let Some(IncludeUsage::Injected(rewritten)) = ensure_include_usage(&body)
    {
        body = Bytes::from(rewritten);
        filter = Some(InjectedUsageFilter::new());
    }
    (body, filter)
}

/// Phases 7 and 8: send, then answer with the tapped upstream body.
async fn forward(ctx: RequestCtx, prepared: Prepared) -> Result<Response<ProxyBody>, GatewayError> {
    let Prepared { call, target, filter, cache } = prepared;
    let gateway = ctx.gateway.clone();
    let (mut ctx, result) = Sending::new(ctx, Box::pin(gateway.client.send(call))).await;
    match result {
        Ok((response, attempts)) => Ok(respond(ctx, response, attempts, &target, filter, cache)),
        Err(SendError::Failed { error, reached_provider }) => {
            tracing::warn!(code = error.code(), %error, "upstream request failed");
            let charge = if reached_provider { Charge::WorstCase } else { Charge::Nothing };
            ctx.fail(error.status().as_u16(), error.kind(), charge);
            Err(error)
        }
        Err(SendError::TimedOut { error, in_flight }) => {
            tracing::warn!(code = error.code(), %error, "no upstream response in time");
            ctx.fail(error.status().as_u16(), error.kind(), Charge::Nothing);
            if let Some(in_flight) = in_flight {
                // The provider has the request and will bill it: read its answer in the background.
                let answer = awaiting(in_flight, ctx.record.attempts.max(1));
                ctx.charge = Charge::WorstCase;
                spawn_completion(ctx, answer);
            }
            Err(error)
        }
    }
}

/// Phase 8: the upstream head with the gateway's headers, and the body tapped for accounting.
fn respond(
    mut ctx: RequestCtx,
    response: Response<Incoming>,
    attempts: u32,
    target: &Target,
    filter: Option<InjectedUsageFilter>,
    cache: Option<CacheWrite>,
) -> Response<ProxyBody> {
    let (mut head, incoming) = response.into_parts();
    strip_hop_by_hop(&mut head.headers);
    if let Some(cache) = cache.as_ref() {
        cache.head(head.status.as_u16(), head.headers.get(header::CONTENT_TYPE));
        head.headers.insert(cache::STATUS_HEADER, HeaderValue::from_static("MISS"));
    }
    if let Ok(value) = HeaderValue::from_str(&ctx.record.log_id) {
        head.headers.insert("cf-aig-log-id", value);
    }
    if let Some(step) = target.step {
        head.headers.insert("cf-aig-step", HeaderValue::from(step));
        if let Ok(value) = HeaderValue::from_str(target.provider.name()) {
            head.headers.insert("cf-aig-provider", value);
        }
        if let Some(Ok(value)) = target.model.as_deref().map(HeaderValue::from_str) {
            head.headers.insert("cf-aig-model", value);
        }
    }
    ctx.record.status = head.status.as_u16();
    ctx.upstream_status = ctx.record.status;
    ctx.record.error = None;
    ctx.record.error_code = None;
    ctx.record.ttfb = Some(ctx.started.elapsed());
    ctx.record.attempts = attempts;
    let usage = usage_tap(&ctx, &head);
    let filter = filter.filter(|_| is_event_stream(&head) && head.status.is_success());
    if filter.is_some() {
        head.headers.remove(header::CONTENT_LENGTH);
    }
    let drain_policy = ctx.gateway.drain_policy();
    let tap = AccountingTap::new(ctx, usage).with_cache(cache);
    let mut body = TappedBody::new(incoming, Box::new(tap), drain_policy);
    if let Some(filter) = filter {
        body = body.with_filter(filter);
    }
    Response::from_parts(head, ProxyBody::Tapped(body))
}

fn is_event_stream(head: &http::response::Parts) -> bool {
    head.headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"))
}

/// The usage reader for a successful answer of a billable API, when accounting is on.
fn usage_tap(ctx: &RequestCtx, head: &http::response::Parts) -> Option<UsageTap> {
    let format = api_format(ctx.record.api)?;
    (head.status.is_success() && ctx.gateway.config.gateway.accounting)
        .then(|| UsageTap::new(format, is_event_stream(head)))
}

type SendFuture = Pin<Box<dyn Future<Output = Result<(Response<Incoming>, u32), SendError>> + Send>>;

/// The request while it is out to the provider (phase 7). Resolves to the context and the outcome. If it is
/// dropped first (hyper drops the handler future when the client goes away), the send goes on in a
/// background task, which reads the provider's answer to its end and charges it: the provider does the work
/// and bills it whether or not the client waits.
struct Sending {
    ctx: Option<RequestCtx>,
    send: SendFuture,
}

impl Sending {
    fn new(ctx: RequestCtx, send: SendFuture) -> Self {
        Self { ctx: Some(ctx), send }
    }
}

impl Future for Sending {
    type Output = (RequestCtx, Result<(Response<Incoming>, u32), SendError>);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let result = ready!(this.send.as_mut().poll(cx));
        match this.ctx.take() {
            Some(ctx) => Poll::Ready((ctx, result)),
            // Polled again after it resolved: there is nothing more to give.
            None => Poll::Pending,
        }
    }
}

impl Drop for Sending {
    fn drop(&mut self) {
        let Some(mut ctx) = self.ctx.take() else { return };
        ctx.fail(CLIENT_CLOSED, ErrorCode::ClientGoneBeforeResponseHead, Charge::WorstCase);
        let send = std::mem::replace(&mut self.send, Box::pin(std::future::pending()));
        spawn_completion(ctx, send);
    }
}

/// A request still in flight past the first-byte deadline, as a send future for [`spawn_completion`].
fn awaiting(in_flight: InFlight, attempts: u32) -> SendFuture {
    Box::pin(async move {
        in_flight.await.map(|response| (response, attempts)).map_err(|e| SendError::Failed {
            error: GatewayError::Internal(e.to_string()),
            reached_provider: !e.is_connect(),
        })
    })
}

/// Finishes, in the background, a request whose client is no longer waiting: awaits the provider's answer
/// (within `gateway.disconnect_drain_timeout`), then reads its body to the end for the usage. A request that
/// gets no answer in that time is charged its worst case; one that never reached the provider, nothing.
fn spawn_completion(ctx: RequestCtx, send: SendFuture) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
    let policy = ctx.gateway.drain_policy();
    let tasks = policy.tasks.clone();
    tasks.spawn_on(
        async move {
            let mut ctx = ctx;
            let deadline = tokio::time::Instant::now() + policy.timeout;
            let mut send = send;
            loop {
                match tokio::time::timeout_at(deadline, send).await {
                    Ok(Ok((response, attempts))) => {
                        let (head, incoming) = response.into_parts();
                        ctx.record.ttfb = Some(ctx.started.elapsed());
                        ctx.record.attempts = attempts;
                        ctx.upstream_status = head.status.as_u16();
                        let usage = usage_tap(&ctx, &head).filter(|_| head.status.is_success());
                        match usage {
                            Some(usage) => {
                                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                                let tap = Box::new(AccountingTap::new(ctx, Some(usage)));
                                drain(incoming, tap, left, policy.max_bytes).await;
                            }
                            // An error answer or an unbilled API: nothing to charge.
                            None => ctx.charge = Charge::Nothing,
                        }
                        return;
                    }
                    Ok(Err(SendError::TimedOut { in_flight: Some(in_flight), .. })) => {
                        send = awaiting(in_flight, ctx.record.attempts.max(1));
                    }
                    Ok(Err(SendError::TimedOut { in_flight: None, .. })) => {
                        ctx.charge = Charge::Nothing;
                        return;
                    }
                    Ok(Err(SendError::Failed { reached_provider, .. })) => {
                        ctx.charge = if reached_provider { Charge::WorstCase } else { Charge::Nothing };
                        return;
                    }
                    // No answer within the bound: the worst case stays charged.
                    Err(_) => return,
                }
            }
        },
        &runtime,
    );
}

/// The accounting format of a billable API; `None` for what is forwarded but not billed, or not readable.
pub(crate) fn api_format(api: Api) -> Option<ApiFormat> {
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

/// Phase 3: reads the request body, refusing it as soon as it passes `server.max_request_body` bytes or
/// when it has not fully arrived within `server.body_timeout`.
async fn read_body(
    body: Incoming,
    headers: &http::HeaderMap,
    server: &tollgate_config::Server,
) -> Result<Bytes, GatewayError> {
    let limit = server.max_request_body;
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(GatewayError::RequestTooLarge { limit });
    }
    let read = async move {
        let mut body = body;
        let mut buf = BytesMut::with_capacity(declared.unwrap_or(0).min(limit) as usize);
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| GatewayError::ClientBody(e.to_string()))?;
            if let Ok(data) = frame.into_data() {
                if (buf.len() + data.len()) as u64 > limit {
                    return Err(GatewayError::RequestTooLarge { limit });
                }
                buf.extend_from_slice(&data);
            }
        }
        Ok(buf.freeze())
    };
    tokio::time::timeout(server.body_timeout, read)
        .await
        .map_err(|_| GatewayError::BodyTimeout { seconds: server.body_timeout.as_secs() })?
}

/// Where `part` (a slice of `body`, as serde_json's `RawValue` borrowed it) lies in `body`.
fn byte_span(body: &[u8], part: &str) -> Range<usize> {
    let start = part.as_ptr() as usize - body.as_ptr() as usize;
    start..start + part.len()
}

/// Replaces the JSON text of `model` (at `span` in `body`) with `new`, leaving every other byte as the client
/// sent it.
fn splice_model(body: &Bytes, span: Range<usize>, new: &str) -> Bytes {
    let (start, end) = (span.start, span.end);
    let quoted = serde_json::Value::from(new).to_string();
    let mut out = BytesMut::with_capacity(body.len() + quoted.len());
    out.extend_from_slice(&body[..start]);
    out.extend_from_slice(quoted.as_bytes());
    out.extend_from_slice(&body[end..]);
    out.freeze()
}

#[cfg(test)]
mod tests;

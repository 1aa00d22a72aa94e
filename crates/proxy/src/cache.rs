//! The cache phase (docs/cache.md), between routing and the limits: derives the request's key, then serves a
//! stored entry, attaches the request to an identical one in flight, or marks it to be stored.
//!
//! 1. Only an eligible request (a `POST` to a billable generation or embedding API) when the cache applies:
//!    `cache.enabled`, or the request opts in with `cf-aig-cache-ttl` / `cf-aig-cache-key`;
//!    `cf-aig-skip-cache: true` turns it off for the request. Otherwise the phase does nothing else.
//! 2. The key: the tenant [`Scope`], the provider, the upstream path, the model and the canonical body (or the
//!    client's `cf-aig-cache-key`).
//! 3. A stored entry is a hit ([`Plan::Hit`]); a request in flight for the key takes this one as a follower
//!    ([`Plan::Follow`]); otherwise the request goes upstream and leads ([`Plan::Miss`]): its [`CacheWrite`]
//!    rides on the accounting tap, publishes every frame to the followers and stores the entry when the
//!    response ended normally. A backend that cannot answer bypasses the cache.
//!
//! Hits and followers are answered by [`replay`]'s bodies, which account for them as cached (cost 0, the
//! saving recorded).

mod replay;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method};
use tollgate_accounting::{CostSource, IncludeUsage, InjectedUsageFilter, UsageTap, ensure_include_usage};
use tollgate_cache::{BodyPart, Cache, CacheKey, Entry, Follower, Head, Join, Leader, Lookup, Scope, canonical_body};
use tollgate_config::{AuthStyle, MIN_CACHE_TTL};

use crate::Gateway;
use crate::body::StreamEnd;
use crate::ctx::{Charge, RequestCtx};
use crate::error::GatewayError;
use crate::headers::CacheControls;
use crate::route::{Api, Target};

pub(crate) use replay::{FollowBody, Replay};

/// The response header that says whether the cache answered.
pub(crate) const STATUS_HEADER: &str = "cf-aig-cache-status";

/// What the cache phase decided.
pub(crate) enum Plan {
    /// The cache does not apply (not eligible, not asked for, skipped, or bypassed).
    Off,
    Hit(Hit),
    Follow(Follow),
    Miss(CacheWrite),
}

/// A stored entry to answer with.
pub(crate) struct Hit {
    pub entry: Arc<Entry>,
    pub filter: Option<InjectedUsageFilter>,
}

/// A request attached to an identical one in flight.
pub(crate) struct Follow {
    pub follower: Follower,
    pub filter: Option<InjectedUsageFilter>,
}

/// A miss that leads: carried by the accounting tap to publish and store the response.
pub(crate) struct CacheWrite {
    cache: Arc<Cache>,
    key: CacheKey,
    ttl: Duration,
    leader: Leader,
}

impl CacheWrite {
    /// The response head arrived (only a `200` is ever stored or shared).
    pub(crate) fn head(&self, status: u16, content_type: Option<&HeaderValue>) {
        let content_type = content_type.and_then(|v| v.to_str().ok()).map(str::to_string);
        self.leader.head(Head { status, content_type });
    }

    pub(crate) fn frame(&self, frame: &Bytes) {
        self.leader.frame(frame);
    }

    /// The response ended. Followers get a normal end when the whole body was read (by the client, or by the
    /// drain after the client left) with a `200`, its terminal event seen (when the accounting tap read it) and
    /// no error inside; it is stored only when, besides, the client was there to the end. Storing happens at
    /// once when the backend can (memory), else in the background; the flight stays joinable until the entry
    /// is in the backend, so no request in between goes upstream.
    pub(crate) fn finish(self, end: &StreamEnd, status: u16, terminal: Option<bool>, upstream_error: bool) {
        let CacheWrite { cache, key, ttl, leader } = self;
        let whole = matches!(end, StreamEnd::Complete | StreamEnd::ClientGone { drained: true });
        if !(whole && status == 200 && terminal.unwrap_or(true) && !upstream_error) {
            return;
        }
        let entry = leader.complete();
        let Some(entry) = entry.filter(|_| *end == StreamEnd::Complete) else { return };
        // The memory backend stores at once: no task (and no wake-up of another thread) for it.
        let Err(entry) = cache.put_now(&key, Arc::new(entry), ttl) else { return };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        runtime.spawn(async move {
            cache.put(&key, entry, ttl).await;
            drop(leader);
        });
    }
}

/// Step 1: whether the API is one the cache serves.
fn eligible(method: &Method, api: Api) -> bool {
    method == Method::POST
        && matches!(
            api,
            Api::OpenAiChat
                | Api::OpenAiCompletions
                | Api::OpenAiResponses
                | Api::OpenAiEmbeddings
                | Api::AnthropicMessages
                | Api::GeminiGenerate
                | Api::GeminiStream
        )
}

/// The phase (see the module steps). `headers` are the request's after authentication (what is left of the
/// caller's credentials); `body` is the client's.
pub(crate) async fn lookup(
    gateway: &Gateway,
    ctx: &mut RequestCtx,
    method: &Method,
    headers: &HeaderMap,
    controls: &CacheControls,
    target: &Target,
    body: &Bytes,
) -> Result<Plan, GatewayError> {
    let Some(cache) = gateway.cache.as_ref() else { return Ok(Plan::Off) };
    let config = &gateway.config.cache;
    let asked = config.enabled || controls.ttl_secs.is_some() || controls.key.is_some();
    if !asked || !eligible(method, target.api) {
        return Ok(Plan::Off);
    }
    let ttl = match controls.ttl_secs {
        Some(secs) if (MIN_CACHE_TTL.as_secs()..=config.max_ttl.as_secs()).contains(&secs) => Duration::from_secs(secs),
        Some(_) => {
            return Err(GatewayError::InvalidHeader(format!(
                "cf-aig-cache-ttl must be between 60 and {} seconds (cache.max_ttl)",
                config.max_ttl.as_secs()
            )));
        }
        None => config.default_ttl,
    };
    if controls.skip {
        cache.stats().skips.fetch_add(1, Ordering::Relaxed);
        return Ok(Plan::Off);
    }
    let key = key_for(ctx, headers, controls, target, body);
    ctx.record.cache_key = Some(key);
    match cache.get(&key).await {
        Lookup::Bypass => {
            cache.stats().bypasses.fetch_add(1, Ordering::Relaxed);
            ctx.record.cache_key = None;
            Ok(Plan::Off)
        }
        Lookup::Hit(entry) => {
            cache.stats().hits.fetch_add(1, Ordering::Relaxed);
            Ok(Plan::Hit(Hit { entry, filter: usage_filter(gateway, target, body) }))
        }
        Lookup::Miss => Ok(match cache.flights().join(&key) {
            Join::Follower(follower) => Plan::Follow(Follow { follower, filter: usage_filter(gateway, target, body) }),
            Join::Leader(leader) => miss(cache, key, ttl, leader),
            Join::Alone => {
                let leader = cache.flights().solo(&key);
                miss(cache, key, ttl, leader)
            }
        }),
    }
}

fn miss(cache: &Arc<Cache>, key: CacheKey, ttl: Duration, leader: Leader) -> Plan {
    cache.stats().misses.fetch_add(1, Ordering::Relaxed);
    Plan::Miss(CacheWrite { cache: cache.clone(), key, ttl, leader })
}

/// The provider auth headers ([`AuthStyle::ALL`]) as header names made once, not parsed at every lookup.
const AUTH_HEADERS: [http::HeaderName; AuthStyle::ALL.len()] = [
    http::HeaderName::from_static(AuthStyle::Bearer.header_name()),
    http::HeaderName::from_static(AuthStyle::XApiKey.header_name()),
    http::HeaderName::from_static(AuthStyle::XGoogApiKey.header_name()),
    http::HeaderName::from_static(AuthStyle::ApiKey.header_name()),
];

/// Step 2. The tenant scope of a gateway-token (or open-gateway) request: the gateway name and the provider
/// key in use, which is the caller's own when an auth header is left after authentication, else the stored key.
fn key_for(ctx: &RequestCtx, headers: &HeaderMap, controls: &CacheControls, target: &Target, body: &Bytes) -> CacheKey {
    let mut own = Vec::new();
    for name in &AUTH_HEADERS {
        if let Some(value) = headers.get(name) {
            own.extend_from_slice(name.as_str().as_bytes());
            own.push(b':');
            own.extend_from_slice(value.as_bytes());
            own.push(b'\n');
        }
    }
    let name = ctx.record.gateway.as_str();
    let scope = if own.is_empty() {
        let stored = target.provider.config.api_key.as_ref().map_or("", |key| key.expose());
        Scope::gateway_stored(name, stored.as_bytes())
    } else {
        Scope::gateway(name, &own)
    };
    let model = target.model.as_deref().unwrap_or("");
    let provider = target.provider.name();
    if let Some(custom) = &controls.key {
        return CacheKey::derive(&scope, provider, &target.upstream_path, model, BodyPart::Custom(custom));
    }
    let canonical = canonical_body(body);
    CacheKey::derive(&scope, provider, &target.upstream_path, model, BodyPart::Canonical(&canonical))
}

/// For a streamed OpenAI-style answer to a client that did not ask for `include_usage`: the filter that takes
/// the usage chunk out of the stored frames (entries always hold it; see `handler::rewrite_body`).
fn usage_filter(gateway: &Gateway, target: &Target, body: &[u8]) -> Option<InjectedUsageFilter> {
    injects_usage(gateway, target, true)
        .then(|| ensure_include_usage(body))
        .flatten()
        .and_then(|include| matches!(include, IncludeUsage::Injected(_)).then(InjectedUsageFilter::new))
}

/// Whether the gateway asks an OpenAI-style stream for its usage chunk on the client's behalf: for accounting,
/// and for the cache (so an entry can serve both kinds of client).
pub(crate) fn injects_usage(gateway: &Gateway, target: &Target, caching: bool) -> bool {
    (gateway.config.gateway.accounting || caching)
        && target.stream
        && target.provider.name() != "openrouter"
        && matches!(target.api, Api::OpenAiChat | Api::OpenAiCompletions)
}

/// Marks the context as answered by the cache: status 200, cost 0, nothing to settle.
fn mark_cached(ctx: &mut RequestCtx, status: u16) {
    ctx.record.cached = true;
    ctx.record.status = status;
    ctx.upstream_status = status;
    ctx.record.error = None;
    ctx.record.cost_nanos = 0;
    ctx.record.cost_source = CostSource::Cache;
    ctx.record.ttfb = Some(ctx.started.elapsed());
    ctx.record.overhead = ctx.record.ttfb;
    ctx.charge = Charge::Nothing;
}

/// Reads the usage of a cached answer from its frames, as the accounting tap would have.
pub(crate) struct HitUsage(Option<UsageTap>);

impl HitUsage {
    pub(crate) fn new(ctx: &RequestCtx, content_type: Option<&str>) -> Self {
        let streaming = content_type.is_some_and(|ct| ct.starts_with("text/event-stream"));
        Self(crate::handler::api_format(ctx.record.api).map(|format| UsageTap::new(format, streaming)))
    }

    pub(crate) fn observe(&mut self, frame: &[u8]) {
        if let Some(tap) = self.0.as_mut() {
            tap.observe(frame);
        }
    }

    /// Puts the stored usage on the record and what it would have cost now as the saving; the cost stays 0.
    pub(crate) fn finish(self, ctx: &mut RequestCtx) {
        let Some(tap) = self.0 else { return };
        let observation = tap.finish();
        let (usage, priced) = crate::finalize::price(ctx, &observation, true);
        ctx.record.usage = usage;
        ctx.record.saved_nanos = priced.cost_nanos;
        if let Some(cache) = ctx.gateway.cache.as_ref() {
            cache.stats().add_saved(priced.cost_nanos);
        }
    }
}

/// The response head of a cached answer.
fn head(status: u16, content_type: Option<&str>, log_id: &str) -> http::response::Builder {
    let mut builder = http::Response::builder().status(status).header(STATUS_HEADER, "HIT");
    if let Some(Ok(ct)) = content_type.map(HeaderValue::from_str) {
        builder = builder.header(http::header::CONTENT_TYPE, ct);
    }
    if let Ok(id) = HeaderValue::from_str(log_id) {
        builder = builder.header("cf-aig-log-id", id);
    }
    builder
}

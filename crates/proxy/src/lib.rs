//! The Tollgate request path: a hyper server (HTTP/1.1 and h2c on one port) that routes each request to its
//! provider, enforces spend and rate limits, streams the response back frame by frame, and accounts for every
//! response through a tap that sees the same bytes the client gets.
//!
//! A request follows `handler::handle`; its steps are numbered there.

mod body;
mod cache;
mod credentials;
mod ctx;
mod error;
mod finalize;
mod handler;
mod headers;
pub mod metrics;
mod path;
mod providers;
mod record;
mod route;
mod server;
mod upstream;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio_util::task::TaskTracker;
use tollgate_accounting::{PriceCatalog, UnpricedSet};
use tollgate_config::Config;
use tollgate_limits::{Clock, RateLimiter, SpendEngine, SystemClock};

pub use body::{DrainPolicy, ProxyBody, StreamEnd, Tap, TappedBody};
pub use error::{ErrorCode, ErrorFormat, GatewayError};
pub use headers::Controls;
pub use providers::{ProviderEntry, Providers};
pub use record::{DecisionCounts, LogSink, RecordSink, UsageRecord};
pub use route::{Api, DEFAULT_GATEWAY, Endpoint, Shape, Target, classify, error_format_for_path};
pub use server::{accept, serve};
pub use upstream::UpstreamClient;

/// Everything the request path needs; shared by every connection through an `Arc`.
pub struct Gateway {
    pub config: Arc<Config>,
    pub providers: Providers,
    pub client: UpstreamClient,
    pub catalog: Arc<PriceCatalog>,
    pub spend: SpendEngine,
    pub rates: RateLimiter,
    pub sink: Arc<dyn RecordSink>,
    /// Background work that shutdown waits for (drains of abandoned upstream bodies).
    pub tasks: TaskTracker,
    pub counters: Counters,
    /// The response cache; present whenever a request could use it (`cache.enabled`, or per-request opt-in).
    pub cache: Option<Arc<tollgate_cache::Cache>>,
    /// The Redis connection `[redis]` configures, shared by the cache backend and shared rate limits.
    pub redis: Option<Arc<tollgate_cache::RedisLink>>,
    /// Shared rate limits, counted in Redis; present when a rate limit says `shared = true`.
    pub shared_rates: Option<Arc<tollgate_cache::SharedRates>>,
    unpriced: Mutex<UnpricedSet>,
}

/// The cache `[cache]` describes: the memory backend, or Redis through `redis` (validation made sure
/// `[redis]` is there; when its URL could not be used, there is no cache).
fn build_cache(
    config: &tollgate_config::Cache,
    redis: Option<&Arc<tollgate_cache::RedisLink>>,
) -> Option<Arc<tollgate_cache::Cache>> {
    let backend: Arc<dyn tollgate_cache::Backend> = match config.backend {
        tollgate_config::CacheBackend::Memory => {
            Arc::new(tollgate_cache::MemoryBackend::new(config.max_bytes, config.max_entry_bytes))
        }
        tollgate_config::CacheBackend::Redis => Arc::new(tollgate_cache::RedisBackend::new(redis?.clone())),
    };
    let max_entry = usize::try_from(config.max_entry_bytes).unwrap_or(usize::MAX);
    Some(Arc::new(tollgate_cache::Cache::new(backend, config.max_followers, max_entry)))
}

/// Counters the admin server reports.
#[derive(Debug, Default)]
pub struct Counters {
    /// Responses whose model has no price.
    pub unpriced: AtomicU64,
}

impl Gateway {
    /// A gateway on the system clock.
    pub fn new(config: Arc<Config>, catalog: Arc<PriceCatalog>, sink: Arc<dyn RecordSink>) -> Self {
        Self::with_clock(config, catalog, sink, Arc::new(SystemClock))
    }

    pub fn with_clock(
        config: Arc<Config>,
        catalog: Arc<PriceCatalog>,
        sink: Arc<dyn RecordSink>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let redis = config.redis.as_ref().and_then(|redis| {
            tollgate_cache::RedisLink::new(redis.url.expose(), &redis.key_prefix, redis.timeout)
                .map_err(|error| tracing::error!(%error, "redis.url cannot be used: Redis is off"))
                .ok()
        });
        let cache = build_cache(&config.cache, redis.as_ref());
        let shared_rates =
            redis.as_ref().filter(|_| config.rate_rules.iter().any(tollgate_limits::RateRule::shared)).map(|link| {
                let replica = format!("{}-{}", std::process::id(), uuid::Uuid::now_v7().simple());
                Arc::new(tollgate_cache::SharedRates::new(Arc::clone(link), replica))
            });
        Self {
            cache,
            redis,
            shared_rates,
            providers: Providers::from_config(&config),
            spend: SpendEngine::new(config.spend_rules.clone(), clock.clone()),
            rates: RateLimiter::new(config.rate_rules.clone(), clock),
            config,
            client: UpstreamClient::new(),
            catalog,
            sink,
            tasks: TaskTracker::new(),
            counters: Counters::default(),
            unpriced: Mutex::new(UnpricedSet::default()),
        }
    }

    fn drain_policy(&self) -> DrainPolicy {
        DrainPolicy {
            timeout: self.config.gateway.disconnect_drain_timeout,
            max_bytes: self.config.gateway.disconnect_drain_max_bytes,
            tasks: self.tasks.clone(),
        }
    }

    /// Counts a response of a model without a price, and logs the first one of each model.
    fn note_unpriced(&self, provider: &str, model: &str) {
        self.counters.unpriced.fetch_add(1, Ordering::Relaxed);
        let first = self.unpriced.lock().is_ok_and(|mut set| set.first_report(provider, model));
        if first {
            tracing::warn!(provider, model, "no price for this model: its requests are recorded as unpriced");
        }
    }
}

//! The Tollgate request path: a hyper server (HTTP/1.1 and h2c on one port) that routes each request to its
//! provider, enforces spend and rate limits, streams the response back frame by frame, and accounts for every
//! response through a tap that sees the same bytes the client gets.
//!
//! A request follows `handler::handle`; its steps are numbered there.

mod body;
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
    unpriced: Mutex<UnpricedSet>,
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
        Self {
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

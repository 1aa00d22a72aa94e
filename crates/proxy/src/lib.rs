//! The Tollgate request path: a hyper server (HTTP/1.1 and h2c on one port) that routes each request to its
//! provider, rewrites credentials, streams the response back frame by frame, and shows every byte to a tap.
//!
//! A request follows `handler::handle`: classify the path → read the (bounded) body → resolve the target →
//! credentials → upstream attempts → tapped response. The tap is where accounting plugs in.

mod body;
mod credentials;
mod error;
mod handler;
mod headers;
mod providers;
mod route;
mod server;
mod tap;
mod upstream;

use std::sync::Arc;

use tokio_util::task::TaskTracker;
use tollgate_config::Config;

pub use body::{DrainPolicy, ProxyBody, StreamEnd, Tap, TappedBody};
pub use error::{ErrorFormat, GatewayError};
pub use headers::Controls;
pub use providers::{ProviderEntry, Providers};
pub use route::{Api, DEFAULT_GATEWAY, Shape, Target, classify};
pub use server::serve;
pub use tap::{LogTap, RequestRecord, TapFactory};
pub use upstream::UpstreamClient;

/// Everything the request path needs; shared by every connection through an `Arc`.
pub struct Gateway {
    pub config: Arc<Config>,
    pub providers: Providers,
    pub client: UpstreamClient,
    pub taps: Arc<dyn TapFactory>,
    /// Background work that shutdown waits for (drains of abandoned upstream bodies).
    pub tasks: TaskTracker,
}

impl Gateway {
    /// A gateway with the default tap, which logs one line per finished request.
    pub fn new(config: Arc<Config>) -> Self {
        Self::with_taps(config, Arc::new(tap::LogTaps))
    }

    pub fn with_taps(config: Arc<Config>, taps: Arc<dyn TapFactory>) -> Self {
        Self {
            providers: Providers::from_config(&config),
            config,
            client: UpstreamClient::new(),
            taps,
            tasks: TaskTracker::new(),
        }
    }

    fn drain_policy(&self) -> DrainPolicy {
        DrainPolicy {
            timeout: self.config.gateway.disconnect_drain_timeout,
            max_bytes: self.config.gateway.disconnect_drain_max_bytes,
            tasks: self.tasks.clone(),
        }
    }
}

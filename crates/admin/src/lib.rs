//! The admin server: a separate axum listener on `admin.listen` for operators, dashboards and Prometheus
//! (CONTRACT §5). Every route needs `Authorization: Bearer <admin.token>` except `/status` and `/metrics`
//! when `admin.public_metrics` is set.

mod auth;
mod error;
mod limits;
mod logs;
mod openapi;
mod params;
mod prometheus;
mod recompute;
mod rollup_keys;
mod rule_sync;
mod spend;
mod stats;
mod status;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tollgate_config::Config;
use tollgate_proxy::Gateway;
use tollgate_proxy::metrics::Metrics;

pub use error::AdminError;
pub use rollup_keys::run_rollup_key_sync;
pub use rule_sync::{POLL_INTERVAL, load_rules, run_rule_sync};
pub use status::DatabaseStatus;

/// What the admin handlers read. Cheap to clone.
#[derive(Clone)]
pub struct AdminState {
    pub config: Arc<Config>,
    pub gateway: Arc<Gateway>,
    pub metrics: Arc<Metrics>,
    pub started: Instant,
    /// The database: health for `/status` and `/metrics`, and what every read and rule endpoint queries.
    /// `None` runs without one: those endpoints answer 503.
    pub store: Option<tollgate_store::Store>,
}

/// Builds the router. Layer order: the auth middleware wraps every route; it lets the public allow-list
/// through on its own.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/status", get(status::status))
        .route("/metrics", get(prometheus::metrics))
        .route("/config", get(status::config))
        .route("/api/stats", get(stats::stats))
        .route("/spend", get(spend::spend))
        .route("/api/logs", get(logs::list))
        .route("/api/logs/{id}", get(logs::one))
        .route("/api/spend-limits", get(limits::list).post(limits::create))
        .route("/api/spend-limits/{id}", get(limits::one).put(limits::replace).delete(limits::delete))
        .route("/api/spend-limits/{id}/usage", get(limits::usage))
        .route("/admin/recompute", post(recompute::recompute))
        .route("/openapi.json", get(openapi::document))
        .fallback(error::not_found)
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::require_token))
        .with_state(state)
}

/// Serves the admin API until `shutdown` is cancelled.
pub async fn serve(listener: TcpListener, state: AdminState, shutdown: CancellationToken) -> std::io::Result<()> {
    let local: Option<SocketAddr> = listener.local_addr().ok();
    tracing::info!(listen = ?local, "tollgate admin listening");
    axum::serve(listener, router(state)).with_graceful_shutdown(async move { shutdown.cancelled().await }).await
}

//! The admin server: a separate axum listener on `admin.listen` for operators, dashboards and Prometheus.
//! Every route needs `Authorization: Bearer <admin.token>` except `/status` and `/metrics` when
//! `admin.public_metrics` is set. Without a token (allowed on loopback only) it answers only requests
//! addressed to a loopback name and not sent cross-site by a browser; see [`router_with`] for the whole stack.

mod auth;
mod body_deadline;
mod cache;
mod content_type;
mod error;
mod ingest;
mod limits;
mod logs;
mod loopback;
mod openapi;
mod params;
mod prometheus;
mod recompute;
mod rules;
mod server;
mod spend;
mod stats;
mod status;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::{delete, get, post};
use tollgate_config::Config;
use tollgate_proxy::Gateway;
use tollgate_proxy::metrics::Metrics;

pub use body_deadline::MAX_BODY_BYTES;
pub use error::AdminError;
pub use rules::load_rules;
pub use server::{ServeOptions, serve, serve_with};
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
    /// The provider-ingest handle (on the same store): `/api/ingest/run`, `/api/reconciliation`, `last_ingest`,
    /// the ingest metrics. `None` without a store.
    pub ingest: Option<tollgate_ingest::Ingest>,
}

/// Builds the router with the default [`ServeOptions`].
pub fn router(state: AdminState) -> Router {
    router_with(state, &ServeOptions::default())
}

/// Builds the router. The middleware, outermost first:
///
/// 1. Only without `admin.token`: `loopback::loopback_only` refuses (403) a `Host` that is not a loopback
///    name, a non-loopback `Origin` and `Sec-Fetch-Site: cross-site` (DNS rebinding, cross-site requests).
/// 2. `auth::require_token`: with `admin.token`, every path but the public allow-list needs the bearer token
///    (401); without one, passes.
/// 3. `content_type::require_json_body`: a mutation with a body that is not `application/json` is 415.
/// 4. `body_deadline::read_body_by_deadline`: the body arrives whole within `options.body_timeout` (408),
///    at most [`MAX_BODY_BYTES`]; handlers get it from memory.
///
/// None of them inserts or reads request extensions.
pub fn router_with(state: AdminState, options: &ServeOptions) -> Router {
    let router = Router::new()
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
        .route("/providers/{name}/raw", get(ingest::raw))
        .route("/api/reconciliation", get(ingest::reconciliation))
        .route("/api/ingest/run", post(ingest::run))
        .route("/api/cache", delete(cache::clear))
        .route("/api/cache/{key}", delete(cache::delete))
        .route("/openapi.json", get(openapi::document))
        .fallback(error::not_found)
        .layer(from_fn_with_state(options.body_timeout, body_deadline::read_body_by_deadline))
        .layer(from_fn(content_type::require_json_body))
        .layer(from_fn_with_state(state.clone(), auth::require_token));
    let router = if state.config.admin.token.is_none() {
        router.layer(from_fn_with_state(state.clone(), loopback::loopback_only))
    } else {
        router
    };
    router.with_state(state)
}

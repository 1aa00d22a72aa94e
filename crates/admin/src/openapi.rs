//! `GET /openapi.json`: the OpenAPI 3 description of the admin API, generated from the handlers.

use axum::Json;
use serde::Serialize;
use utoipa::OpenApi;

use crate::{limits, logs, prometheus, recompute, spend, stats, status};

#[derive(OpenApi)]
#[openapi(
    info(title = "Tollgate admin API", description = "Status, spend, logs, limits and metrics of a Tollgate gateway."),
    paths(
        status::status,
        status::config,
        prometheus::metrics,
        stats::stats,
        spend::spend,
        logs::list,
        logs::one,
        limits::list,
        limits::one,
        limits::create,
        limits::replace,
        limits::delete,
        limits::usage,
        recompute::recompute,
        document
    ),
    components(schemas(
        ErrorBody,
        ErrorDetail,
        limits::BucketUsageView,
        limits::UsageView,
        limits::SpendLimitView,
        limits::SpendLimitsView,
        limits::SpendLimitBody,
        logs::LogView,
        logs::LogsPage,
        recompute::RecomputeView,
        spend::SpendRowView,
        spend::SpendView,
        stats::StatsView,
        status::DatabaseStatus,
        status::StatusView
    )),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
pub struct AdminApi;

/// Every error: `{"error":{"code","message"}}` (`field` names the bad parameter on 400).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// `unauthorized`, `not_found`, `invalid_request`, `conflict`, `unavailable`, `internal`.
    pub code: String,
    pub message: String,
    #[schema(nullable = false)]
    pub field: Option<String>,
}

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[utoipa::path(get, path = "/openapi.json", responses((status = 200, description = "this document", body = Object)))]
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(AdminApi::openapi())
}

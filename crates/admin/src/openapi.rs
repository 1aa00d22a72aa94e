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
    modifiers(&BearerAuth, &GuardResponses),
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
    /// `unauthorized`, `forbidden`, `unsupported_media_type`, `request_timeout`, `not_found`, `invalid_request`,
    /// `conflict`, `unavailable`, `internal`.
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

/// The refusals of the middleware in front of every handler, described once as shared responses and referenced
/// from each operation: 403 (without `admin.token`, a request that is not addressed to a loopback name or that
/// comes from another site) on all, 415 (a body that is not JSON) on the mutations.
struct GuardResponses;

impl utoipa::Modify for GuardResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
        let shared = |description: &str| {
            let content = ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build();
            RefOr::T(ResponseBuilder::new().description(description).content("application/json", content).build())
        };
        let components = openapi.components.get_or_insert_with(Default::default);
        components.responses.insert(
            "Forbidden".into(),
            shared(
                "refused: without admin.token, the Host is not a loopback name or the request came from another site",
            ),
        );
        components
            .responses
            .insert("UnsupportedMediaType".into(), shared("the request body is not Content-Type: application/json"));
        for item in openapi.paths.paths.values_mut() {
            for (operation, mutation) in [
                (&mut item.get, false),
                (&mut item.head, false),
                (&mut item.options, false),
                (&mut item.post, true),
                (&mut item.put, true),
                (&mut item.patch, true),
                (&mut item.delete, true),
            ] {
                let Some(operation) = operation else { continue };
                let responses = &mut operation.responses.responses;
                responses.entry("403".into()).or_insert_with(|| RefOr::Ref(Ref::from_response_name("Forbidden")));
                if mutation {
                    responses
                        .entry("415".into())
                        .or_insert_with(|| RefOr::Ref(Ref::from_response_name("UnsupportedMediaType")));
                }
            }
        }
    }
}

#[utoipa::path(get, path = "/openapi.json", responses((status = 200, description = "this document", body = Object)))]
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(AdminApi::openapi())
}

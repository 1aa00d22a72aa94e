//! `GET /openapi.json`: the OpenAPI 3 description of the admin API, generated from the handlers.

use axum::Json;
use utoipa::OpenApi;

use crate::error::{self, ErrorBody, ErrorDetail, Unavailable};
use crate::{cache, ingest, limits, logs, prometheus, recompute, spend, stats, status};

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
        ingest::raw,
        ingest::reconciliation,
        ingest::run,
        cache::clear,
        cache::delete,
        document
    ),
    components(schemas(
        ErrorBody,
        ErrorDetail,
        ingest::RawPageView,
        ingest::RawPagesView,
        ingest::ReconciliationRowView,
        ingest::ReconciliationView,
        ingest::RunBody,
        ingest::RunView,
        ingest::RunsView,
        cache::CacheClearedView,
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
    ), responses(Unavailable)),
    modifiers(&BearerAuth, &GuardResponses),
    security(("bearer" = []))
)]
pub struct AdminApi;

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
/// from each operation: 401 (no or wrong token) and 403 (without `admin.token`, a request that is not addressed to
/// a loopback name or that comes from another site) on all, 415 (a body that is not JSON) and 408 (a body that did
/// not arrive in time) on the mutations.
struct GuardResponses;

impl GuardResponses {
    const ALL: [(&str, &str, &str); 2] = [
        ("401", "Unauthorized", "no or wrong token"),
        (
            "403",
            "Forbidden",
            "refused: without admin.token, the Host is not a loopback name or the request came from another site",
        ),
    ];
    const MUTATIONS: [(&str, &str, &str); 2] = [
        ("408", "RequestTimeout", "the request body did not arrive in time"),
        ("415", "UnsupportedMediaType", "the request body is not Content-Type: application/json"),
    ];
}

impl utoipa::Modify for GuardResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{Ref, RefOr};
        let components = openapi.components.get_or_insert_with(Default::default);
        for (_, name, description) in Self::ALL.iter().chain(&Self::MUTATIONS) {
            components.responses.insert((*name).into(), error::error_response(description));
        }
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
                let shared = if mutation { &Self::MUTATIONS[..] } else { &[] };
                for (status, name, _) in Self::ALL.iter().chain(shared) {
                    let responses = &mut operation.responses.responses;
                    responses.entry((*status).into()).or_insert_with(|| RefOr::Ref(Ref::from_response_name(*name)));
                }
            }
        }
    }
}

#[utoipa::path(get, path = "/openapi.json", responses((status = 200, description = "this document", body = Object)))]
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(AdminApi::openapi())
}

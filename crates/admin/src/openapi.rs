//! `GET /openapi.json`: the OpenAPI 3 description of the admin API, generated from the handlers.

use axum::Json;
use utoipa::OpenApi;

use crate::{limits, prometheus, status};

#[derive(OpenApi)]
#[openapi(
    info(title = "Tollgate admin API", description = "Status, spend, logs, limits and metrics of a Tollgate gateway."),
    paths(status::status, status::config, prometheus::metrics, limits::list, limits::one, limits::usage, document),
    components(schemas(limits::BucketUsageView, status::DatabaseStatus)),
    modifiers(&BearerAuth),
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

#[utoipa::path(get, path = "/openapi.json", responses((status = 200, description = "this document", body = Object)))]
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(AdminApi::openapi())
}

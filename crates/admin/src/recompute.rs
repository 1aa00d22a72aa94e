//! `POST /admin/recompute`: rebuilds the spend rollups from the request log, in one transaction.

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use crate::{AdminError, AdminState, params};

/// What the rebuild did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RecomputeView {
    /// Request log rows rolled up.
    pub rows: u64,
    /// Rollup rows written (hourly and metadata).
    pub rollup_rows: u64,
}

/// Rebuilds `spend_rollup_hourly` and `spend_rollup_metadata_hourly` from the retained log rows, keeping their
/// stored costs (a price fix is applied by rewriting those first). Spend-limit buckets are not touched.
#[utoipa::path(post, path = "/admin/recompute",
    responses((status = 200, description = "rebuilt", body = RecomputeView),
        (status = 401, description = "no or wrong token", body = crate::openapi::ErrorBody),
        (status = 503, description = "no database", body = crate::openapi::ErrorBody)))]
pub async fn recompute(State(state): State<AdminState>) -> Result<Json<RecomputeView>, AdminError> {
    let store = params::store(&state)?;
    let report = store.rebuild_rollups().await?;
    tracing::info!(rows = report.log_rows, rollup_rows = report.rollup_rows, "spend rollups rebuilt");
    Ok(Json(RecomputeView { rows: report.log_rows, rollup_rows: report.rollup_rows }))
}

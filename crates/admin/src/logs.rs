//! `GET /api/logs` (filtered, newest first, cursor pages) and `GET /api/logs/{id}`.

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Serialize;
use tollgate_store::{Cursor, LogEntry, LogFilter};

use crate::params::{self, DateEnd};
use crate::{AdminError, AdminState};

const DEFAULT_LIMIT: u64 = 50;
const MAX_LIMIT: u64 = 1000;

/// Query parameters (for the OpenAPI document). Besides these, any `metadata.<key>=value` filters on a metadata
/// entry, the stored value compared as text (`metadata.team=1` matches `1` and `"1"`); several are ANDed.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[expect(dead_code, reason = "documents the query string; the handler parses it itself")]
pub struct LogsParams {
    provider: Option<String>,
    model: Option<String>,
    /// HTTP status sent to the client.
    #[param(minimum = 100, maximum = 599)]
    status: Option<u16>,
    success: Option<bool>,
    cached: Option<bool>,
    /// USD, inclusive.
    #[param(minimum = 0)]
    min_cost: Option<f64>,
    /// USD, inclusive.
    #[param(minimum = 0)]
    max_cost: Option<f64>,
    /// Created at or after: RFC 3339 or `YYYY-MM-DD`.
    start: Option<String>,
    /// Created before: RFC 3339, or `YYYY-MM-DD` (inclusive of that day).
    end: Option<String>,
    /// Rows per page, 1 to 1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// One log row (CONTRACT §5).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LogView {
    id: String,
    /// RFC 3339 UTC.
    created_at: String,
    gateway: Option<String>,
    provider: String,
    model: String,
    path: String,
    status: u16,
    success: bool,
    cached: bool,
    stream: bool,
    tokens_in: u64,
    tokens_out: u64,
    tokens_cached: u64,
    tokens_reasoning: u64,
    cost_usd: f64,
    /// `catalog`, `custom`, `estimated` or `unpriced`.
    cost_source: String,
    duration_ms: u64,
    ttfb_ms: Option<u64>,
    #[schema(value_type = Object)]
    metadata: serde_json::Value,
    event_id: Option<String>,
    step: u32,
    #[schema(value_type = Object)]
    rule_decisions: serde_json::Value,
    error: Option<String>,
    /// Single-row reads only, when payload logging stored it.
    #[schema(nullable = false)]
    request_body: Option<String>,
    #[schema(nullable = false)]
    response_body: Option<String>,
}

/// A page of rows.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LogsPage {
    #[schema(value_type = Vec<LogView>)]
    pub logs: Vec<LogEntry>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/logs", params(LogsParams),
    responses((status = 200, description = "a page of rows, newest first", body = LogsPage),
        (status = 400, description = "bad parameter", body = crate::openapi::ErrorBody),
        (status = 401, description = "no or wrong token", body = crate::openapi::ErrorBody),
        (status = 503, description = "no database", body = crate::openapi::ErrorBody)))]
pub async fn list(
    State(state): State<AdminState>,
    query: Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<LogsPage>, AdminError> {
    let store = params::store(&state)?;
    let pairs = params::pairs(query)?;
    let mut filter = LogFilter::default();
    let mut limit = DEFAULT_LIMIT as u32;
    let mut cursor = None;
    for (name, value) in &pairs {
        match name.as_str() {
            "provider" => filter.provider = Some(value.clone()),
            "model" => filter.model = Some(value.clone()),
            "status" => filter.status = Some(params::integer(name, value, 100, 599)?),
            "success" => filter.success = Some(params::boolean(name, value)?),
            "cached" => filter.cached = Some(params::boolean(name, value)?),
            "min_cost" => filter.min_cost_nanos = Some(params::usd(name, value)?),
            "max_cost" => filter.max_cost_nanos = Some(params::usd(name, value)?),
            "start" => filter.start = Some(params::time(name, value, DateEnd::Start)?),
            "end" => filter.end = Some(params::time(name, value, DateEnd::End)?),
            "limit" => limit = params::integer(name, value, 1, MAX_LIMIT)?,
            "cursor" => cursor = Some(Cursor::decode(value)?),
            other => match other.strip_prefix("metadata.") {
                Some(key) if !key.is_empty() => filter.metadata.push((key.to_owned(), value.clone())),
                _ => {
                    return Err(AdminError::bad(
                        other,
                        "unknown parameter; expected provider, model, status, success, cached, min_cost, max_cost, \
                         start, end, metadata.<key>, limit, cursor",
                    ));
                }
            },
        }
    }
    let (logs, next) = store.logs(&filter, cursor.as_ref(), limit).await?;
    Ok(Json(LogsPage { logs, next_cursor: next.map(|c| c.encode()) }))
}

#[utoipa::path(get, path = "/api/logs/{id}", params(("id" = String, Path, description = "log row id")),
    responses((status = 200, description = "the row, with its bodies when stored", body = LogView),
        (status = 401, description = "no or wrong token", body = crate::openapi::ErrorBody),
        (status = 404, description = "no such row", body = crate::openapi::ErrorBody),
        (status = 503, description = "no database", body = crate::openapi::ErrorBody)))]
pub async fn one(State(state): State<AdminState>, Path(id): Path<String>) -> Result<Json<LogEntry>, AdminError> {
    let store = params::store(&state)?;
    store.log(&id).await?.map(Json).ok_or_else(|| AdminError::NotFound(format!("no log row {id:?}")))
}

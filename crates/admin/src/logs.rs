//! `GET /api/logs` (filtered, newest first, cursor pages) and `GET /api/logs/{id}`.

use axum::Json;
use axum::extract::{Path, State};
use jiff::Timestamp;
use serde::Serialize;
use tollgate_store::{Cursor, LogEntry, LogFilter};

use crate::params::{self, DateEnd, FromQueryPairs, Params};
use crate::{AdminError, AdminState};

const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u64 = 1000;

/// Query parameters. Besides these, any `metadata.<key>=value` filters on a metadata entry, the stored value
/// compared as text (`metadata.team=1` matches `1` and `"1"`); several are ANDed.
#[derive(Debug, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogsParams {
    provider: Option<String>,
    model: Option<String>,
    /// HTTP status sent to the client.
    #[param(minimum = 100, maximum = 599)]
    status: Option<u16>,
    success: Option<bool>,
    cached: Option<bool>,
    /// USD, inclusive.
    #[param(minimum = 0, value_type = Option<f64>)]
    min_cost: Option<u64>,
    /// USD, inclusive.
    #[param(minimum = 0, value_type = Option<f64>)]
    max_cost: Option<u64>,
    /// Created at or after: RFC 3339 or `YYYY-MM-DD`.
    #[param(value_type = Option<String>)]
    start: Option<Timestamp>,
    /// Created before: RFC 3339, or `YYYY-MM-DD` (inclusive of that day).
    #[param(value_type = Option<String>)]
    end: Option<Timestamp>,
    /// Rows per page, 1 to 1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[param(value_type = Option<String>)]
    cursor: Option<Cursor>,
    #[param(ignore)]
    metadata: Vec<(String, String)>,
}

impl FromQueryPairs for LogsParams {
    fn from_pairs(pairs: Vec<(String, String)>) -> Result<Self, AdminError> {
        let mut params = Self::default();
        for (name, value) in pairs {
            match name.as_str() {
                "provider" => params.provider = Some(value),
                "model" => params.model = Some(value),
                "status" => params.status = Some(params::integer(&name, &value, 100, 599)?),
                "success" => params.success = Some(params::boolean(&name, &value)?),
                "cached" => params.cached = Some(params::boolean(&name, &value)?),
                "min_cost" => params.min_cost = Some(params::usd(&name, &value)?),
                "max_cost" => params.max_cost = Some(params::usd(&name, &value)?),
                "start" => params.start = Some(params::time(&name, &value, DateEnd::Start)?),
                "end" => params.end = Some(params::time(&name, &value, DateEnd::End)?),
                "limit" => params.limit = Some(params::integer(&name, &value, 1, MAX_LIMIT)?),
                "cursor" => params.cursor = Some(Cursor::decode(&value)?),
                other => match other.strip_prefix("metadata.") {
                    Some(key) if !key.is_empty() => params.metadata.push((key.to_owned(), value)),
                    _ => {
                        return Err(AdminError::bad(
                            other,
                            "unknown parameter; expected provider, model, status, success, cached, min_cost, \
                             max_cost, start, end, metadata.<key>, limit, cursor",
                        ));
                    }
                },
            }
        }
        Ok(params)
    }
}

impl LogsParams {
    fn filter(self) -> (LogFilter, Option<Cursor>, u32) {
        let filter = LogFilter {
            provider: self.provider,
            model: self.model,
            status: self.status,
            success: self.success,
            cached: self.cached,
            min_cost_nanos: self.min_cost,
            max_cost_nanos: self.max_cost,
            start: self.start,
            end: self.end,
            metadata: self.metadata,
        };
        (filter, self.cursor, self.limit.unwrap_or(DEFAULT_LIMIT))
    }
}

/// One log row (docs/admin-api.md).
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
    /// `catalog`, `custom`, `estimated`, `unpriced` or `cache`.
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
    /// The response-cache key when the cache applied (`DELETE /api/cache/{key}` takes it).
    cache_key: Option<String>,
    /// For a cached answer: what it would have cost, in USD.
    saved_usd: f64,
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
        (status = 400, description = "bad parameter", body = crate::error::ErrorBody),
        (status = 503, response = crate::error::Unavailable)))]
pub async fn list(
    State(state): State<AdminState>,
    Params(params): Params<LogsParams>,
) -> Result<Json<LogsPage>, AdminError> {
    let store = params::store(&state)?;
    let (filter, cursor, limit) = params.filter();
    let (logs, next) = store.logs(&filter, cursor.as_ref(), limit).await?;
    Ok(Json(LogsPage { logs, next_cursor: next.map(|c| c.encode()) }))
}

#[utoipa::path(get, path = "/api/logs/{id}", params(("id" = String, Path, description = "log row id")),
    responses((status = 200, description = "the row, with its bodies when stored", body = LogView),
        (status = 404, description = "no such row", body = crate::error::ErrorBody),
        (status = 503, response = crate::error::Unavailable)))]
pub async fn one(State(state): State<AdminState>, Path(id): Path<String>) -> Result<Json<LogEntry>, AdminError> {
    let store = params::store(&state)?;
    store.log(&id).await?.map(Json).ok_or_else(|| AdminError::NotFound(format!("no log row {id:?}")))
}

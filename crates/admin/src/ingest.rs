//! The provider-ingest endpoints: `GET /providers/{name}/raw` (the report pages as fetched),
//! `GET /api/reconciliation` (the gateway's cost beside each provider's, per day) and `POST /api/ingest/run`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use tollgate_ingest::{DayRow, Ingest, LastRun, PROVIDERS};
use tollgate_limits::nanos_to_usd;
use tollgate_store::RawCursor;

use crate::params::{self, FromQueryPairs, Params};
use crate::{AdminError, AdminState};

const DEFAULT_RAW_LIMIT: u32 = 20;
const MAX_RAW_LIMIT: u64 = 100;
/// Days a reconciliation answers at most (per provider).
const MAX_DAYS: i64 = 366;

fn ingest(state: &AdminState) -> Result<&Ingest, AdminError> {
    state.ingest.as_ref().ok_or_else(|| AdminError::Unavailable("no database is attached to this gateway".to_owned()))
}

fn known(name: &str) -> Result<(), AdminError> {
    if PROVIDERS.contains(&name) {
        Ok(())
    } else {
        Err(AdminError::NotFound(format!("{name:?} is not an ingested provider (openai, anthropic, google)")))
    }
}

/// `from`/`to` of the ingest endpoints.
#[derive(Debug, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RawParams {
    /// Fetched at or after: RFC 3339 or `YYYY-MM-DD` (default: the beginning).
    #[param(value_type = Option<String>)]
    from: Option<Timestamp>,
    /// Fetched before: RFC 3339 or `YYYY-MM-DD` (inclusive of that day; default: now).
    #[param(value_type = Option<String>)]
    to: Option<Timestamp>,
    /// Pages per answer, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
    /// `next_cursor` of the previous answer.
    #[param(value_type = Option<String>)]
    cursor: Option<String>,
}

impl FromQueryPairs for RawParams {
    fn from_pairs(pairs: Vec<(String, String)>) -> Result<Self, AdminError> {
        let mut params = Self::default();
        params::window_pairs(pairs, &mut params.from, &mut params.to, |name, value| {
            match name {
                "limit" => params.limit = Some(params::integer(name, &value, 1, MAX_RAW_LIMIT)?),
                "cursor" => {
                    RawCursor::decode(&value)
                        .ok_or_else(|| AdminError::bad("cursor", "not a cursor of this endpoint"))?;
                    params.cursor = Some(value);
                }
                other => return Err(AdminError::bad(other, "unknown parameter; expected from, to, limit, cursor")),
            }
            Ok(())
        })?;
        Ok(params)
    }
}

/// One raw page.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RawPageView {
    pub id: i64,
    pub provider: String,
    /// The ingest run that fetched it.
    pub run_id: String,
    pub endpoint: String,
    /// The query string (or, for BigQuery `jobs.query`, the request body) sent.
    pub query: String,
    /// The page cursor sent; null on a report's first page.
    pub cursor: Option<String>,
    pub fetched_at: String,
    /// The response body, verbatim.
    pub body: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RawPagesView {
    /// Newest first.
    pub pages: Vec<RawPageView>,
    /// Pass as `cursor` for the next (older) pages; null on the last.
    pub next_cursor: Option<String>,
}

/// The report pages the ingest fetched from a provider, newest first (kept `ingest.raw_retention`).
#[utoipa::path(get, path = "/providers/{name}/raw",
    params(("name" = String, Path, description = "openai, anthropic or google"), RawParams),
    responses((status = 200, description = "raw pages, newest first", body = RawPagesView),
        (status = 400, description = "bad parameter", body = crate::error::ErrorBody),
        (status = 404, description = "not an ingested provider", body = crate::error::ErrorBody),
        (status = 503, response = crate::error::Unavailable)))]
pub async fn raw(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    Params(params): Params<RawParams>,
) -> Result<Json<RawPagesView>, AdminError> {
    known(&name)?;
    let store = params::store(&state)?;
    let limit = params.limit.unwrap_or(DEFAULT_RAW_LIMIT);
    let (from, to) = (params.from.unwrap_or(Timestamp::MIN), params.to.unwrap_or(Timestamp::MAX));
    let cursor = params.cursor.as_deref().and_then(RawCursor::decode);
    let pages = store.raw_pages(&name, from, to, limit, cursor).await?;
    let next_cursor = (pages.len() == limit as usize)
        .then(|| {
            pages.last().map(|p| RawCursor { fetched_at_us: p.page.fetched_at.as_microsecond(), id: p.id }.encode())
        })
        .flatten();
    let pages = pages
        .into_iter()
        .map(|p| RawPageView {
            id: p.id,
            provider: p.provider,
            run_id: p.run_id,
            endpoint: p.page.endpoint,
            query: p.page.query,
            cursor: p.page.cursor,
            fetched_at: p.page.fetched_at.to_string(),
            body: p.page.body,
        })
        .collect();
    Ok(Json(RawPagesView { pages, next_cursor }))
}

#[derive(Debug, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReconciliationParams {
    /// First day: RFC 3339 or `YYYY-MM-DD` (default: 30 days ago).
    #[param(value_type = Option<String>)]
    from: Option<Timestamp>,
    /// Until: RFC 3339, or `YYYY-MM-DD` (inclusive of that day; default: now). At most 366 days after `from`.
    #[param(value_type = Option<String>)]
    to: Option<Timestamp>,
    /// Only this provider (openai, anthropic, google).
    provider: Option<String>,
}

impl FromQueryPairs for ReconciliationParams {
    fn from_pairs(pairs: Vec<(String, String)>) -> Result<Self, AdminError> {
        let mut params = Self::default();
        params::window_pairs(pairs, &mut params.from, &mut params.to, |name, value| {
            match name {
                "provider" => {
                    if !PROVIDERS.contains(&value.as_str()) {
                        return Err(AdminError::bad("provider", "must be openai, anthropic or google"));
                    }
                    params.provider = Some(value);
                }
                other => return Err(AdminError::bad(other, "unknown parameter; expected from, to, provider")),
            }
            Ok(())
        })?;
        Ok(params)
    }
}

/// One provider and billing day (UTC days for OpenAI and Anthropic, US Pacific days for Google).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReconciliationRowView {
    pub provider: String,
    /// `YYYY-MM-DD`.
    pub day: String,
    pub gateway_cost_usd: f64,
    /// Null when the provider has reported no cost for the day.
    pub provider_cost_usd: Option<f64>,
    /// `gateway − provider`; null without provider data.
    pub diff_usd: Option<f64>,
    /// `|gateway − provider| / provider`; null without provider data or when the provider billed 0.
    pub diff_ratio: Option<f64>,
    pub gateway_tokens_in: u64,
    pub gateway_tokens_out: u64,
    pub provider_tokens_in: u64,
    pub provider_tokens_out: u64,
    /// `ok`, `drift`, `missing_provider_data` or `pending` (the day ended less than `ingest.lookback` ago).
    pub status: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReconciliationView {
    pub rows: Vec<ReconciliationRowView>,
}

fn signed_usd(nanos: i64) -> f64 {
    nanos as f64 / 1e9
}

impl From<DayRow> for ReconciliationRowView {
    fn from(row: DayRow) -> Self {
        Self {
            provider: row.provider,
            day: row.day.to_string(),
            gateway_cost_usd: nanos_to_usd(row.gateway_cost_nanos),
            provider_cost_usd: row.provider_cost_nanos.map(signed_usd),
            diff_usd: row.diff_nanos.map(signed_usd),
            diff_ratio: row.diff_ratio.filter(|r| r.is_finite()),
            gateway_tokens_in: row.gateway_tokens_in,
            gateway_tokens_out: row.gateway_tokens_out,
            provider_tokens_in: row.provider_tokens_in,
            provider_tokens_out: row.provider_tokens_out,
            status: row.status.as_str().to_owned(),
        }
    }
}

/// Per configured provider and day: the gateway's cost (from the spend rollups) beside the provider's own.
#[utoipa::path(get, path = "/api/reconciliation", params(ReconciliationParams),
    responses((status = 200, description = "one row per provider and day", body = ReconciliationView),
        (status = 400, description = "bad parameter", body = crate::error::ErrorBody),
        (status = 503, response = crate::error::Unavailable)))]
pub async fn reconciliation(
    State(state): State<AdminState>,
    Params(params): Params<ReconciliationParams>,
) -> Result<Json<ReconciliationView>, AdminError> {
    let ingest = ingest(&state)?;
    let now = Timestamp::now();
    let to = params.to.unwrap_or(now);
    let from = match params.from {
        Some(from) => from,
        None => to.checked_sub(jiff::SignedDuration::from_hours(30 * 24)).unwrap_or(to),
    };
    if from >= to {
        return Err(AdminError::bad("from", "must be before to"));
    }
    if to.duration_since(from) > jiff::SignedDuration::from_hours(MAX_DAYS * 24) {
        return Err(AdminError::bad("to", format!("at most {MAX_DAYS} days after from")));
    }
    let rows = ingest.reconciliation(from, to, params.provider.as_deref(), now).await?;
    Ok(Json(ReconciliationView { rows: rows.into_iter().map(Into::into).collect() }))
}

/// `POST /api/ingest/run` body.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunBody {
    /// Only this provider; every configured one when absent.
    #[schema(max_length = 32)]
    pub provider: Option<String>,
}

/// One run's outcome (also `/status` `last_ingest.<provider>`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RunView {
    pub provider: String,
    pub at: String,
    pub ok: bool,
    pub error: Option<String>,
    pub pages: u64,
    pub rows: u64,
    /// Another replica held the provider's lease: nothing was fetched.
    pub skipped: bool,
    pub result: String,
}

impl From<LastRun> for RunView {
    fn from(run: LastRun) -> Self {
        Self {
            provider: run.provider,
            at: run.at,
            ok: run.ok,
            error: run.error,
            pages: run.pages,
            rows: run.rows,
            skipped: run.skipped,
            result: run.result,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RunsView {
    pub runs: Vec<RunView>,
}

/// Runs the ingest now (every configured provider, or one) and answers when it is done.
#[utoipa::path(post, path = "/api/ingest/run", request_body(content = RunBody, description = "optional"),
    responses((status = 200, description = "the runs", body = RunsView),
        (status = 400, description = "bad body", body = crate::error::ErrorBody),
        (status = 404, description = "the provider is not configured", body = crate::error::ErrorBody),
        (status = 503, response = crate::error::Unavailable)))]
pub async fn run(State(state): State<AdminState>, body: Bytes) -> Result<Json<RunsView>, AdminError> {
    let body: RunBody = if body.iter().all(u8::is_ascii_whitespace) {
        RunBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| AdminError::bad("body", format!("not a run request: {e}")))?
    };
    let ingest = ingest(&state)?;
    let runs = match body.provider {
        None => ingest.run_all().await,
        Some(provider) => {
            if provider.len() > 32 {
                return Err(AdminError::bad("provider", "must be openai, anthropic or google"));
            }
            let run = ingest.run(&provider).await.ok_or_else(|| {
                AdminError::NotFound(format!("{provider:?} is not configured for ingestion ([ingest.{provider}])"))
            })?;
            vec![run]
        }
    };
    Ok(Json(RunsView { runs: runs.into_iter().map(Into::into).collect() }))
}

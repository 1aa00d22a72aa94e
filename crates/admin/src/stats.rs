//! `GET /api/stats`: the cap, spend, burn and totals a dashboard headline shows, from the hourly rollups.

use axum::Json;
use axum::extract::State;
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use tollgate_limits::nanos_to_usd;

use crate::{AdminError, AdminState, params};

const DAY_SECONDS: i64 = 86_400;
/// Burn is the mean daily spend of this many full UTC days before today.
const BURN_DAYS: i64 = 7;

/// The headline of `GET /api/stats`: exactly these eight fields (docs/admin-api.md).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StatsView {
    /// `stats.cap_usd`.
    pub cap_usd: f64,
    /// Spend in `stats.window` (all time for `lifetime`).
    pub spent_usd: f64,
    /// `max(cap − spent, 0)`.
    pub remaining_usd: f64,
    /// Mean daily spend of the last 7 full UTC days.
    pub burn_per_day_usd: f64,
    pub total_requests: u64,
    pub total_tokens_in: u64,
    pub total_tokens_out: u64,
    /// No request in the window went to a provider not marked `hosted`.
    pub hosted_only_ok: bool,
}

#[utoipa::path(get, path = "/api/stats",
    responses((status = 200, description = "headline totals", body = StatsView),
        (status = 503, response = crate::error::Unavailable)))]
pub async fn stats(State(state): State<AdminState>) -> Result<Json<StatsView>, AdminError> {
    let store = params::store(&state)?;
    let config = &state.config.stats;
    let now = Timestamp::now();
    // `lifetime` is all time; any other window is the fixed UTC window containing `now` (calendar day, week from
    // Monday, month for `1d`, `7d`, `Nmo`; epoch-aligned otherwise).
    let (from, to) = match config.window.as_ref().map(|window| window.bounds(now)) {
        Some((start, end)) => (Some(start), Some(end)),
        None => (None, None),
    };
    let totals = store.stats(from, to).await?;
    let today = Timestamp::from_second(now.as_second().div_euclid(DAY_SECONDS) * DAY_SECONDS)
        .map_err(|e| AdminError::Internal(e.to_string()))?;
    let week_ago = today - SignedDuration::from_hours(24 * BURN_DAYS);
    let burn = store.stats(Some(week_ago), Some(today)).await?;
    let spent_usd = nanos_to_usd(totals.cost_nanos);
    let hosted_only_ok =
        totals.providers.iter().all(|name| state.config.providers.get(name).is_some_and(|provider| provider.hosted));
    Ok(Json(StatsView {
        cap_usd: config.cap_usd,
        spent_usd,
        remaining_usd: (config.cap_usd - spent_usd).max(0.0),
        burn_per_day_usd: nanos_to_usd(burn.cost_nanos) / BURN_DAYS as f64,
        total_requests: totals.requests,
        total_tokens_in: totals.tokens_in,
        total_tokens_out: totals.tokens_out,
        hosted_only_ok,
    }))
}

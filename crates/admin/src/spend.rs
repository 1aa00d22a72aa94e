//! `GET /spend`: spend grouped by provider, model, gateway, day, hour or one metadata key, from the rollups (or,
//! for a metadata key they do not count, from a bounded scan of the log rows).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use serde::ser::SerializeMap;
use tollgate_limits::nanos_to_usd;
use tollgate_store::GroupBy;

use crate::params::{self, DateEnd, FromQueryPairs, Params};
use crate::{AdminError, AdminState};

/// Default span when `from` is absent: the 30 days before `to`.
const DEFAULT_DAYS: i64 = 30;

/// Query parameters.
#[derive(Debug, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SpendParams {
    /// Start, inclusive: RFC 3339 or `YYYY-MM-DD` (UTC midnight). Default: 30 days before `to`.
    #[param(value_type = Option<String>)]
    from: Option<Timestamp>,
    /// End: RFC 3339 (exclusive) or `YYYY-MM-DD` (inclusive of that day). Default: now.
    #[param(value_type = Option<String>)]
    to: Option<Timestamp>,
    /// Comma-separated: `provider`, `model`, `gateway`, `day`, `hour`, `metadata.<key>` (one metadata key at most;
    /// a key no spend rule uses is answered from a bounded scan of the retained log rows, see `source`).
    #[param(value_type = Option<String>)]
    group_by: Vec<GroupBy>,
}

impl FromQueryPairs for SpendParams {
    fn from_pairs(pairs: Vec<(String, String)>) -> Result<Self, AdminError> {
        let mut params = Self::default();
        for (name, value) in &pairs {
            match name.as_str() {
                "from" => params.from = Some(params::time(name, value, DateEnd::Start)?),
                "to" => params.to = Some(params::time(name, value, DateEnd::End)?),
                "group_by" => params.group_by = GroupBy::parse_list(value)?,
                other => return Err(AdminError::bad(other, "unknown parameter; expected from, to, group_by")),
            }
        }
        Ok(params)
    }
}

/// One group.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SpendRowView {
    /// Grouping name → value (`gateway` is null for requests without one), in `group_by` order.
    #[schema(value_type = BTreeMap<String, Option<String>>)]
    pub groups: Groups,
    pub requests: u64,
    pub tokens_in: u64,
    pub tokens_out: u64,
    pub cost_usd: f64,
    /// Requests of the group answered from the response cache (counted in `requests`, at no cost).
    pub cached_requests: u64,
    /// What the cached requests would have cost at the prices of the time they were answered (not in `cost_usd`).
    pub saved_usd: f64,
}

/// A row's groups, serialised as the object `{name: value}` straight from the names (shared by every row) and the
/// row's values: a report of tens of thousands of rows builds no map per row.
#[derive(Debug)]
pub struct Groups {
    names: Arc<[String]>,
    values: Vec<Option<String>>,
}

impl Serialize for Groups {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.values.len()))?;
        for (name, value) in self.names.iter().zip(&self.values) {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

/// `GET /spend`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SpendView {
    pub rows: Vec<SpendRowView>,
    /// The span used, RFC 3339.
    pub from: String,
    pub to: String,
    pub group_by: Vec<String>,
    /// What answered: `rollup` (the spend rollups, which keep their history after retention) or `log_scan` (a
    /// metadata key the rollups do not count, summed from the retained log rows that have it).
    #[schema(value_type = String, example = "rollup")]
    pub source: &'static str,
    /// `true` when a `log_scan` met more rows than its bound and the sums cover only the oldest of them.
    pub truncated: bool,
}

#[utoipa::path(get, path = "/spend", params(SpendParams),
    responses((status = 200, description = "spend per group", body = SpendView),
        (status = 400, description = "bad parameter", body = crate::error::ErrorBody),
        (status = 503, response = crate::error::Unavailable)))]
pub async fn spend(
    State(state): State<AdminState>,
    Params(SpendParams { from, to, group_by }): Params<SpendParams>,
) -> Result<Json<SpendView>, AdminError> {
    let store = params::store(&state)?;
    let to = to.unwrap_or_else(Timestamp::now);
    let from = from.unwrap_or(to - SignedDuration::from_hours(24 * DEFAULT_DAYS));
    if from >= to {
        return Err(AdminError::bad("from", format!("must be before to ({from} is not before {to})")));
    }
    // A metadata key the rollups do not count is summed from at most `database.spend_scan_max_rows` log rows.
    let report = store.spend_report(from, to, &group_by, state.config.database.spend_scan_max_rows).await?;
    let names: Arc<[String]> = group_by.iter().map(ToString::to_string).collect();
    Ok(Json(SpendView {
        rows: report
            .rows
            .into_iter()
            .map(|row| SpendRowView {
                groups: Groups { names: Arc::clone(&names), values: row.values },
                requests: row.requests,
                tokens_in: row.tokens_in,
                tokens_out: row.tokens_out,
                cost_usd: nanos_to_usd(row.cost_nanos),
                cached_requests: row.cached_requests,
                saved_usd: nanos_to_usd(row.saved_nanos),
            })
            .collect(),
        from: from.to_string(),
        to: to.to_string(),
        group_by: names.to_vec(),
        source: report.source.as_str(),
        truncated: report.truncated,
    }))
}

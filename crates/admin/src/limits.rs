//! `/api/spend-limits`: the rules and their buckets' live usage.

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;
use serde_json::{Value, json};
use tollgate_limits::nanos_to_usd;

use crate::{AdminError, AdminState};

/// One bucket of a rule, as `GET /api/spend-limits/{id}/usage` returns it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BucketUsageView {
    pub bucket: String,
    pub spent_usd: f64,
    pub reserved_usd: f64,
    pub budget_usd: f64,
    pub remaining_usd: f64,
    pub window_start: String,
    pub window_end: String,
}

fn rule_json(rule: &tollgate_limits::SpendRule) -> Value {
    let mut value = serde_json::to_value(rule.spec()).unwrap_or(Value::Null);
    value["source"] = json!("file");
    value
}

#[utoipa::path(get, path = "/api/spend-limits", responses((status = 200, description = "every rule", body = Object)))]
pub async fn list(State(state): State<AdminState>) -> Json<Value> {
    let rules: Vec<Value> = state.gateway.spend.rules().iter().map(rule_json).collect();
    Json(json!({ "spend_limits": rules }))
}

#[utoipa::path(get, path = "/api/spend-limits/{id}", params(("id" = String, Path)),
    responses((status = 200, description = "the rule", body = Object), (status = 404, description = "no such rule")))]
pub async fn one(State(state): State<AdminState>, Path(id): Path<String>) -> Result<Json<Value>, AdminError> {
    let rules = state.gateway.spend.rules();
    let rule =
        rules.iter().find(|r| r.id() == id).ok_or_else(|| AdminError::NotFound(format!("no spend limit {id:?}")))?;
    Ok(Json(rule_json(rule)))
}

#[utoipa::path(get, path = "/api/spend-limits/{id}/usage", params(("id" = String, Path)),
    responses((status = 200, description = "usage per bucket", body = [BucketUsageView]), (status = 404, description = "no such rule")))]
pub async fn usage(State(state): State<AdminState>, Path(id): Path<String>) -> Result<Json<Value>, AdminError> {
    let buckets =
        state.gateway.spend.usage(&id).ok_or_else(|| AdminError::NotFound(format!("no spend limit {id:?}")))?;
    let views: Vec<BucketUsageView> = buckets
        .into_iter()
        .map(|b| BucketUsageView {
            bucket: b.bucket.to_string(),
            spent_usd: nanos_to_usd(b.spent_nanos),
            reserved_usd: nanos_to_usd(b.reserved_nanos),
            budget_usd: nanos_to_usd(b.budget_nanos),
            remaining_usd: nanos_to_usd(b.budget_nanos.saturating_sub(b.spent_nanos + b.reserved_nanos)),
            window_start: b.window_start.to_string(),
            window_end: b.window_end.to_string(),
        })
        .collect();
    Ok(Json(json!({ "rule": id, "buckets": views })))
}

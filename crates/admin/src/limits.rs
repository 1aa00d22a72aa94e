//! `/api/spend-limits`: the rules (file rules read-only, API rules stored in the database), their CRUD, and
//! their buckets' live usage.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use http::StatusCode;
use serde::Serialize;
use serde_json::{Value, json};
use tollgate_limits::{FieldError, SpendRuleSpec, nanos_to_usd};
use tollgate_store::SpendRuleChange;

use crate::rules::load_rules;
use crate::{AdminError, AdminState, params};

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

/// `GET /api/spend-limits/{id}/usage`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UsageView {
    pub rule: String,
    pub buckets: Vec<BucketUsageView>,
}

/// A rule as the API shows it: its spec plus where it comes from.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SpendLimitView {
    id: String,
    budget_usd: f64,
    /// `90s`, `15m`, `1h`, `1d`, `7d`, `1mo`…
    window: String,
    /// `fixed` or `rolling`.
    window_kind: String,
    timezone: String,
    #[schema(value_type = Vec<Object>)]
    dimensions: Vec<Value>,
    /// `block` or `monitor`.
    action: String,
    /// `worst_case` or `none`.
    reserve: String,
    /// `file` (read-only) or `api`.
    source: String,
}

/// `GET /api/spend-limits`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SpendLimitsView {
    #[schema(value_type = Vec<SpendLimitView>)]
    pub spend_limits: Vec<Value>,
}

/// The body of `POST`/`PUT`: a `[[spend_limits]]` entry (docs/configuration.md) as JSON.
#[derive(Debug, utoipa::ToSchema)]
#[expect(dead_code, reason = "schema of tollgate_limits::SpendRuleSpec for the OpenAPI document")]
pub struct SpendLimitBody {
    /// `[A-Za-z0-9_.:-]`, 1 to 64 bytes (on `PUT`, optional: the path's id).
    id: String,
    /// Positive.
    budget_usd: f64,
    window: String,
    #[schema(nullable = false)]
    window_kind: Option<String>,
    #[schema(nullable = false)]
    timezone: Option<String>,
    /// `{key, mode: "split"|"filter", values?}`.
    #[schema(value_type = Option<Vec<Object>>, nullable = false)]
    dimensions: Option<Vec<Value>>,
    #[schema(nullable = false)]
    action: Option<String>,
    #[schema(nullable = false)]
    reserve: Option<String>,
}

fn is_file_rule(state: &AdminState, id: &str) -> bool {
    state.config.spend_rules.iter().any(|r| r.id() == id)
}

fn rule_json(state: &AdminState, spec: &SpendRuleSpec) -> Value {
    let mut value = serde_json::to_value(spec).unwrap_or(Value::Null);
    value["source"] = json!(if is_file_rule(state, &spec.id) { "file" } else { "api" });
    value
}

fn read_only(id: &str) -> AdminError {
    AdminError::Conflict(format!("spend limit {id:?} comes from the config file and is read-only through the API"))
}

/// Reads a body as a rule spec; `path_id` (on `PUT`) fills a missing `id` and must match a present one.
fn parse_spec(body: &[u8], path_id: Option<&str>) -> Result<SpendRuleSpec, AdminError> {
    let mut value: Value =
        serde_json::from_slice(body).map_err(|e| AdminError::bad("body", format!("not JSON: {e}")))?;
    let Some(object) = value.as_object_mut() else {
        return Err(AdminError::bad("body", "must be a JSON object"));
    };
    if let Some(path_id) = path_id {
        match object.get("id") {
            None => {
                object.insert("id".into(), json!(path_id));
            }
            Some(id) if id == path_id => {}
            Some(_) => return Err(AdminError::bad("id", format!("must equal the id in the path ({path_id:?})"))),
        }
    }
    let spec: SpendRuleSpec = serde_json::from_value(value).map_err(|e| {
        let message = e.to_string();
        // serde names the field in `missing field `x`` and `unknown field `x``; type errors carry no path.
        let field = message
            .split_once("field `")
            .and_then(|(_, rest)| rest.split_once('`'))
            .map_or_else(|| "body".to_owned(), |(name, _)| name.to_owned());
        AdminError::bad(field, message)
    })?;
    spec.validate().map_err(|errors| invalid(&errors))?;
    Ok(spec)
}

fn invalid(errors: &[FieldError]) -> AdminError {
    let field = errors.first().map_or_else(|| "body".to_owned(), |e| e.path.clone());
    let message = errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
    AdminError::bad(field, message)
}

#[utoipa::path(get, path = "/api/spend-limits",
    responses((status = 200, description = "every rule in force", body = SpendLimitsView)))]
pub async fn list(State(state): State<AdminState>) -> Json<SpendLimitsView> {
    let rules: Vec<Value> = state.gateway.spend.rules().iter().map(|r| rule_json(&state, r.spec())).collect();
    Json(SpendLimitsView { spend_limits: rules })
}

#[utoipa::path(get, path = "/api/spend-limits/{id}", params(("id" = String, Path)),
    responses((status = 200, description = "the rule", body = SpendLimitView),
        (status = 404, description = "no such rule", body = crate::error::ErrorBody)))]
pub async fn one(State(state): State<AdminState>, Path(id): Path<String>) -> Result<Json<Value>, AdminError> {
    let rules = state.gateway.spend.rules();
    let rule =
        rules.iter().find(|r| r.id() == id).ok_or_else(|| AdminError::NotFound(format!("no spend limit {id:?}")))?;
    Ok(Json(rule_json(&state, rule.spec())))
}

#[utoipa::path(post, path = "/api/spend-limits", request_body = SpendLimitBody,
    responses((status = 201, description = "created; in force on every replica within 2 s", body = SpendLimitView),
        (status = 400, description = "invalid rule; `field` names the field", body = crate::error::ErrorBody),
        (status = 409, description = "the id is taken (by a file rule or an API rule)", body = crate::error::ErrorBody),
        (status = 503, response = crate::error::Unavailable)))]
pub async fn create(State(state): State<AdminState>, body: Bytes) -> Result<(StatusCode, Json<Value>), AdminError> {
    let store = params::store(&state)?;
    let spec = parse_spec(&body, None)?;
    if is_file_rule(&state, &spec.id) {
        return Err(read_only(&spec.id));
    }
    match store.insert_spend_rule(&spec).await? {
        SpendRuleChange::Unchanged => {
            return Err(AdminError::Conflict(format!("spend limit {:?} exists; PUT replaces it", spec.id)));
        }
        SpendRuleChange::Created | SpendRuleChange::Replaced | SpendRuleChange::Deleted => {}
    }
    load_rules(&state).await?;
    Ok((StatusCode::CREATED, Json(rule_json(&state, &spec))))
}

#[utoipa::path(put, path = "/api/spend-limits/{id}", params(("id" = String, Path)), request_body = SpendLimitBody,
    responses((status = 200, description = "replaced", body = SpendLimitView),
        (status = 201, description = "created", body = SpendLimitView),
        (status = 400, description = "invalid rule; `field` names the field", body = crate::error::ErrorBody),
        (status = 409, description = "a file rule (read-only)", body = crate::error::ErrorBody),
        (status = 503, response = crate::error::Unavailable)))]
pub async fn replace(
    State(state): State<AdminState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), AdminError> {
    let store = params::store(&state)?;
    if is_file_rule(&state, &id) {
        return Err(read_only(&id));
    }
    let spec = parse_spec(&body, Some(&id))?;
    let status = match store.put_spend_rule(&spec).await? {
        SpendRuleChange::Created => StatusCode::CREATED,
        SpendRuleChange::Replaced | SpendRuleChange::Deleted | SpendRuleChange::Unchanged => StatusCode::OK,
    };
    load_rules(&state).await?;
    Ok((status, Json(rule_json(&state, &spec))))
}

#[utoipa::path(delete, path = "/api/spend-limits/{id}", params(("id" = String, Path)),
    responses((status = 204, description = "deleted"),
        (status = 404, description = "no such API rule", body = crate::error::ErrorBody),
        (status = 409, description = "a file rule (read-only)", body = crate::error::ErrorBody),
        (status = 503, response = crate::error::Unavailable)))]
pub async fn delete(State(state): State<AdminState>, Path(id): Path<String>) -> Result<StatusCode, AdminError> {
    let store = params::store(&state)?;
    if is_file_rule(&state, &id) {
        return Err(read_only(&id));
    }
    match store.delete_spend_rule(&id).await? {
        SpendRuleChange::Deleted => {}
        SpendRuleChange::Unchanged | SpendRuleChange::Created | SpendRuleChange::Replaced => {
            return Err(AdminError::NotFound(format!("no spend limit {id:?}")));
        }
    }
    load_rules(&state).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/spend-limits/{id}/usage", params(("id" = String, Path)),
    responses((status = 200, description = "usage per bucket", body = UsageView),
        (status = 404, description = "no such rule", body = crate::error::ErrorBody)))]
pub async fn usage(State(state): State<AdminState>, Path(id): Path<String>) -> Result<Json<UsageView>, AdminError> {
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
    Ok(Json(UsageView { rule: id, buckets: views }))
}

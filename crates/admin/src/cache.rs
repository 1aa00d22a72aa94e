//! `DELETE /api/cache` and `DELETE /api/cache/{key}`: empty the response cache, or drop one entry by the key a
//! log row carries.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use tollgate_cache::CacheKey;
use utoipa::ToSchema;

use crate::{AdminError, AdminState};

/// What emptying the cache dropped.
#[derive(Debug, Serialize, ToSchema)]
pub struct CacheClearedView {
    /// Entries dropped (for Redis: this gateway's keys under `redis.key_prefix`).
    pub deleted: u64,
}

fn cache(state: &AdminState) -> Result<&tollgate_cache::Cache, AdminError> {
    state.gateway.cache.as_deref().ok_or_else(|| AdminError::Unavailable("the response cache is not available".into()))
}

fn unavailable(error: &tollgate_cache::BackendError) -> AdminError {
    AdminError::Unavailable(format!("the cache backend did not answer: {error}"))
}

#[utoipa::path(delete, path = "/api/cache",
    responses((status = 200, description = "the cache is empty", body = CacheClearedView),
        (status = 503, response = crate::error::Unavailable)))]
pub async fn clear(State(state): State<AdminState>) -> Result<Json<CacheClearedView>, AdminError> {
    let deleted = cache(&state)?.clear().await.map_err(|e| unavailable(&e))?;
    Ok(Json(CacheClearedView { deleted }))
}

#[utoipa::path(delete, path = "/api/cache/{key}", params(("key" = String, Path, description = "a log row's cache_key")),
    responses((status = 204, description = "the entry was dropped"),
        (status = 400, description = "not a cache key (64 lowercase hex digits)", body = crate::error::ErrorBody),
        (status = 404, description = "no entry under this key", body = crate::error::ErrorBody),
        (status = 503, response = crate::error::Unavailable)))]
pub async fn delete(State(state): State<AdminState>, Path(key): Path<String>) -> Result<StatusCode, AdminError> {
    let key = CacheKey::parse(&key).map_err(|e| AdminError::bad("key", e.to_string()))?;
    if cache(&state)?.delete(&key).await.map_err(|e| unavailable(&e))? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(AdminError::NotFound(format!("no cache entry {key}")))
    }
}

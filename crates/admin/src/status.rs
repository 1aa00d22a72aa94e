//! `GET /status` and `GET /config`.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use serde_json::{Value, json};

use crate::AdminState;

/// The database's health as the store reports it (`kind` is `"none"` without a store).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DatabaseStatus {
    pub kind: String,
    pub ok: bool,
    pub last_flush_at: Option<String>,
    pub pending_records: u64,
    /// Records the database refused for their values, set aside (the `quarantine` table, or the quarantine file
    /// beside the spill file) so that the rest of their batch was written.
    pub quarantined_records: u64,
    /// Stored rows that could not be read back and were skipped (e.g. a corrupt spend bucket at start-up).
    pub unreadable_rows: u64,
}

impl DatabaseStatus {
    pub fn of(store: Option<&tollgate_store::Store>) -> Self {
        match store {
            Some(store) => {
                let status = store.status();
                Self {
                    kind: status.kind.to_owned(),
                    ok: status.ok,
                    last_flush_at: status.last_flush_at.map(|t| t.to_string()),
                    pending_records: status.pending_records,
                    quarantined_records: status.quarantined_records,
                    unreadable_rows: status.unreadable_rows,
                }
            }
            None => Self {
                kind: "none".into(),
                ok: true,
                last_flush_at: None,
                pending_records: 0,
                quarantined_records: 0,
                unreadable_rows: 0,
            },
        }
    }
}

/// `GET /status`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StatusView {
    /// `ok`, or `degraded` when the last database write failed.
    pub status: String,
    pub version: String,
    pub uptime_s: u64,
    pub database: DatabaseStatus,
    /// Per configured ingest provider, its last run on this replica: `{<provider>: {at, ok, error, pages, rows}}`
    /// (`at` and `ok` null before the first).
    #[schema(value_type = Object)]
    pub last_ingest: Value,
    /// The response cache, when the gateway has one: `{"backend", "ok", "error"}` (`ok: false` while its
    /// backend cannot be reached: requests bypass it).
    #[schema(value_type = Option<Object>)]
    pub cache: Value,
    /// Shared rate limits, when a rate limit is shared: `{"mode": "redis" | "fallback", "replicas", "error"}`
    /// (`fallback`: Redis cannot be reached and each shared limit counts this replica's share,
    /// `limit / replicas`).
    #[schema(value_type = Option<Object>)]
    pub shared_rate_limits: Value,
}

/// Liveness and health: public when `admin.public_metrics` (used as the readiness probe).
#[utoipa::path(get, path = "/status", security((), ("bearer" = [])), responses((status = 200, description = "health", body = StatusView)))]
pub async fn status(State(state): State<AdminState>) -> Json<StatusView> {
    let database = DatabaseStatus::of(state.store.as_ref());
    let last_ingest = last_ingest(state.ingest.as_ref());
    Json(StatusView {
        status: if database.ok { "ok" } else { "degraded" }.to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        uptime_s: state.started.elapsed().as_secs(),
        database,
        last_ingest,
        cache: cache_status(&state),
        shared_rate_limits: shared_rates_status(&state),
    })
}

fn last_ingest(ingest: Option<&tollgate_ingest::Ingest>) -> Value {
    let Some(ingest) = ingest else { return json!({}) };
    let last = ingest.last_runs();
    let providers: serde_json::Map<String, Value> = ingest
        .providers()
        .into_iter()
        .map(|provider| {
            let value = match last.get(provider) {
                Some(run) => {
                    json!({"at": run.at, "ok": run.ok, "error": run.error, "pages": run.pages, "rows": run.rows})
                }
                None => json!({"at": null, "ok": null, "error": null, "pages": 0, "rows": 0}),
            };
            (provider.to_owned(), value)
        })
        .collect();
    Value::Object(providers)
}

fn cache_status(state: &AdminState) -> Value {
    let Some(cache) = state.gateway.cache.as_deref() else { return Value::Null };
    let error = cache.stats().last_error();
    json!({"backend": cache.backend_name(), "ok": error.is_none(), "error": error})
}

fn shared_rates_status(state: &AdminState) -> Value {
    let Some(shared) = state.gateway.shared_rates.as_deref() else { return Value::Null };
    let error = shared.stats().last_error();
    let mode = if error.is_none() { "redis" } else { "fallback" };
    json!({"mode": mode, "replicas": state.gateway.rates.replicas(), "error": error})
}

/// The effective configuration, every secret replaced by `"[redacted]"`.
#[utoipa::path(get, path = "/config", responses((status = 200, description = "effective config", body = Object)))]
pub async fn config(State(state): State<AdminState>) -> Json<Value> {
    Json(serde_json::to_value(state.config.redacted()).unwrap_or(Value::Null))
}

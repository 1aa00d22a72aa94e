//! `GET /status` and `GET /config`.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use serde_json::{Value, json};

use crate::AdminState;

/// The database's health as the store reports it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DatabaseStatus {
    pub kind: String,
    pub ok: bool,
    pub last_flush_at: Option<String>,
    pub pending_records: u64,
}

/// Whatever can report the database's health (the store).
pub trait StatusSource: Send + Sync + 'static {
    fn database_status(&self) -> DatabaseStatus;
}

/// Liveness and health: public when `admin.public_metrics` (used as the readiness probe).
#[utoipa::path(get, path = "/status", responses((status = 200, description = "health", body = Object)))]
pub async fn status(State(state): State<AdminState>) -> Json<Value> {
    let database = state.database.as_ref().map_or_else(
        || DatabaseStatus { kind: "none".into(), ok: true, last_flush_at: None, pending_records: 0 },
        |source| source.database_status(),
    );
    let last = state.metrics.last_ingest_ms.load(std::sync::atomic::Ordering::Relaxed);
    let last_ingest = if last == 0 {
        json!({"at": null})
    } else {
        let at = jiff::Timestamp::from_millisecond(last).map(|t| t.to_string()).ok();
        json!({"at": at})
    };
    Json(json!({
        "status": if database.ok { "ok" } else { "degraded" },
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_s": state.started.elapsed().as_secs(),
        "database": database,
        "last_ingest": last_ingest,
    }))
}

/// The effective configuration, every secret replaced by `"[redacted]"`.
#[utoipa::path(get, path = "/config", responses((status = 200, description = "effective config", body = Object)))]
pub async fn config(State(state): State<AdminState>) -> Json<Value> {
    Json(serde_json::to_value(state.config.redacted()).unwrap_or(Value::Null))
}

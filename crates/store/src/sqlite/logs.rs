//! `request_logs` on SQLite: one cached statement per row inside the batch's transaction, times as Unix µs.

use sqlx::Sqlite;
use sqlx::sqlite::SqliteConnection;

use crate::error::StoreError;
use crate::logs::LogsBackend;
use crate::model::LogRow;

impl LogsBackend for Sqlite {
    const DELETE_LOGS_BEFORE: &'static str = "DELETE FROM request_logs WHERE rowid IN (
         SELECT rowid FROM request_logs WHERE created_at < $1 LIMIT $2)";
    const DELETE_BATCH_IDS_BEFORE: &'static str = "DELETE FROM spend_batches_applied WHERE applied_at < $1";

    async fn insert_log_rows(conn: &mut SqliteConnection, rows: &[LogRow]) -> Result<Vec<bool>, StoreError> {
        let mut inserted = Vec::with_capacity(rows.len());
        for row in rows {
            inserted.push(insert_row(conn, row).await?);
        }
        Ok(inserted)
    }
}

/// One prepared (cached) statement per row inside the batch's transaction: SQLite runs in-process, so a row costs
/// microseconds and there is no round trip to save. Returns whether the row was new.
async fn insert_row(conn: &mut SqliteConnection, row: &LogRow) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "INSERT OR IGNORE INTO request_logs (id, created_at, gateway, provider, model, path, status, success, cached,
             stream, tokens_in, tokens_out, tokens_cached, tokens_reasoning, cost_nanos, cost_source, duration_ms,
             ttfb_ms, metadata, event_id, step, rule_decisions, error, request_body, response_body,
             tokens_cache_write, listed, cache_key, saved_nanos)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22,
             $23, $24, $25, $26, $27, $28, $29)",
    )
    .bind(&row.id)
    .bind(row.created_at_us)
    .bind(&row.gateway)
    .bind(&row.provider)
    .bind(&row.model)
    .bind(&row.path)
    .bind(row.status)
    .bind(row.success)
    .bind(row.cached)
    .bind(row.stream)
    .bind(row.tokens_in)
    .bind(row.tokens_out)
    .bind(row.tokens_cached)
    .bind(row.tokens_reasoning)
    .bind(row.cost_nanos)
    .bind(row.cost_source)
    .bind(row.duration_ms)
    .bind(row.ttfb_ms)
    .bind(&row.metadata)
    .bind(&row.event_id)
    .bind(row.step)
    .bind(&row.rule_decisions)
    .bind(&row.error)
    .bind(&row.request_body)
    .bind(&row.response_body)
    .bind(row.tokens_cache_write)
    .bind(row.listed)
    .bind(&row.cache_key)
    .bind(row.saved_nanos)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

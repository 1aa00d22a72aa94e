//! `request_logs` on Postgres: a batch is one `UNNEST` statement (29 array parameters whatever its size), and times
//! are `TIMESTAMPTZ`.

use std::collections::HashSet;

use sqlx::postgres::PgConnection;
use sqlx::{Postgres, Row};

use crate::error::StoreError;
use crate::logs::LogsBackend;
use crate::model::LogRow;

impl LogsBackend for Postgres {
    const DELETE_LOGS_BEFORE: &'static str = "DELETE FROM request_logs WHERE id IN (
         SELECT id FROM request_logs
         WHERE created_at < 'epoch'::timestamptz + $1 * interval '1 microsecond' LIMIT $2)";
    const DELETE_BATCH_IDS_BEFORE: &'static str = "DELETE FROM spend_batches_applied
         WHERE applied_at < 'epoch'::timestamptz + $1 * interval '1 microsecond'";

    async fn insert_log_rows(conn: &mut PgConnection, rows: &[LogRow]) -> Result<Vec<bool>, StoreError> {
        let mut ids = insert_ids(conn, rows).await?;
        // Taken out as matched, so a row repeating an id earlier in the batch counts as not inserted.
        Ok(rows.iter().map(|row| ids.remove(&row.id)).collect())
    }
}

/// One `INSERT … SELECT FROM UNNEST(…)` for the whole batch (29 array parameters whatever the batch size);
/// returns the ids actually inserted.
async fn insert_ids(conn: &mut PgConnection, rows: &[LogRow]) -> Result<HashSet<String>, StoreError> {
    let fetched = sqlx::query(
        "INSERT INTO request_logs (id, created_at, gateway, provider, model, path, status, success, cached, stream,
             tokens_in, tokens_out, tokens_cached, tokens_reasoning, cost_nanos, cost_source, duration_ms, ttfb_ms,
             metadata, event_id, step, rule_decisions, error, request_body, response_body, tokens_cache_write, listed,
             cache_key, saved_nanos)
         SELECT u.id, 'epoch'::timestamptz + u.created_us * interval '1 microsecond', u.gateway, u.provider, u.model,
             u.path, u.status, u.success, u.cached, u.stream, u.tokens_in, u.tokens_out, u.tokens_cached,
             u.tokens_reasoning, u.cost_nanos, u.cost_source, u.duration_ms, u.ttfb_ms, u.metadata::jsonb,
             u.event_id, u.step, u.rule_decisions::jsonb, u.error, u.request_body, u.response_body,
             u.tokens_cache_write, u.listed, u.cache_key, u.saved_nanos
         FROM UNNEST($1::text[], $2::int8[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int4[],
             $8::bool[], $9::bool[], $10::bool[], $11::int8[], $12::int8[], $13::int8[], $14::int8[], $15::int8[],
             $16::text[], $17::int8[], $18::int8[], $19::text[], $20::text[], $21::int4[], $22::text[],
             $23::text[], $24::text[], $25::text[], $26::int8[], $27::bool[], $28::text[], $29::int8[])
             AS u(id, created_us, gateway, provider, model, path, status, success, cached, stream, tokens_in,
                  tokens_out, tokens_cached, tokens_reasoning, cost_nanos, cost_source, duration_ms, ttfb_ms,
                  metadata, event_id, step, rule_decisions, error, request_body, response_body, tokens_cache_write,
                  listed, cache_key, saved_nanos)
         ON CONFLICT (id) DO NOTHING
         RETURNING id",
    )
    .bind(column(rows, |r| r.id.clone()))
    .bind(column(rows, |r| r.created_at_us))
    .bind(column(rows, |r| r.gateway.clone()))
    .bind(column(rows, |r| r.provider.clone()))
    .bind(column(rows, |r| r.model.clone()))
    .bind(column(rows, |r| r.path.clone()))
    .bind(column(rows, |r| r.status))
    .bind(column(rows, |r| r.success))
    .bind(column(rows, |r| r.cached))
    .bind(column(rows, |r| r.stream))
    .bind(column(rows, |r| r.tokens_in))
    .bind(column(rows, |r| r.tokens_out))
    .bind(column(rows, |r| r.tokens_cached))
    .bind(column(rows, |r| r.tokens_reasoning))
    .bind(column(rows, |r| r.cost_nanos))
    .bind(column(rows, |r| r.cost_source))
    .bind(column(rows, |r| r.duration_ms))
    .bind(column(rows, |r| r.ttfb_ms))
    .bind(column(rows, |r| r.metadata.clone()))
    .bind(column(rows, |r| r.event_id.clone()))
    .bind(column(rows, |r| r.step))
    .bind(column(rows, |r| r.rule_decisions.clone()))
    .bind(column(rows, |r| r.error.clone()))
    .bind(column(rows, |r| r.request_body.clone()))
    .bind(column(rows, |r| r.response_body.clone()))
    .bind(column(rows, |r| r.tokens_cache_write))
    .bind(column(rows, |r| r.listed))
    .bind(column(rows, |r| r.cache_key.clone()))
    .bind(column(rows, |r| r.saved_nanos))
    .fetch_all(conn)
    .await?;
    fetched.iter().map(|row| row.try_get::<String, _>(0).map_err(StoreError::from)).collect()
}

/// One field of every row, as the array `UNNEST` reads.
fn column<T>(rows: &[LogRow], field: impl Fn(&LogRow) -> T) -> Vec<T> {
    rows.iter().map(field).collect()
}

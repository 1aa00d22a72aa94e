//! The `request_logs` aggregate: idempotent batch insert (with the rollups, in one transaction) and retention
//! (which deletes log rows only: the rollups, hourly and daily, keep the history).

use std::collections::HashSet;

use jiff::Timestamp;
use sqlx::Row;

use crate::error::StoreError;
use crate::metadata_keys;
use crate::model::{LogRecord, LogRow};
use crate::quarantine::QuarantineKind;
use crate::rollup::Rollups;
use crate::sql::timestamp_micros;
use crate::store::{Pool, Store};

/// Rows deleted per retention statement: small enough that each statement holds its locks for milliseconds and
/// never needs the whole expired set in memory (deleting a large expired set at once can exhaust memory).
pub const RETENTION_BATCH_ROWS: i64 = 5_000;

/// What a retention pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Log rows deleted.
    pub deleted: u64,
    /// `DELETE` statements run (each its own short transaction).
    pub statements: u64,
}

impl Store {
    /// Inserts `records` and adds the newly inserted ones to the rollups, in one transaction. A record whose id
    /// is already stored is skipped, so a retried or replayed batch never doubles a row or its spend. Returns the
    /// number of rows inserted. Strings are cut to their bounds and numbers above `i64::MAX` stored as `i64::MAX`
    /// (`LogRecord::bounded`, `LogRow`). A batch the database refuses for its values (not an outage) is split
    /// until the record at fault is alone, and that record is quarantined (see `quarantine`): every other record
    /// is written. An outage fails the call; the caller spills the batch.
    pub async fn insert_logs(&self, records: &[LogRecord]) -> Result<u64, StoreError> {
        let bounded: Vec<std::borrow::Cow<'_, LogRecord>> = records.iter().map(LogRecord::bounded).collect();
        let records: Vec<&LogRecord> = bounded.iter().map(AsRef::as_ref).collect();
        let mut inserted = 0;
        // Parts still to write, the next on top; a refused part is replaced by its two halves.
        let mut parts: Vec<&[&LogRecord]> = vec![&records];
        while let Some(part) = parts.pop() {
            if part.is_empty() {
                continue;
            }
            match self.insert_batch(part).await {
                Ok(n) => inserted += n,
                Err(error) if error.is_data_error() => {
                    if let [record] = part {
                        self.quarantine(QuarantineKind::Log, *record, &error).await;
                    } else {
                        let (first, second) = part.split_at(part.len() / 2);
                        parts.push(second);
                        parts.push(first);
                    }
                }
                Err(error) => return Err(error),
            }
        }
        Ok(inserted)
    }

    /// One transaction: the rows of `records` and their rollups.
    async fn insert_batch(&self, records: &[&LogRecord]) -> Result<u64, StoreError> {
        let rows: Vec<LogRow> = records.iter().map(|r| LogRow::from(*r)).collect();
        let kept = records;
        let max_per_row = self.options().max_rollup_keys_per_row;
        let mut rollups = Rollups::default();
        // The key set is read after the rows are inserted, under a lock that excludes adding a key (see
        // `metadata_keys`): so a key added concurrently counts these rows exactly once, here or in its backfill.
        let inserted = match self.pool() {
            Pool::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                let ids = insert_postgres(&mut tx, &rows).await?;
                if !ids.is_empty() {
                    let keys = metadata_keys::locked_postgres(&mut tx, max_per_row).await?;
                    for record in kept.iter().filter(|r| ids.contains(r.id.as_str())) {
                        rollups.add(record, &keys);
                    }
                    rollups.upsert_postgres(&mut tx).await?;
                }
                tx.commit().await?;
                ids.len() as u64
            }
            Pool::Sqlite(pool) => {
                let mut tx = pool.begin().await?;
                let mut new = Vec::with_capacity(kept.len());
                for (row, record) in rows.iter().zip(kept) {
                    if insert_sqlite(&mut tx, row).await? {
                        new.push(*record);
                    }
                }
                if !new.is_empty() {
                    let keys = metadata_keys::read_sqlite(&mut tx, max_per_row).await?;
                    for record in &new {
                        rollups.add(record, &keys);
                    }
                    rollups.upsert_sqlite(&mut tx).await?;
                }
                tx.commit().await?;
                new.len() as u64
            }
        };
        Ok(inserted)
    }

    /// Deletes log rows created before `cutoff`, [`RETENTION_BATCH_ROWS`] per statement until none is left, and
    /// the spend batch ids applied before it. Rollups and spend buckets are kept.
    pub async fn delete_older_than(&self, cutoff: Timestamp) -> Result<RetentionReport, StoreError> {
        self.delete_older_than_in_batches(cutoff, RETENTION_BATCH_ROWS).await
    }

    /// [`Store::delete_older_than`] with an explicit batch size.
    pub async fn delete_older_than_in_batches(
        &self,
        cutoff: Timestamp,
        batch_rows: i64,
    ) -> Result<RetentionReport, StoreError> {
        let cutoff_us = timestamp_micros(cutoff);
        let batch_rows = batch_rows.max(1);
        let mut report = RetentionReport::default();
        loop {
            let deleted = match self.pool() {
                Pool::Postgres(pool) => sqlx::query(
                    "DELETE FROM request_logs WHERE id IN (
                         SELECT id FROM request_logs
                         WHERE created_at < 'epoch'::timestamptz + $1 * interval '1 microsecond' LIMIT $2)",
                )
                .bind(cutoff_us)
                .bind(batch_rows)
                .execute(pool)
                .await?
                .rows_affected(),
                Pool::Sqlite(pool) => sqlx::query(
                    "DELETE FROM request_logs WHERE rowid IN (
                         SELECT rowid FROM request_logs WHERE created_at < ? LIMIT ?)",
                )
                .bind(cutoff_us)
                .bind(batch_rows)
                .execute(pool)
                .await?
                .rows_affected(),
            };
            report.statements += 1;
            report.deleted += deleted;
            if deleted < batch_rows as u64 {
                break;
            }
            // Let the writers in between statements.
            tokio::task::yield_now().await;
        }
        match self.pool() {
            Pool::Postgres(pool) => {
                sqlx::query(
                    "DELETE FROM spend_batches_applied
                     WHERE applied_at < 'epoch'::timestamptz + $1 * interval '1 microsecond'",
                )
                .bind(cutoff_us)
                .execute(pool)
                .await?;
            }
            Pool::Sqlite(pool) => {
                sqlx::query("DELETE FROM spend_batches_applied WHERE applied_at < ?")
                    .bind(cutoff_us)
                    .execute(pool)
                    .await?;
            }
        }
        Ok(report)
    }
}

/// One `INSERT … SELECT FROM UNNEST(…)` for the whole batch (29 array parameters whatever the batch size);
/// returns the ids actually inserted.
async fn insert_postgres(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    rows: &[LogRow],
) -> Result<HashSet<String>, StoreError> {
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
    .fetch_all(&mut **tx)
    .await?;
    fetched.iter().map(|row| row.try_get::<String, _>(0).map_err(StoreError::from)).collect()
}

/// One field of every row, as the array `UNNEST` reads.
fn column<T>(rows: &[LogRow], field: impl Fn(&LogRow) -> T) -> Vec<T> {
    rows.iter().map(field).collect()
}

/// One prepared (cached) statement per row inside the batch's transaction: SQLite runs in-process, so a row costs
/// microseconds and there is no round trip to save. Returns whether the row was new.
async fn insert_sqlite(tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>, row: &LogRow) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "INSERT OR IGNORE INTO request_logs (id, created_at, gateway, provider, model, path, status, success, cached,
             stream, tokens_in, tokens_out, tokens_cached, tokens_reasoning, cost_nanos, cost_source, duration_ms,
             ttfb_ms, metadata, event_id, step, rule_decisions, error, request_body, response_body,
             tokens_cache_write, listed, cache_key, saved_nanos)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

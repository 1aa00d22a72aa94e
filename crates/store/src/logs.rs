//! The `request_logs` aggregate: idempotent batch insert (with the rollups, in one transaction) and retention
//! (which deletes log rows only: the rollups, hourly and daily, keep the history).

use jiff::Timestamp;

use crate::backend::{Backend, Bind};
use crate::error::StoreError;
use crate::metadata_keys::MetadataKeysBackend;
use crate::model::{LogRecord, LogRow};
use crate::quarantine::QuarantineKind;
use crate::rollup::{RollupBackend, Rollups};
use crate::sql::timestamp_micros;
use crate::store::{Pool, Store};

/// The primitives of the `request_logs` aggregate (`postgres/logs.rs`, `sqlite/logs.rs`).
pub(crate) trait LogsBackend: Backend {
    /// Deletes at most `$2` rows created before `$1` (Unix µs).
    const DELETE_LOGS_BEFORE: &'static str;
    /// Deletes the spend batch ids applied before `$1` (Unix µs).
    const DELETE_BATCH_IDS_BEFORE: &'static str;

    /// Inserts `rows`, skipping those whose id is stored already (or earlier in `rows`): for each row, whether it
    /// was inserted.
    async fn insert_log_rows(conn: &mut Self::Connection, rows: &[LogRow]) -> Result<Vec<bool>, StoreError>;
}

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
        let max_per_row = self.options().max_rollup_keys_per_row;
        match self.pool() {
            Pool::Postgres(pool) => insert_batch(pool, records, max_per_row).await,
            Pool::Sqlite(pool) => insert_batch(pool, records, max_per_row).await,
        }
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
        let (cutoff_us, batch_rows) = (timestamp_micros(cutoff), batch_rows.max(1));
        match self.pool() {
            Pool::Postgres(pool) => delete_older_than(pool, cutoff_us, batch_rows).await,
            Pool::Sqlite(pool) => delete_older_than(pool, cutoff_us, batch_rows).await,
        }
    }
}

/// [`Store::insert_logs`]'s transaction for one part. The key set is read after the rows are inserted, under a lock
/// that excludes adding a key (see `metadata_keys`): so a key added concurrently counts these rows exactly once,
/// here or in its backfill.
async fn insert_batch<B: LogsBackend + MetadataKeysBackend + RollupBackend>(
    pool: &sqlx::Pool<B>,
    records: &[&LogRecord],
    max_per_row: usize,
) -> Result<u64, StoreError> {
    let rows: Vec<LogRow> = records.iter().map(|r| LogRow::from(*r)).collect();
    let mut tx = pool.begin().await?;
    let inserted = B::insert_log_rows(&mut tx, &rows).await?;
    let new: Vec<&LogRecord> =
        records.iter().zip(&inserted).filter(|(_, inserted)| **inserted).map(|(record, _)| *record).collect();
    if !new.is_empty() {
        let keys = B::lock_rollup_keys(&mut tx, max_per_row).await?;
        let mut rollups = Rollups::default();
        for record in &new {
            rollups.add(record, &keys);
        }
        B::upsert_rollups(&mut tx, &rollups).await?;
    }
    tx.commit().await?;
    Ok(new.len() as u64)
}

/// [`Store::delete_older_than_in_batches`]: each statement its own short transaction.
async fn delete_older_than<B: LogsBackend>(
    pool: &sqlx::Pool<B>,
    cutoff_us: i64,
    batch_rows: i64,
) -> Result<RetentionReport, StoreError> {
    let mut report = RetentionReport::default();
    loop {
        let binds = [Bind::Int(cutoff_us), Bind::Int(batch_rows)];
        let deleted = B::execute(&mut *pool.acquire().await?, B::DELETE_LOGS_BEFORE, &binds).await?;
        report.statements += 1;
        report.deleted += deleted;
        if deleted < batch_rows as u64 {
            break;
        }
        // Let the writers in between statements.
        tokio::task::yield_now().await;
    }
    B::execute(&mut *pool.acquire().await?, B::DELETE_BATCH_IDS_BEFORE, &[Bind::Int(cutoff_us)]).await?;
    Ok(report)
}

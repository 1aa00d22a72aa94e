//! Repricing `request_logs` and rebuilding the rollups from it (after a price fix, or to repair them).
//!
//! # One rebuild, one transaction
//!
//! 1. Postgres: lock the metadata key set `SHARE` (no key is added meanwhile; taken before any rollup lock, as
//!    every writer and key adder does, see `metadata_keys`), then the four rollup tables `EXCLUSIVE` (readers go
//!    on; writers wait). A batch writer that already added to a rollup has committed by the time the lock is
//!    granted, so its rows are visible below; one that has not yet added waits, and its rows (uncommitted, so not
//!    read below) are added after the rebuild commits. SQLite: the first `DELETE` takes the database's write lock
//!    with the same effect.
//! 2. Empty the rollups (hourly; metadata hourly, daily and daily per value) and read the key set.
//! 3. Read every log row in pages (`log_scan`) in `(created_at, id)` order. Reprice each row that is not
//!    `custom` with the caller's function and `UPDATE` the rows whose cost or source changed (same transaction),
//!    then sum in memory exactly as the writer does (same hour and day bucketing, same metadata keys) and hand each
//!    row, as repriced, to the caller's visitor (which rebuilds spend buckets). Sums are written out whenever
//!    [`FLUSH_ROWS`] of them are held, so memory stays bounded however long the log is.
//! 4. Write the remaining sums, commit. Rows deleted by retention are gone from the log, so their hours come back
//!    empty: a rebuild covers the retained log only.

use jiff::Timestamp;
use sqlx::{PgPool, SqlitePool};

use crate::error::StoreError;
use tollgate_accounting::CostSource;

use crate::log_scan::LogScan;
use crate::metadata_keys;
use crate::model::LogRecord;
use crate::rollup::{FLUSH_ROWS, RollupKeys, Rollups};
use crate::sql::saturating_i64;
use crate::store::{Pool, Store};

/// The priced fields of one log row, handed to the repricing function of [`Store::recompute`].
#[derive(Debug, Clone, Copy)]
pub struct RepriceInput<'a> {
    pub provider: &'a str,
    pub model: &'a str,
    /// When the request arrived (picks the price in effect then).
    pub created_at: Timestamp,
    /// All prompt tokens (cache reads and writes included).
    pub tokens_in: u64,
    /// Prompt tokens read from the provider's cache.
    pub tokens_cached: u64,
    /// Prompt tokens written to the provider's cache.
    pub tokens_cache_write: u64,
    /// Completion tokens.
    pub tokens_out: u64,
    pub tokens_reasoning: u64,
    /// The stored `cost_source`: `catalog`, `estimated` or `unpriced` (`custom` rows are never repriced).
    pub cost_source: &'a str,
}

/// Reprices a row: the new cost in nano-dollars and `cost_source`, or `None` to keep the stored ones. The store
/// stays free of the price catalog; the caller supplies it.
pub type Reprice<'f> = dyn Fn(&RepriceInput<'_>) -> Option<(u64, CostSource)> + Sync + 'f;

/// What a rebuild did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecomputeReport {
    /// Log rows read.
    pub log_rows: u64,
    /// Log rows whose cost or cost source was rewritten.
    pub repriced_rows: u64,
    /// Rollup rows written, every rollup table together (on a log long enough that the sums were written in
    /// parts, a row written in two parts counts twice).
    pub rollup_rows: u64,
}

/// Empties every rollup before a rebuild (both backends).
const CLEAR_ROLLUPS: [&str; 4] = [
    "DELETE FROM spend_rollup_hourly",
    "DELETE FROM spend_rollup_metadata_hourly",
    "DELETE FROM spend_rollup_metadata_daily",
    "DELETE FROM spend_rollup_metadata_value_daily",
];

impl Store {
    /// Rebuilds the rollups from the log as stored (no repricing).
    pub async fn rebuild_rollups(&self) -> Result<RecomputeReport, StoreError> {
        self.recompute(&|_| None, &mut |_| {}).await
    }

    /// Reprices the log with `reprice`, rebuilds the rollups from it, and passes every row (as repriced, in
    /// `(created_at, id)` order) to `visit` (see the module docs).
    pub async fn recompute(
        &self,
        reprice: &Reprice<'_>,
        visit: &mut (dyn FnMut(&LogRecord) + Send),
    ) -> Result<RecomputeReport, StoreError> {
        let max_per_row = self.options().max_rollup_keys_per_row;
        let mut rebuild = Rebuild {
            reprice,
            visit,
            rollups: Rollups::default(),
            report: RecomputeReport::default(),
            updates: Vec::new(),
        };
        match self.pool() {
            Pool::Postgres(pool) => rebuild_postgres(pool, max_per_row, &mut rebuild).await?,
            Pool::Sqlite(pool) => rebuild_sqlite(pool, max_per_row, &mut rebuild).await?,
        }
        Ok(rebuild.report)
    }
}

/// A rebuild's running state: the sums held, the report so far, and the repriced rows of the current page.
struct Rebuild<'a, 'f> {
    reprice: &'a Reprice<'f>,
    visit: &'a mut (dyn FnMut(&LogRecord) + Send),
    rollups: Rollups,
    report: RecomputeReport,
    /// Repriced rows of the current page: (id, cost_nanos, cost_source), written before the next page is read.
    updates: Vec<(String, i64, &'static str)>,
}

impl Rebuild<'_, '_> {
    /// Reprices, sums and visits one page; `false` when the page is empty (the log has been read).
    fn add_page(&mut self, page: Vec<LogRecord>, keys: &RollupKeys) -> bool {
        let read = page.len() as u64;
        for mut record in page {
            if record.cost_source != CostSource::Custom {
                self.reprice_one(&mut record);
            }
            self.rollups.add(&record, keys);
            (self.visit)(&record);
        }
        self.report.log_rows += read;
        self.report.repriced_rows += self.updates.len() as u64;
        read > 0
    }

    /// Applies the caller's price to `record` and queues its `UPDATE` when the cost or the source changed.
    fn reprice_one(&mut self, record: &mut LogRecord) {
        let input = RepriceInput {
            provider: &record.provider,
            model: &record.model,
            created_at: record.created_at,
            tokens_in: record.tokens_in,
            tokens_cached: record.tokens_cached,
            tokens_cache_write: record.tokens_cache_write,
            tokens_out: record.tokens_out,
            tokens_reasoning: record.tokens_reasoning,
            cost_source: record.cost_source.as_str(),
        };
        if let Some((cost, source)) = (self.reprice)(&input)
            && (cost != record.cost_nanos || source != record.cost_source)
        {
            record.cost_nanos = cost;
            record.cost_source = source;
            self.updates.push((record.id.clone(), saturating_i64(cost), source.as_str()));
        }
    }

    /// The sums to write now: every one held at the end (`all`), else only once [`FLUSH_ROWS`] are held.
    fn take_rollups(&mut self, all: bool) -> Option<Rollups> {
        if !all && self.rollups.len() < FLUSH_ROWS {
            return None;
        }
        self.report.rollup_rows += self.rollups.len() as u64;
        Some(std::mem::take(&mut self.rollups))
    }
}

/// Steps 1–4 of the module docs on Postgres.
async fn rebuild_postgres(pool: &PgPool, max_per_row: usize, rebuild: &mut Rebuild<'_, '_>) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    let keys = metadata_keys::locked_postgres(&mut tx, max_per_row).await?;
    sqlx::query(
        "LOCK TABLE spend_rollup_hourly, spend_rollup_metadata_hourly, spend_rollup_metadata_daily,
             spend_rollup_metadata_value_daily IN EXCLUSIVE MODE",
    )
    .execute(&mut *tx)
    .await?;
    for sql in CLEAR_ROLLUPS {
        sqlx::query(sql).execute(&mut *tx).await?;
    }
    let mut scan = LogScan::default();
    while rebuild.add_page(scan.next_postgres(&mut tx, None).await?, &keys) {
        if !rebuild.updates.is_empty() {
            let (ids, costs, sources): (Vec<_>, Vec<_>, Vec<_>) = rebuild.updates.drain(..).collect();
            sqlx::query(
                "UPDATE request_logs SET cost_nanos = u.cost, cost_source = u.source
                 FROM UNNEST($1::text[], $2::int8[], $3::text[]) AS u(id, cost, source)
                 WHERE request_logs.id = u.id",
            )
            .bind(ids)
            .bind(costs)
            .bind(sources)
            .execute(&mut *tx)
            .await?;
        }
        if let Some(rollups) = rebuild.take_rollups(false) {
            rollups.upsert_postgres(&mut tx).await?;
        }
    }
    if let Some(rollups) = rebuild.take_rollups(true) {
        rollups.upsert_postgres(&mut tx).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Steps 1–4 of the module docs on SQLite (the first `DELETE` takes the write lock).
async fn rebuild_sqlite(
    pool: &SqlitePool,
    max_per_row: usize,
    rebuild: &mut Rebuild<'_, '_>,
) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    for sql in CLEAR_ROLLUPS {
        sqlx::query(sql).execute(&mut *tx).await?;
    }
    let keys = metadata_keys::read_sqlite(&mut tx, max_per_row).await?;
    let mut scan = LogScan::default();
    while rebuild.add_page(scan.next_sqlite(&mut tx).await?, &keys) {
        for (id, cost, source) in rebuild.updates.drain(..) {
            sqlx::query("UPDATE request_logs SET cost_nanos = $1, cost_source = $2 WHERE id = $3")
                .bind(cost)
                .bind(source)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(rollups) = rebuild.take_rollups(false) {
            rollups.upsert_sqlite(&mut tx).await?;
        }
    }
    if let Some(rollups) = rebuild.take_rollups(true) {
        rollups.upsert_sqlite(&mut tx).await?;
    }
    tx.commit().await?;
    Ok(())
}

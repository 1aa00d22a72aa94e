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
//!    [`FLUSH_ROWS`](crate::rollup::FLUSH_ROWS) of them are held, so memory stays bounded however long the log is.
//! 4. Write the remaining sums, commit. Rows deleted by retention are gone from the log, so their hours come back
//!    empty: a rebuild covers the retained log only.

use jiff::Timestamp;
use tollgate_accounting::CostSource;

use crate::error::StoreError;
use crate::log_scan::{self, CostUpdate, LogScanBackend};
use crate::model::LogRecord;
use crate::rollup::{RollupBackend, RollupKeys, Rollups};
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
        let mut rebuild = Rebuild { reprice, visit, report: RecomputeReport::default() };
        match self.pool() {
            Pool::Postgres(pool) => rebuild.run(pool, max_per_row).await?,
            Pool::Sqlite(pool) => rebuild.run(pool, max_per_row).await?,
        }
        Ok(rebuild.report)
    }
}

/// A rebuild's caller-supplied functions and its report so far.
struct Rebuild<'a, 'f> {
    reprice: &'a Reprice<'f>,
    visit: &'a mut (dyn FnMut(&LogRecord) + Send),
    report: RecomputeReport,
}

impl Rebuild<'_, '_> {
    /// Steps 1–4 of the module docs, in one transaction.
    async fn run<B: RollupBackend + LogScanBackend>(
        &mut self,
        pool: &sqlx::Pool<B>,
        max_per_row: usize,
    ) -> Result<(), StoreError> {
        let mut tx = pool.begin().await?;
        let keys = B::lock_and_clear_rollups(&mut tx, max_per_row).await?;
        let mut rollups = Rollups::default();
        let add = |page, rollups: &mut Rollups| self.add_page(page, rollups, &keys);
        let written = log_scan::walk::<B>(&mut tx, None, &mut rollups, add).await?;
        self.report.rollup_rows += written;
        tx.commit().await?;
        Ok(())
    }

    /// Reprices, sums and visits one page; the rows whose cost or cost source changed, to write back.
    fn add_page(&mut self, page: Vec<LogRecord>, rollups: &mut Rollups, keys: &RollupKeys) -> Vec<CostUpdate> {
        self.report.log_rows += page.len() as u64;
        let mut updates = Vec::new();
        for mut record in page {
            if record.cost_source != CostSource::Custom
                && let Some(update) = self.reprice_one(&mut record)
            {
                updates.push(update);
            }
            rollups.add(&record, keys);
            (self.visit)(&record);
        }
        self.report.repriced_rows += updates.len() as u64;
        updates
    }

    /// Applies the caller's price to `record`; its `UPDATE` when the cost or the source changed.
    fn reprice_one(&mut self, record: &mut LogRecord) -> Option<CostUpdate> {
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
        let (cost, source) = (self.reprice)(&input)?;
        if cost == record.cost_nanos && source == record.cost_source {
            return None;
        }
        record.cost_nanos = cost;
        record.cost_source = source;
        Some((record.id.clone(), saturating_i64(cost), source.as_str()))
    }
}

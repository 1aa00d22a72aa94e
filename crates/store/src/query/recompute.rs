//! Repricing `request_logs` and rebuilding the hourly rollups from it (after a price fix, or to repair them).
//!
//! # One rebuild, one transaction
//!
//! 1. Postgres: lock both rollup tables `EXCLUSIVE` (readers go on; writers wait). A batch writer that already
//!    added to a rollup has committed by the time the lock is granted, so its rows are visible below; one that
//!    has not yet added waits, and its rows (uncommitted, so not read below) are added after the rebuild commits.
//!    SQLite: the first `DELETE` takes the database's write lock with the same effect.
//! 2. Empty both rollups.
//! 3. Read every log row in pages of [`PAGE_ROWS`] in `(created_at, id)` order. Reprice each row that is not
//!    `custom` with the caller's function and `UPDATE` the rows whose cost or source changed (same transaction),
//!    then sum in memory exactly as the writer does (same hour bucketing, same metadata keys) and hand each row, as
//!    repriced, to the caller's visitor (which rebuilds spend buckets).
//! 4. Write the sums, commit. Rows deleted by retention are gone from the log, so their hours come back empty:
//!    a rebuild covers the retained log only.

use jiff::Timestamp;
use serde_json::{Map, Value};
use sqlx::Row;

use super::{pg_micros, unsigned};
use crate::error::StoreError;
use crate::record::{CostSource, LogRecord, to_i64};
use crate::rollup::Rollups;
use crate::store::{Pool, Store};

/// Rows read per statement while rebuilding: bounded memory per page, few round trips.
const PAGE_ROWS: i64 = 10_000;

/// The priced fields of one log row, handed to the repricing function of [`Store::recompute`].
#[derive(Debug, Clone, Copy)]
pub struct RepriceInput<'a> {
    /// Provider name.
    pub provider: &'a str,
    /// Model name.
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
    /// Reasoning tokens.
    pub tokens_reasoning: u64,
    /// The stored `cost_source`: `catalog`, `estimated` or `unpriced` (`custom` rows are never repriced).
    pub cost_source: &'a str,
}

/// Reprices a row: the new cost in nano-dollars and `cost_source`, or `None` to keep the stored ones. The store
/// stays free of the price catalog; the caller supplies it.
pub type Reprice<'f> = dyn Fn(&RepriceInput<'_>) -> Option<(u64, &'static str)> + Sync + 'f;

/// What a rebuild did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecomputeReport {
    /// Log rows read.
    pub log_rows: u64,
    /// Log rows whose cost or cost source was rewritten.
    pub repriced_rows: u64,
    /// Rollup rows written (hourly + metadata).
    pub rollup_rows: u64,
}

impl Store {
    /// Rebuilds `spend_rollup_hourly` and `spend_rollup_metadata_hourly` from the log as stored (no repricing).
    pub async fn rebuild_rollups(&self) -> Result<RecomputeReport, StoreError> {
        self.recompute(&|_| None, &mut |_| {}).await
    }

    /// Reprices the log with `reprice`, rebuilds both rollups from it, and passes every row (as repriced, in
    /// `(created_at, id)` order) to `visit` (see the module docs).
    pub async fn recompute(
        &self,
        reprice: &Reprice<'_>,
        visit: &mut (dyn FnMut(&LogRecord) + Send),
    ) -> Result<RecomputeReport, StoreError> {
        let keys = &self.options().rollup_metadata_keys;
        let max_keys = self.options().max_rollup_keys_per_row;
        let mut rollups = Rollups::default();
        let mut report = RecomputeReport::default();
        // Repriced rows of the current page: (id, cost_nanos, cost_source).
        let mut updates: Vec<(String, i64, &'static str)> = Vec::new();
        macro_rules! add_page {
            ($rows:expr, $after:ident) => {{
                let rows = $rows;
                for row in &rows {
                    let mut record = record(
                        row.try_get("created_us")?,
                        row.try_get("id")?,
                        row.try_get("provider")?,
                        row.try_get("model")?,
                        row.try_get("gateway")?,
                        row.try_get("success")?,
                        [
                            row.try_get("tokens_in")?,
                            row.try_get("tokens_out")?,
                            row.try_get("tokens_cached")?,
                            row.try_get("tokens_reasoning")?,
                            row.try_get("cost_nanos")?,
                        ],
                        &row.try_get::<String, _>("metadata_text")?,
                    );
                    let source: String = row.try_get("cost_source")?;
                    record.cost_source = cost_source(&source);
                    if record.cost_source != CostSource::Custom {
                        let input = RepriceInput {
                            provider: &record.provider,
                            model: &record.model,
                            created_at: record.created_at,
                            tokens_in: record.tokens_in,
                            tokens_cached: record.tokens_cached,
                            tokens_cache_write: unsigned(row.try_get("tokens_cache_write")?),
                            tokens_out: record.tokens_out,
                            tokens_reasoning: record.tokens_reasoning,
                            cost_source: &source,
                        };
                        if let Some((cost, new_source)) = reprice(&input)
                            && (cost != record.cost_nanos || new_source != source)
                        {
                            record.cost_nanos = cost;
                            record.cost_source = cost_source(new_source);
                            updates.push((record.id.clone(), to_i64(cost, "cost_nanos")?, new_source));
                        }
                    }
                    rollups.add(&record, keys, max_keys);
                    visit(&record);
                    $after = Some((record.created_at.as_microsecond(), record.id));
                }
                report.log_rows += rows.len() as u64;
                report.repriced_rows += updates.len() as u64;
                rows.len() as i64
            }};
        }
        match self.pool() {
            Pool::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                sqlx::query("LOCK TABLE spend_rollup_hourly, spend_rollup_metadata_hourly IN EXCLUSIVE MODE")
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("DELETE FROM spend_rollup_hourly").execute(&mut *tx).await?;
                sqlx::query("DELETE FROM spend_rollup_metadata_hourly").execute(&mut *tx).await?;
                let micros = pg_micros("created_at");
                let first = format!(
                    "SELECT {COLUMNS}, {micros} AS created_us, metadata::text AS metadata_text FROM request_logs
                     ORDER BY created_at, id LIMIT $1"
                );
                let next = format!(
                    "SELECT {COLUMNS}, {micros} AS created_us, metadata::text AS metadata_text FROM request_logs
                     WHERE (created_at, id) > ('epoch'::timestamptz + interval '1 microsecond' * $2, $3)
                     ORDER BY created_at, id LIMIT $1"
                );
                let mut after: Option<(i64, String)> = None;
                loop {
                    let rows = match &after {
                        None => {
                            sqlx::query(sqlx::AssertSqlSafe(first.clone())).bind(PAGE_ROWS).fetch_all(&mut *tx).await?
                        }
                        Some((us, id)) => {
                            sqlx::query(sqlx::AssertSqlSafe(next.clone()))
                                .bind(PAGE_ROWS)
                                .bind(*us)
                                .bind(id.clone())
                                .fetch_all(&mut *tx)
                                .await?
                        }
                    };
                    let read = add_page!(rows, after);
                    if !updates.is_empty() {
                        let (ids, costs, sources): (Vec<_>, Vec<_>, Vec<_>) = updates.drain(..).collect();
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
                    if read < PAGE_ROWS {
                        break;
                    }
                }
                rollups.upsert_postgres(&mut tx).await?;
                tx.commit().await?;
            }
            Pool::Sqlite(pool) => {
                let mut tx = pool.begin().await?;
                sqlx::query("DELETE FROM spend_rollup_hourly").execute(&mut *tx).await?;
                sqlx::query("DELETE FROM spend_rollup_metadata_hourly").execute(&mut *tx).await?;
                let first = format!(
                    "SELECT {COLUMNS}, created_at AS created_us, metadata AS metadata_text FROM request_logs
                     ORDER BY created_at, id LIMIT ?1"
                );
                let next = format!(
                    "SELECT {COLUMNS}, created_at AS created_us, metadata AS metadata_text FROM request_logs
                     WHERE (created_at, id) > (?2, ?3) ORDER BY created_at, id LIMIT ?1"
                );
                let mut after: Option<(i64, String)> = None;
                loop {
                    let rows = match &after {
                        None => {
                            sqlx::query(sqlx::AssertSqlSafe(first.clone())).bind(PAGE_ROWS).fetch_all(&mut *tx).await?
                        }
                        Some((us, id)) => {
                            sqlx::query(sqlx::AssertSqlSafe(next.clone()))
                                .bind(PAGE_ROWS)
                                .bind(*us)
                                .bind(id.clone())
                                .fetch_all(&mut *tx)
                                .await?
                        }
                    };
                    let read = add_page!(rows, after);
                    for (id, cost, source) in updates.drain(..) {
                        sqlx::query("UPDATE request_logs SET cost_nanos = ?, cost_source = ? WHERE id = ?")
                            .bind(cost)
                            .bind(source)
                            .bind(id)
                            .execute(&mut *tx)
                            .await?;
                    }
                    if read < PAGE_ROWS {
                        break;
                    }
                }
                rollups.upsert_sqlite(&mut tx).await?;
                tx.commit().await?;
            }
        }
        report.rollup_rows = (rollups.hourly.len() + rollups.metadata.len()) as u64;
        Ok(report)
    }
}

const COLUMNS: &str = "id, provider, model, gateway, success, tokens_in, tokens_out, tokens_cached, \
     tokens_reasoning, cost_nanos, cost_source, tokens_cache_write";

/// The [`CostSource`] stored as `name` (the column's CHECK allows only the four names).
fn cost_source(name: &str) -> CostSource {
    match name {
        "custom" => CostSource::Custom,
        "estimated" => CostSource::Estimated,
        "unpriced" => CostSource::Unpriced,
        _ => CostSource::Catalog,
    }
}

/// The fields of a log row that the rollups read, as a [`LogRecord`] (the rest left empty).
#[expect(clippy::too_many_arguments, reason = "one call site, mirrors the selected columns")]
fn record(
    created_us: i64,
    id: String,
    provider: String,
    model: String,
    gateway: Option<String>,
    success: bool,
    [tokens_in, tokens_out, tokens_cached, tokens_reasoning, cost_nanos]: [i64; 5],
    metadata: &str,
) -> LogRecord {
    LogRecord {
        id,
        created_at: Timestamp::from_microsecond(created_us).unwrap_or(Timestamp::UNIX_EPOCH),
        gateway: gateway.filter(|g| !g.is_empty()),
        provider,
        model,
        path: String::new(),
        status: 0,
        success,
        cached: false,
        stream: false,
        tokens_in: unsigned(tokens_in),
        tokens_out: unsigned(tokens_out),
        tokens_cached: unsigned(tokens_cached),
        tokens_cache_write: 0,
        tokens_reasoning: unsigned(tokens_reasoning),
        cost_nanos: unsigned(cost_nanos),
        cost_source: CostSource::Catalog,
        duration_ms: 0,
        ttfb_ms: None,
        metadata: serde_json::from_str::<Map<String, Value>>(metadata).unwrap_or_default(),
        event_id: None,
        step: 0,
        rule_decisions: Value::Null,
        error: None,
        request_body: None,
        response_body: None,
    }
}

//! Reading `request_logs` back in `(created_at, id)` pages inside a caller's transaction, as the fields the rollups
//! and repricing need, and the walk a recompute and a metadata key backfill share: read a page, add it up, write
//! the sums out whenever [`FLUSH_ROWS`] are held.

use jiff::Timestamp;
use serde_json::{Map, Value};
use sqlx::QueryBuilder;

use crate::backend::Backend;
use crate::error::StoreError;
use crate::model::{LogRecord, parse_cost_source};
use crate::rollup::{FLUSH_ROWS, RollupBackend, Rollups};
use crate::sql::{ReadRow, unsigned};
use tollgate_accounting::CostSource;

/// Rows read per statement: bounded memory per page, few round trips.
pub(crate) const PAGE_ROWS: i64 = 10_000;

const COLUMNS: &str = "id, provider, model, gateway, success, tokens_in, tokens_out, tokens_cached, \
     tokens_reasoning, cost_nanos, cost_source, tokens_cache_write, cached, saved_nanos";

/// The scan's backend differences (`postgres/log_scan.rs`, `sqlite/log_scan.rs`).
pub(crate) trait LogScanBackend: Backend {
    /// Pushes ` AND <metadata has at least one of keys>` where the backend answers it from an index (Postgres'
    /// `?|`), else nothing: the caller skips the rows without the key anyway.
    fn push_has_any_key(query: &mut QueryBuilder<Self>, keys: &[String]);

    /// Rewrites the cost and cost source of the rows `(id, cost_nanos, cost_source)` (a recompute's repricing).
    async fn update_costs(conn: &mut Self::Connection, updates: &[CostUpdate]) -> Result<(), StoreError>;
}

/// A repriced row: `(id, cost_nanos, cost_source)`.
pub(crate) type CostUpdate = (String, i64, &'static str);

/// A walk over the log, oldest row first: each call returns the next page, an empty one at the end.
#[derive(Debug, Default)]
pub(crate) struct LogScan {
    /// `(created_at µs, id)` of the last row returned.
    after: Option<(i64, String)>,
    done: bool,
}

impl LogScan {
    /// The next page. With `having`, the backend may leave out rows whose metadata has none of these keys.
    pub(crate) async fn next<B: LogScanBackend>(
        &mut self,
        conn: &mut B::Connection,
        having: Option<&[String]>,
    ) -> Result<Vec<LogRecord>, StoreError> {
        if self.done {
            return Ok(Vec::new());
        }
        let mut b = QueryBuilder::<B>::new(format!(
            "SELECT {COLUMNS}, {} AS created_us, {} AS metadata_text FROM request_logs WHERE 1 = 1",
            B::exact_micros("created_at"),
            B::json_text("metadata"),
        ));
        if let Some(keys) = having {
            B::push_has_any_key(&mut b, keys);
        }
        if let Some((us, id)) = &self.after {
            b.push(" AND (created_at, id) > (");
            B::push_time(&mut b, *us);
            b.push(", ");
            B::push_text(&mut b, id.clone());
            b.push(")");
        }
        b.push(" ORDER BY created_at, id LIMIT ");
        B::push_int(&mut b, PAGE_ROWS);
        let rows = B::fetch_built(conn, &mut b).await?;
        let page = rows.iter().map(decode).collect::<Result<Vec<_>, sqlx::Error>>()?;
        self.advance(&page);
        Ok(page)
    }

    fn advance(&mut self, page: &[LogRecord]) {
        match page.last() {
            Some(last) if page.len() as i64 >= PAGE_ROWS => {
                self.after = Some((last.created_at.as_microsecond(), last.id.clone()));
            }
            _ => self.done = true,
        }
    }
}

/// Walks the whole log (with `having`, see [`LogScan::next`]): `add` adds each page to `rollups` and returns the
/// page's repriced rows, which are written before the next page is read; the sums are written out whenever
/// [`FLUSH_ROWS`] are held, and at the end, so memory stays bounded however long the log is (upserts add, so
/// writing in parts sums the same). Returns the rollup rows written (a row written in two parts counts twice).
pub(crate) async fn walk<B: LogScanBackend + RollupBackend>(
    conn: &mut B::Connection,
    having: Option<&[String]>,
    rollups: &mut Rollups,
    mut add: impl FnMut(Vec<LogRecord>, &mut Rollups) -> Vec<CostUpdate> + Send,
) -> Result<u64, StoreError> {
    let mut scan = LogScan::default();
    let mut written = 0;
    loop {
        let page = scan.next::<B>(conn, having).await?;
        if page.is_empty() {
            break;
        }
        let updates = add(page, rollups);
        B::update_costs(conn, &updates).await?;
        if rollups.len() >= FLUSH_ROWS {
            written += rollups.len() as u64;
            B::upsert_rollups(conn, &std::mem::take(rollups)).await?;
        }
    }
    written += rollups.len() as u64;
    B::upsert_rollups(conn, &std::mem::take(rollups)).await?;
    Ok(written)
}

/// One selected row as a [`LogRecord`]: the fields the rollups and repricing read, the rest left empty.
fn decode(row: &impl ReadRow) -> Result<LogRecord, sqlx::Error> {
    let created_us = row.int("created_us")?;
    let gateway = row.text_opt("gateway")?;
    let metadata = row.text("metadata_text")?;
    let source = row.text("cost_source")?;
    Ok(LogRecord {
        id: row.text("id")?,
        created_at: Timestamp::from_microsecond(created_us).unwrap_or(Timestamp::UNIX_EPOCH),
        gateway: gateway.filter(|g| !g.is_empty()),
        provider: row.text("provider")?,
        model: row.text("model")?,
        path: String::new(),
        status: 0,
        success: row.flag("success")?,
        cached: row.flag("cached")?,
        stream: false,
        tokens_in: unsigned(row.int("tokens_in")?),
        tokens_out: unsigned(row.int("tokens_out")?),
        tokens_cached: unsigned(row.int("tokens_cached")?),
        tokens_cache_write: unsigned(row.int("tokens_cache_write")?),
        tokens_reasoning: unsigned(row.int("tokens_reasoning")?),
        cost_nanos: unsigned(row.int("cost_nanos")?),
        cost_source: cost_source(&source),
        duration_ms: 0,
        ttfb_ms: None,
        metadata: serde_json::from_str::<Map<String, Value>>(&metadata).unwrap_or_default(),
        event_id: None,
        step: 0,
        rule_decisions: Value::Null,
        error: None,
        request_body: None,
        response_body: None,
        listed: true,
        cache_key: None,
        saved_nanos: unsigned(row.int("saved_nanos")?),
    })
}

/// The [`CostSource`] stored as `name` (the column's CHECK allows only the four names).
pub(crate) fn cost_source(name: &str) -> CostSource {
    parse_cost_source(name).unwrap_or(CostSource::Catalog)
}

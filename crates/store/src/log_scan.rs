//! Reading `request_logs` back in `(created_at, id)` pages inside a caller's transaction, as the fields the rollups
//! and repricing need: what a recompute and a metadata key backfill both walk.

use jiff::Timestamp;
use serde_json::{Map, Value};
use sqlx::{Postgres, QueryBuilder, Row, Sqlite, Transaction};

use crate::error::StoreError;
use crate::sql::{PG_FROM_MICROS, pg_micros, unsigned};
use tollgate_accounting::CostSource;

use crate::model::{LogRecord, parse_cost_source};

/// Rows read per statement: bounded memory per page, few round trips.
pub(crate) const PAGE_ROWS: i64 = 10_000;

const COLUMNS: &str = "id, provider, model, gateway, success, tokens_in, tokens_out, tokens_cached, \
     tokens_reasoning, cost_nanos, cost_source, tokens_cache_write";

/// A walk over the log, oldest row first: each call returns the next page, an empty one at the end.
#[derive(Debug, Default)]
pub(crate) struct LogScan {
    /// `(created_at µs, id)` of the last row returned.
    after: Option<(i64, String)>,
    done: bool,
}

impl LogScan {
    /// The next page on Postgres. With `having`, only rows whose metadata has at least one of these keys
    /// (`metadata ?| keys`).
    pub(crate) async fn next_postgres(
        &mut self,
        tx: &mut Transaction<'_, Postgres>,
        having: Option<&[String]>,
    ) -> Result<Vec<LogRecord>, StoreError> {
        if self.done {
            return Ok(Vec::new());
        }
        let micros = pg_micros("created_at");
        let mut b = QueryBuilder::<Postgres>::new(format!(
            "SELECT {COLUMNS}, {micros} AS created_us, metadata::text AS metadata_text FROM request_logs WHERE TRUE"
        ));
        if let Some(keys) = having {
            b.push(" AND metadata ?| ").push_bind(keys.to_vec()).push("::text[]");
        }
        if let Some((us, id)) = &self.after {
            b.push(" AND (created_at, id) > (").push(PG_FROM_MICROS).push_bind(*us);
            b.push(", ").push_bind(id.clone()).push(")");
        }
        b.push(" ORDER BY created_at, id LIMIT ").push_bind(PAGE_ROWS);
        let rows = b.build().fetch_all(&mut **tx).await?;
        let page = rows.iter().map(decode).collect::<Result<Vec<_>, StoreError>>()?;
        self.advance(&page);
        Ok(page)
    }

    /// The next page on SQLite (every row: the caller filters).
    pub(crate) async fn next_sqlite(&mut self, tx: &mut Transaction<'_, Sqlite>) -> Result<Vec<LogRecord>, StoreError> {
        if self.done {
            return Ok(Vec::new());
        }
        let mut b = QueryBuilder::<Sqlite>::new(format!(
            "SELECT {COLUMNS}, created_at AS created_us, metadata AS metadata_text FROM request_logs WHERE 1 = 1"
        ));
        if let Some((us, id)) = &self.after {
            b.push(" AND (created_at, id) > (").push_bind(*us).push(", ").push_bind(id.clone()).push(")");
        }
        b.push(" ORDER BY created_at, id LIMIT ").push_bind(PAGE_ROWS);
        let rows = b.build().fetch_all(&mut **tx).await?;
        let page = rows.iter().map(decode).collect::<Result<Vec<_>, StoreError>>()?;
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

/// One selected row as a [`LogRecord`]: the fields the rollups and repricing read, the rest left empty.
fn decode<R>(row: &R) -> Result<LogRecord, StoreError>
where
    R: Row,
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> bool: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let created_us: i64 = row.try_get("created_us")?;
    let gateway: Option<String> = row.try_get("gateway")?;
    let metadata: String = row.try_get("metadata_text")?;
    let source: String = row.try_get("cost_source")?;
    Ok(LogRecord {
        id: row.try_get("id")?,
        created_at: Timestamp::from_microsecond(created_us).unwrap_or(Timestamp::UNIX_EPOCH),
        gateway: gateway.filter(|g| !g.is_empty()),
        provider: row.try_get("provider")?,
        model: row.try_get("model")?,
        path: String::new(),
        status: 0,
        success: row.try_get("success")?,
        cached: false,
        stream: false,
        tokens_in: unsigned(row.try_get("tokens_in")?),
        tokens_out: unsigned(row.try_get("tokens_out")?),
        tokens_cached: unsigned(row.try_get("tokens_cached")?),
        tokens_cache_write: unsigned(row.try_get("tokens_cache_write")?),
        tokens_reasoning: unsigned(row.try_get("tokens_reasoning")?),
        cost_nanos: unsigned(row.try_get("cost_nanos")?),
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
        saved_nanos: 0,
    })
}

/// The [`CostSource`] stored as `name` (the column's CHECK allows only the four names).
pub(crate) fn cost_source(name: &str) -> CostSource {
    parse_cost_source(name).unwrap_or(CostSource::Catalog)
}

//! `request_logs` reads: filtered pages, newest first, with keyset pagination on `(created_at, id)` (the
//! `request_logs_created_idx` order, so page N costs what page 1 costs), and single rows by id.

use jiff::Timestamp;
use serde_json::{Map, Value};
use sqlx::QueryBuilder;
use tollgate_limits::nanos_to_usd;

use super::{Cursor, LogEntry, LogFilter, QueryBackend, QueryError};
use crate::backend::Backend;
use crate::sql::{ReadRow, to_i64, unsigned};
use crate::store::{Pool, Store};

/// Columns of a list page (no bodies: they can be large and the list never shows them).
const LIST_COLUMNS: &str = "id, gateway, provider, model, path, CAST(status AS BIGINT) AS status, success, cached, stream, tokens_in, \
     tokens_out, tokens_cached, tokens_reasoning, cost_nanos, cost_source, duration_ms, ttfb_ms, event_id, \
     CAST(step AS BIGINT) AS step, \
     error, NULL AS request_body, NULL AS response_body, cache_key, saved_nanos";
const ONE_COLUMNS: &str = "id, gateway, provider, model, path, CAST(status AS BIGINT) AS status, success, cached, stream, tokens_in, \
     tokens_out, tokens_cached, tokens_reasoning, cost_nanos, cost_source, duration_ms, ttfb_ms, event_id, \
     CAST(step AS BIGINT) AS step, \
     error, request_body, response_body, cache_key, saved_nanos";

/// A fetched row as a [`LogEntry`] (same column names and types on both backends thanks to the casts in `select`).
fn entry(row: &impl ReadRow) -> Result<LogEntry, sqlx::Error> {
    let created_us = row.int("created_us")?;
    let metadata = row.text("metadata_text")?;
    let decisions = row.text("decisions_text")?;
    let cost_nanos = unsigned(row.int("cost_nanos")?);
    Ok(LogEntry {
        id: row.text("id")?,
        created_at: Timestamp::from_microsecond(created_us).unwrap_or(Timestamp::UNIX_EPOCH),
        gateway: row.text_opt("gateway")?,
        provider: row.text("provider")?,
        model: row.text("model")?,
        path: row.text("path")?,
        status: u16::try_from(row.int("status")?).unwrap_or(0),
        success: row.flag("success")?,
        cached: row.flag("cached")?,
        stream: row.flag("stream")?,
        tokens_in: unsigned(row.int("tokens_in")?),
        tokens_out: unsigned(row.int("tokens_out")?),
        tokens_cached: unsigned(row.int("tokens_cached")?),
        tokens_reasoning: unsigned(row.int("tokens_reasoning")?),
        cost_usd: nanos_to_usd(cost_nanos),
        cost_nanos,
        cost_source: row.text("cost_source")?,
        duration_ms: unsigned(row.int("duration_ms")?),
        ttfb_ms: row.int_opt("ttfb_ms")?.map(unsigned),
        metadata: serde_json::from_str::<Map<String, Value>>(&metadata).unwrap_or_default(),
        event_id: row.text_opt("event_id")?,
        step: u32::try_from(row.int("step")?).unwrap_or(0),
        rule_decisions: serde_json::from_str(&decisions).unwrap_or(Value::Null),
        error: row.text_opt("error")?,
        request_body: row.text_opt("request_body")?,
        response_body: row.text_opt("response_body")?,
        cache_key: row.text_opt("cache_key")?,
        saved_usd: nanos_to_usd(unsigned(row.int("saved_nanos")?)),
    })
}

impl Store {
    /// Up to `limit` rows matching `filter`, newest first, after `cursor`; and the cursor of the next page when
    /// there may be one. Spend-only rows (`cf-aig-collect-log: false`) are never listed.
    pub async fn logs(
        &self,
        filter: &LogFilter,
        cursor: Option<&Cursor>,
        limit: u32,
    ) -> Result<(Vec<LogEntry>, Option<Cursor>), QueryError> {
        let limit = limit.max(1);
        // One row more than asked says whether a next page exists without a COUNT.
        let fetch = i64::from(limit) + 1;
        let mut entries = match self.pool() {
            Pool::Postgres(pool) => list(pool, filter, cursor, fetch).await?,
            Pool::Sqlite(pool) => list(pool, filter, cursor, fetch).await?,
        };
        let next = if entries.len() > limit as usize {
            entries.truncate(limit as usize);
            entries.last().map(|e| Cursor { created_at_us: e.created_at.as_microsecond(), id: e.id.clone() })
        } else {
            None
        };
        Ok((entries, next))
    }

    /// One row by id, with its bodies when stored; `None` for a spend-only row.
    pub async fn log(&self, id: &str) -> Result<Option<LogEntry>, QueryError> {
        match self.pool() {
            Pool::Postgres(pool) => one(pool, id).await,
            Pool::Sqlite(pool) => one(pool, id).await,
        }
    }
}

/// [`Store::logs`]' rows (one more than a page).
async fn list<B: QueryBackend>(
    pool: &sqlx::Pool<B>,
    filter: &LogFilter,
    cursor: Option<&Cursor>,
    fetch: i64,
) -> Result<Vec<LogEntry>, QueryError> {
    let rows = B::fetch_built(&mut *pool.acquire().await?, &mut list_sql::<B>(filter, cursor, fetch)?).await?;
    Ok(rows.iter().map(entry).collect::<Result<Vec<_>, sqlx::Error>>()?)
}

/// [`Store::log`].
async fn one<B: Backend>(pool: &sqlx::Pool<B>, id: &str) -> Result<Option<LogEntry>, QueryError> {
    let mut b = select::<B>(ONE_COLUMNS);
    b.push(" WHERE listed AND id = ");
    B::push_text(&mut b, id.to_owned());
    let rows = B::fetch_built(&mut *pool.acquire().await?, &mut b).await?;
    Ok(rows.first().map(entry).transpose()?)
}

/// `SELECT <columns>, created_us, metadata_text, decisions_text FROM request_logs`, with the casts that give
/// both backends the same column types (`BIGINT` integers, text JSON).
fn select<B: Backend>(columns: &str) -> QueryBuilder<B> {
    QueryBuilder::new(format!(
        "SELECT {columns}, {} AS created_us, {} AS metadata_text, {} AS decisions_text FROM request_logs",
        B::exact_micros("created_at"),
        B::json_text("metadata"),
        B::json_text("rule_decisions"),
    ))
}

fn list_sql<D: QueryBackend>(
    filter: &LogFilter,
    cursor: Option<&Cursor>,
    fetch: i64,
) -> Result<QueryBuilder<D>, QueryError> {
    let mut b = select::<D>(LIST_COLUMNS);
    b.push(" WHERE listed");
    if let Some(provider) = &filter.provider {
        b.push(" AND provider = ");
        D::push_text(&mut b, provider.clone());
    }
    if let Some(model) = &filter.model {
        b.push(" AND model = ");
        D::push_text(&mut b, model.clone());
    }
    if let Some(status) = filter.status {
        b.push(" AND status = ");
        D::push_int(&mut b, i64::from(status));
    }
    if let Some(success) = filter.success {
        b.push(" AND success = ");
        D::push_bool(&mut b, success);
    }
    if let Some(cached) = filter.cached {
        b.push(" AND cached = ");
        D::push_bool(&mut b, cached);
    }
    let cost = |value: u64, parameter: &'static str| {
        to_i64(value, "cost").map_err(|_| QueryError::Invalid { parameter, message: "too large".to_owned() })
    };
    if let Some(min) = filter.min_cost_nanos {
        b.push(" AND cost_nanos >= ");
        D::push_int(&mut b, cost(min, "min_cost")?);
    }
    if let Some(max) = filter.max_cost_nanos {
        b.push(" AND cost_nanos <= ");
        D::push_int(&mut b, cost(max, "max_cost")?);
    }
    if let Some(start) = filter.start {
        b.push(" AND created_at >= ");
        D::push_time(&mut b, start.as_microsecond());
    }
    if let Some(end) = filter.end {
        b.push(" AND created_at < ");
        D::push_time(&mut b, end.as_microsecond());
    }
    for (key, value) in &filter.metadata {
        D::push_metadata_equals(&mut b, key, value);
    }
    if let Some(cursor) = cursor {
        b.push(" AND (created_at, id) < (");
        D::push_time(&mut b, cursor.created_at_us);
        b.push(", ");
        D::push_text(&mut b, cursor.id.clone());
        b.push(")");
    }
    b.push(" ORDER BY created_at DESC, id DESC LIMIT ");
    D::push_int(&mut b, fetch);
    Ok(b)
}

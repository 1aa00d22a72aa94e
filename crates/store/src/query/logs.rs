//! `request_logs` reads: filtered pages, newest first, with keyset pagination on `(created_at, id)` (the
//! `request_logs_created_idx` order, so page N costs what page 1 costs), and single rows by id.

use jiff::Timestamp;
use serde_json::{Map, Value};
use sqlx::{Postgres, QueryBuilder, Sqlite};
use tollgate_limits::nanos_to_usd;

use super::{Cursor, LogEntry, LogFilter, QueryError};
use crate::sql::{Dialect, ReadRow, pg_micros, to_i64, unsigned};
use crate::store::{Pool, Store, StoreKind};

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
            Pool::Postgres(pool) => {
                let rows =
                    list_sql::<Postgres>(StoreKind::Postgres, filter, cursor, fetch)?.build().fetch_all(pool).await?;
                rows.iter().map(entry).collect::<Result<Vec<_>, sqlx::Error>>()?
            }
            Pool::Sqlite(pool) => {
                let rows =
                    list_sql::<Sqlite>(StoreKind::Sqlite, filter, cursor, fetch)?.build().fetch_all(pool).await?;
                rows.iter().map(entry).collect::<Result<Vec<_>, sqlx::Error>>()?
            }
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
        Ok(match self.pool() {
            Pool::Postgres(pool) => {
                let mut b = select::<Postgres>(StoreKind::Postgres, ONE_COLUMNS);
                b.push(" WHERE listed AND id = ").push_bind(id.to_owned());
                let row = b.build().fetch_optional(pool).await?;
                row.as_ref().map(entry).transpose()?
            }
            Pool::Sqlite(pool) => {
                let mut b = select::<Sqlite>(StoreKind::Sqlite, ONE_COLUMNS);
                b.push(" WHERE listed AND id = ").push_bind(id.to_owned());
                let row = b.build().fetch_optional(pool).await?;
                row.as_ref().map(entry).transpose()?
            }
        })
    }
}

/// `SELECT <columns>, created_us, metadata_text, decisions_text FROM request_logs`, with the casts that give
/// both backends the same column types (`BIGINT` integers, text JSON).
fn select<D: Dialect>(kind: StoreKind, columns: &str) -> QueryBuilder<D> {
    let extra = match kind {
        StoreKind::Postgres => format!(
            "{} AS created_us, metadata::text AS metadata_text, rule_decisions::text AS decisions_text",
            pg_micros("created_at")
        ),
        StoreKind::Sqlite => {
            "created_at AS created_us, metadata AS metadata_text, rule_decisions AS decisions_text".to_owned()
        }
    };
    QueryBuilder::new(format!("SELECT {columns}, {extra} FROM request_logs"))
}

fn list_sql<D: Dialect>(
    kind: StoreKind,
    filter: &LogFilter,
    cursor: Option<&Cursor>,
    fetch: i64,
) -> Result<QueryBuilder<D>, QueryError> {
    let mut b = select::<D>(kind, LIST_COLUMNS);
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
        push_metadata(&mut b, kind, key, value);
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

/// `metadata.<key>=value`, the value compared as text (see [`LogFilter::metadata`]).
///
/// Postgres: containment (`@>`), which the GIN index answers, tried with the value as a JSON string and, when it
/// reads as a JSON number or boolean, as that too. SQLite: `json_each` over the row's object, the scalar rendered
/// as text (`json_each` gives booleans as 1/0, so its `type` restores `true`/`false`).
fn push_metadata<D: Dialect>(b: &mut QueryBuilder<D>, kind: StoreKind, key: &str, value: &str) {
    match kind {
        StoreKind::Postgres => {
            let mut as_string = Map::new();
            as_string.insert(key.to_owned(), Value::String(value.to_owned()));
            b.push(" AND (metadata @> CAST(");
            D::push_text(b, Value::Object(as_string).to_string());
            b.push(" AS jsonb)");
            if let Ok(scalar @ (Value::Number(_) | Value::Bool(_))) = serde_json::from_str::<Value>(value) {
                let mut as_scalar = Map::new();
                as_scalar.insert(key.to_owned(), scalar);
                b.push(" OR metadata @> CAST(");
                D::push_text(b, Value::Object(as_scalar).to_string());
                b.push(" AS jsonb)");
            }
            b.push(")");
        }
        StoreKind::Sqlite => {
            b.push(" AND EXISTS (SELECT 1 FROM json_each(request_logs.metadata) AS m WHERE m.key = ");
            D::push_text(b, key.to_owned());
            b.push(
                " AND (CASE m.type WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' \
                 ELSE CAST(m.value AS TEXT) END) = ",
            );
            D::push_text(b, value.to_owned());
            b.push(")");
        }
    }
}

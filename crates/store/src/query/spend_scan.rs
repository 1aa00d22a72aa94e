//! `/spend` for a metadata key the rollups do not count: a bounded scan of the log rows that have the key, summed
//! exactly as the rollups would have summed them (same hour and day bucketing, same value text), so a report
//! reads alike from either source. The scan reads at most a given number of rows (oldest first) and says when it
//! stopped short; it covers the retained log only (retention deletes rows, never rollups).

use jiff::Timestamp;
use serde_json::{Map, Value};
use sqlx::QueryBuilder;

use super::spend::{GroupSums, GroupValue, HOUR_US, ceil_to, group_rows};
use super::{GroupBy, QueryBackend, QueryError, SpendReport, SpendSource};
use crate::model::{MAX_METADATA_VALUE_BYTES, truncated};
use crate::rollup::DAY_US;
use crate::sql::ReadRow;
use crate::store::{Pool, Store};

impl Store {
    /// [`Store::spend`] for any grouping: from the rollups when they count the metadata key (or there is none),
    /// else from at most `max_scan_rows` log rows that have the key ([`SpendSource::LogScan`], `truncated` when
    /// more rows had it). An hour counts when it starts in `[from, to)`, whichever source answers.
    pub async fn spend_report(
        &self,
        from: Timestamp,
        to: Timestamp,
        group_by: &[GroupBy],
        max_scan_rows: u64,
    ) -> Result<SpendReport, QueryError> {
        match self.spend(from, to, group_by).await {
            Ok(rows) => Ok(SpendReport { rows, source: SpendSource::Rollup, truncated: false }),
            Err(QueryError::NotRolledUp { key, .. }) => {
                let (rows, truncated) = self.spend_scan(from, to, group_by, &key, max_scan_rows).await?;
                Ok(SpendReport { rows, source: SpendSource::LogScan, truncated })
            }
            Err(error) => Err(error),
        }
    }

    async fn spend_scan(
        &self,
        from: Timestamp,
        to: Timestamp,
        group_by: &[GroupBy],
        key: &str,
        max_rows: u64,
    ) -> Result<(Vec<crate::SpendGroupRow>, bool), QueryError> {
        // The rows whose hour starts in [from, to): created at or after the first such hour, before the first hour
        // at or after `to`.
        let lo = ceil_to(from.as_microsecond(), HOUR_US);
        let hi = ceil_to(to.as_microsecond(), HOUR_US);
        // One row more than the bound says whether the scan was cut.
        let fetch = i64::try_from(max_rows.max(1)).unwrap_or(i64::MAX - 1).saturating_add(1);
        let (sums, truncated) = match self.pool() {
            Pool::Postgres(pool) => scan_rows(&scan(pool, key, lo, hi, fetch).await?, group_by, key, max_rows)?,
            Pool::Sqlite(pool) => scan_rows(&scan(pool, key, lo, hi, fetch).await?, group_by, key, max_rows)?,
        };
        Ok((group_rows(sums, group_by), truncated))
    }
}

/// The retained rows with metadata `key` whose hour starts in `[lo, hi)`, oldest first, at most `fetch`.
async fn scan<B: QueryBackend>(
    pool: &sqlx::Pool<B>,
    key: &str,
    lo: i64,
    hi: i64,
    fetch: i64,
) -> Result<Vec<B::Row>, QueryError> {
    let mut b = QueryBuilder::<B>::new(format!(
        "SELECT provider, model, COALESCE(gateway, '') AS gateway, {} AS created_us, tokens_in,
             tokens_out, cost_nanos, cached, saved_nanos, {} AS metadata_text
         FROM request_logs WHERE 1 = 1",
        B::exact_micros("created_at"),
        B::json_text("metadata"),
    ));
    B::push_has_key(&mut b, key);
    b.push(" AND created_at >= ");
    B::push_time(&mut b, lo);
    b.push(" AND created_at < ");
    B::push_time(&mut b, hi);
    b.push(" ORDER BY created_at, id LIMIT ");
    B::push_int(&mut b, fetch);
    Ok(B::fetch_built(&mut *pool.acquire().await?, &mut b).await?)
}

/// The scanned rows as groups and sums (one request each), the first `max_rows` only; and whether there were more.
fn scan_rows(
    rows: &[impl ReadRow],
    group_by: &[GroupBy],
    key: &str,
    max_rows: u64,
) -> Result<(Vec<GroupSums>, bool), sqlx::Error> {
    let mut sums = Vec::new();
    let mut seen: u64 = 0;
    for row in rows {
        seen += 1;
        if seen > max_rows.max(1) {
            break;
        }
        if let Some(sum) = scan_row(row, group_by, key)? {
            sums.push(sum);
        }
    }
    Ok((sums, seen > max_rows.max(1)))
}

/// One scanned row's groups and sums, `None` when its metadata value for `key` is not a string, number or boolean.
fn scan_row(row: &impl ReadRow, group_by: &[GroupBy], key: &str) -> Result<Option<GroupSums>, sqlx::Error> {
    let metadata = row.text("metadata_text")?;
    let metadata = serde_json::from_str::<Map<String, Value>>(&metadata).unwrap_or_default();
    // The value text as the rollups store it (`Rollups::add_metadata`).
    let value = match metadata.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        _ => return Ok(None),
    };
    let value = truncated(&value, MAX_METADATA_VALUE_BYTES).replace('\0', "\u{FFFD}");
    let created_us = row.int("created_us")?;
    let mut groups = Vec::with_capacity(group_by.len());
    for group in group_by {
        groups.push(match group {
            GroupBy::Provider => GroupValue::Text(row.text("provider")?),
            GroupBy::Model => GroupValue::Text(row.text("model")?),
            GroupBy::Gateway => GroupValue::Text(row.text("gateway")?),
            GroupBy::Day => GroupValue::Micros(created_us.div_euclid(DAY_US) * DAY_US),
            GroupBy::Hour => GroupValue::Micros(created_us.div_euclid(HOUR_US) * HOUR_US),
            GroupBy::Metadata(_) => GroupValue::Text(value.clone()),
        });
    }
    let n = |v: i64| v.max(0);
    // Summed as the rollups sum them (`Measures::add`): a saving counts for a cached row only.
    let cached = row.flag("cached")?;
    let saved = if cached { n(row.int("saved_nanos")?) } else { 0 };
    Ok(Some((
        groups,
        [1, n(row.int("tokens_in")?), n(row.int("tokens_out")?), n(row.int("cost_nanos")?), i64::from(cached), saved],
    )))
}

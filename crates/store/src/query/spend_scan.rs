//! `/spend` for a metadata key the rollups do not count: a bounded scan of the log rows that have the key, summed
//! exactly as the rollups would have summed them (same hour and day bucketing, same value text), so a report
//! reads alike from either source. The scan reads at most a given number of rows (oldest first) and says when it
//! stopped short; it covers the retained log only (retention deletes rows, never rollups).

use jiff::Timestamp;
use serde_json::{Map, Value};
use sqlx::{Postgres, QueryBuilder, Row, Sqlite};

use super::spend::{GroupValue, HOUR_US, ceil_to, group_rows};
use super::{GroupBy, QueryError, SpendReport, SpendSource};
use crate::model::{MAX_METADATA_VALUE_BYTES, truncated};
use crate::rollup::DAY_US;
use crate::sql::pg_micros;
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
        let mut sums: Vec<(Vec<GroupValue>, [i64; 4])> = Vec::new();
        let mut seen: u64 = 0;
        macro_rules! collect {
            ($rows:expr) => {{
                for row in $rows {
                    seen += 1;
                    if seen > max_rows.max(1) {
                        break;
                    }
                    let metadata: String = row.try_get("metadata_text")?;
                    let metadata = serde_json::from_str::<Map<String, Value>>(&metadata).unwrap_or_default();
                    // The value text as the rollups store it (`Rollups::add_metadata`).
                    let value = match metadata.get(key) {
                        Some(Value::String(s)) => s.clone(),
                        Some(Value::Number(n)) => n.to_string(),
                        Some(Value::Bool(b)) => b.to_string(),
                        _ => continue,
                    };
                    let value = truncated(&value, MAX_METADATA_VALUE_BYTES).replace('\0', "\u{FFFD}");
                    let created_us: i64 = row.try_get("created_us")?;
                    let mut groups = Vec::with_capacity(group_by.len());
                    for group in group_by {
                        groups.push(match group {
                            GroupBy::Provider => GroupValue::Text(row.try_get("provider")?),
                            GroupBy::Model => GroupValue::Text(row.try_get("model")?),
                            GroupBy::Gateway => GroupValue::Text(row.try_get("gateway")?),
                            GroupBy::Day => GroupValue::Micros(created_us.div_euclid(DAY_US) * DAY_US),
                            GroupBy::Hour => GroupValue::Micros(created_us.div_euclid(HOUR_US) * HOUR_US),
                            GroupBy::Metadata(_) => GroupValue::Text(value.clone()),
                        });
                    }
                    let n = |v: i64| v.max(0);
                    sums.push((
                        groups,
                        [1, n(row.try_get("tokens_in")?), n(row.try_get("tokens_out")?), n(row.try_get("cost_nanos")?)],
                    ));
                }
            }};
        }
        match self.pool() {
            Pool::Postgres(pool) => {
                let mut b = QueryBuilder::<Postgres>::new(format!(
                    "SELECT provider, model, COALESCE(gateway, '') AS gateway, {} AS created_us, tokens_in,
                         tokens_out, cost_nanos, metadata::text AS metadata_text
                     FROM request_logs WHERE metadata ? ",
                    pg_micros("created_at")
                ));
                b.push_bind(key.to_owned());
                b.push(" AND created_at >= ").push(crate::sql::PG_FROM_MICROS).push_bind(lo);
                b.push(" AND created_at < ").push(crate::sql::PG_FROM_MICROS).push_bind(hi);
                b.push(" ORDER BY created_at, id LIMIT ").push_bind(fetch);
                collect!(b.build().fetch_all(pool).await?);
            }
            Pool::Sqlite(pool) => {
                let mut b = QueryBuilder::<Sqlite>::new(
                    "SELECT provider, model, COALESCE(gateway, '') AS gateway, created_at AS created_us, tokens_in,
                         tokens_out, cost_nanos, metadata AS metadata_text
                     FROM request_logs
                     WHERE EXISTS (SELECT 1 FROM json_each(request_logs.metadata) AS m WHERE m.key = ",
                );
                b.push_bind(key.to_owned());
                b.push(") AND created_at >= ").push_bind(lo);
                b.push(" AND created_at < ").push_bind(hi);
                b.push(" ORDER BY created_at, id LIMIT ").push_bind(fetch);
                collect!(b.build().fetch_all(pool).await?);
            }
        }
        let truncated = seen > max_rows.max(1);
        Ok((group_rows(sums, group_by), truncated))
    }
}

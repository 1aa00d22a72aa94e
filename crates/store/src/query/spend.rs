//! Totals and grouped spend, from `spend_rollup_hourly` and `spend_rollup_metadata_hourly` only: their size
//! follows hours × providers × models (× metadata values), not requests, so a 30-day report reads thousands of
//! rows however busy the gateway is. An hour counts when it starts in `[from, to)`.

use std::collections::BTreeMap;

use jiff::Timestamp;
use sqlx::{Postgres, QueryBuilder, Row, Sqlite};

use super::{GroupBy, QueryError, SpendGroupRow, StatsTotals, unsigned};
use crate::query::Dialect;
use crate::store::{Pool, Store};

const DAY_US: i64 = 86_400_000_000;

impl Store {
    /// Requests, tokens and cost of the hours starting in `[from, to)` (unbounded where `None`), and the providers
    /// seen there.
    pub async fn stats(&self, from: Option<Timestamp>, to: Option<Timestamp>) -> Result<StatsTotals, QueryError> {
        fn sql<D: Dialect>(from: Option<Timestamp>, to: Option<Timestamp>) -> QueryBuilder<D> {
            let mut b = QueryBuilder::new(
                "SELECT provider, CAST(SUM(requests) AS BIGINT) AS requests, CAST(SUM(tokens_in) AS BIGINT) AS ti,
                     CAST(SUM(tokens_out) AS BIGINT) AS tout, CAST(SUM(cost_nanos) AS BIGINT) AS cost
                 FROM spend_rollup_hourly WHERE 1 = 1",
            );
            push_span(&mut b, from, to);
            b.push(" GROUP BY provider ORDER BY provider");
            b
        }
        macro_rules! collect {
            ($rows:expr) => {{
                let mut totals = StatsTotals::default();
                for row in $rows {
                    let requests = unsigned(row.try_get("requests")?);
                    totals.requests = totals.requests.saturating_add(requests);
                    totals.tokens_in = totals.tokens_in.saturating_add(unsigned(row.try_get("ti")?));
                    totals.tokens_out = totals.tokens_out.saturating_add(unsigned(row.try_get("tout")?));
                    totals.cost_nanos = totals.cost_nanos.saturating_add(unsigned(row.try_get("cost")?));
                    if requests > 0 {
                        totals.providers.push(row.try_get("provider")?);
                    }
                }
                totals
            }};
        }
        Ok(match self.pool() {
            Pool::Postgres(pool) => collect!(sql::<Postgres>(from, to).build().fetch_all(pool).await?),
            Pool::Sqlite(pool) => collect!(sql::<Sqlite>(from, to).build().fetch_all(pool).await?),
        })
    }

    /// Spend of the hours starting in `[from, to)`, one row per distinct value of `group_by` (all rows in one
    /// when empty), ordered by the groups. A `metadata.<key>` grouping reads the metadata rollup: at most one per
    /// query, only for keys the store rolls up, and requests without that key are not in its rows.
    pub async fn spend(
        &self,
        from: Timestamp,
        to: Timestamp,
        group_by: &[GroupBy],
    ) -> Result<Vec<SpendGroupRow>, QueryError> {
        let metadata: Vec<&str> = group_by
            .iter()
            .filter_map(|g| match g {
                GroupBy::Metadata(key) => Some(key.as_str()),
                _ => None,
            })
            .collect();
        let meta_key = match metadata.as_slice() {
            [] => None,
            [key] => Some(*key),
            _ => {
                return Err(QueryError::Invalid {
                    parameter: "group_by",
                    message: "at most one metadata.<key> grouping per query".to_owned(),
                });
            }
        };
        let rolled_up = &self.options().rollup_metadata_keys;
        if let Some(key) = meta_key
            && !rolled_up.contains(key)
        {
            let known: Vec<&str> = rolled_up.iter().map(String::as_str).collect();
            return Err(QueryError::Invalid {
                parameter: "group_by",
                message: format!(
                    "metadata.{key} is not rolled up, so spend cannot be grouped by it (rolled-up keys: {}); \
                     filter /api/logs by it instead",
                    if known.is_empty() { "none".to_owned() } else { known.join(", ") }
                ),
            });
        }
        macro_rules! collect {
            ($rows:expr) => {{
                let mut out = Vec::new();
                for row in $rows {
                    let mut groups = BTreeMap::new();
                    for (i, group) in group_by.iter().enumerate() {
                        let column = format!("g{i}");
                        let value = match group {
                            GroupBy::Provider | GroupBy::Model | GroupBy::Metadata(_) => {
                                Some(row.try_get::<String, _>(column.as_str())?)
                            }
                            GroupBy::Gateway => {
                                Some(row.try_get::<String, _>(column.as_str())?).filter(|g| !g.is_empty())
                            }
                            GroupBy::Day => Some(day_text(row.try_get(column.as_str())?)),
                            GroupBy::Hour => Some(hour_text(row.try_get(column.as_str())?)),
                        };
                        groups.insert(group.to_string(), value);
                    }
                    out.push(SpendGroupRow {
                        groups,
                        requests: unsigned(row.try_get("requests")?),
                        tokens_in: unsigned(row.try_get("ti")?),
                        tokens_out: unsigned(row.try_get("tout")?),
                        cost_nanos: unsigned(row.try_get("cost")?),
                    });
                }
                out
            }};
        }
        Ok(match self.pool() {
            Pool::Postgres(pool) => {
                collect!(spend_sql::<Postgres>(from, to, group_by, meta_key).build().fetch_all(pool).await?)
            }
            Pool::Sqlite(pool) => {
                collect!(spend_sql::<Sqlite>(from, to, group_by, meta_key).build().fetch_all(pool).await?)
            }
        })
    }
}

fn spend_sql<D: Dialect>(
    from: Timestamp,
    to: Timestamp,
    group_by: &[GroupBy],
    meta_key: Option<&str>,
) -> QueryBuilder<D> {
    let hour = D::HOUR_MICROS;
    let mut b = QueryBuilder::new("SELECT ");
    for (i, group) in group_by.iter().enumerate() {
        let expr = match group {
            GroupBy::Provider => "provider".to_owned(),
            GroupBy::Model => "model".to_owned(),
            GroupBy::Gateway => "gateway".to_owned(),
            GroupBy::Day => format!("(({hour}) / {DAY_US}) * {DAY_US}"),
            GroupBy::Hour => hour.to_owned(),
            GroupBy::Metadata(_) => "meta_value".to_owned(),
        };
        b.push(format_args!("{expr} AS g{i}, "));
    }
    b.push(
        "CAST(SUM(requests) AS BIGINT) AS requests, CAST(SUM(tokens_in) AS BIGINT) AS ti,
         CAST(SUM(tokens_out) AS BIGINT) AS tout, CAST(SUM(cost_nanos) AS BIGINT) AS cost FROM ",
    );
    match meta_key {
        Some(key) => {
            b.push("spend_rollup_metadata_hourly WHERE meta_key = ");
            D::push_text(&mut b, key.to_owned());
        }
        None => {
            b.push("spend_rollup_hourly WHERE 1 = 1");
        }
    }
    push_span(&mut b, Some(from), Some(to));
    if group_by.is_empty() {
        b.push(" HAVING COUNT(*) > 0");
    } else {
        let ordinals: Vec<String> = (1..=group_by.len()).map(|i| i.to_string()).collect();
        let ordinals = ordinals.join(", ");
        b.push(format_args!(" GROUP BY {ordinals} HAVING COUNT(*) > 0 ORDER BY {ordinals}"));
    }
    b
}

/// ` AND hour >= from AND hour < to` for the bounds that are set.
fn push_span<D: Dialect>(b: &mut QueryBuilder<D>, from: Option<Timestamp>, to: Option<Timestamp>) {
    if let Some(from) = from {
        b.push(" AND hour >= ");
        D::push_time(b, from.as_microsecond());
    }
    if let Some(to) = to {
        b.push(" AND hour < ");
        D::push_time(b, to.as_microsecond());
    }
}

fn day_text(micros: i64) -> String {
    Timestamp::from_microsecond(micros).map_or_else(|_| micros.to_string(), |t| t.strftime("%Y-%m-%d").to_string())
}

fn hour_text(micros: i64) -> String {
    Timestamp::from_microsecond(micros).map_or_else(|_| micros.to_string(), |t| t.to_string())
}

//! Totals and grouped spend, from the rollups only (`spend_rollup_hourly`, and for a metadata grouping
//! `spend_rollup_metadata_hourly` or `spend_rollup_metadata_daily`): their size follows hours (or days) × providers
//! × models (× metadata values), not requests, so a 90-day report reads thousands of rows however busy the gateway
//! is. An hour counts when it starts in `[from, to)`, whichever table answers.
//!
//! # Which table answers a metadata grouping
//!
//! A metadata key can have hundreds of values, and per hour that is millions of rollup rows over a quarter. So a
//! query with a `metadata.<key>` grouping and no `hour` grouping reads the whole UTC days inside its hours from
//! a daily table, and only the hours before the first and after the last whole day from the hourly one (at most
//! 23 + 23 hours): [`SpanSplit`]. The daily table is `spend_rollup_metadata_value_daily` (one row per key value and
//! day) when the grouping is the key alone or with `day`, `spend_rollup_metadata_daily` (also per provider, model
//! and gateway) otherwise. Both hold exactly the sums of the hourly one per UTC day (all are written by the same
//! transaction, rebuilt by the same recompute), and `day` groups hours by the same UTC day, so every path answers
//! alike. Groupings without a metadata key read `spend_rollup_hourly`, already small enough.

use std::collections::HashMap;

use jiff::Timestamp;
use sqlx::QueryBuilder;

use super::{GroupBy, QueryError, SpendGroupRow, StatsTotals, is_overflow};
use crate::backend::Backend;
use crate::rollup::DAY_US;
use crate::sql::{Dialect, ReadRow, unsigned};
use crate::store::{Pool, Store};

pub(super) const HOUR_US: i64 = 3_600_000_000;

/// Where a metadata grouping's rows come from: hours from the hourly table, whole UTC days from the daily one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// Every hour from `spend_rollup_metadata_hourly` (what the daily path must equal).
    #[cfg(test)]
    Hourly,
    /// Whole days from `spend_rollup_metadata_daily` and the edge hours from the hourly table, when the span
    /// holds at least one whole day.
    DailyWherePossible,
}

/// The hours starting in `[from, to)`, cut into whole UTC days and the hours on either side (Unix µs; every bound
/// a multiple of an hour, day bounds multiples of a day): hours `[hour_from, day_from)`, days `[day_from, day_to)`,
/// hours `[day_to, hour_to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SpanSplit {
    pub hour_from: i64,
    pub day_from: i64,
    pub day_to: i64,
    pub hour_to: i64,
}

impl SpanSplit {
    /// The split of `[from, to)` (Unix µs), or `None` when its hours hold no whole UTC day.
    pub(crate) fn of(from: i64, to: i64) -> Option<Self> {
        // The hours starting in [from, to) are the multiples of an hour in [ceil(from), ceil(to)).
        let hour_from = ceil_to(from, HOUR_US);
        let hour_to = ceil_to(to, HOUR_US);
        let day_from = ceil_to(hour_from, DAY_US);
        let day_to = hour_to.div_euclid(DAY_US) * DAY_US;
        (day_from < day_to).then_some(Self { hour_from, day_from, day_to, hour_to })
    }
}

/// The smallest multiple of `unit` at or above `value`.
pub(super) fn ceil_to(value: i64, unit: i64) -> i64 {
    let floor = value.div_euclid(unit) * unit;
    if floor == value { floor } else { floor + unit }
}

impl Store {
    /// Requests, tokens and cost of the hours starting in `[from, to)` (unbounded where `None`), and the providers
    /// seen there.
    pub async fn stats(&self, from: Option<Timestamp>, to: Option<Timestamp>) -> Result<StatsTotals, QueryError> {
        match self.pool() {
            Pool::Postgres(pool) => stats(pool, from, to).await,
            Pool::Sqlite(pool) => stats(pool, from, to).await,
        }
    }

    /// Spend of the hours starting in `[from, to)`, one row per distinct value of `group_by` (all rows in one
    /// when empty), ordered by the groups in `group_by` order (text by its bytes, days and hours in time). A
    /// `metadata.<key>` grouping reads the metadata rollups (see the module docs): at most one per query, only for
    /// keys the rollups count ([`QueryError::NotRolledUp`] otherwise), and requests without that key are not in
    /// its rows.
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
        if let Some(key) = meta_key {
            let mut rolled_up = self.rollup_metadata_keys().await?;
            if !rolled_up.iter().any(|k| k == key) {
                rolled_up.sort_unstable();
                return Err(QueryError::NotRolledUp { key: key.to_owned(), rolled_up });
            }
        }
        self.spend_from(from, to, group_by, meta_key, Source::DailyWherePossible).await
    }

    /// [`Store::spend`] once the grouping is checked, from the given tables (tests compare both).
    pub(crate) async fn spend_from(
        &self,
        from: Timestamp,
        to: Timestamp,
        group_by: &[GroupBy],
        meta_key: Option<&str>,
        source: Source,
    ) -> Result<Vec<SpendGroupRow>, QueryError> {
        let (from, to) = (from.as_microsecond(), to.as_microsecond());
        let split = match (meta_key, source) {
            (Some(_), Source::DailyWherePossible) if !group_by.contains(&GroupBy::Hour) => SpanSplit::of(from, to),
            _ => None,
        };
        let parts = parts(from, to, split);
        let rows = match self.pool() {
            Pool::Postgres(pool) => spend_rows(pool, group_by, meta_key, &parts).await?,
            Pool::Sqlite(pool) => spend_rows(pool, group_by, meta_key, &parts).await?,
        };
        Ok(group_rows(rows, group_by))
    }
}

/// [`Store::stats`]. Exact sums first; a total beyond `i64::MAX` is reported as `i64::MAX` by a second, saturating
/// run.
async fn stats<B: Backend>(
    pool: &sqlx::Pool<B>,
    from: Option<Timestamp>,
    to: Option<Timestamp>,
) -> Result<StatsTotals, QueryError> {
    let mut saturate = false;
    loop {
        let mut totals = StatsTotals::default();
        let mut query = stats_sql::<B>(from, to, saturate);
        let add = |row: &B::Row| add_stats_row(&mut totals, row).map_err(QueryError::from);
        match B::for_each_built(&mut *pool.acquire().await?, &mut query, add).await {
            Err(error) if !saturate && is_overflow(&error) => saturate = true,
            other => return other.map(|()| totals),
        }
    }
}

/// The `/api/stats` statement: sums per provider.
fn stats_sql<D: Dialect>(from: Option<Timestamp>, to: Option<Timestamp>, saturate: bool) -> QueryBuilder<D> {
    let sum = if saturate { D::saturating_sum } else { D::sum };
    let mut b = QueryBuilder::new(format!(
        "SELECT provider, {} AS requests, {} AS ti, {} AS tout, {} AS cost FROM spend_rollup_hourly WHERE 1 = 1",
        sum("requests"),
        sum("tokens_in"),
        sum("tokens_out"),
        sum("cost_nanos")
    ));
    push_span(&mut b, from, to);
    b.push(" GROUP BY provider ORDER BY provider");
    b
}

/// The rows of the `/spend` statement over `parts`, handled as they arrive (the database sends the last group
/// while the first are decoded). Parts (whole days, edge hours) sum separately: a group found in both (a user,
/// without `day`) is added up once the rows are sorted. One statement, so one snapshot: a batch committing
/// meanwhile is in every part or in none. Exact sums first; a total beyond `i64::MAX` is reported as `i64::MAX` by
/// a second, saturating run.
async fn spend_rows<B: Backend>(
    pool: &sqlx::Pool<B>,
    group_by: &[GroupBy],
    meta_key: Option<&str>,
    parts: &[Part],
) -> Result<Vec<GroupSums>, QueryError> {
    let mut saturate = false;
    loop {
        let mut rows: Vec<GroupSums> = Vec::new();
        let mut query = spend_sql::<B>(group_by, meta_key, parts, saturate);
        let add = |row: &B::Row| {
            rows.push(group_row(row, group_by)?);
            Ok::<_, QueryError>(())
        };
        match B::for_each_built(&mut *pool.acquire().await?, &mut query, add).await {
            Err(error) if !saturate && is_overflow(&error) => saturate = true,
            other => return other.map(|()| rows),
        }
    }
}

/// Adds one `provider` row of the `/api/stats` statement to `totals`.
fn add_stats_row(totals: &mut StatsTotals, row: &impl ReadRow) -> Result<(), sqlx::Error> {
    let requests = unsigned(row.int("requests")?);
    totals.requests = totals.requests.saturating_add(requests);
    totals.tokens_in = totals.tokens_in.saturating_add(unsigned(row.int("ti")?));
    totals.tokens_out = totals.tokens_out.saturating_add(unsigned(row.int("tout")?));
    totals.cost_nanos = totals.cost_nanos.saturating_add(unsigned(row.int("cost")?));
    if requests > 0 {
        totals.providers.push(row.text("provider")?);
    }
    Ok(())
}

/// One row of the `/spend` statement: its group values, then its sums `requests, ti, tout, cost, cached, saved`
/// (read by position: no name lookup per row).
fn group_row(row: &impl ReadRow, group_by: &[GroupBy]) -> Result<GroupSums, sqlx::Error> {
    let mut key = Vec::with_capacity(group_by.len());
    for (i, group) in group_by.iter().enumerate() {
        key.push(match group {
            GroupBy::Provider | GroupBy::Model | GroupBy::Gateway | GroupBy::Metadata(_) => {
                GroupValue::Text(row.text(i)?)
            }
            GroupBy::Day | GroupBy::Hour => GroupValue::Micros(row.int(i)?),
        });
    }
    let n = group_by.len();
    let mut sums = [0; SUMS];
    for (i, sum) in sums.iter_mut().enumerate() {
        *sum = row.int(n + i)?;
    }
    Ok((key, sums))
}

/// Sorts `rows` by their groups, adds up a group found more than once (saturating), and formats the values.
pub(super) fn group_rows(mut rows: Vec<GroupSums>, group_by: &[GroupBy]) -> Vec<SpendGroupRow> {
    rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    rows.dedup_by(|later, kept| {
        if later.0 != kept.0 {
            return false;
        }
        for (kept, later) in kept.1.iter_mut().zip(later.1) {
            *kept = kept.saturating_add(later);
        }
        true
    });
    // A report has few distinct days and hours: each is formatted once.
    let mut times: HashMap<(bool, i64), String> = HashMap::new();
    rows.into_iter()
        .map(|(key, [requests, tokens_in, tokens_out, cost, cached, saved])| SpendGroupRow {
            values: key
                .into_iter()
                .zip(group_by)
                .map(|(value, group)| match value {
                    GroupValue::Text(gateway) if *group == GroupBy::Gateway => Some(gateway).filter(|g| !g.is_empty()),
                    GroupValue::Text(text) => Some(text),
                    GroupValue::Micros(micros) => {
                        let day = *group == GroupBy::Day;
                        let text = times
                            .entry((day, micros))
                            .or_insert_with(|| if day { day_text(micros) } else { hour_text(micros) });
                        Some(text.clone())
                    }
                })
                .collect(),
            requests: unsigned(requests),
            tokens_in: unsigned(tokens_in),
            tokens_out: unsigned(tokens_out),
            cost_nanos: unsigned(cost),
            cached_requests: unsigned(cached),
            saved_nanos: unsigned(saved),
        })
        .collect()
}

/// How many sums a `/spend` row carries.
pub(super) const SUMS: usize = 6;

/// A row's group values and its sums: requests, prompt tokens, completion tokens, cost in nano-dollars, requests
/// answered from the cache, and what those would have cost in nano-dollars.
pub(super) type GroupSums = (Vec<GroupValue>, [i64; SUMS]);

/// One group value as the database returns it. Groups are ordered by these, in `group_by` order: text by its
/// bytes (whatever the database's collation, so both backends and both tables agree), days and hours in time.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum GroupValue {
    Text(String),
    Micros(i64),
}

/// Which rows of a rollup one statement reads: hours starting in the given `[lo, hi)` ranges (from an hourly table),
/// or UTC days in `[lo, hi)` (from the daily metadata table). All in Unix µs.
enum Part {
    Hours(Vec<(i64, i64)>),
    Days(i64, i64),
}

/// The parts answering `[from, to)`: its hours, or (with a split) its whole days and its edge hours.
fn parts(from: i64, to: i64, split: Option<SpanSplit>) -> Vec<Part> {
    let Some(split) = split else { return vec![Part::Hours(vec![(from, to)])] };
    let edges: Vec<(i64, i64)> = [(split.hour_from, split.day_from), (split.day_to, split.hour_to)]
        .into_iter()
        .filter(|(lo, hi)| lo < hi)
        .collect();
    let mut parts = vec![Part::Days(split.day_from, split.day_to)];
    if !edges.is_empty() {
        parts.push(Part::Hours(edges));
    }
    parts
}

/// The `/spend` statement: one `SELECT … GROUP BY` per part, joined by `UNION ALL`. No `ORDER BY` and no outer
/// `GROUP BY`: the caller orders the groups and adds up the few found in two parts (cheaper than a second
/// aggregation and a collated sort in the database: measured on 45,500 groups).
fn spend_sql<D: Dialect>(
    group_by: &[GroupBy],
    meta_key: Option<&str>,
    parts: &[Part],
    saturate: bool,
) -> QueryBuilder<D> {
    let mut b = QueryBuilder::new("");
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            b.push(" UNION ALL ");
        }
        push_part(&mut b, group_by, meta_key, part, saturate);
    }
    b
}

/// `SELECT g0, g1…, sums FROM table WHERE … GROUP BY …` for one part. Groups by the stored columns (`hour`, `day`,
/// or an hour's UTC day) and converts a time to Unix µs once per group, not per row. Without groupings, a part
/// without rows yields no row at all (`HAVING`) rather than one of `NULL`s.
fn push_part<D: Dialect>(
    b: &mut QueryBuilder<D>,
    group_by: &[GroupBy],
    meta_key: Option<&str>,
    part: &Part,
    saturate: bool,
) {
    // Without provider, model or gateway among the groups, the whole days come summed over them already.
    let per_value = group_by.iter().all(|g| matches!(g, GroupBy::Metadata(_) | GroupBy::Day));
    let (table, time_column) = match (part, meta_key) {
        (Part::Days(..), _) if per_value => ("spend_rollup_metadata_value_daily", "day"),
        (Part::Days(..), _) => ("spend_rollup_metadata_daily", "day"),
        (Part::Hours(_), Some(_)) => ("spend_rollup_metadata_hourly", "hour"),
        (Part::Hours(_), None) => ("spend_rollup_hourly", "hour"),
    };
    let keys: Vec<String> = group_by
        .iter()
        .map(|group| match group {
            GroupBy::Provider => "provider".to_owned(),
            GroupBy::Model => "model".to_owned(),
            GroupBy::Gateway => "gateway".to_owned(),
            GroupBy::Day => match part {
                Part::Days(..) => "day".to_owned(),
                Part::Hours(_) => D::DAY_OF_HOUR.to_owned(),
            },
            GroupBy::Hour => "hour".to_owned(),
            GroupBy::Metadata(_) => "meta_value".to_owned(),
        })
        .collect();
    b.push("SELECT ");
    for (i, (group, key)) in group_by.iter().zip(&keys).enumerate() {
        match group {
            GroupBy::Day | GroupBy::Hour => b.push(format_args!("{} AS g{i}, ", D::micros(key))),
            _ => b.push(format_args!("{key} AS g{i}, ")),
        };
    }
    let sum = if saturate { D::saturating_sum } else { D::sum };
    b.push(format_args!(
        "{} AS requests, {} AS ti, {} AS tout, {} AS cost, {} AS cached, {} AS saved FROM {table} WHERE ",
        sum("requests"),
        sum("tokens_in"),
        sum("tokens_out"),
        sum("cost_nanos"),
        sum("cached_requests"),
        sum("saved_nanos")
    ));
    match meta_key {
        Some(key) => {
            b.push("meta_key = ");
            D::push_text(b, key.to_owned());
        }
        None => {
            b.push("1 = 1");
        }
    }
    match part {
        Part::Days(lo, hi) => push_range(b, time_column, *lo, *hi),
        Part::Hours(ranges) => match ranges.as_slice() {
            [(lo, hi)] => push_range(b, time_column, *lo, *hi),
            ranges => {
                b.push(" AND (1 = 0");
                for (lo, hi) in ranges {
                    b.push(" OR (1 = 1");
                    push_range(b, time_column, *lo, *hi);
                    b.push(")");
                }
                b.push(")");
            }
        },
    }
    if group_by.is_empty() {
        b.push(" HAVING COUNT(*) > 0");
    } else {
        b.push(format_args!(" GROUP BY {}", keys.join(", ")));
    }
}

/// ` AND column >= lo AND column < hi`.
fn push_range<D: Dialect>(b: &mut QueryBuilder<D>, column: &str, lo: i64, hi: i64) {
    b.push(format_args!(" AND {column} >= "));
    D::push_time(b, lo);
    b.push(format_args!(" AND {column} < "));
    D::push_time(b, hi);
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

//! Spend rollups (hourly; per metadata value hourly and daily, and daily over all providers), built in memory
//! from the rows a batch actually inserted and upserted in the batch's transaction: one statement per table per
//! batch, keys in sorted order so that replicas writing the same hour take row locks in the same order and never
//! deadlock (Postgres would abort one of two writers locking in opposite orders, 40P01). Upserts add, so a set of
//! rows may be written in several parts (recompute and key backfills flush bounded parts).

use std::collections::BTreeMap;
use std::sync::LazyLock;

use serde_json::Value;
use sqlx::postgres::PgArguments;
use sqlx::query::Query;
use sqlx::sqlite::SqliteArguments;
use sqlx::{Postgres, Sqlite, Transaction};

use crate::error::StoreError;
use crate::model::{LogRecord, MAX_METADATA_VALUE_BYTES, truncated};
use crate::sql::saturating_add_sql;

#[cfg(test)]
mod tests;

const HOUR_US: i64 = 3_600_000_000;
/// Rollup rows a long walk of the log (recompute, key backfill) holds in memory before writing them out: about
/// 50 MB (a row is ~250 bytes with its key strings); upserts add, so writing in parts sums the same.
pub(crate) const FLUSH_ROWS: usize = 200_000;
/// A UTC day in microseconds: `/spend`'s `day` and the daily rollup both floor to multiples of it.
pub(crate) const DAY_US: i64 = 86_400_000_000;

/// The summed measures of a rollup row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Measures {
    pub requests: i64,
    pub tokens_in: i64,
    pub tokens_out: i64,
    pub tokens_cached: i64,
    pub tokens_reasoning: i64,
    pub cost_nanos: i64,
    pub errors: i64,
}

impl Measures {
    fn add(&mut self, r: &LogRecord) {
        let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.requests = self.requests.saturating_add(1);
        self.tokens_in = self.tokens_in.saturating_add(n(r.tokens_in));
        self.tokens_out = self.tokens_out.saturating_add(n(r.tokens_out));
        self.tokens_cached = self.tokens_cached.saturating_add(n(r.tokens_cached));
        self.tokens_reasoning = self.tokens_reasoning.saturating_add(n(r.tokens_reasoning));
        self.cost_nanos = self.cost_nanos.saturating_add(n(r.cost_nanos));
        self.errors = self.errors.saturating_add(i64::from(!r.success));
    }
}

/// `spend_rollup_hourly` key: (hour in Unix µs, provider, model, gateway or '').
pub(crate) type HourlyKey = (i64, String, String, String);
/// `spend_rollup_metadata_hourly` and `spend_rollup_metadata_daily` key, in primary-key order: (meta_key, hour or
/// day in Unix µs, meta_value, provider, model, gateway).
pub(crate) type MetadataKey = (String, i64, String, String, String, String);

/// `spend_rollup_metadata_value_daily` key, in primary-key order: (meta_key, day in Unix µs, meta_value). The daily
/// metadata rollup summed over providers, models and gateways: what `/spend` grouped by a key (and `day`) reads.
pub(crate) type MetadataValueKey = (String, i64, String);

/// The metadata keys the rollups count (`spend_rollup_metadata_keys`), oldest first, and how many of them one row
/// is counted under at most.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RollupKeys {
    /// In the order they were added.
    pub keys: Vec<String>,
    /// `StoreOptions::max_rollup_keys_per_row`.
    pub max_per_row: usize,
}

/// A batch's rollup rows, sorted by key.
#[derive(Debug, Default)]
pub(crate) struct Rollups {
    pub hourly: BTreeMap<HourlyKey, Measures>,
    pub metadata: BTreeMap<MetadataKey, Measures>,
    pub metadata_daily: BTreeMap<MetadataKey, Measures>,
    pub metadata_value_daily: BTreeMap<MetadataValueKey, Measures>,
}

impl Rollups {
    /// Adds one inserted row: to its (hour, provider, model, gateway), and to its metadata rollups (see
    /// [`Rollups::add_metadata`]).
    pub(crate) fn add(&mut self, record: &LogRecord, keys: &RollupKeys) {
        let hour = record.created_at.as_microsecond().div_euclid(HOUR_US) * HOUR_US;
        self.hourly
            .entry((hour, record.provider.clone(), record.model.clone(), record.gateway.clone().unwrap_or_default()))
            .or_default()
            .add(record);
        self.add_metadata(record, keys, 0);
    }

    /// Adds one row to (hour, key, value, …), (day, key, value, …) and (day, key, value) of the keys it is counted
    /// under whose index in
    /// `keys.keys` is `first` or more. A row is counted under the first `max_per_row` keys of `keys.keys` (oldest
    /// first) for which it has a string, number or boolean value: so which keys count a row never depends on keys
    /// added after them, and a backfill of new keys (`first` = the number of older keys) adds exactly what the
    /// writer would have.
    pub(crate) fn add_metadata(&mut self, record: &LogRecord, keys: &RollupKeys, first: usize) {
        if keys.keys.len() <= first {
            return;
        }
        let picked = keys.keys.iter().enumerate().filter_map(|(i, key)| {
            let value = match record.metadata.get(key)? {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                Value::Null | Value::Array(_) | Value::Object(_) => return None,
            };
            Some((i, key, value))
        });
        let micros = record.created_at.as_microsecond();
        let hour = micros.div_euclid(HOUR_US) * HOUR_US;
        let day = micros.div_euclid(DAY_US) * DAY_US;
        let gateway = record.gateway.as_deref().unwrap_or_default();
        for (_, key, value) in picked.take(keys.max_per_row).filter(|(i, _, _)| *i >= first) {
            // Bounded so that the rollup keys always fit an index row (see `record::MAX_NAME_BYTES`).
            let value = truncated(&value, MAX_METADATA_VALUE_BYTES).replace('\0', "\u{FFFD}");
            let at = |time| {
                (key.clone(), time, value.clone(), record.provider.clone(), record.model.clone(), gateway.to_owned())
            };
            self.metadata.entry(at(hour)).or_default().add(record);
            self.metadata_daily.entry(at(day)).or_default().add(record);
            self.metadata_value_daily.entry((key.clone(), day, value)).or_default().add(record);
        }
    }

    /// Rows held, all tables together.
    pub(crate) fn len(&self) -> usize {
        self.hourly.len() + self.metadata.len() + self.metadata_daily.len() + self.metadata_value_daily.len()
    }

    pub(crate) async fn upsert_postgres(&self, tx: &mut Transaction<'_, Postgres>) -> Result<(), StoreError> {
        if !self.hourly.is_empty() {
            let mut cols = Columns::default();
            let (mut hours, mut providers, mut models, mut gateways) = (vec![], vec![], vec![], vec![]);
            for ((hour, provider, model, gateway), m) in &self.hourly {
                hours.push(*hour);
                providers.push(provider.as_str());
                models.push(model.as_str());
                gateways.push(gateway.as_str());
                cols.push(m);
            }
            sqlx::query(HOURLY_POSTGRES.as_str())
                .bind(&hours)
                .bind(&providers)
                .bind(&models)
                .bind(&gateways)
                .bind_measures(&cols)
                .execute(&mut **tx)
                .await?;
        }
        upsert_metadata_postgres(tx, METADATA_HOURLY_POSTGRES.as_str(), &self.metadata).await?;
        upsert_metadata_postgres(tx, METADATA_DAILY_POSTGRES.as_str(), &self.metadata_daily).await?;
        if !self.metadata_value_daily.is_empty() {
            let mut cols = Columns::default();
            let (mut keys, mut days, mut values) = (vec![], vec![], vec![]);
            for ((key, day, value), m) in &self.metadata_value_daily {
                keys.push(key.as_str());
                days.push(*day);
                values.push(value.as_str());
                cols.push(m);
            }
            sqlx::query(VALUE_DAILY_POSTGRES.as_str())
                .bind(&keys)
                .bind(&days)
                .bind(&values)
                .bind_measures(&cols)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    pub(crate) async fn upsert_sqlite(&self, tx: &mut Transaction<'_, Sqlite>) -> Result<(), StoreError> {
        for ((hour, provider, model, gateway), m) in &self.hourly {
            sqlx::query(HOURLY_SQLITE.as_str())
                .bind(hour)
                .bind(provider)
                .bind(model)
                .bind(gateway)
                .bind_measures(m)
                .execute(&mut **tx)
                .await?;
        }
        upsert_metadata_sqlite(tx, METADATA_HOURLY_SQLITE.as_str(), &self.metadata).await?;
        upsert_metadata_sqlite(tx, METADATA_DAILY_SQLITE.as_str(), &self.metadata_daily).await?;
        for ((key, day, value), m) in &self.metadata_value_daily {
            sqlx::query(VALUE_DAILY_SQLITE.as_str())
                .bind(key)
                .bind(day)
                .bind(value)
                .bind_measures(m)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }
}

/// The measure columns, in the order every rollup statement lists and binds them.
const MEASURES: [&str; 7] =
    ["requests", "tokens_in", "tokens_out", "tokens_cached", "tokens_reasoning", "cost_nanos", "errors"];

/// `ON CONFLICT … DO UPDATE SET` of the measures: each adds the new row's value with [`saturating_add_sql`].
/// `table` qualifies the stored value (Postgres needs it; SQLite takes the bare column).
fn saturating_set(table: Option<&str>) -> String {
    MEASURES
        .iter()
        .map(|c| {
            let old = table.map_or_else(|| (*c).to_owned(), |t| format!("{t}.{c}"));
            format!("{c} = {}", saturating_add_sql(&old, &format!("excluded.{c}")))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Postgres: the `UNNEST` arrays of the measures, after `first - 1` key columns (`$first` is `requests`).
fn measure_arrays(first: usize) -> String {
    (first..first + MEASURES.len()).map(|n| format!("${n}::int8[]")).collect::<Vec<_>>().join(", ")
}

static HOURLY_POSTGRES: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO spend_rollup_hourly (hour, provider, model, gateway, {m})
         SELECT 'epoch'::timestamptz + u.h * interval '1 microsecond', u.p, u.m, u.g, {m}
         FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::text[], {arrays}) AS u(h, p, m, g, {m})
         ON CONFLICT (hour, provider, model, gateway) DO UPDATE SET {set}",
        m = MEASURES.join(", "),
        arrays = measure_arrays(5),
        set = saturating_set(Some("spend_rollup_hourly")),
    )
});

static VALUE_DAILY_POSTGRES: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO spend_rollup_metadata_value_daily (meta_key, day, meta_value, {m})
         SELECT u.k, 'epoch'::timestamptz + u.d * interval '1 microsecond', u.v, {m}
         FROM UNNEST($1::text[], $2::int8[], $3::text[], {arrays}) AS u(k, d, v, {m})
         ON CONFLICT (meta_key, day, meta_value) DO UPDATE SET {set}",
        m = MEASURES.join(", "),
        arrays = measure_arrays(4),
        set = saturating_set(Some("spend_rollup_metadata_value_daily")),
    )
});

/// The `INSERT … ON CONFLICT DO UPDATE` that adds a batch's sums to a metadata rollup table whose time column is
/// `time` (Postgres: one statement over `UNNEST`ed arrays).
fn metadata_upsert_postgres(table: &str, time: &str) -> String {
    format!(
        "INSERT INTO {table} (meta_key, {time}, meta_value, provider, model, gateway, {m})
         SELECT u.k, 'epoch'::timestamptz + u.h * interval '1 microsecond', u.v, u.p, u.mo, u.g, {m}
         FROM UNNEST($1::text[], $2::int8[], $3::text[], $4::text[], $5::text[], $6::text[], {arrays})
             AS u(k, h, v, p, mo, g, {m})
         ON CONFLICT (meta_key, {time}, meta_value, provider, model, gateway) DO UPDATE SET {set}",
        m = MEASURES.join(", "),
        arrays = measure_arrays(7),
        set = saturating_set(Some(table)),
    )
}

/// SQLite: one row per statement (in-process: no round trip to save).
fn upsert_sqlite(table: &str, keys: &[&str]) -> String {
    let columns: Vec<&str> = keys.iter().copied().chain(MEASURES).collect();
    let marks = vec!["?"; columns.len()].join(", ");
    format!(
        "INSERT INTO {table} ({}) VALUES ({marks}) ON CONFLICT ({}) DO UPDATE SET {}",
        columns.join(", "),
        keys.join(", "),
        saturating_set(None)
    )
}

static HOURLY_SQLITE: LazyLock<String> =
    LazyLock::new(|| upsert_sqlite("spend_rollup_hourly", &["hour", "provider", "model", "gateway"]));
static VALUE_DAILY_SQLITE: LazyLock<String> =
    LazyLock::new(|| upsert_sqlite("spend_rollup_metadata_value_daily", &["meta_key", "day", "meta_value"]));
static METADATA_HOURLY_POSTGRES: LazyLock<String> =
    LazyLock::new(|| metadata_upsert_postgres("spend_rollup_metadata_hourly", "hour"));
static METADATA_DAILY_POSTGRES: LazyLock<String> =
    LazyLock::new(|| metadata_upsert_postgres("spend_rollup_metadata_daily", "day"));
static METADATA_HOURLY_SQLITE: LazyLock<String> = LazyLock::new(|| {
    upsert_sqlite("spend_rollup_metadata_hourly", &["meta_key", "hour", "meta_value", "provider", "model", "gateway"])
});
static METADATA_DAILY_SQLITE: LazyLock<String> = LazyLock::new(|| {
    upsert_sqlite("spend_rollup_metadata_daily", &["meta_key", "day", "meta_value", "provider", "model", "gateway"])
});

async fn upsert_metadata_postgres(
    tx: &mut Transaction<'_, Postgres>,
    sql: &'static str,
    rows: &BTreeMap<MetadataKey, Measures>,
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut cols = Columns::default();
    let (mut keys, mut times, mut values) = (vec![], vec![], vec![]);
    let (mut providers, mut models, mut gateways) = (vec![], vec![], vec![]);
    for ((key, time, value, provider, model, gateway), m) in rows {
        keys.push(key.as_str());
        times.push(*time);
        values.push(value.as_str());
        providers.push(provider.as_str());
        models.push(model.as_str());
        gateways.push(gateway.as_str());
        cols.push(m);
    }
    sqlx::query(sql)
        .bind(&keys)
        .bind(&times)
        .bind(&values)
        .bind(&providers)
        .bind(&models)
        .bind(&gateways)
        .bind_measures(&cols)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn upsert_metadata_sqlite(
    tx: &mut Transaction<'_, Sqlite>,
    sql: &'static str,
    rows: &BTreeMap<MetadataKey, Measures>,
) -> Result<(), StoreError> {
    for ((key, time, value, provider, model, gateway), m) in rows {
        sqlx::query(sql)
            .bind(key)
            .bind(time)
            .bind(value)
            .bind(provider)
            .bind(model)
            .bind(gateway)
            .bind_measures(m)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Binds a rollup row's measures, in the column order every rollup statement lists them (`requests, tokens_in,
/// tokens_out, tokens_cached, tokens_reasoning, cost_nanos, errors`).
trait BindMeasures<'q, M> {
    fn bind_measures(self, measures: M) -> Self;
}

/// Postgres: the measures of a whole batch, as `UNNEST` arrays.
impl<'q> BindMeasures<'q, &'q Columns> for Query<'q, Postgres, PgArguments> {
    fn bind_measures(self, c: &'q Columns) -> Self {
        self.bind(&c.requests)
            .bind(&c.tokens_in)
            .bind(&c.tokens_out)
            .bind(&c.tokens_cached)
            .bind(&c.tokens_reasoning)
            .bind(&c.cost_nanos)
            .bind(&c.errors)
    }
}

/// SQLite: one row's measures.
impl<'q> BindMeasures<'q, &Measures> for Query<'q, Sqlite, SqliteArguments> {
    fn bind_measures(self, m: &Measures) -> Self {
        self.bind(m.requests)
            .bind(m.tokens_in)
            .bind(m.tokens_out)
            .bind(m.tokens_cached)
            .bind(m.tokens_reasoning)
            .bind(m.cost_nanos)
            .bind(m.errors)
    }
}

/// Measures as column arrays for `UNNEST`.
#[derive(Default)]
struct Columns {
    requests: Vec<i64>,
    tokens_in: Vec<i64>,
    tokens_out: Vec<i64>,
    tokens_cached: Vec<i64>,
    tokens_reasoning: Vec<i64>,
    cost_nanos: Vec<i64>,
    errors: Vec<i64>,
}

impl Columns {
    fn push(&mut self, m: &Measures) {
        self.requests.push(m.requests);
        self.tokens_in.push(m.tokens_in);
        self.tokens_out.push(m.tokens_out);
        self.tokens_cached.push(m.tokens_cached);
        self.tokens_reasoning.push(m.tokens_reasoning);
        self.cost_nanos.push(m.cost_nanos);
        self.errors.push(m.errors);
    }
}

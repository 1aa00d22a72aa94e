//! Spend rollups (hourly; per metadata value hourly and daily, and daily over all providers), built in memory
//! from the rows a batch actually inserted and upserted in the batch's transaction: one statement per table per
//! batch, keys in sorted order so that replicas writing the same hour take row locks in the same order and never
//! deadlock (Postgres would abort one of two writers locking in opposite orders, 40P01). Upserts add, so a set of
//! rows may be written in several parts (recompute and key backfills flush bounded parts).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::backend::Backend;
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

/// The primitives of the rollup tables (`postgres/rollup.rs`, `sqlite/rollup.rs`).
pub(crate) trait RollupBackend: Backend {
    /// Adds `rollups` to the tables: one statement per table on Postgres, one per row on SQLite.
    async fn upsert_rollups(conn: &mut Self::Connection, rollups: &Rollups) -> Result<(), StoreError>;

    /// Steps 1 and 2 of a rebuild (see `recompute`): takes the locks that keep writers and key adders out, in the
    /// order every transaction takes them, empties the rollups ([`CLEAR_ROLLUPS`]) and reads the key set.
    async fn lock_and_clear_rollups(conn: &mut Self::Connection, max_per_row: usize) -> Result<RollupKeys, StoreError>;
}

/// Empties every rollup before a rebuild (both backends).
pub(crate) const CLEAR_ROLLUPS: [&str; 4] = [
    "DELETE FROM spend_rollup_hourly",
    "DELETE FROM spend_rollup_metadata_hourly",
    "DELETE FROM spend_rollup_metadata_daily",
    "DELETE FROM spend_rollup_metadata_value_daily",
];

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
    /// Requests answered from the response cache (`cached` rows).
    pub cached_requests: i64,
    /// What those cached answers would have cost (`saved_nanos` of the `cached` rows only).
    pub saved_nanos: i64,
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
        if r.cached {
            self.cached_requests = self.cached_requests.saturating_add(1);
            self.saved_nanos = self.saved_nanos.saturating_add(n(r.saved_nanos));
        }
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
}

/// The measure columns, in the order every rollup statement lists and binds them.
pub(crate) const MEASURES: [&str; 9] = [
    "requests",
    "tokens_in",
    "tokens_out",
    "tokens_cached",
    "tokens_reasoning",
    "cost_nanos",
    "errors",
    "cached_requests",
    "saved_nanos",
];

/// `ON CONFLICT … DO UPDATE SET` of the measures: each adds the new row's value with [`saturating_add_sql`].
/// `table` qualifies the stored value (Postgres needs it; SQLite takes the bare column).
pub(crate) fn saturating_set(table: Option<&str>) -> String {
    MEASURES
        .iter()
        .map(|c| {
            let old = table.map_or_else(|| (*c).to_owned(), |t| format!("{t}.{c}"));
            format!("{c} = {}", saturating_add_sql(&old, &format!("excluded.{c}")))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

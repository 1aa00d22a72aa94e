//! Hourly spend rollups, built in memory from the rows a batch actually inserted and upserted in the batch's
//! transaction: one statement per table per batch, keys in sorted order so that replicas writing the same hour
//! take row locks in the same order and never deadlock (peer lesson: 40P01 in spend writers).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use sqlx::{Postgres, Sqlite, Transaction};

use crate::error::StoreError;
use crate::record::LogRecord;

#[cfg(test)]
mod tests;

const HOUR_US: i64 = 3_600_000_000;

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
/// `spend_rollup_metadata_hourly` key, in primary-key order: (meta_key, hour, meta_value, provider, model, gateway).
pub(crate) type MetadataKey = (String, i64, String, String, String, String);

/// A batch's rollup rows, sorted by key.
#[derive(Debug, Default)]
pub(crate) struct Rollups {
    pub hourly: BTreeMap<HourlyKey, Measures>,
    pub metadata: BTreeMap<MetadataKey, Measures>,
}

impl Rollups {
    /// Adds one inserted row: to its (hour, provider, model, gateway) and to (hour, key, value, …) for at most
    /// `max_keys` of its metadata keys that are in `keys`.
    pub(crate) fn add(&mut self, record: &LogRecord, keys: &BTreeSet<String>, max_keys: usize) {
        let hour = record.created_at.as_microsecond().div_euclid(HOUR_US) * HOUR_US;
        let gateway = record.gateway.clone().unwrap_or_default();
        self.hourly
            .entry((hour, record.provider.clone(), record.model.clone(), gateway.clone()))
            .or_default()
            .add(record);
        if keys.is_empty() {
            return;
        }
        let picked = record.metadata.iter().filter(|(k, _)| keys.contains(*k)).filter_map(|(k, v)| {
            let value = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                Value::Null | Value::Array(_) | Value::Object(_) => return None,
            };
            Some((k, value))
        });
        for (key, value) in picked.take(max_keys) {
            let key = (
                key.clone(),
                hour,
                value.replace('\0', "\u{FFFD}"),
                record.provider.clone(),
                record.model.clone(),
                gateway.clone(),
            );
            self.metadata.entry(key).or_default().add(record);
        }
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
            sqlx::query(
                "INSERT INTO spend_rollup_hourly (hour, provider, model, gateway, requests, tokens_in, tokens_out,
                     tokens_cached, tokens_reasoning, cost_nanos, errors)
                 SELECT 'epoch'::timestamptz + u.h * interval '1 microsecond', u.p, u.m, u.g, u.r, u.ti, u.tout,
                     u.tc, u.tr, u.c, u.e
                 FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::int8[], $7::int8[],
                     $8::int8[], $9::int8[], $10::int8[], $11::int8[]) AS u(h, p, m, g, r, ti, tout, tc, tr, c, e)
                 ON CONFLICT (hour, provider, model, gateway) DO UPDATE SET
                     requests = spend_rollup_hourly.requests + EXCLUDED.requests,
                     tokens_in = spend_rollup_hourly.tokens_in + EXCLUDED.tokens_in,
                     tokens_out = spend_rollup_hourly.tokens_out + EXCLUDED.tokens_out,
                     tokens_cached = spend_rollup_hourly.tokens_cached + EXCLUDED.tokens_cached,
                     tokens_reasoning = spend_rollup_hourly.tokens_reasoning + EXCLUDED.tokens_reasoning,
                     cost_nanos = spend_rollup_hourly.cost_nanos + EXCLUDED.cost_nanos,
                     errors = spend_rollup_hourly.errors + EXCLUDED.errors",
            )
            .bind(&hours)
            .bind(&providers)
            .bind(&models)
            .bind(&gateways)
            .bind(&cols.requests)
            .bind(&cols.tokens_in)
            .bind(&cols.tokens_out)
            .bind(&cols.tokens_cached)
            .bind(&cols.tokens_reasoning)
            .bind(&cols.cost_nanos)
            .bind(&cols.errors)
            .execute(&mut **tx)
            .await?;
        }
        if !self.metadata.is_empty() {
            let mut cols = Columns::default();
            let (mut keys, mut hours, mut values) = (vec![], vec![], vec![]);
            let (mut providers, mut models, mut gateways) = (vec![], vec![], vec![]);
            for ((key, hour, value, provider, model, gateway), m) in &self.metadata {
                keys.push(key.as_str());
                hours.push(*hour);
                values.push(value.as_str());
                providers.push(provider.as_str());
                models.push(model.as_str());
                gateways.push(gateway.as_str());
                cols.push(m);
            }
            sqlx::query(
                "INSERT INTO spend_rollup_metadata_hourly (meta_key, hour, meta_value, provider, model, gateway,
                     requests, tokens_in, tokens_out, tokens_cached, tokens_reasoning, cost_nanos, errors)
                 SELECT u.k, 'epoch'::timestamptz + u.h * interval '1 microsecond', u.v, u.p, u.m, u.g, u.r, u.ti,
                     u.tout, u.tc, u.tr, u.c, u.e
                 FROM UNNEST($1::text[], $2::int8[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int8[],
                     $8::int8[], $9::int8[], $10::int8[], $11::int8[], $12::int8[], $13::int8[])
                     AS u(k, h, v, p, m, g, r, ti, tout, tc, tr, c, e)
                 ON CONFLICT (meta_key, hour, meta_value, provider, model, gateway) DO UPDATE SET
                     requests = spend_rollup_metadata_hourly.requests + EXCLUDED.requests,
                     tokens_in = spend_rollup_metadata_hourly.tokens_in + EXCLUDED.tokens_in,
                     tokens_out = spend_rollup_metadata_hourly.tokens_out + EXCLUDED.tokens_out,
                     tokens_cached = spend_rollup_metadata_hourly.tokens_cached + EXCLUDED.tokens_cached,
                     tokens_reasoning = spend_rollup_metadata_hourly.tokens_reasoning + EXCLUDED.tokens_reasoning,
                     cost_nanos = spend_rollup_metadata_hourly.cost_nanos + EXCLUDED.cost_nanos,
                     errors = spend_rollup_metadata_hourly.errors + EXCLUDED.errors",
            )
            .bind(&keys)
            .bind(&hours)
            .bind(&values)
            .bind(&providers)
            .bind(&models)
            .bind(&gateways)
            .bind(&cols.requests)
            .bind(&cols.tokens_in)
            .bind(&cols.tokens_out)
            .bind(&cols.tokens_cached)
            .bind(&cols.tokens_reasoning)
            .bind(&cols.cost_nanos)
            .bind(&cols.errors)
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }

    pub(crate) async fn upsert_sqlite(&self, tx: &mut Transaction<'_, Sqlite>) -> Result<(), StoreError> {
        for ((hour, provider, model, gateway), m) in &self.hourly {
            sqlx::query(
                "INSERT INTO spend_rollup_hourly (hour, provider, model, gateway, requests, tokens_in, tokens_out,
                     tokens_cached, tokens_reasoning, cost_nanos, errors)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                 ON CONFLICT (hour, provider, model, gateway) DO UPDATE SET
                     requests = requests + excluded.requests, tokens_in = tokens_in + excluded.tokens_in,
                     tokens_out = tokens_out + excluded.tokens_out,
                     tokens_cached = tokens_cached + excluded.tokens_cached,
                     tokens_reasoning = tokens_reasoning + excluded.tokens_reasoning,
                     cost_nanos = cost_nanos + excluded.cost_nanos, errors = errors + excluded.errors",
            )
            .bind(hour)
            .bind(provider)
            .bind(model)
            .bind(gateway)
            .bind(m.requests)
            .bind(m.tokens_in)
            .bind(m.tokens_out)
            .bind(m.tokens_cached)
            .bind(m.tokens_reasoning)
            .bind(m.cost_nanos)
            .bind(m.errors)
            .execute(&mut **tx)
            .await?;
        }
        for ((key, hour, value, provider, model, gateway), m) in &self.metadata {
            sqlx::query(
                "INSERT INTO spend_rollup_metadata_hourly (meta_key, hour, meta_value, provider, model, gateway,
                     requests, tokens_in, tokens_out, tokens_cached, tokens_reasoning, cost_nanos, errors)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                 ON CONFLICT (meta_key, hour, meta_value, provider, model, gateway) DO UPDATE SET
                     requests = requests + excluded.requests, tokens_in = tokens_in + excluded.tokens_in,
                     tokens_out = tokens_out + excluded.tokens_out,
                     tokens_cached = tokens_cached + excluded.tokens_cached,
                     tokens_reasoning = tokens_reasoning + excluded.tokens_reasoning,
                     cost_nanos = cost_nanos + excluded.cost_nanos, errors = errors + excluded.errors",
            )
            .bind(key)
            .bind(hour)
            .bind(value)
            .bind(provider)
            .bind(model)
            .bind(gateway)
            .bind(m.requests)
            .bind(m.tokens_in)
            .bind(m.tokens_out)
            .bind(m.tokens_cached)
            .bind(m.tokens_reasoning)
            .bind(m.cost_nanos)
            .bind(m.errors)
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
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

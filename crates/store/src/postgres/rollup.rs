//! The rollup tables on Postgres: one `INSERT … SELECT FROM UNNEST … ON CONFLICT DO UPDATE` per table per batch,
//! and the table locks of a rebuild.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use sqlx::Postgres;
use sqlx::postgres::{PgArguments, PgConnection};
use sqlx::query::Query;

use crate::backend::Backend;
use crate::error::StoreError;
use crate::metadata_keys::MetadataKeysBackend;
use crate::rollup::{
    CLEAR_ROLLUPS, MEASURES, Measures, MetadataKey, RollupBackend, RollupKeys, Rollups, saturating_set,
};

impl RollupBackend for Postgres {
    async fn upsert_rollups(conn: &mut PgConnection, rollups: &Rollups) -> Result<(), StoreError> {
        if !rollups.hourly.is_empty() {
            let mut cols = Columns::default();
            let (mut hours, mut providers, mut models, mut gateways) = (vec![], vec![], vec![], vec![]);
            for ((hour, provider, model, gateway), m) in &rollups.hourly {
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
                .bind_columns(&cols)
                .execute(&mut *conn)
                .await?;
        }
        upsert_metadata(conn, METADATA_HOURLY_POSTGRES.as_str(), &rollups.metadata).await?;
        upsert_metadata(conn, METADATA_DAILY_POSTGRES.as_str(), &rollups.metadata_daily).await?;
        if !rollups.metadata_value_daily.is_empty() {
            let mut cols = Columns::default();
            let (mut keys, mut days, mut values) = (vec![], vec![], vec![]);
            for ((key, day, value), m) in &rollups.metadata_value_daily {
                keys.push(key.as_str());
                days.push(*day);
                values.push(value.as_str());
                cols.push(m);
            }
            sqlx::query(VALUE_DAILY_POSTGRES.as_str())
                .bind(&keys)
                .bind(&days)
                .bind(&values)
                .bind_columns(&cols)
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }

    /// The key set `SHARE` first (as every writer and key adder takes it), then the four rollups `EXCLUSIVE`
    /// (readers go on; writers wait), then empties them.
    async fn lock_and_clear_rollups(conn: &mut PgConnection, max_per_row: usize) -> Result<RollupKeys, StoreError> {
        let keys = Self::lock_rollup_keys(conn, max_per_row).await?;
        Self::execute(
            conn,
            "LOCK TABLE spend_rollup_hourly, spend_rollup_metadata_hourly, spend_rollup_metadata_daily,
                 spend_rollup_metadata_value_daily IN EXCLUSIVE MODE",
            &[],
        )
        .await?;
        for sql in CLEAR_ROLLUPS {
            Self::execute(conn, sql, &[]).await?;
        }
        Ok(keys)
    }
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

static METADATA_HOURLY_POSTGRES: LazyLock<String> =
    LazyLock::new(|| metadata_upsert_postgres("spend_rollup_metadata_hourly", "hour"));
static METADATA_DAILY_POSTGRES: LazyLock<String> =
    LazyLock::new(|| metadata_upsert_postgres("spend_rollup_metadata_daily", "day"));
async fn upsert_metadata(
    conn: &mut PgConnection,
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
        .bind_columns(&cols)
        .execute(conn)
        .await?;
    Ok(())
}

/// Binds the measures of a whole batch, as `UNNEST` arrays, in the column order every rollup statement lists them
/// ([`MEASURES`]).
trait BindColumns<'q> {
    fn bind_columns(self, c: &'q Columns) -> Self;
}

impl<'q> BindColumns<'q> for Query<'q, Postgres, PgArguments> {
    fn bind_columns(self, c: &'q Columns) -> Self {
        self.bind(&c.requests)
            .bind(&c.tokens_in)
            .bind(&c.tokens_out)
            .bind(&c.tokens_cached)
            .bind(&c.tokens_reasoning)
            .bind(&c.cost_nanos)
            .bind(&c.errors)
            .bind(&c.cached_requests)
            .bind(&c.saved_nanos)
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
    cached_requests: Vec<i64>,
    saved_nanos: Vec<i64>,
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
        self.cached_requests.push(m.cached_requests);
        self.saved_nanos.push(m.saved_nanos);
    }
}

//! The rollup tables on SQLite: one cached upsert per row (in-process: no round trip to save), and a rebuild whose
//! first `DELETE` takes the database's write lock.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use sqlx::Sqlite;
use sqlx::query::Query;
use sqlx::sqlite::{SqliteArguments, SqliteConnection};

use crate::backend::Backend;
use crate::error::StoreError;
use crate::metadata_keys::MetadataKeysBackend;
use crate::rollup::{
    CLEAR_ROLLUPS, HourlyKey, MEASURES, Measures, MetadataKey, MetadataValueKey, RollupBackend, RollupKeys, Rollups,
    saturating_set,
};

impl RollupBackend for Sqlite {
    async fn upsert_rollups(conn: &mut SqliteConnection, rollups: &Rollups) -> Result<(), StoreError> {
        upsert_each(conn, HOURLY_SQLITE.as_str(), &rollups.hourly).await?;
        upsert_each(conn, METADATA_HOURLY_SQLITE.as_str(), &rollups.metadata).await?;
        upsert_each(conn, METADATA_DAILY_SQLITE.as_str(), &rollups.metadata_daily).await?;
        upsert_each(conn, VALUE_DAILY_SQLITE.as_str(), &rollups.metadata_value_daily).await
    }

    /// The first `DELETE` takes the write lock (writers and key adders wait), then the key set is read under it:
    /// a read first would start a snapshot that a writer committing meanwhile makes unable to write.
    async fn lock_and_clear_rollups(conn: &mut SqliteConnection, max_per_row: usize) -> Result<RollupKeys, StoreError> {
        for sql in CLEAR_ROLLUPS {
            Self::execute(conn, sql, &[]).await?;
        }
        Self::lock_rollup_keys(conn, max_per_row).await
    }
}

/// SQLite: one row per statement (in-process: no round trip to save).
fn upsert_sqlite(table: &str, keys: &[&str]) -> String {
    let columns: Vec<&str> = keys.iter().copied().chain(MEASURES).collect();
    let marks = (1..=columns.len()).map(|n| format!("${n}")).collect::<Vec<_>>().join(", ");
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
static METADATA_HOURLY_SQLITE: LazyLock<String> = LazyLock::new(|| {
    upsert_sqlite("spend_rollup_metadata_hourly", &["meta_key", "hour", "meta_value", "provider", "model", "gateway"])
});
static METADATA_DAILY_SQLITE: LazyLock<String> = LazyLock::new(|| {
    upsert_sqlite("spend_rollup_metadata_daily", &["meta_key", "day", "meta_value", "provider", "model", "gateway"])
});

type SqliteQuery<'q> = Query<'q, Sqlite, SqliteArguments>;

/// Upserts every row of one rollup table with its statement (`sql` lists the key's columns, then [`MEASURES`]).
async fn upsert_each<K: BindKey>(
    conn: &mut SqliteConnection,
    sql: &'static str,
    rows: &BTreeMap<K, Measures>,
) -> Result<(), StoreError> {
    for (key, m) in rows {
        key.bind_key(sqlx::query(sql)).bind_measures(m).execute(&mut *conn).await?;
    }
    Ok(())
}

/// Binds a rollup key's columns, in the order its table's statement lists them (the key's own order).
trait BindKey {
    fn bind_key<'q>(&'q self, query: SqliteQuery<'q>) -> SqliteQuery<'q>;
}

impl BindKey for HourlyKey {
    fn bind_key<'q>(&'q self, query: SqliteQuery<'q>) -> SqliteQuery<'q> {
        let (hour, provider, model, gateway) = self;
        query.bind(hour).bind(provider).bind(model).bind(gateway)
    }
}

impl BindKey for MetadataKey {
    fn bind_key<'q>(&'q self, query: SqliteQuery<'q>) -> SqliteQuery<'q> {
        let (key, time, value, provider, model, gateway) = self;
        query.bind(key).bind(time).bind(value).bind(provider).bind(model).bind(gateway)
    }
}

impl BindKey for MetadataValueKey {
    fn bind_key<'q>(&'q self, query: SqliteQuery<'q>) -> SqliteQuery<'q> {
        let (key, day, value) = self;
        query.bind(key).bind(day).bind(value)
    }
}

/// Binds one rollup row's measures, in the column order every rollup statement lists them ([`MEASURES`]).
trait BindMeasures {
    fn bind_measures(self, m: &Measures) -> Self;
}

impl BindMeasures for SqliteQuery<'_> {
    fn bind_measures(self, m: &Measures) -> Self {
        self.bind(m.requests)
            .bind(m.tokens_in)
            .bind(m.tokens_out)
            .bind(m.tokens_cached)
            .bind(m.tokens_reasoning)
            .bind(m.cost_nanos)
            .bind(m.errors)
            .bind(m.cached_requests)
            .bind(m.saved_nanos)
    }
}

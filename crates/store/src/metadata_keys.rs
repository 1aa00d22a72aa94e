//! The `spend_rollup_metadata_keys` aggregate: which metadata keys the rollups count (one set, shared by every
//! replica), and adding keys together with their history.
//!
//! # Adding a key so that every log row is counted under it exactly once
//!
//! Every transaction that adds log rows to the rollups (`Store::insert_logs`, hence the writer and the spill
//! replay) reads the key set *after* inserting its rows, under a lock that excludes adding a key, and holds it to
//! commit:
//!
//! - Postgres: the writer inserts its rows, takes `SHARE` on `spend_rollup_metadata_keys`, then reads the keys in
//!   a statement of its own (READ COMMITTED: its snapshot is taken after the lock was granted). Adding takes
//!   `SHARE ROW EXCLUSIVE` (which conflicts with `SHARE` and with itself), inserts the keys, then backfills from the
//!   log, in one transaction.
//! - SQLite: the writer's first statement (the insert) takes the database's write lock; adding holds it from its
//!   first statement (inserting the key) to its commit; both read under it.
//!
//! So a writer transaction W and the transaction A adding key K never hold their locks at the same time:
//!
//! 1. W locked first: A waits for W's commit; A's backfill, in later statements, sees W's rows and counts them
//!    under K, and W, having read the set before K was in it, did not.
//! 2. A locked first: W's read waits for A's commit and sees K, so W counts its rows under K; A's backfill ran
//!    before W committed, so it did not see them (they may have been inserted already, but not committed).
//!
//! Every log row is committed by some W, so each is counted under K once: by A or by its own W. Replicas share the
//! table, so a key added on one replica is counted by every replica's next batch, whatever their own rules say.
//! A second adder of K waits for the first (the lock conflicts with itself) and then finds K present.
//!
//! A recompute (`recompute`) takes `SHARE` on the keys before its `EXCLUSIVE` locks on the rollups: every
//! transaction takes the keys' lock before any rollup lock (writers, adders and recomputes alike), so none waits
//! for another in a cycle.
//!
//! Keys are never removed, so a key some rule used once keeps being counted after the rule is gone: dropping it
//! would leave a hole in its history that the log, after retention, could not fill. Rollup rows of a key that is
//! not in the table (someone deleted the key by hand) are discarded when it is added again, and recounted from
//! the retained log.
//!
//! Cost: adding a key reads every log row that has it, in one transaction, while writers wait on the lock (the
//! request path never waits: their queue fills, then spills to disk). It happens once per key.

use std::collections::BTreeSet;

use jiff::Timestamp;
use sqlx::{PgPool, Postgres, Row, Sqlite, SqlitePool, Transaction};

use crate::error::StoreError;
use crate::log_scan::LogScan;
use crate::rollup::{FLUSH_ROWS, RollupKeys, Rollups};
use crate::store::{Pool, Store};

impl Store {
    /// The metadata keys the rollups count, oldest first (`/spend` groups by these only).
    pub async fn rollup_metadata_keys(&self) -> Result<Vec<String>, StoreError> {
        const SQL: &str = "SELECT meta_key FROM spend_rollup_metadata_keys ORDER BY position";
        let keys = match self.pool() {
            Pool::Postgres(pool) => {
                readable_keys(sqlx::query(SQL).fetch_all(pool).await?.iter().map(|row| row.try_get::<String, _>(0)))
            }
            Pool::Sqlite(pool) => {
                readable_keys(sqlx::query(SQL).fetch_all(pool).await?.iter().map(|row| row.try_get::<String, _>(0)))
            }
        };
        Ok(keys)
    }

    /// Makes the rollups count `keys` from now on, each with its history: the log rows already stored are added to
    /// the metadata rollups of the keys that were not counted yet, exactly once even while writers keep inserting
    /// (see the module docs). Returns the keys that were new, in the order they were added (sorted). A call that
    /// adds nothing costs one read and takes no lock.
    pub async fn add_rollup_metadata_keys(&self, keys: &BTreeSet<String>) -> Result<Vec<String>, StoreError> {
        let known = self.rollup_metadata_keys().await?;
        if keys.iter().all(|key| known.contains(key)) {
            return Ok(Vec::new());
        }
        let max_per_row = self.options().max_rollup_keys_per_row;
        let added = match self.pool() {
            Pool::Postgres(pool) => add_keys_postgres(pool, keys, max_per_row).await?,
            Pool::Sqlite(pool) => add_keys_sqlite(pool, keys, max_per_row).await?,
        };
        if !added.is_empty() {
            tracing::info!(keys = ?added, "metadata keys rolled up from now on, history included");
        }
        Ok(added)
    }
}

/// [`Store::add_rollup_metadata_keys`] on Postgres: `SHARE ROW EXCLUSIVE` on the key table, then the new keys and
/// their backfill, in one transaction (see the module docs).
async fn add_keys_postgres(
    pool: &PgPool,
    keys: &BTreeSet<String>,
    max_per_row: usize,
) -> Result<Vec<String>, StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query("LOCK TABLE spend_rollup_metadata_keys IN SHARE ROW EXCLUSIVE MODE").execute(&mut *tx).await?;
    let old = read_postgres(&mut tx, max_per_row).await?;
    let new: Vec<String> = keys.iter().filter(|key| !old.keys.contains(key)).cloned().collect();
    if !new.is_empty() {
        sqlx::query(
            "INSERT INTO spend_rollup_metadata_keys (meta_key, position)
             SELECT u.k, (SELECT COALESCE(max(position), 0) FROM spend_rollup_metadata_keys) + u.n
             FROM UNNEST($1::text[]) WITH ORDINALITY AS u(k, n)",
        )
        .bind(&new)
        .execute(&mut *tx)
        .await?;
        for table in
            ["spend_rollup_metadata_hourly", "spend_rollup_metadata_daily", "spend_rollup_metadata_value_daily"]
        {
            let sql = format!("DELETE FROM {table} WHERE meta_key = ANY($1)");
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(&new).execute(&mut *tx).await?;
        }
        let first = old.keys.len();
        let all = RollupKeys { keys: old.keys.into_iter().chain(new.iter().cloned()).collect(), max_per_row };
        let mut scan = LogScan::default();
        let mut rollups = Rollups::default();
        loop {
            let page = scan.next_postgres(&mut tx, Some(&new)).await?;
            if page.is_empty() {
                break;
            }
            for record in &page {
                rollups.add_metadata(record, &all, first);
            }
            if rollups.len() >= FLUSH_ROWS {
                std::mem::take(&mut rollups).upsert_postgres(&mut tx).await?;
            }
        }
        rollups.upsert_postgres(&mut tx).await?;
    }
    tx.commit().await?;
    Ok(new)
}

/// [`Store::add_rollup_metadata_keys`] on SQLite: the first statement writes, so the database's write lock is held
/// from the first key inserted to the commit (see the module docs).
async fn add_keys_sqlite(
    pool: &SqlitePool,
    keys: &BTreeSet<String>,
    max_per_row: usize,
) -> Result<Vec<String>, StoreError> {
    let mut tx = pool.begin().await?;
    // The first statement writes, so the write lock is held from here to the commit.
    let now_us = Timestamp::now().as_microsecond();
    let mut new = Vec::new();
    for key in keys {
        let inserted = sqlx::query(
            "INSERT OR IGNORE INTO spend_rollup_metadata_keys (meta_key, position, added_at)
             VALUES (?, (SELECT COALESCE(max(position), 0) + 1 FROM spend_rollup_metadata_keys), ?)",
        )
        .bind(key)
        .bind(now_us)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if inserted {
            new.push(key.clone());
        }
    }
    if !new.is_empty() {
        for key in &new {
            for sql in [
                "DELETE FROM spend_rollup_metadata_hourly WHERE meta_key = ?",
                "DELETE FROM spend_rollup_metadata_daily WHERE meta_key = ?",
                "DELETE FROM spend_rollup_metadata_value_daily WHERE meta_key = ?",
            ] {
                sqlx::query(sql).bind(key).execute(&mut *tx).await?;
            }
        }
        let all = read_sqlite(&mut tx, max_per_row).await?;
        // The new keys have the highest positions.
        let first = all.keys.len() - new.len();
        let mut scan = LogScan::default();
        let mut rollups = Rollups::default();
        loop {
            let page = scan.next_sqlite(&mut tx).await?;
            if page.is_empty() {
                break;
            }
            for record in &page {
                rollups.add_metadata(record, &all, first);
            }
            if rollups.len() >= FLUSH_ROWS {
                std::mem::take(&mut rollups).upsert_sqlite(&mut tx).await?;
            }
        }
        rollups.upsert_sqlite(&mut tx).await?;
    }
    tx.commit().await?;
    Ok(new)
}

/// The key set inside a transaction that is about to add rows to the rollups: takes `SHARE` on the key table first
/// (held to commit; see the module docs), then reads it in a statement of its own.
pub(crate) async fn locked_postgres(
    tx: &mut Transaction<'_, Postgres>,
    max_per_row: usize,
) -> Result<RollupKeys, StoreError> {
    sqlx::query("LOCK TABLE spend_rollup_metadata_keys IN SHARE MODE").execute(&mut **tx).await?;
    read_postgres(tx, max_per_row).await
}

async fn read_postgres(tx: &mut Transaction<'_, Postgres>, max_per_row: usize) -> Result<RollupKeys, StoreError> {
    let rows =
        sqlx::query("SELECT meta_key FROM spend_rollup_metadata_keys ORDER BY position").fetch_all(&mut **tx).await?;
    Ok(RollupKeys { keys: readable_keys(rows.iter().map(|row| row.try_get::<String, _>(0))), max_per_row })
}

/// The key set inside a SQLite transaction that already holds the write lock (it has written).
pub(crate) async fn read_sqlite(
    tx: &mut Transaction<'_, Sqlite>,
    max_per_row: usize,
) -> Result<RollupKeys, StoreError> {
    let rows =
        sqlx::query("SELECT meta_key FROM spend_rollup_metadata_keys ORDER BY position").fetch_all(&mut **tx).await?;
    Ok(RollupKeys { keys: readable_keys(rows.iter().map(|row| row.try_get::<String, _>(0))), max_per_row })
}

/// The keys that read as text; one that does not (written by hand) is reported and skipped, never failing the
/// batch that reads the set (its records would otherwise be refused one by one).
fn readable_keys(keys: impl Iterator<Item = Result<String, sqlx::Error>>) -> Vec<String> {
    keys.filter_map(|key| match key {
        Ok(key) => Some(key),
        Err(error) => {
            tracing::warn!(%error, "unreadable rollup metadata key skipped");
            None
        }
    })
    .collect()
}

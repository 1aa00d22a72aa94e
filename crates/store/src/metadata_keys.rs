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

use crate::backend::Backend;
use crate::error::StoreError;
use crate::log_scan::{self, LogScanBackend};
use crate::rollup::{RollupBackend, RollupKeys, Rollups};
use crate::sql::ReadRow;
use crate::store::{Pool, Store};

/// The primitives of the key set (`postgres/metadata_keys.rs`, `sqlite/metadata_keys.rs`): the locks of the
/// module docs live here.
pub(crate) trait MetadataKeysBackend: Backend {
    /// The key set inside a transaction that is about to add rows to the rollups, read under the lock that
    /// excludes adding a key (held to commit).
    async fn lock_rollup_keys(conn: &mut Self::Connection, max_per_row: usize) -> Result<RollupKeys, StoreError>;

    /// Takes the lock that excludes writers and other adders (held to commit) and inserts the `keys` not in the set
    /// yet, after the others (in `keys` order); returns them.
    async fn claim_rollup_keys(conn: &mut Self::Connection, keys: &BTreeSet<String>)
    -> Result<Vec<String>, StoreError>;

    /// Deletes the metadata rollup rows of `keys` (left by a key deleted by hand: they are recounted).
    async fn delete_key_rollups(conn: &mut Self::Connection, keys: &[String]) -> Result<(), StoreError>;
}

/// The key set, oldest first (both backends).
const KEYS: &str = "SELECT meta_key FROM spend_rollup_metadata_keys ORDER BY position";

impl Store {
    /// The metadata keys the rollups count, oldest first (`/spend` groups by these only).
    pub async fn rollup_metadata_keys(&self) -> Result<Vec<String>, StoreError> {
        let keys = match self.pool() {
            Pool::Postgres(pool) => read_rollup_keys::<sqlx::Postgres>(&mut *pool.acquire().await?, 0).await?,
            Pool::Sqlite(pool) => read_rollup_keys::<sqlx::Sqlite>(&mut *pool.acquire().await?, 0).await?,
        };
        Ok(keys.keys)
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
            Pool::Postgres(pool) => add_keys(pool, keys, max_per_row).await?,
            Pool::Sqlite(pool) => add_keys(pool, keys, max_per_row).await?,
        };
        if !added.is_empty() {
            tracing::info!(keys = ?added, "metadata keys rolled up from now on, history included");
        }
        Ok(added)
    }
}

/// [`Store::add_rollup_metadata_keys`]: in one transaction, the new keys (under the lock of the module docs), then
/// their history from the log.
async fn add_keys<B: MetadataKeysBackend + LogScanBackend + RollupBackend>(
    pool: &sqlx::Pool<B>,
    keys: &BTreeSet<String>,
    max_per_row: usize,
) -> Result<Vec<String>, StoreError> {
    let mut tx = pool.begin().await?;
    let new = B::claim_rollup_keys(&mut tx, keys).await?;
    if !new.is_empty() {
        B::delete_key_rollups(&mut tx, &new).await?;
        let all = read_rollup_keys::<B>(&mut tx, max_per_row).await?;
        // The new keys have the highest positions.
        let first = all.keys.len().saturating_sub(new.len());
        let mut rollups = Rollups::default();
        let add = |page: Vec<_>, rollups: &mut Rollups| {
            for record in &page {
                rollups.add_metadata(record, &all, first);
            }
            Vec::new()
        };
        log_scan::walk::<B>(&mut tx, Some(&new), &mut rollups, add).await?;
    }
    tx.commit().await?;
    Ok(new)
}

/// The key set as stored (no lock taken here).
pub(crate) async fn read_rollup_keys<B: Backend>(
    conn: &mut B::Connection,
    max_per_row: usize,
) -> Result<RollupKeys, StoreError> {
    let rows = B::fetch_all(conn, KEYS, &[]).await?;
    Ok(RollupKeys { keys: readable_keys(rows.iter().map(|row| row.text(0_usize))), max_per_row })
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

//! The metadata key set on SQLite: the database's write lock does the excluding. A writer has taken it by its first
//! insert; an adder takes it with its first statement (inserting a key) and holds it to commit.

use std::collections::BTreeSet;

use jiff::Timestamp;
use sqlx::Sqlite;
use sqlx::sqlite::SqliteConnection;

use crate::backend::{Backend, Bind};
use crate::error::StoreError;
use crate::metadata_keys::{MetadataKeysBackend, read_rollup_keys};
use crate::rollup::RollupKeys;

impl MetadataKeysBackend for Sqlite {
    /// The caller has written already, so it holds the write lock.
    async fn lock_rollup_keys(conn: &mut SqliteConnection, max_per_row: usize) -> Result<RollupKeys, StoreError> {
        read_rollup_keys::<Self>(conn, max_per_row).await
    }

    async fn claim_rollup_keys(
        conn: &mut SqliteConnection,
        keys: &BTreeSet<String>,
    ) -> Result<Vec<String>, StoreError> {
        let now_us = Timestamp::now().as_microsecond();
        let mut new = Vec::new();
        for key in keys {
            let sql = "INSERT OR IGNORE INTO spend_rollup_metadata_keys (meta_key, position, added_at)
                 VALUES ($1, (SELECT COALESCE(max(position), 0) + 1 FROM spend_rollup_metadata_keys), $2)";
            if Self::execute(conn, sql, &[Bind::Text(key), Bind::Int(now_us)]).await? == 1 {
                new.push(key.clone());
            }
        }
        Ok(new)
    }

    async fn delete_key_rollups(conn: &mut SqliteConnection, keys: &[String]) -> Result<(), StoreError> {
        for key in keys {
            for sql in [
                "DELETE FROM spend_rollup_metadata_hourly WHERE meta_key = $1",
                "DELETE FROM spend_rollup_metadata_daily WHERE meta_key = $1",
                "DELETE FROM spend_rollup_metadata_value_daily WHERE meta_key = $1",
            ] {
                Self::execute(conn, sql, &[Bind::Text(key)]).await?;
            }
        }
        Ok(())
    }
}

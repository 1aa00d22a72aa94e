//! The metadata key set on Postgres: writers take `SHARE` on the key table, adders `SHARE ROW EXCLUSIVE` (which
//! conflicts with `SHARE` and with itself), each held to commit (see `metadata_keys`).

use std::collections::BTreeSet;

use sqlx::Postgres;
use sqlx::postgres::PgConnection;

use crate::backend::Backend;
use crate::error::StoreError;
use crate::metadata_keys::{MetadataKeysBackend, read_rollup_keys};
use crate::rollup::RollupKeys;

impl MetadataKeysBackend for Postgres {
    /// `SHARE` first, then the read in a statement of its own (READ COMMITTED: its snapshot is taken after the lock
    /// was granted).
    async fn lock_rollup_keys(conn: &mut PgConnection, max_per_row: usize) -> Result<RollupKeys, StoreError> {
        Self::execute(conn, "LOCK TABLE spend_rollup_metadata_keys IN SHARE MODE", &[]).await?;
        read_rollup_keys::<Self>(conn, max_per_row).await
    }

    async fn claim_rollup_keys(conn: &mut PgConnection, keys: &BTreeSet<String>) -> Result<Vec<String>, StoreError> {
        Self::execute(conn, "LOCK TABLE spend_rollup_metadata_keys IN SHARE ROW EXCLUSIVE MODE", &[]).await?;
        let old = read_rollup_keys::<Self>(conn, 0).await?;
        let new: Vec<String> = keys.iter().filter(|key| !old.keys.contains(key)).cloned().collect();
        if !new.is_empty() {
            sqlx::query(
                "INSERT INTO spend_rollup_metadata_keys (meta_key, position)
                 SELECT u.k, (SELECT COALESCE(max(position), 0) FROM spend_rollup_metadata_keys) + u.n
                 FROM UNNEST($1::text[]) WITH ORDINALITY AS u(k, n)",
            )
            .bind(&new)
            .execute(&mut *conn)
            .await?;
        }
        Ok(new)
    }

    async fn delete_key_rollups(conn: &mut PgConnection, keys: &[String]) -> Result<(), StoreError> {
        for sql in [
            "DELETE FROM spend_rollup_metadata_hourly WHERE meta_key = ANY($1)",
            "DELETE FROM spend_rollup_metadata_daily WHERE meta_key = ANY($1)",
            "DELETE FROM spend_rollup_metadata_value_daily WHERE meta_key = ANY($1)",
        ] {
            sqlx::query(sql).bind(keys).execute(&mut *conn).await?;
        }
        Ok(())
    }
}

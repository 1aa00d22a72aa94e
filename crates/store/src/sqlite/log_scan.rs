//! The log scan on SQLite: every row is read (no index on metadata keys; the caller skips those without the key),
//! and a page's repriced rows are rewritten one cached statement each.

use sqlx::sqlite::SqliteConnection;
use sqlx::{QueryBuilder, Sqlite};

use crate::backend::{Backend, Bind};
use crate::error::StoreError;
use crate::log_scan::{CostUpdate, LogScanBackend};

impl LogScanBackend for Sqlite {
    fn push_has_any_key(_: &mut QueryBuilder<Self>, _: &[String]) {}

    async fn update_costs(conn: &mut SqliteConnection, updates: &[CostUpdate]) -> Result<(), StoreError> {
        for (id, cost, source) in updates {
            let sql = "UPDATE request_logs SET cost_nanos = $1, cost_source = $2 WHERE id = $3";
            Self::execute(conn, sql, &[Bind::Int(*cost), Bind::Text(source), Bind::Text(id)]).await?;
        }
        Ok(())
    }
}

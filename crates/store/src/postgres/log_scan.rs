//! The log scan on Postgres: a backfill reads only the rows that have one of its keys (`?|`, the GIN index), and a
//! page's repriced rows are rewritten in one `UNNEST` statement.

use sqlx::postgres::PgConnection;
use sqlx::{Postgres, QueryBuilder};

use crate::error::StoreError;
use crate::log_scan::{CostUpdate, LogScanBackend};

impl LogScanBackend for Postgres {
    fn push_has_any_key(query: &mut QueryBuilder<Self>, keys: &[String]) {
        query.push(" AND metadata ?| ").push_bind(keys.to_vec()).push("::text[]");
    }

    async fn update_costs(conn: &mut PgConnection, updates: &[CostUpdate]) -> Result<(), StoreError> {
        if updates.is_empty() {
            return Ok(());
        }
        let ids: Vec<&str> = updates.iter().map(|(id, _, _)| id.as_str()).collect();
        let costs: Vec<i64> = updates.iter().map(|(_, cost, _)| *cost).collect();
        let sources: Vec<&str> = updates.iter().map(|(_, _, source)| *source).collect();
        sqlx::query(
            "UPDATE request_logs SET cost_nanos = u.cost, cost_source = u.source
             FROM UNNEST($1::text[], $2::int8[], $3::text[]) AS u(id, cost, source)
             WHERE request_logs.id = u.id",
        )
        .bind(ids)
        .bind(costs)
        .bind(sources)
        .execute(conn)
        .await?;
        Ok(())
    }
}

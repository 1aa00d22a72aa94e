//! `spend_buckets` on SQLite: a batch is one transaction of cached per-delta upserts (in-process: no round trip to
//! save), spans are read one statement each, and `updated_at` is this process's clock in Unix µs.

use std::sync::LazyLock;

use jiff::Timestamp;
use sqlx::sqlite::{SqliteConnection, SqliteRow};
use sqlx::{Connection, Sqlite};

use crate::backend::{Backend, Bind};
use crate::error::StoreError;
use crate::spend::{DeltaColumns, RuleSpan, SpendBackend};
use crate::sql::saturating_add_sql;

/// Claims a batch id, stamped `$2`.
const CLAIM: &str = "INSERT OR IGNORE INTO spend_batches_applied (batch_id, applied_at) VALUES ($1, $2)";

impl SpendBackend for Sqlite {
    const CHANGED_SINCE: &'static str =
        "SELECT rule_id, bucket_key, window_start_ns, spent_nanos FROM spend_buckets WHERE updated_at >= $1";

    async fn apply_spend_batch(
        conn: &mut SqliteConnection,
        id: &str,
        d: &DeltaColumns<'_>,
    ) -> Result<bool, StoreError> {
        let now_us = Timestamp::now().as_microsecond();
        let mut tx = conn.begin().await?;
        let claimed = Self::execute(&mut tx, CLAIM, &[Bind::Text(id), Bind::Int(now_us)]).await? == 1;
        if claimed {
            for (((rule, key), start), amount) in d.rules.iter().zip(&d.keys).zip(&d.starts).zip(&d.amounts) {
                sqlx::query(SPEND_UPSERT.as_str())
                    .bind(rule)
                    .bind(key)
                    .bind(start)
                    .bind(amount)
                    .bind(now_us)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(claimed)
    }

    async fn claim_spend_batch(conn: &mut SqliteConnection, id: &str) -> Result<(), StoreError> {
        Self::execute(conn, CLAIM, &[Bind::Text(id), Bind::Int(Timestamp::now().as_microsecond())]).await?;
        Ok(())
    }

    async fn insert_span_rows(
        conn: &mut SqliteConnection,
        rule_id: &str,
        keys: &[&str],
        starts: &[i64],
        amounts: &[i64],
    ) -> Result<(), StoreError> {
        let now_us = Bind::Int(Timestamp::now().as_microsecond());
        let sql = "INSERT INTO spend_buckets (rule_id, bucket_key, window_start_ns, spent_nanos, updated_at)
             VALUES ($1, $2, $3, $4, $5)";
        for ((key, start), amount) in keys.iter().zip(starts).zip(amounts) {
            let binds = [Bind::Text(rule_id), Bind::Text(key), Bind::Int(*start), Bind::Int(*amount), now_us];
            Self::execute(conn, sql, &binds).await?;
        }
        Ok(())
    }

    async fn read_span_rows(conn: &mut SqliteConnection, spans: &[RuleSpan]) -> Result<Vec<SqliteRow>, StoreError> {
        let sql = "SELECT rule_id, bucket_key, window_start_ns, spent_nanos FROM spend_buckets
             WHERE rule_id = $1 AND window_start_ns >= $2 AND window_start_ns < $3";
        let mut out = Vec::new();
        for span in spans {
            let binds = [Bind::Text(&span.rule_id), Bind::Int(span.start_ns), Bind::Int(span.end_ns)];
            out.extend(Self::fetch_all(conn, sql, &binds).await?);
        }
        Ok(out)
    }
}

/// One delta; the sum stops at `i64::MAX` (a plain `+` would turn the column into a REAL, which no read accepts). A
/// REAL left by an older version compares above the bound, so the next delta writes `i64::MAX` back.
static SPEND_UPSERT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO spend_buckets (rule_id, bucket_key, window_start_ns, spent_nanos, updated_at)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (rule_id, bucket_key, window_start_ns) DO UPDATE SET
             spent_nanos = {},
             updated_at = excluded.updated_at",
        saturating_add_sql("spent_nanos", "excluded.spent_nanos")
    )
});

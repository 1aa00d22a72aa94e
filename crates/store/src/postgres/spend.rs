//! `spend_buckets` on Postgres: a batch's claim and deltas are one statement over `UNNEST`ed arrays (so one
//! implicit transaction), spans are read in one join, and `now()` stamps `updated_at`.

use std::sync::LazyLock;

use sqlx::postgres::PgConnection;
use sqlx::{Postgres, Row};

use crate::backend::{Backend, Bind};
use crate::error::StoreError;
use crate::spend::{DeltaColumns, RuleSpan, SpendBackend};
use crate::sql::saturating_add_sql;

impl SpendBackend for Postgres {
    const CHANGED_SINCE: &'static str = "SELECT rule_id, bucket_key, window_start_ns, spent_nanos FROM spend_buckets
         WHERE updated_at >= 'epoch'::timestamptz + $1 * interval '1 microsecond'";

    async fn apply_spend_batch(conn: &mut PgConnection, id: &str, d: &DeltaColumns<'_>) -> Result<bool, StoreError> {
        let done = sqlx::query(SPEND_UPSERT.as_str())
            .bind(id)
            .bind(&d.rules)
            .bind(&d.keys)
            .bind(&d.starts)
            .bind(&d.amounts)
            .fetch_one(conn)
            .await?;
        Ok(done.try_get::<i64, _>(0)? == 1)
    }

    async fn claim_spend_batch(conn: &mut PgConnection, id: &str) -> Result<(), StoreError> {
        let sql = "INSERT INTO spend_batches_applied (batch_id) VALUES ($1) ON CONFLICT DO NOTHING";
        Self::execute(conn, sql, &[Bind::Text(id)]).await?;
        Ok(())
    }

    async fn insert_span_rows(
        conn: &mut PgConnection,
        rule_id: &str,
        keys: &[&str],
        starts: &[i64],
        amounts: &[i64],
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO spend_buckets (rule_id, bucket_key, window_start_ns, spent_nanos, updated_at)
             SELECT $1, u.k, u.s, u.d, now() FROM UNNEST($2::text[], $3::int8[], $4::int8[]) AS u(k, s, d)",
        )
        .bind(rule_id)
        .bind(keys)
        .bind(starts)
        .bind(amounts)
        .execute(conn)
        .await?;
        Ok(())
    }

    async fn read_span_rows(
        conn: &mut PgConnection,
        spans: &[RuleSpan],
    ) -> Result<Vec<sqlx::postgres::PgRow>, StoreError> {
        let rules: Vec<&str> = spans.iter().map(|s| s.rule_id.as_str()).collect();
        let starts: Vec<i64> = spans.iter().map(|s| s.start_ns).collect();
        let ends: Vec<i64> = spans.iter().map(|s| s.end_ns).collect();
        let rows = sqlx::query(
            "SELECT b.rule_id, b.bucket_key, b.window_start_ns, b.spent_nanos
             FROM UNNEST($1::text[], $2::int8[], $3::int8[]) AS w(r, lo, hi)
             JOIN spend_buckets b
               ON b.rule_id = w.r AND b.window_start_ns >= w.lo AND b.window_start_ns < w.hi",
        )
        .bind(&rules)
        .bind(&starts)
        .bind(&ends)
        .fetch_all(conn)
        .await?;
        Ok(rows)
    }
}

/// Adds a batch's deltas and claims its id in one statement; the sum stops at `i64::MAX` instead of failing.
static SPEND_UPSERT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH claimed AS (
             INSERT INTO spend_batches_applied (batch_id) VALUES ($1)
             ON CONFLICT (batch_id) DO NOTHING RETURNING batch_id
         ), upserted AS (
             INSERT INTO spend_buckets (rule_id, bucket_key, window_start_ns, spent_nanos, updated_at)
             SELECT u.r, u.k, u.s, u.d, now()
             FROM claimed, UNNEST($2::text[], $3::text[], $4::int8[], $5::int8[]) AS u(r, k, s, d)
             ORDER BY u.r, u.k, u.s
             ON CONFLICT (rule_id, bucket_key, window_start_ns) DO UPDATE SET
                 spent_nanos = {},
                 updated_at = EXCLUDED.updated_at
             RETURNING 1
         )
         SELECT (SELECT count(*) FROM claimed) AS claimed",
        saturating_add_sql("spend_buckets.spent_nanos", "EXCLUDED.spent_nanos")
    )
});

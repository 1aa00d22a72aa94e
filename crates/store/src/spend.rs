//! The `spend_buckets` aggregate: add a batch of drained deltas exactly once, read totals back.

use std::collections::HashSet;
use std::sync::LazyLock;

use jiff::Timestamp;
use sqlx::Row;
use tollgate_limits::BucketTotal;

use crate::error::StoreError;
use crate::model::SpendBatch;
use crate::quarantine::QuarantineKind;
use crate::sql::{saturating_add_sql, saturating_i64, timestamp_nanos};
use crate::store::{Pool, Store};

#[cfg(test)]
mod tests;

/// Totals read back, and the database time to ask "changed since" from next time.
pub(crate) struct TotalsRead {
    pub totals: Vec<BucketTotal>,
    pub read_at_us: i64,
}

/// A rule's current span of window starts, `[start, end)` in Unix nanoseconds.
pub(crate) struct RuleSpan {
    pub rule_id: String,
    pub start_ns: i64,
    pub end_ns: i64,
}

impl Store {
    /// Adds `batch` to `spend_buckets` unless its id was already applied; returns whether it was applied now.
    pub(crate) async fn apply_spend_batch(&self, batch: &SpendBatch) -> Result<bool, StoreError> {
        if batch.deltas.is_empty() {
            return Ok(false);
        }
        let mut rules = Vec::with_capacity(batch.deltas.len());
        let mut keys = Vec::with_capacity(batch.deltas.len());
        let mut starts = Vec::with_capacity(batch.deltas.len());
        let mut amounts = Vec::with_capacity(batch.deltas.len());
        for d in &batch.deltas {
            rules.push(d.rule_id.as_str());
            keys.push(d.bucket_key.as_str());
            starts.push(d.window_start_ns);
            // Clamped, never refused: a delta above `i64::MAX` would otherwise fail its batch on every retry.
            amounts.push(saturating_i64(d.delta_nanos));
        }
        match self.pool() {
            Pool::Postgres(pool) => {
                // One statement, so one implicit transaction: the id is claimed if and only if the deltas land.
                let done = sqlx::query(SPEND_UPSERT_POSTGRES.as_str())
                    .bind(&batch.id)
                    .bind(&rules)
                    .bind(&keys)
                    .bind(&starts)
                    .bind(&amounts)
                    .fetch_one(pool)
                    .await?;
                Ok(done.try_get::<i64, _>(0)? == 1)
            }
            Pool::Sqlite(pool) => {
                let now_us = Timestamp::now().as_microsecond();
                let mut tx = pool.begin().await?;
                let claimed =
                    sqlx::query("INSERT OR IGNORE INTO spend_batches_applied (batch_id, applied_at) VALUES (?, ?)")
                        .bind(&batch.id)
                        .bind(now_us)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected()
                        == 1;
                if claimed {
                    for (((rule, key), start), amount) in rules.iter().zip(&keys).zip(&starts).zip(&amounts) {
                        sqlx::query(SPEND_UPSERT_SQLITE.as_str())
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
        }
    }

    /// [`Store::apply_spend_batch`], and when the database refuses the batch for its values (not an outage), its
    /// deltas one at a time, each under an id derived from the batch's (`<id>/<n>`, so a retry skips those already
    /// in): every good delta lands and a refused one is quarantined. An outage fails the call as before.
    pub(crate) async fn store_spend_batch(&self, batch: &SpendBatch) -> Result<(), StoreError> {
        let error = match self.apply_spend_batch(batch).await {
            Ok(_) => return Ok(()),
            Err(error) if error.is_data_error() => error,
            Err(error) => return Err(error),
        };
        if batch.deltas.len() == 1 {
            self.quarantine(QuarantineKind::Spend, batch, &error).await;
            return self.claim_spend_batch(&batch.id).await;
        }
        for (n, delta) in batch.deltas.iter().enumerate() {
            let one = SpendBatch { id: format!("{}/{n}", batch.id), deltas: vec![delta.clone()] };
            match self.apply_spend_batch(&one).await {
                Ok(_) => {}
                Err(error) if error.is_data_error() => self.quarantine(QuarantineKind::Spend, &one, &error).await,
                Err(error) => return Err(error),
            }
        }
        // Claimed last: a later attempt at the whole batch (a replay of its spill line) is then a no-op even if the
        // refused value has become storable, so no delta is ever added under both ids.
        self.claim_spend_batch(&batch.id).await
    }

    /// Marks `id` applied without adding anything.
    async fn claim_spend_batch(&self, id: &str) -> Result<(), StoreError> {
        match self.pool() {
            Pool::Postgres(pool) => {
                sqlx::query("INSERT INTO spend_batches_applied (batch_id) VALUES ($1) ON CONFLICT DO NOTHING")
                    .bind(id)
                    .execute(pool)
                    .await?;
            }
            Pool::Sqlite(pool) => {
                sqlx::query("INSERT OR IGNORE INTO spend_batches_applied (batch_id, applied_at) VALUES (?, ?)")
                    .bind(id)
                    .bind(Timestamp::now().as_microsecond())
                    .execute(pool)
                    .await?;
            }
        }
        Ok(())
    }

    /// Replaces rule `rule_id`'s rows whose window start lies in `span` (`[start, end)`: a fixed window's one
    /// start, or every slot start of a rolling window's current span) with `totals` (bucket key, window or slot
    /// start, nano-dollars), in one transaction: the rows not in `totals` are deleted. Returns what the engine should
    /// adopt (`SpendEngine::replace_totals`): `totals`, plus a zero for each deleted row that `totals` does not
    /// rewrite, so a window or slot whose spend went away drops to zero locally too. Used by a recompute; a delta
    /// batch applied concurrently lands either before (and is overwritten) or after (and is added on top).
    pub async fn replace_spend_span(
        &self,
        rule_id: &str,
        span: (Timestamp, Timestamp),
        totals: &[(String, Timestamp, u64)],
    ) -> Result<Vec<BucketTotal>, StoreError> {
        let (lo, hi) = (timestamp_nanos(span.0), timestamp_nanos(span.1));
        let keys: Vec<&str> = totals.iter().map(|(k, _, _)| k.as_str()).collect();
        let starts: Vec<i64> = totals.iter().map(|(_, start, _)| timestamp_nanos(*start)).collect();
        let amounts: Vec<i64> = totals.iter().map(|(_, _, n)| saturating_i64(*n)).collect();
        let deleted = match self.pool() {
            Pool::Postgres(pool) => replace_span_postgres(pool, rule_id, (lo, hi), &keys, &starts, &amounts).await?,
            Pool::Sqlite(pool) => replace_span_sqlite(pool, rule_id, (lo, hi), &keys, &starts, &amounts).await?,
        };
        let written: HashSet<(&str, i64)> = keys.iter().copied().zip(starts.iter().copied()).collect();
        let mut adopt: Vec<BucketTotal> = totals
            .iter()
            .map(|(bucket_key, window_start, total_nanos)| BucketTotal {
                rule_id: rule_id.to_owned(),
                bucket_key: bucket_key.clone(),
                window_start: *window_start,
                total_nanos: *total_nanos,
            })
            .collect();
        for (bucket_key, start_ns) in deleted {
            if written.contains(&(bucket_key.as_str(), start_ns)) {
                continue;
            }
            let window_start = Timestamp::from_nanosecond(i128::from(start_ns))
                .map_err(|_| StoreError::OutOfRange { field: "window_start_ns" })?;
            adopt.push(BucketTotal { rule_id: rule_id.to_owned(), bucket_key, window_start, total_nanos: 0 });
        }
        Ok(adopt)
    }

    /// Every row whose window start lies in its rule's current span (start-up, and rules new to this replica).
    pub(crate) async fn read_spend_spans(&self, spans: &[RuleSpan]) -> Result<TotalsRead, StoreError> {
        let rules: Vec<&str> = spans.iter().map(|s| s.rule_id.as_str()).collect();
        let starts: Vec<i64> = spans.iter().map(|s| s.start_ns).collect();
        let ends: Vec<i64> = spans.iter().map(|s| s.end_ns).collect();
        match self.pool() {
            Pool::Postgres(pool) => {
                let read_at_us = postgres_now_us(pool).await?;
                let rows = sqlx::query(
                    "SELECT b.rule_id, b.bucket_key, b.window_start_ns, b.spent_nanos
                     FROM UNNEST($1::text[], $2::int8[], $3::int8[]) AS w(r, lo, hi)
                     JOIN spend_buckets b
                       ON b.rule_id = w.r AND b.window_start_ns >= w.lo AND b.window_start_ns < w.hi",
                )
                .bind(&rules)
                .bind(&starts)
                .bind(&ends)
                .fetch_all(pool)
                .await?;
                Ok(TotalsRead { totals: self.totals(&rows), read_at_us })
            }
            Pool::Sqlite(pool) => {
                let read_at_us = Timestamp::now().as_microsecond();
                let mut out = Vec::new();
                for span in spans {
                    let rows = sqlx::query(
                        "SELECT rule_id, bucket_key, window_start_ns, spent_nanos FROM spend_buckets
                         WHERE rule_id = ? AND window_start_ns >= ? AND window_start_ns < ?",
                    )
                    .bind(&span.rule_id)
                    .bind(span.start_ns)
                    .bind(span.end_ns)
                    .fetch_all(pool)
                    .await?;
                    out.extend(self.totals(&rows));
                }
                Ok(TotalsRead { totals: out, read_at_us })
            }
        }
    }

    /// Rows any replica changed at or after `since_us` (database clock, Unix µs).
    pub(crate) async fn read_spend_changed(&self, since_us: i64) -> Result<TotalsRead, StoreError> {
        match self.pool() {
            Pool::Postgres(pool) => {
                let read_at_us = postgres_now_us(pool).await?;
                let rows = sqlx::query(
                    "SELECT rule_id, bucket_key, window_start_ns, spent_nanos FROM spend_buckets
                     WHERE updated_at >= 'epoch'::timestamptz + $1 * interval '1 microsecond'",
                )
                .bind(since_us)
                .fetch_all(pool)
                .await?;
                Ok(TotalsRead { totals: self.totals(&rows), read_at_us })
            }
            Pool::Sqlite(pool) => {
                let read_at_us = Timestamp::now().as_microsecond();
                let rows = sqlx::query(
                    "SELECT rule_id, bucket_key, window_start_ns, spent_nanos FROM spend_buckets
                     WHERE updated_at >= ?",
                )
                .bind(since_us)
                .fetch_all(pool)
                .await?;
                Ok(TotalsRead { totals: self.totals(&rows), read_at_us })
            }
        }
    }
}

/// Adds a batch's deltas and claims its id in one statement (see [`Store::apply_spend_batch`]); the sum stops at
/// `i64::MAX` instead of failing.
static SPEND_UPSERT_POSTGRES: LazyLock<String> = LazyLock::new(|| {
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

/// One delta on SQLite; the sum stops at `i64::MAX` (a plain `+` would turn the column into a REAL, which no read
/// accepts). A REAL left by an older version compares above the bound, so the next delta writes `i64::MAX` back.
static SPEND_UPSERT_SQLITE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO spend_buckets (rule_id, bucket_key, window_start_ns, spent_nanos, updated_at)
         VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (rule_id, bucket_key, window_start_ns) DO UPDATE SET
             spent_nanos = {},
             updated_at = excluded.updated_at",
        saturating_add_sql("spent_nanos", "excluded.spent_nanos")
    )
});

/// A rule's rows whose window start lies in `[$2, $3)`, deleted; both backends (SQLite binds `$N` by index).
const DELETE_SPAN: &str =
    "DELETE FROM spend_buckets WHERE rule_id = $1 AND window_start_ns >= $2 AND window_start_ns < $3
     RETURNING bucket_key, window_start_ns";

/// [`Store::replace_spend_span`]'s transaction on Postgres (one `UNNEST` insert): the `(bucket_key,
/// window_start_ns)` of the rows deleted.
async fn replace_span_postgres(
    pool: &sqlx::PgPool,
    rule_id: &str,
    (lo, hi): (i64, i64),
    keys: &[&str],
    starts: &[i64],
    amounts: &[i64],
) -> Result<Vec<(String, i64)>, StoreError> {
    let mut tx = pool.begin().await?;
    let deleted = sqlx::query_as(DELETE_SPAN).bind(rule_id).bind(lo).bind(hi).fetch_all(&mut *tx).await?;
    sqlx::query(
        "INSERT INTO spend_buckets (rule_id, bucket_key, window_start_ns, spent_nanos, updated_at)
         SELECT $1, u.k, u.s, u.d, now() FROM UNNEST($2::text[], $3::int8[], $4::int8[]) AS u(k, s, d)",
    )
    .bind(rule_id)
    .bind(keys)
    .bind(starts)
    .bind(amounts)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(deleted)
}

/// [`Store::replace_spend_span`]'s transaction on SQLite (one cached insert per row).
async fn replace_span_sqlite(
    pool: &sqlx::SqlitePool,
    rule_id: &str,
    (lo, hi): (i64, i64),
    keys: &[&str],
    starts: &[i64],
    amounts: &[i64],
) -> Result<Vec<(String, i64)>, StoreError> {
    let now_us = Timestamp::now().as_microsecond();
    let mut tx = pool.begin().await?;
    let deleted = sqlx::query_as(DELETE_SPAN).bind(rule_id).bind(lo).bind(hi).fetch_all(&mut *tx).await?;
    for ((key, start), amount) in keys.iter().zip(starts).zip(amounts) {
        sqlx::query(
            "INSERT INTO spend_buckets (rule_id, bucket_key, window_start_ns, spent_nanos, updated_at)
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(rule_id)
        .bind(key)
        .bind(start)
        .bind(amount)
        .bind(now_us)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(deleted)
}

async fn postgres_now_us(pool: &sqlx::PgPool) -> Result<i64, StoreError> {
    let row = sqlx::query("SELECT (extract(epoch FROM now()) * 1000000)::int8").fetch_one(pool).await?;
    Ok(row.try_get::<i64, _>(0)?)
}

/// Row → [`BucketTotal`]; the private row shape is the four selected columns.
struct TotalRow {
    rule_id: String,
    bucket_key: String,
    window_start_ns: i64,
    spent_nanos: i64,
}

impl TryFrom<TotalRow> for BucketTotal {
    type Error = StoreError;

    fn try_from(row: TotalRow) -> Result<Self, Self::Error> {
        let window_start = Timestamp::from_nanosecond(i128::from(row.window_start_ns))
            .map_err(|_| StoreError::OutOfRange { field: "window_start_ns" })?;
        Ok(BucketTotal {
            rule_id: row.rule_id,
            bucket_key: row.bucket_key,
            window_start,
            total_nanos: u64::try_from(row.spent_nanos).map_err(|_| StoreError::OutOfRange { field: "spent_nanos" })?,
        })
    }
}

impl Store {
    /// The rows as totals. A row that cannot be read (a REAL or text amount, a negative one, a window start out of
    /// range) is reported, counted in `/status` (`unreadable_rows`) and skipped: one bad row must not keep every
    /// other budget from loading, nor `serve` from starting.
    fn totals<R>(&self, rows: &[R]) -> Vec<BucketTotal>
    where
        R: Row,
        usize: sqlx::ColumnIndex<R>,
        for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    {
        let mut skipped = 0u64;
        let totals = rows
            .iter()
            .filter_map(|row| {
                let read = (|| -> Result<BucketTotal, StoreError> {
                    BucketTotal::try_from(TotalRow {
                        rule_id: row.try_get(0)?,
                        bucket_key: row.try_get(1)?,
                        window_start_ns: row.try_get(2)?,
                        spent_nanos: row.try_get(3)?,
                    })
                })();
                match read {
                    Ok(total) => Some(total),
                    Err(error) => {
                        skipped += 1;
                        let rule_id = row.try_get::<String, _>(0).unwrap_or_default();
                        let bucket_key = row.try_get::<String, _>(1).unwrap_or_default();
                        tracing::warn!(
                            %rule_id,
                            %bucket_key,
                            error = %crate::quarantine::error_chain(&error),
                            "unreadable spend bucket row skipped"
                        );
                        None
                    }
                }
            })
            .collect();
        self.note_unreadable(skipped);
        totals
    }
}

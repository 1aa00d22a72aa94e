//! The `spend_buckets` aggregate: add a batch of drained deltas exactly once, read totals back.

use std::collections::HashSet;

use jiff::Timestamp;
use tollgate_limits::BucketTotal;

use crate::backend::{Backend, Bind};
use crate::error::StoreError;
use crate::model::SpendBatch;
use crate::quarantine::QuarantineKind;
use crate::sql::{ReadRow, saturating_i64, timestamp_nanos};
use crate::store::{Pool, Store};

#[cfg(test)]
mod tests;

/// The primitives of the `spend_buckets` aggregate (`postgres/spend.rs`, `sqlite/spend.rs`). Rows read come back
/// as `rule_id, bucket_key, window_start_ns, spent_nanos`.
pub(crate) trait SpendBackend: Backend {
    /// The rows updated at or after `$1` (Unix µs).
    const CHANGED_SINCE: &'static str;

    /// Claims batch `id` and adds its deltas, atomically; whether the id was new (nothing is added otherwise).
    async fn apply_spend_batch(
        conn: &mut Self::Connection,
        id: &str,
        deltas: &DeltaColumns<'_>,
    ) -> Result<bool, StoreError>;

    /// Marks `id` applied without adding anything.
    async fn claim_spend_batch(conn: &mut Self::Connection, id: &str) -> Result<(), StoreError>;

    /// Inserts rule `rule_id`'s rows `(keys[i], starts[i], amounts[i])` (none of them is stored).
    async fn insert_span_rows(
        conn: &mut Self::Connection,
        rule_id: &str,
        keys: &[&str],
        starts: &[i64],
        amounts: &[i64],
    ) -> Result<(), StoreError>;

    /// The rows whose window start lies in their rule's span.
    async fn read_span_rows(conn: &mut Self::Connection, spans: &[RuleSpan]) -> Result<Vec<Self::Row>, StoreError>;
}

/// A batch's deltas as columns (the arrays Postgres `UNNEST`s). Amounts are clamped, never refused: a delta above
/// `i64::MAX` would otherwise fail its batch on every retry.
pub(crate) struct DeltaColumns<'a> {
    pub rules: Vec<&'a str>,
    pub keys: Vec<&'a str>,
    pub starts: Vec<i64>,
    pub amounts: Vec<i64>,
}

impl<'a> From<&'a SpendBatch> for DeltaColumns<'a> {
    fn from(batch: &'a SpendBatch) -> Self {
        Self {
            rules: batch.deltas.iter().map(|d| d.rule_id.as_str()).collect(),
            keys: batch.deltas.iter().map(|d| d.bucket_key.as_str()).collect(),
            starts: batch.deltas.iter().map(|d| d.window_start_ns).collect(),
            amounts: batch.deltas.iter().map(|d| saturating_i64(d.delta_nanos)).collect(),
        }
    }
}

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

/// A rule's rows whose window start lies in `[$2, $3)`, deleted; both backends.
const DELETE_SPAN: &str =
    "DELETE FROM spend_buckets WHERE rule_id = $1 AND window_start_ns >= $2 AND window_start_ns < $3
     RETURNING bucket_key, window_start_ns";

impl Store {
    /// Adds `batch` to `spend_buckets` unless its id was already applied; returns whether it was applied now.
    pub(crate) async fn apply_spend_batch(&self, batch: &SpendBatch) -> Result<bool, StoreError> {
        if batch.deltas.is_empty() {
            return Ok(false);
        }
        let deltas = DeltaColumns::from(batch);
        match self.pool() {
            Pool::Postgres(pool) => {
                sqlx::Postgres::apply_spend_batch(&mut *pool.acquire().await?, &batch.id, &deltas).await
            }
            Pool::Sqlite(pool) => {
                sqlx::Sqlite::apply_spend_batch(&mut *pool.acquire().await?, &batch.id, &deltas).await
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
            Pool::Postgres(pool) => sqlx::Postgres::claim_spend_batch(&mut *pool.acquire().await?, id).await,
            Pool::Sqlite(pool) => sqlx::Sqlite::claim_spend_batch(&mut *pool.acquire().await?, id).await,
        }
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
            Pool::Postgres(pool) => replace_span(pool, rule_id, (lo, hi), &keys, &starts, &amounts).await?,
            Pool::Sqlite(pool) => replace_span(pool, rule_id, (lo, hi), &keys, &starts, &amounts).await?,
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
        let read = match self.pool() {
            Pool::Postgres(pool) => read_spans(pool, spans).await?,
            Pool::Sqlite(pool) => read_spans(pool, spans).await?,
        };
        self.note_unreadable(read.1);
        Ok(read.0)
    }

    /// Rows any replica changed at or after `since_us` (database clock, Unix µs).
    pub(crate) async fn read_spend_changed(&self, since_us: i64) -> Result<TotalsRead, StoreError> {
        let read = match self.pool() {
            Pool::Postgres(pool) => read_changed(pool, since_us).await?,
            Pool::Sqlite(pool) => read_changed(pool, since_us).await?,
        };
        self.note_unreadable(read.1);
        Ok(read.0)
    }
}

/// [`Store::replace_spend_span`]'s transaction: the `(bucket_key, window_start_ns)` of the rows deleted.
async fn replace_span<B: SpendBackend>(
    pool: &sqlx::Pool<B>,
    rule_id: &str,
    (lo, hi): (i64, i64),
    keys: &[&str],
    starts: &[i64],
    amounts: &[i64],
) -> Result<Vec<(String, i64)>, StoreError> {
    let mut tx = pool.begin().await?;
    let binds = [Bind::Text(rule_id), Bind::Int(lo), Bind::Int(hi)];
    let deleted = B::fetch_all(&mut tx, DELETE_SPAN, &binds)
        .await?
        .iter()
        .map(|row| Ok((row.text(0_usize)?, row.int(1_usize)?)))
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    B::insert_span_rows(&mut tx, rule_id, keys, starts, amounts).await?;
    tx.commit().await?;
    Ok(deleted)
}

/// [`Store::read_spend_spans`]: the rows, and how many could not be read.
async fn read_spans<B: SpendBackend>(
    pool: &sqlx::Pool<B>,
    spans: &[RuleSpan],
) -> Result<(TotalsRead, u64), StoreError> {
    let mut conn = pool.acquire().await?;
    let read_at_us = B::now_us(&mut conn).await?;
    let rows = B::read_span_rows(&mut conn, spans).await?;
    let (totals, unreadable) = totals(&rows);
    Ok((TotalsRead { totals, read_at_us }, unreadable))
}

/// [`Store::read_spend_changed`]: the rows, and how many could not be read.
async fn read_changed<B: SpendBackend>(pool: &sqlx::Pool<B>, since_us: i64) -> Result<(TotalsRead, u64), StoreError> {
    let mut conn = pool.acquire().await?;
    let read_at_us = B::now_us(&mut conn).await?;
    let rows = B::fetch_all(&mut conn, B::CHANGED_SINCE, &[Bind::Int(since_us)]).await?;
    let (totals, unreadable) = totals(&rows);
    Ok((TotalsRead { totals, read_at_us }, unreadable))
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

/// The rows as totals, and how many were skipped. A row that cannot be read (a REAL or text amount, a negative one,
/// a window start out of range) is reported, counted in `/status` (`unreadable_rows`) and skipped: one bad row must
/// not keep every other budget from loading, nor `serve` from starting.
fn totals(rows: &[impl ReadRow]) -> (Vec<BucketTotal>, u64) {
    let mut skipped = 0u64;
    let totals = rows
        .iter()
        .filter_map(|row| {
            let read = (|| -> Result<BucketTotal, StoreError> {
                BucketTotal::try_from(TotalRow {
                    rule_id: row.text(0_usize)?,
                    bucket_key: row.text(1_usize)?,
                    window_start_ns: row.int(2_usize)?,
                    spent_nanos: row.int(3_usize)?,
                })
            })();
            match read {
                Ok(total) => Some(total),
                Err(error) => {
                    skipped += 1;
                    let rule_id = row.text(0_usize).unwrap_or_default();
                    let bucket_key = row.text(1_usize).unwrap_or_default();
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
    (totals, skipped)
}

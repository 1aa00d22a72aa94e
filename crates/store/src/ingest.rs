//! The provider-ingest aggregate: raw report pages as fetched, the normalised usage rows per provider and hour or
//! day, and the lease that lets one replica at a time ingest a provider. Its tables keep times as BIGINT Unix µs
//! on both backends (migration 0010), so every statement on them is written once here and run through
//! [`Backend`]; the one statement that differs is the reconciliation's read of the spend rollups
//! ([`IngestBackend`], in `postgres/ingest.rs` and `sqlite/ingest.rs`).

use std::collections::BTreeMap;

use jiff::Timestamp;

use crate::backend::{Backend, Bind};
use crate::error::StoreError;
use crate::sql::{ReadRow, saturating_i64};
use crate::store::{Pool, Store};

#[cfg(test)]
mod tests;

/// The width of a normalised row's bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Grain {
    Hour,
    Day,
}

impl Grain {
    pub fn as_str(self) -> &'static str {
        match self {
            Grain::Hour => "hour",
            Grain::Day => "day",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "hour" => Some(Grain::Hour),
            "day" => Some(Grain::Day),
            _ => None,
        }
    }
}

/// A page to store, with what fetched it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRawPage {
    pub endpoint: String,
    /// The grain of the rows this page holds.
    pub grain: Grain,
    /// The span the request asked for, `[span_start, span_end)`: a run's rows of this grain replace the stored
    /// ones in it.
    pub span_start: Timestamp,
    pub span_end: Timestamp,
    pub query: String,
    pub cursor: Option<String>,
    pub fetched_at: Timestamp,
    /// The response body, verbatim.
    pub body: String,
}

/// A stored page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawPage {
    pub id: i64,
    pub provider: String,
    pub run_id: String,
    pub page: NewRawPage,
}

/// One normalised row: a provider's usage and cost in one bucket for one model (`""`: not split by model).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderUsageRow {
    pub grain: Grain,
    pub bucket_start: Timestamp,
    pub model: String,
    pub tokens_in: u64,
    pub tokens_out: u64,
    pub tokens_cached: u64,
    /// Nano-dollars; negative when the provider reports a credit.
    pub cost_nanos: i64,
}

/// A stored normalised row and its provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredUsageRow {
    pub provider: String,
    pub row: ProviderUsageRow,
}

/// The spend rollups of one gateway provider in one hour, for the reconciliation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayHour {
    pub provider: String,
    pub hour: Timestamp,
    pub tokens_in: u64,
    pub tokens_out: u64,
    pub cost_nanos: u64,
}

/// What [`Store::rebuild_provider_usage`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProviderRebuildReport {
    /// Raw pages read.
    pub pages: u64,
    /// Pages that no longer parse: their fetch is left out and its stored rows kept.
    pub unparsed_pages: u64,
    /// Normalised rows written.
    pub rows: u64,
}

/// Where a page of `/providers/{name}/raw` continues: the last page's `(fetched_at, id)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawCursor {
    pub fetched_at_us: i64,
    pub id: i64,
}

impl RawCursor {
    pub fn encode(self) -> String {
        format!("{}_{}", self.fetched_at_us, self.id)
    }

    pub fn decode(text: &str) -> Option<Self> {
        let (at, id) = text.split_once('_')?;
        Some(Self { fetched_at_us: at.parse().ok()?, id: id.parse().ok()? })
    }
}

/// Sums rows with the same key (grain, bucket, model), saturating, so one write holds each key once.
pub fn merge_usage_rows(rows: impl IntoIterator<Item = ProviderUsageRow>) -> Vec<ProviderUsageRow> {
    let mut merged: BTreeMap<(Grain, Timestamp, String), ProviderUsageRow> = BTreeMap::new();
    for row in rows {
        let key = (row.grain, row.bucket_start, row.model.clone());
        merged
            .entry(key)
            .and_modify(|sum| {
                sum.tokens_in = sum.tokens_in.saturating_add(row.tokens_in);
                sum.tokens_out = sum.tokens_out.saturating_add(row.tokens_out);
                sum.tokens_cached = sum.tokens_cached.saturating_add(row.tokens_cached);
                sum.cost_nanos = sum.cost_nanos.saturating_add(row.cost_nanos);
            })
            .or_insert(row);
    }
    merged.into_values().collect()
}

/// The distinct `(grain, start, end)` spans of some pages, overlapping ones of a grain merged.
fn spans(pages: &[NewRawPage]) -> Vec<(Grain, i64, i64)> {
    let mut all: Vec<(Grain, i64, i64)> =
        pages.iter().map(|p| (p.grain, p.span_start.as_microsecond(), p.span_end.as_microsecond())).collect();
    all.sort_unstable();
    let mut merged: Vec<(Grain, i64, i64)> = Vec::new();
    for (grain, start, end) in all {
        match merged.last_mut() {
            Some(last) if last.0 == grain && start <= last.2 => last.2 = last.2.max(end),
            _ => merged.push((grain, start, end)),
        }
    }
    merged
}

/// The primitives of the provider-ingest aggregate that differ by backend (`postgres/ingest.rs`,
/// `sqlite/ingest.rs`).
pub(crate) trait IngestBackend: Backend {
    /// `provider, hour, tokens_in, tokens_out, cost_nanos` of the hourly spend rollups summed per provider and
    /// hour, for hours in `[$1, $2)` (Unix µs; the rollups' `hour` is a `TIMESTAMPTZ` on Postgres, Unix µs on
    /// SQLite), the hour read as Unix µs and every sum as a BIGINT.
    const GATEWAY_HOURS: &'static str;
}

const LEASE_ACQUIRE: &str = "INSERT INTO ingest_leases (provider, holder, expires_at) VALUES ($1, $2, $3)
     ON CONFLICT (provider) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
     WHERE ingest_leases.expires_at <= $4 OR ingest_leases.holder = $2";
const LEASE_RELEASE: &str = "DELETE FROM ingest_leases WHERE provider = $1 AND holder = $2";
/// The commit's first statement: a write, so that SQLite takes the write lock at once (a transaction that reads
/// first and writes later fails with "database is locked" instead of waiting), and so that on Postgres the lease
/// row stays locked until the commit (nobody takes the lease over mid-write).
const LEASE_HELD: &str =
    "UPDATE ingest_leases SET expires_at = expires_at WHERE provider = $1 AND holder = $2 AND expires_at > $3";
const INSERT_PAGE: &str = "INSERT INTO provider_raw_pages
     (provider, run_id, endpoint, grain, span_start, span_end, query, cursor, fetched_at, body)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
const DELETE_SPAN: &str =
    "DELETE FROM provider_usage WHERE provider = $1 AND grain = $2 AND bucket_start >= $3 AND bucket_start < $4";
const UPSERT_ROW: &str = "INSERT INTO provider_usage
     (provider, grain, bucket_start, model, tokens_in, tokens_out, tokens_cached, cost_nanos)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
     ON CONFLICT (provider, grain, bucket_start, model) DO UPDATE SET tokens_in = excluded.tokens_in,
     tokens_out = excluded.tokens_out, tokens_cached = excluded.tokens_cached, cost_nanos = excluded.cost_nanos";
const SELECT_PAGES: &str = "SELECT id, provider, run_id, endpoint, grain, span_start, span_end, query, cursor,
     fetched_at, body FROM provider_raw_pages
     WHERE provider = $1 AND fetched_at >= $2 AND fetched_at < $3 AND (fetched_at < $4 OR (fetched_at = $4 AND id < $5))
     ORDER BY fetched_at DESC, id DESC LIMIT $6";
const SELECT_ALL_PAGES: &str = "SELECT id, provider, run_id, endpoint, grain, span_start, span_end, query, cursor,
     fetched_at, body FROM provider_raw_pages WHERE id > $1 ORDER BY id LIMIT $2";
const SELECT_USAGE: &str = "SELECT provider, grain, bucket_start, model, tokens_in, tokens_out, tokens_cached,
     cost_nanos FROM provider_usage WHERE bucket_start >= $1 AND bucket_start < $2
     ORDER BY provider, grain, bucket_start, model";
const DELETE_OLD_PAGES: &str = "DELETE FROM provider_raw_pages WHERE fetched_at < $1";

/// Pages read per statement by a rebuild (each may be a few hundred kilobytes).
const REBUILD_BATCH: i64 = 200;

impl Store {
    /// Takes (or renews) `provider`'s lease for `holder` until `expires_at`: `true` when held, `false` while
    /// another holder's lease has not expired.
    pub async fn acquire_ingest_lease(
        &self,
        provider: &str,
        holder: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<bool, StoreError> {
        let binds = [
            Bind::Text(provider),
            Bind::Text(holder),
            Bind::Int(expires_at.as_microsecond()),
            Bind::Int(now.as_microsecond()),
        ];
        Ok(self.execute(LEASE_ACQUIRE, &binds).await? == 1)
    }

    /// Gives `provider`'s lease up, if `holder` has it.
    pub async fn release_ingest_lease(&self, provider: &str, holder: &str) -> Result<(), StoreError> {
        self.execute(LEASE_RELEASE, &[Bind::Text(provider), Bind::Text(holder)]).await?;
        Ok(())
    }

    /// Writes one run of `provider` in one transaction, only while `holder` still has the lease at `now`
    /// (`false`, and nothing written, otherwise):
    ///
    /// 1. the raw pages, as fetched;
    /// 2. per grain, the stored rows inside the spans the pages asked for are deleted, so a bucket or model the
    ///    provider no longer reports is gone (the run is the provider's word on its spans);
    /// 3. the run's rows, merged by key, are upserted.
    ///
    /// The same run written twice leaves the rows as they were.
    pub async fn commit_ingest(
        &self,
        provider: &str,
        holder: &str,
        now: Timestamp,
        pages: &[NewRawPage],
        rows: Vec<ProviderUsageRow>,
    ) -> Result<bool, StoreError> {
        let run = Run { provider, holder, now_us: now.as_microsecond(), pages, rows: merge_usage_rows(rows) };
        match self.pool() {
            Pool::Postgres(pool) => commit_run(pool, &run).await,
            Pool::Sqlite(pool) => commit_run(pool, &run).await,
        }
    }

    /// `provider`'s raw pages fetched in `[from, to)`, newest first, at most `limit`, after `cursor`.
    pub async fn raw_pages(
        &self,
        provider: &str,
        from: Timestamp,
        to: Timestamp,
        limit: u32,
        cursor: Option<RawCursor>,
    ) -> Result<Vec<RawPage>, StoreError> {
        let cursor = cursor.unwrap_or(RawCursor { fetched_at_us: i64::MAX, id: i64::MAX });
        let binds = [
            Bind::Text(provider),
            Bind::Int(from.as_microsecond()),
            Bind::Int(to.as_microsecond()),
            Bind::Int(cursor.fetched_at_us),
            Bind::Int(cursor.id),
            Bind::Int(i64::from(limit)),
        ];
        let rows = match self.pool() {
            Pool::Postgres(pool) => fetch_decoded(pool, SELECT_PAGES, &binds, raw_page).await?,
            Pool::Sqlite(pool) => fetch_decoded(pool, SELECT_PAGES, &binds, raw_page).await?,
        };
        Ok(self.readable(rows, "raw page"))
    }

    /// Normalised rows whose bucket starts in `[from, to)`, every provider.
    pub async fn provider_usage(&self, from: Timestamp, to: Timestamp) -> Result<Vec<StoredUsageRow>, StoreError> {
        let binds = [Bind::Int(from.as_microsecond()), Bind::Int(to.as_microsecond())];
        let rows = match self.pool() {
            Pool::Postgres(pool) => fetch_decoded(pool, SELECT_USAGE, &binds, usage_row).await?,
            Pool::Sqlite(pool) => fetch_decoded(pool, SELECT_USAGE, &binds, usage_row).await?,
        };
        Ok(self.readable(rows, "provider usage row"))
    }

    /// The gateway's spend rollups of `providers` per hour in `[from, to)` (summed over models and gateways).
    pub async fn gateway_hours(
        &self,
        providers: &[String],
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<GatewayHour>, StoreError> {
        let (from, to) = (from.as_microsecond(), to.as_microsecond());
        let rows = match self.pool() {
            Pool::Postgres(pool) => gateway_hour_rows(pool, from, to).await?,
            Pool::Sqlite(pool) => gateway_hour_rows(pool, from, to).await?,
        };
        Ok(rows
            .into_iter()
            .filter(|row| providers.contains(&row.0))
            .filter_map(|(provider, hour, tin, tout, cost)| {
                Some(GatewayHour {
                    provider,
                    hour: Timestamp::from_microsecond(hour).ok()?,
                    tokens_in: u64::try_from(tin).unwrap_or(0),
                    tokens_out: u64::try_from(tout).unwrap_or(0),
                    cost_nanos: u64::try_from(cost).unwrap_or(0),
                })
            })
            .collect())
    }

    /// Deletes raw pages fetched before `cutoff` (the normalised rows stay); how many.
    pub async fn delete_raw_pages_before(&self, cutoff: Timestamp) -> Result<u64, StoreError> {
        self.execute(DELETE_OLD_PAGES, &[Bind::Int(cutoff.as_microsecond())]).await
    }

    /// Rebuilds the normalised rows from the stored raw pages, as the runs that fetched them wrote them:
    ///
    /// 1. pages are read in the order they were stored and grouped into fetches (run, grain, span);
    /// 2. the fetches are replayed in that order on an in-memory table, each replacing the rows of its grain in
    ///    its span with the rows `parse` reads from its pages; a fetch with a page that no longer parses is left
    ///    out (counted in the report) so it cannot erase what it covered;
    /// 3. in one transaction the stored rows inside every replayed span are replaced by the table's.
    ///
    /// Rows outside every stored page's span (their pages past `raw_retention`) are kept as they are.
    pub async fn rebuild_provider_usage(
        &self,
        parse: &(dyn Fn(&RawPage) -> Option<Vec<ProviderUsageRow>> + Sync),
    ) -> Result<ProviderRebuildReport, StoreError> {
        let mut report = ProviderRebuildReport::default();
        let mut table = Replay::default();
        let mut after = 0i64;
        loop {
            let binds = [Bind::Int(after), Bind::Int(REBUILD_BATCH)];
            let batch = match self.pool() {
                Pool::Postgres(pool) => fetch_decoded(pool, SELECT_ALL_PAGES, &binds, raw_page).await?,
                Pool::Sqlite(pool) => fetch_decoded(pool, SELECT_ALL_PAGES, &binds, raw_page).await?,
            };
            let done = batch.len() < usize::try_from(REBUILD_BATCH).unwrap_or(usize::MAX);
            for page in self.readable(batch, "raw page") {
                after = after.max(page.id);
                report.pages += 1;
                let rows = parse(&page);
                if rows.is_none() {
                    report.unparsed_pages += 1;
                }
                table.add(&page, rows);
            }
            if done {
                break;
            }
        }
        let (spans, rows) = table.finish();
        report.rows = rows.values().map(|rows| rows.len() as u64).sum();
        match self.pool() {
            Pool::Postgres(pool) => replace_spans(pool, &spans, &rows).await?,
            Pool::Sqlite(pool) => replace_spans(pool, &spans, &rows).await?,
        }
        Ok(report)
    }

    /// Runs one statement on a pooled connection; the rows it affected.
    async fn execute(&self, sql: &'static str, binds: &[Bind<'_>]) -> Result<u64, StoreError> {
        Ok(match self.pool() {
            Pool::Postgres(pool) => sqlx::Postgres::execute(&mut *pool.acquire().await?, sql, binds).await?,
            Pool::Sqlite(pool) => sqlx::Sqlite::execute(&mut *pool.acquire().await?, sql, binds).await?,
        })
    }

    /// The rows that could be read; the others are logged, counted in `/status` and skipped.
    fn readable<T>(&self, rows: Vec<Result<T, sqlx::Error>>, what: &'static str) -> Vec<T> {
        let mut unreadable = 0u64;
        let rows = rows
            .into_iter()
            .filter_map(|row| {
                row.map_err(|error| {
                    unreadable += 1;
                    tracing::warn!(%error, what, "unreadable row skipped");
                })
                .ok()
            })
            .collect();
        self.note_unreadable(unreadable);
        rows
    }
}

/// One ingest run as [`Store::commit_ingest`] writes it, its rows merged by key.
struct Run<'a> {
    provider: &'a str,
    holder: &'a str,
    now_us: i64,
    pages: &'a [NewRawPage],
    rows: Vec<ProviderUsageRow>,
}

/// [`Store::commit_ingest`]: the lease check, then steps 1 to 3, in one transaction (dropped, so rolled back,
/// when the lease is gone).
async fn commit_run<B: Backend>(pool: &sqlx::Pool<B>, run: &Run<'_>) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await?;
    let lease = [Bind::Text(run.provider), Bind::Text(run.holder), Bind::Int(run.now_us)];
    if B::execute(&mut tx, LEASE_HELD, &lease).await? != 1 {
        return Ok(false);
    }
    for page in run.pages {
        insert_page::<B>(&mut tx, run.provider, run.holder, page).await?;
    }
    for (grain, start, end) in spans(run.pages) {
        delete_span::<B>(&mut tx, run.provider, grain, start, end).await?;
    }
    for row in &run.rows {
        upsert_row::<B>(&mut tx, run.provider, row).await?;
    }
    tx.commit().await?;
    Ok(true)
}

/// Step 3 of [`Store::rebuild_provider_usage`], in one transaction.
async fn replace_spans<B: Backend>(
    pool: &sqlx::Pool<B>,
    spans: &ReplaySpans,
    rows: &ReplayRows,
) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    for ((provider, grain), list) in spans {
        for &(start, end) in list {
            delete_span::<B>(&mut tx, provider, *grain, start, end).await?;
        }
    }
    for (provider, list) in rows {
        for row in list {
            upsert_row::<B>(&mut tx, provider, row).await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Stores one raw page of `holder`'s run (`run_id` is the lease holder).
async fn insert_page<B: Backend>(
    conn: &mut B::Connection,
    provider: &str,
    holder: &str,
    page: &NewRawPage,
) -> Result<(), sqlx::Error> {
    let binds = [
        Bind::Text(provider),
        Bind::Text(holder),
        Bind::Text(&page.endpoint),
        Bind::Text(page.grain.as_str()),
        Bind::Int(page.span_start.as_microsecond()),
        Bind::Int(page.span_end.as_microsecond()),
        Bind::Text(&page.query),
        Bind::OptText(page.cursor.as_deref()),
        Bind::Int(page.fetched_at.as_microsecond()),
        Bind::Text(&page.body),
    ];
    B::execute(conn, INSERT_PAGE, &binds).await?;
    Ok(())
}

/// Deletes `provider`'s stored rows of `grain` whose bucket starts in `[start, end)`.
async fn delete_span<B: Backend>(
    conn: &mut B::Connection,
    provider: &str,
    grain: Grain,
    start: i64,
    end: i64,
) -> Result<(), sqlx::Error> {
    let binds = [Bind::Text(provider), Bind::Text(grain.as_str()), Bind::Int(start), Bind::Int(end)];
    B::execute(conn, DELETE_SPAN, &binds).await?;
    Ok(())
}

/// Stores one normalised row of `provider`, replacing the one with its key; counts saturate at `i64::MAX`.
async fn upsert_row<B: Backend>(
    conn: &mut B::Connection,
    provider: &str,
    row: &ProviderUsageRow,
) -> Result<(), sqlx::Error> {
    let binds = [
        Bind::Text(provider),
        Bind::Text(row.grain.as_str()),
        Bind::Int(row.bucket_start.as_microsecond()),
        Bind::Text(&row.model),
        Bind::Int(saturating_i64(row.tokens_in)),
        Bind::Int(saturating_i64(row.tokens_out)),
        Bind::Int(saturating_i64(row.tokens_cached)),
        Bind::Int(row.cost_nanos),
    ];
    B::execute(conn, UPSERT_ROW, &binds).await?;
    Ok(())
}

/// Runs `sql` on a pooled connection and decodes each row on its own, so that one unreadable row is skipped
/// ([`Store::readable`]) rather than failing the read.
async fn fetch_decoded<B: Backend, T>(
    pool: &sqlx::Pool<B>,
    sql: &'static str,
    binds: &[Bind<'_>],
    decode: fn(&B::Row) -> Result<T, sqlx::Error>,
) -> Result<Vec<Result<T, sqlx::Error>>, StoreError> {
    let rows = B::fetch_all(&mut *pool.acquire().await?, sql, binds).await?;
    Ok(rows.iter().map(decode).collect())
}

/// `(provider, hour, tokens_in, tokens_out, cost_nanos)` per provider and hour in `[from, to)`; a row that cannot
/// be read fails the read (the reconciliation of an hour read in part would be wrong, not incomplete).
async fn gateway_hour_rows<B: IngestBackend>(
    pool: &sqlx::Pool<B>,
    from: i64,
    to: i64,
) -> Result<Vec<(String, i64, i64, i64, i64)>, StoreError> {
    let rows = B::fetch_all(&mut *pool.acquire().await?, B::GATEWAY_HOURS, &[Bind::Int(from), Bind::Int(to)]).await?;
    let read = |r: &B::Row| Ok((r.text(0_usize)?, r.int(1_usize)?, r.int(2_usize)?, r.int(3_usize)?, r.int(4_usize)?));
    Ok(rows.iter().map(read).collect::<Result<_, sqlx::Error>>()?)
}

type ReplaySpans = BTreeMap<(String, Grain), Vec<(i64, i64)>>;
type ReplayRows = BTreeMap<String, Vec<ProviderUsageRow>>;

/// A fetch's key: (provider, run, grain, span start, span end); its pages may come from several endpoints (a
/// query and the result pages that follow it).
type FetchKey = (String, String, Grain, i64, i64);
/// A fetch's rows by endpoint and page cursor (a page stored twice counts once), `None` once one of its pages
/// did not parse.
type FetchRows = Option<BTreeMap<(String, Option<String>), Vec<ProviderUsageRow>>>;

/// The in-memory table a rebuild replays fetches on.
#[derive(Default)]
struct Replay {
    /// Fetches in the order of their first page.
    fetches: Vec<(FetchKey, FetchRows)>,
    index: std::collections::HashMap<FetchKey, usize>,
}

impl Replay {
    fn add(&mut self, page: &RawPage, rows: Option<Vec<ProviderUsageRow>>) {
        let key = (
            page.provider.clone(),
            page.run_id.clone(),
            page.page.grain,
            page.page.span_start.as_microsecond(),
            page.page.span_end.as_microsecond(),
        );
        let next = self.fetches.len();
        let i = *self.index.entry(key.clone()).or_insert(next);
        if i == next {
            self.fetches.push((key, Some(BTreeMap::new())));
        }
        let Some((_, slot)) = self.fetches.get_mut(i) else { return };
        match (slot.as_mut(), rows) {
            (Some(pages), Some(rows)) => {
                pages.insert((page.page.endpoint.clone(), page.page.cursor.clone()), rows);
            }
            _ => *slot = None,
        }
    }

    fn finish(self) -> (ReplaySpans, ReplayRows) {
        let mut table: BTreeMap<(String, Grain, i64, String), ProviderUsageRow> = BTreeMap::new();
        let mut spans: ReplaySpans = BTreeMap::new();
        for ((provider, _, grain, start, end), pages) in self.fetches {
            let Some(pages) = pages else { continue };
            table.retain(|(p, g, at, _), _| !(*p == provider && *g == grain && (start..end).contains(at)));
            for row in merge_usage_rows(pages.into_values().flatten()) {
                let key = (provider.clone(), row.grain, row.bucket_start.as_microsecond(), row.model.clone());
                table.insert(key, row);
            }
            spans.entry((provider, grain)).or_default().push((start, end));
        }
        let mut rows: ReplayRows = BTreeMap::new();
        for ((provider, ..), row) in table {
            rows.entry(provider).or_default().push(row);
        }
        (spans, rows)
    }
}

/// A `provider_usage` row, in [`SELECT_USAGE`]'s column order.
fn usage_row<R: ReadRow>(r: &R) -> Result<StoredUsageRow, sqlx::Error> {
    let bad = |what: &str| sqlx::Error::Decode(format!("provider_usage: bad {what}").into());
    let grain = Grain::parse(&r.text(1_usize)?).ok_or_else(|| bad("grain"))?;
    let bucket_start = Timestamp::from_microsecond(r.int(2_usize)?).map_err(|_| bad("bucket_start"))?;
    let unsigned = |at: usize| r.int(at).and_then(|v| u64::try_from(v).map_err(|_| bad("token count")));
    Ok(StoredUsageRow {
        provider: r.text(0_usize)?,
        row: ProviderUsageRow {
            grain,
            bucket_start,
            model: r.text(3_usize)?,
            tokens_in: unsigned(4)?,
            tokens_out: unsigned(5)?,
            tokens_cached: unsigned(6)?,
            cost_nanos: r.int(7_usize)?,
        },
    })
}

/// A `provider_raw_pages` row, in [`SELECT_PAGES`]'s column order.
fn raw_page<R: ReadRow>(r: &R) -> Result<RawPage, sqlx::Error> {
    let bad = |what: &str| sqlx::Error::Decode(format!("provider_raw_pages: bad {what}").into());
    let time = |at: usize| r.int(at).and_then(|v| Timestamp::from_microsecond(v).map_err(|_| bad("time")));
    Ok(RawPage {
        id: r.int(0_usize)?,
        provider: r.text(1_usize)?,
        run_id: r.text(2_usize)?,
        page: NewRawPage {
            endpoint: r.text(3_usize)?,
            grain: Grain::parse(&r.text(4_usize)?).ok_or_else(|| bad("grain"))?,
            span_start: time(5)?,
            span_end: time(6)?,
            query: r.text(7_usize)?,
            cursor: r.text_opt(8_usize)?,
            fetched_at: time(9)?,
            body: r.text(10_usize)?,
        },
    })
}

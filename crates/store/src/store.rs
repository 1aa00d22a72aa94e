//! The `Store` handle: opens the pool for a `sqlite:` or `postgres:` URL, applies migrations, reports health.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use jiff::Timestamp;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

use crate::backend::{Backend, fetch_one};
use crate::error::StoreError;
use crate::spill::Spill;
use crate::sql::ReadRow;

#[cfg(test)]
mod tests;

/// Migrations, embedded at build time (no database needed to build). Add a file → add a line.
const POSTGRES_MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "request_logs", include_str!("../../../migrations/postgres/0001_request_logs.sql")),
    (2, "spend_buckets", include_str!("../../../migrations/postgres/0002_spend_buckets.sql")),
    (3, "spend_rules", include_str!("../../../migrations/postgres/0003_spend_rules.sql")),
    (4, "cache_write_tokens", include_str!("../../../migrations/postgres/0004_cache_write_tokens.sql")),
    (5, "rollup_metadata_daily", include_str!("../../../migrations/postgres/0005_spend_rollup_metadata_daily.sql")),
    (6, "rollup_metadata_keys", include_str!("../../../migrations/postgres/0006_spend_rollup_metadata_keys.sql")),
    (
        7,
        "spend_only_rows_and_quarantine",
        include_str!("../../../migrations/postgres/0007_spend_only_rows_and_quarantine.sql"),
    ),
    (8, "response_cache", include_str!("../../../migrations/postgres/0008_response_cache.sql")),
    (10, "provider_ingest", include_str!("../../../migrations/postgres/0010_provider_ingest.sql")),
    (11, "spend_cache_savings", include_str!("../../../migrations/postgres/0011_spend_cache_savings.sql")),
];
const SQLITE_MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "request_logs", include_str!("../../../migrations/sqlite/0001_request_logs.sql")),
    (2, "spend_buckets", include_str!("../../../migrations/sqlite/0002_spend_buckets.sql")),
    (3, "spend_rules", include_str!("../../../migrations/sqlite/0003_spend_rules.sql")),
    (4, "cache_write_tokens", include_str!("../../../migrations/sqlite/0004_cache_write_tokens.sql")),
    (5, "rollup_metadata_daily", include_str!("../../../migrations/sqlite/0005_spend_rollup_metadata_daily.sql")),
    (6, "rollup_metadata_keys", include_str!("../../../migrations/sqlite/0006_spend_rollup_metadata_keys.sql")),
    (
        7,
        "spend_only_rows_and_quarantine",
        include_str!("../../../migrations/sqlite/0007_spend_only_rows_and_quarantine.sql"),
    ),
    (8, "response_cache", include_str!("../../../migrations/sqlite/0008_response_cache.sql")),
    (10, "provider_ingest", include_str!("../../../migrations/sqlite/0010_provider_ingest.sql")),
    (11, "spend_cache_savings", include_str!("../../../migrations/sqlite/0011_spend_cache_savings.sql")),
];

/// Records in the quarantine table, read once at migrate (`StoreStatus::quarantined_records`).
async fn count_quarantined<B: Backend>(pool: &sqlx::Pool<B>) -> Result<i64, StoreError> {
    Ok(fetch_one::<B>(&mut *pool.acquire().await?, "SELECT count(*) FROM quarantine", &[]).await?.int(0_usize)?)
}

/// Tunables of a [`Store`]. `Default` gives the production values.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Postgres pool size. Bounded so that N replicas never exhaust `max_connections` (Postgres refuses
    /// connections past it with "too many clients"); the writers need 1–2 each, the admin API the rest.
    pub max_connections: u32,
    /// How long a statement waits for a pooled connection before the write counts as failed and goes to the spill.
    pub acquire_timeout: Duration,
    /// The append-only spill file (JSON lines) for records the database could not take.
    pub spill_path: PathBuf,
    /// Bound on the spill file (active + replaying), in bytes.
    pub spill_max_bytes: u64,
    /// Metadata keys [`Store::migrate`] makes sure the rollups count (the gateway passes the keys its file spend
    /// rules split or filter on; keys of rules created later are added with
    /// [`Store::add_rollup_metadata_keys`]). The set counted is the database's, shared by every replica
    /// (`spend_rollup_metadata_keys`), and keys are never removed from it. Other keys stay queryable on the raw
    /// rows only: rolling up every key would let one high-cardinality key (a request id) make the rollup as large
    /// as the log.
    pub rollup_metadata_keys: BTreeSet<String>,
    /// At most this many metadata rollup entries per row: the oldest rolled-up keys the row has a value for, so a
    /// key added later never takes a row out of an older key's rollup.
    pub max_rollup_keys_per_row: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 8,
            acquire_timeout: Duration::from_secs(5),
            spill_path: PathBuf::from("tollgate-spill.jsonl"),
            spill_max_bytes: 1 << 30,
            rollup_metadata_keys: BTreeSet::new(),
            max_rollup_keys_per_row: 8,
        }
    }
}

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    Postgres,
    Sqlite,
}

impl StoreKind {
    /// `"postgres"` or `"sqlite"` (the `/status` field).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::Sqlite => "sqlite",
        }
    }
}

/// The connection pool, for readers (the admin API) that write their own queries.
#[derive(Debug, Clone)]
pub enum Pool {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

/// `/status` `database` object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreStatus {
    /// `"postgres"` or `"sqlite"`.
    pub kind: &'static str,
    /// Whether the last write succeeded (true before the first one).
    pub ok: bool,
    /// When a write last succeeded.
    pub last_flush_at: Option<Timestamp>,
    /// Records waiting: in the writer's queue plus in the spill file.
    pub pending_records: u64,
    /// Records the database refused and that were set aside (the `quarantine` table, or the quarantine file beside
    /// the spill file when even that failed): those the table held when this process migrated it, plus those this
    /// process set aside since.
    pub quarantined_records: u64,
    /// Rows this process could not read back and skipped (a spend bucket holding a non-integer or negative
    /// amount, for instance), counted at every read that met one.
    pub unreadable_rows: u64,
}

/// Cheap-to-clone handle on the database, the spill file and the health counters.
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) pool: Pool,
    pub(crate) options: StoreOptions,
    pub(crate) spill: Arc<Spill>,
    ok: AtomicBool,
    /// Unix microseconds of the last successful write; `i64::MIN` = never.
    last_flush_us: AtomicI64,
    /// Records accepted by a `LogWriter` queue and not yet written or spilled.
    pub(crate) queued: AtomicU64,
    /// One spill replay at a time, whichever task notices the backlog first.
    pub(crate) replay: tokio::sync::Mutex<()>,
    /// See [`StoreStatus::quarantined_records`].
    pub(crate) quarantined: AtomicU64,
    /// See [`StoreStatus::unreadable_rows`].
    pub(crate) unreadable: AtomicU64,
}

impl Store {
    /// Opens a pool for `url` (`sqlite://path`, `sqlite::memory:`, `postgres://…`) and the spill file. Connects
    /// lazily: a database that is down now does not stop the gateway from starting; writes spill until it is up.
    pub async fn open(url: &str, options: StoreOptions) -> Result<Self, StoreError> {
        let pool = if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let connect = PgConnectOptions::from_str(url).map_err(StoreError::InvalidUrl)?;
            Pool::Postgres(
                PgPoolOptions::new()
                    .max_connections(options.max_connections.max(1))
                    .min_connections(0)
                    .acquire_timeout(options.acquire_timeout)
                    // A dead server is found at checkout, not by a failed batch.
                    .test_before_acquire(true)
                    .connect_lazy_with(connect),
            )
        } else if url.starts_with("sqlite:") {
            let memory = url.contains(":memory:") || url.contains("mode=memory");
            let connect = SqliteConnectOptions::from_str(url)
                .map_err(StoreError::InvalidUrl)?
                .create_if_missing(true)
                .journal_mode(if memory { SqliteJournalMode::Memory } else { SqliteJournalMode::Wal })
                // WAL + NORMAL: durable across a process crash, at most the last commit lost on power loss.
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(5))
                .foreign_keys(true);
            // An in-memory database lives in one connection: keep exactly one, forever.
            let pool = if memory {
                SqlitePoolOptions::new().max_connections(1).min_connections(1).idle_timeout(None).max_lifetime(None)
            } else {
                SqlitePoolOptions::new().max_connections(options.max_connections.clamp(1, 4))
            };
            Pool::Sqlite(pool.acquire_timeout(options.acquire_timeout).connect_with(connect).await?)
        } else {
            return Err(StoreError::UnsupportedUrl(url.to_owned()));
        };
        let spill = Spill::open(options.spill_path.clone(), options.spill_max_bytes).await?;
        Ok(Self {
            inner: Arc::new(Inner {
                pool,
                options,
                spill: Arc::new(spill),
                ok: AtomicBool::new(true),
                last_flush_us: AtomicI64::new(i64::MIN),
                queued: AtomicU64::new(0),
                replay: tokio::sync::Mutex::new(()),
                quarantined: AtomicU64::new(0),
                unreadable: AtomicU64::new(0),
            }),
        })
    }

    /// Applies the backend's pending migrations (`migrations/postgres` or `migrations/sqlite`), then adds the
    /// [`StoreOptions::rollup_metadata_keys`] the rollups do not count yet, with their history
    /// ([`Store::add_rollup_metadata_keys`]). Safe to run from several replicas at once: sqlx takes an advisory lock
    /// on Postgres, and adding a key is serialised by its own lock.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let migrator = |list: &'static [(i64, &'static str, &'static str)]| {
            Migrator::with_migrations(
                list.iter()
                    .map(|(version, description, sql)| {
                        Migration::new(
                            *version,
                            Cow::Borrowed(*description),
                            MigrationType::Simple,
                            sqlx::SqlSafeStr::into_sql_str(*sql),
                            false,
                        )
                    })
                    .collect(),
            )
        };
        let quarantined = match &self.inner.pool {
            Pool::Postgres(pool) => {
                migrator(POSTGRES_MIGRATIONS).run(pool).await.map_err(StoreError::Migrate)?;
                count_quarantined(pool).await?
            }
            Pool::Sqlite(pool) => {
                migrator(SQLITE_MIGRATIONS).run(pool).await.map_err(StoreError::Migrate)?;
                count_quarantined(pool).await?
            }
        };
        self.inner.quarantined.fetch_add(u64::try_from(quarantined).unwrap_or(0), Ordering::Relaxed);
        self.add_rollup_metadata_keys(&self.inner.options.rollup_metadata_keys).await?;
        Ok(())
    }

    /// Postgres or SQLite.
    pub fn kind(&self) -> StoreKind {
        match self.inner.pool {
            Pool::Postgres(_) => StoreKind::Postgres,
            Pool::Sqlite(_) => StoreKind::Sqlite,
        }
    }

    /// The connection pool, for read queries.
    pub fn pool(&self) -> &Pool {
        &self.inner.pool
    }

    /// Health for `/status`.
    pub fn status(&self) -> StoreStatus {
        let last = self.inner.last_flush_us.load(Ordering::Relaxed);
        StoreStatus {
            kind: self.kind().as_str(),
            ok: self.inner.ok.load(Ordering::Relaxed),
            last_flush_at: (last != i64::MIN).then(|| Timestamp::from_microsecond(last).ok()).flatten(),
            pending_records: self
                .inner
                .queued
                .load(Ordering::Relaxed)
                .saturating_add(self.inner.spill.pending_records()),
            quarantined_records: self.inner.quarantined.load(Ordering::Relaxed),
            unreadable_rows: self.inner.unreadable.load(Ordering::Relaxed),
        }
    }

    /// Closes the pool (after the writers have been closed).
    pub async fn close(&self) {
        match &self.inner.pool {
            Pool::Postgres(pool) => pool.close().await,
            Pool::Sqlite(pool) => pool.close().await,
        }
    }

    pub(crate) fn record_write(&self, ok: bool) {
        self.inner.ok.store(ok, Ordering::Relaxed);
        if ok {
            self.inner.last_flush_us.store(Timestamp::now().as_microsecond(), Ordering::Relaxed);
        }
    }

    /// Counts rows skipped because they could not be read (see [`StoreStatus::unreadable_rows`]).
    pub(crate) fn note_unreadable(&self, rows: u64) {
        if rows > 0 {
            self.inner.unreadable.fetch_add(rows, Ordering::Relaxed);
        }
    }

    pub(crate) fn options(&self) -> &StoreOptions {
        &self.inner.options
    }

    pub(crate) fn spill(&self) -> &Arc<Spill> {
        &self.inner.spill
    }
}

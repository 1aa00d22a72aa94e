//! Tollgate persistence: Postgres or SQLite behind one `Store` handle; request logs written in batches by a
//! `LogWriter` (with hourly and daily rollups in the same transaction), spend-limit buckets shared between replicas
//! by a `SpendSync`, and a spill file that keeps every record while the database is down. Nothing here ever makes a
//! request wait for the database.
//!
//! # Layout, bottom to top
//!
//! - `sql` (conversions, the `Dialect` of run-time-built queries, typed row reads) and `model`
//!   (the records: `LogRecord`, `LogRow`, `SpendBatch`).
//! - `backend`: the `Backend` trait, implemented by `sqlx::Postgres` and `sqlx::Sqlite`, that runs a statement on
//!   a connection. A statement that differs between the databases only by its placeholders is written once with
//!   `$N` (SQLite binds `$N` by index) and run from the aggregate's code through it.
//! - One module per aggregate (`logs`, `rollup`, `metadata_keys`, `spend`, `spend_rules`, `quarantine`,
//!   `log_scan`, `recompute`, `query`, `ingest`): its primitives as a trait `<Aggregate>Backend: Backend`, its algorithms
//!   written once as generic functions over those traits, and its `Store` methods, each with one
//!   `match self.pool()` that picks the backend.
//! - `postgres/<aggregate>.rs` and `sqlite/<aggregate>.rs`: each aggregate's primitives, where the databases really
//!   differ (Postgres `UNNEST` batches against SQLite's per-row loop, `TIMESTAMPTZ` against Unix µs, table locks
//!   against the database write lock, `jsonb` against JSON text).
//! - `store` (the handle, migrations), then the tasks: `writer`, `spend_sync`, `replay`, `spill`.
//!
//! Dispatch is static: the generic algorithm is compiled once per backend, so the writer path pays no virtual call
//! and no boxed future; the one `match` per public method is the only place a backend is chosen.
//!
//! # Adding an aggregate (a table and what reads and writes it)
//!
//! 1. The migration: `migrations/postgres/NNNN_<name>.sql` and `migrations/sqlite/NNNN_<name>.sql`, each added to
//!    its list in `store.rs`.
//! 2. The model type, in `model.rs` if the spill file or another aggregate carries it, else in the aggregate.
//! 3. `src/<aggregate>.rs`: `pub(crate) trait <Aggregate>Backend: Backend` with the primitives that differ by
//!    backend (an associated `const` for a statement that differs by more than placeholders, an `async fn` for a
//!    different algorithm); the statements that are the same on both as `const`s run with `Backend::execute` /
//!    `fetch_all`; the algorithm as `async fn f<B: <Aggregate>Backend>(pool: &sqlx::Pool<B>, …)`; and the public
//!    `impl Store` method: `match self.pool() { Pool::Postgres(pool) => f(pool, …).await, Pool::Sqlite(pool) =>
//!    f(pool, …).await }`.
//! 4. `src/postgres/<aggregate>.rs` with `impl <Aggregate>Backend for sqlx::Postgres`, `src/sqlite/<aggregate>.rs`
//!    with `impl <Aggregate>Backend for sqlx::Sqlite`, each declared (`mod <aggregate>;`) in `postgres.rs` and
//!    `sqlite.rs`.
//!
//! A new column on an existing table goes into that aggregate's model type, its two backend files, and one
//! migration per backend. Tests that run on both backends go in `tests/integration/` (see `common.rs`).

mod backend;
mod error;
mod ingest;
mod log_scan;
mod logs;
mod metadata_keys;
mod model;
mod postgres;
mod quarantine;
mod query;
mod recompute;
mod replay;
mod rollup;
mod spend;
mod spend_rules;
mod spend_sync;
mod spill;
mod sql;
mod sqlite;
mod store;
mod writer;

pub use error::StoreError;
pub use ingest::{
    GatewayHour, Grain, NewRawPage, ProviderRebuildReport, ProviderUsageRow, RawCursor, RawPage, StoredUsageRow,
    merge_usage_rows,
};
pub use logs::{RETENTION_BATCH_ROWS, RetentionReport};
pub use model::{LogRecord, MAX_METADATA_VALUE_BYTES, MAX_NAME_BYTES, MAX_PATH_BYTES, MAX_TEXT_BYTES};
pub use query::{
    Cursor, GroupBy, LogEntry, LogFilter, QueryError, SpendGroupRow, SpendReport, SpendSource, StatsTotals,
};
pub use recompute::{RecomputeReport, Reprice, RepriceInput};
pub use spend_rules::{ApiSpendRules, SpendRuleChange};
pub use spend_sync::{SpendSync, SpendSyncOptions};
pub use store::{Pool, Store, StoreKind, StoreOptions, StoreStatus};
pub use tollgate_accounting::CostSource;
pub use writer::{Enqueued, LogWriter, WriterOptions};

//! Tollgate persistence: Postgres or SQLite behind one `Store` handle; request logs written in batches by a
//! `LogWriter` (with hourly and daily rollups in the same transaction), spend-limit buckets shared between replicas
//! by a `SpendSync`, and a spill file that keeps every record while the database is down. Nothing here ever makes a
//! request wait for the database.

mod error;
mod ingest;
mod log_scan;
mod logs;
mod metadata_keys;
mod model;
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

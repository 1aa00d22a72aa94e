//! The log scan on SQLite: every row is read (no index on metadata keys); the caller skips those without the key.

use sqlx::{QueryBuilder, Sqlite};

use crate::log_scan::LogScanBackend;

impl LogScanBackend for Sqlite {
    fn push_has_any_key(_: &mut QueryBuilder<Self>, _: &[String]) {}
}

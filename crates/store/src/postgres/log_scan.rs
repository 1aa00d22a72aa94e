//! The log scan on Postgres: a backfill reads only the rows that have one of its keys (`?|`, the GIN index).

use sqlx::{Postgres, QueryBuilder};

use crate::log_scan::LogScanBackend;

impl LogScanBackend for Postgres {
    fn push_has_any_key(query: &mut QueryBuilder<Self>, keys: &[String]) {
        query.push(" AND metadata ?| ").push_bind(keys.to_vec()).push("::text[]");
    }
}

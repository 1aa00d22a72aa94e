//! The provider-ingest aggregate on SQLite: the spend rollups' `hour` is already Unix µs, and an integer `SUM`
//! is an integer.

use sqlx::Sqlite;

use crate::ingest::IngestBackend;

impl IngestBackend for Sqlite {
    const GATEWAY_HOURS: &'static str = "SELECT provider, hour, SUM(tokens_in), SUM(tokens_out), SUM(cost_nanos)
         FROM spend_rollup_hourly WHERE hour >= $1 AND hour < $2 GROUP BY provider, hour";
}

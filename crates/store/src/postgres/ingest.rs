//! The provider-ingest aggregate on Postgres: only the reconciliation's read of the spend rollups differs, whose
//! `hour` is a `TIMESTAMPTZ` here (the ingest tables' own times are BIGINT Unix µs on both backends).

use sqlx::Postgres;

use crate::ingest::IngestBackend;

impl IngestBackend for Postgres {
    const GATEWAY_HOURS: &'static str = "SELECT provider, (EXTRACT(EPOCH FROM hour) * 1000000)::int8,
         SUM(tokens_in)::int8, SUM(tokens_out)::int8, SUM(cost_nanos)::int8 FROM spend_rollup_hourly
         WHERE hour >= 'epoch'::timestamptz + interval '1 microsecond' * $1
           AND hour < 'epoch'::timestamptz + interval '1 microsecond' * $2
         GROUP BY provider, hour";
}

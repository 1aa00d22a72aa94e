//! Read side for the admin API: totals and grouped spend from the rollups (never the raw log), and request log
//! rows with filters and keyset pagination. (The admin writes, rules and recompute, are `spend_rules` and
//! `recompute`.)

mod logs;
mod spend;
mod spend_scan;

#[cfg(test)]
mod tests;

use std::fmt;

use jiff::Timestamp;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::backend::Backend;
use crate::error::StoreError;

/// What the read queries build differently per backend (`postgres/queries.rs`, `sqlite/queries.rs`): matching a
/// metadata value. Times, sums and binds are the [`Dialect`](crate::sql::Dialect)'s.
pub(crate) trait QueryBackend: Backend {
    /// ` AND <the row's metadata.key, as text, is value>` (see [`LogFilter::metadata`]).
    fn push_metadata_equals(b: &mut sqlx::QueryBuilder<Self>, key: &str, value: &str);
    /// ` AND <the row's metadata has key>`.
    fn push_has_key(b: &mut sqlx::QueryBuilder<Self>, key: &str);
}

/// Why a query could not run: a bad parameter (the caller's fault, named) or the database.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// A parameter the database cannot answer as given.
    #[error("{parameter}: {message}")]
    Invalid {
        /// The parameter's name as the API spells it (`group_by`, `cursor`…).
        parameter: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// `group_by` names a metadata key the rollups do not count (no spend rule splits or filters on it, or the
    /// rule is new and the key's history is still being added).
    #[error(
        "metadata.{key} is not rolled up, so spend cannot be grouped by it (rolled-up keys: {}); filter /api/logs \
         by it instead",
        if rolled_up.is_empty() { "none".to_owned() } else { rolled_up.join(", ") }
    )]
    NotRolledUp {
        /// The key asked for.
        key: String,
        /// The keys the rollups count, sorted.
        rolled_up: Vec<String>,
    },
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for QueryError {
    fn from(error: sqlx::Error) -> Self {
        Self::Store(StoreError::Query(error))
    }
}

/// Totals over a span of hours of `spend_rollup_hourly`. Money in nano-dollars.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsTotals {
    /// Cost of the requests.
    pub cost_nanos: u64,
    pub requests: u64,
    /// Prompt tokens.
    pub tokens_in: u64,
    /// Completion tokens.
    pub tokens_out: u64,
    /// Every provider with at least one request in the span, sorted.
    pub providers: Vec<String>,
}

/// One `/spend` grouping.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum GroupBy {
    Provider,
    Model,
    /// Gateway (`null` for requests without a gateway URL).
    Gateway,
    /// UTC day, `YYYY-MM-DD`.
    Day,
    /// UTC hour, RFC 3339 (`2026-05-01T10:00:00Z`).
    Hour,
    /// A metadata key (only keys the rollups count, [`crate::Store::rollup_metadata_keys`]: those some spend rule
    /// splits or filters on, or once did).
    Metadata(String),
}

impl GroupBy {
    /// Parses `provider`, `model`, `gateway`, `day`, `hour` or `metadata.<key>`.
    pub fn parse(text: &str) -> Result<Self, QueryError> {
        match text {
            "provider" => Ok(Self::Provider),
            "model" => Ok(Self::Model),
            "gateway" => Ok(Self::Gateway),
            "day" => Ok(Self::Day),
            "hour" => Ok(Self::Hour),
            other => match other.strip_prefix("metadata.") {
                Some(key) if !key.is_empty() => Ok(Self::Metadata(key.to_owned())),
                _ => Err(QueryError::Invalid {
                    parameter: "group_by",
                    message: format!(
                        "unknown grouping {other:?}; expected provider, model, gateway, day, hour or metadata.<key>"
                    ),
                }),
            },
        }
    }

    /// Parses a comma-separated list (empty items ignored); a grouping listed twice is an error.
    pub fn parse_list(text: &str) -> Result<Vec<Self>, QueryError> {
        let mut out: Vec<Self> = Vec::new();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let group = Self::parse(item)?;
            if out.contains(&group) {
                return Err(QueryError::Invalid {
                    parameter: "group_by",
                    message: format!("{item:?} is listed twice"),
                });
            }
            out.push(group);
        }
        Ok(out)
    }
}

impl fmt::Display for GroupBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Provider => f.write_str("provider"),
            Self::Model => f.write_str("model"),
            Self::Gateway => f.write_str("gateway"),
            Self::Day => f.write_str("day"),
            Self::Hour => f.write_str("hour"),
            Self::Metadata(key) => write!(f, "metadata.{key}"),
        }
    }
}

/// One `/spend` row: the group's values and its sums.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpendGroupRow {
    /// The group's values, in the order of the query's `group_by`: `day` as `YYYY-MM-DD`, `hour` as RFC 3339,
    /// `gateway` `None` for requests without one. (A list rather than a map by name: a report can have tens of
    /// thousands of rows, and the API serialises the names once per row without building anything.)
    pub values: Vec<Option<String>>,
    pub requests: u64,
    /// Prompt tokens.
    pub tokens_in: u64,
    /// Completion tokens.
    pub tokens_out: u64,
    /// Cost in nano-dollars.
    pub cost_nanos: u64,
    /// Requests answered from the response cache (counted in `requests`; their cost is 0).
    pub cached_requests: u64,
    /// What the cached requests would have cost, in nano-dollars (not in `cost_nanos`).
    pub saved_nanos: u64,
}

/// What answered a `/spend` query ([`crate::Store::spend_report`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpendSource {
    /// The rollups (every grouping but a metadata key they do not count).
    Rollup,
    /// A bounded scan of the retained log rows (a metadata key the rollups do not count).
    LogScan,
}

impl SpendSource {
    /// `"rollup"` or `"log_scan"` (the `/spend` field).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rollup => "rollup",
            Self::LogScan => "log_scan",
        }
    }
}

/// A `/spend` answer: its rows, what served them, and whether a scan stopped at its bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpendReport {
    /// The groups, as [`crate::Store::spend`] returns them.
    pub rows: Vec<SpendGroupRow>,
    /// Rollups or log scan.
    pub source: SpendSource,
    /// A log scan met more rows than its bound: the sums cover the oldest rows up to the bound only.
    pub truncated: bool,
}

/// `/api/logs` filters; every one that is set must match. Money in nano-dollars, times inclusive start,
/// exclusive end.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogFilter {
    pub provider: Option<String>,
    pub model: Option<String>,
    /// HTTP status sent to the client.
    pub status: Option<u16>,
    /// Succeeded or failed.
    pub success: Option<bool>,
    /// Served from the response cache.
    pub cached: Option<bool>,
    /// Cost at least this.
    pub min_cost_nanos: Option<u64>,
    /// Cost at most this.
    pub max_cost_nanos: Option<u64>,
    /// Created at or after.
    pub start: Option<Timestamp>,
    /// Created before.
    pub end: Option<Timestamp>,
    /// `metadata.<key>=value` pairs. The stored value is compared as text: a string as is, a number in its JSON
    /// spelling (`42`, `1.5`), a boolean as `true`/`false`; so `metadata.team=1` matches `{"team":1}` and
    /// `{"team":"1"}`.
    pub metadata: Vec<(String, String)>,
}

/// Where a page of logs ends: the `(created_at, id)` of its last row. Opaque to clients (hex of
/// `"<created_at µs>:<id>"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// Unix microseconds of the last row.
    pub created_at_us: i64,
    /// Id of the last row.
    pub id: String,
}

impl Cursor {
    /// The opaque string form.
    pub fn encode(&self) -> String {
        use std::fmt::Write as _;
        let plain = format!("{}:{}", self.created_at_us, self.id);
        let mut out = String::with_capacity(plain.len() * 2);
        for byte in plain.bytes() {
            let _ = write!(out, "{byte:02x}");
        }
        out
    }

    /// Reads a string made by [`Cursor::encode`].
    pub fn decode(text: &str) -> Result<Self, QueryError> {
        let invalid = || QueryError::Invalid {
            parameter: "cursor",
            message: "not a cursor returned by this API (pass next_cursor unchanged)".to_owned(),
        };
        if !text.len().is_multiple_of(2) || text.len() > 512 {
            return Err(invalid());
        }
        let bytes = (0..text.len())
            .step_by(2)
            .map(|i| text.get(i..i + 2).and_then(|pair| u8::from_str_radix(pair, 16).ok()))
            .collect::<Option<Vec<u8>>>()
            .ok_or_else(invalid)?;
        let plain = String::from_utf8(bytes).map_err(|_| invalid())?;
        let (micros, id) = plain.split_once(':').ok_or_else(invalid)?;
        Ok(Self { created_at_us: micros.parse().map_err(|_| invalid())?, id: id.to_owned() })
    }
}

/// One request log row as the admin API shows it (the fields of `GET /api/logs` in docs/admin-api.md; money in USD).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogEntry {
    /// Row id (UUIDv7).
    pub id: String,
    /// When the request arrived (RFC 3339 UTC).
    #[serde(serialize_with = "display")]
    pub created_at: Timestamp,
    /// Gateway, if any.
    pub gateway: Option<String>,
    pub provider: String,
    pub model: String,
    /// Request path.
    pub path: String,
    /// HTTP status.
    pub status: u16,
    /// Succeeded.
    pub success: bool,
    /// From the response cache.
    pub cached: bool,
    /// Streaming.
    pub stream: bool,
    /// Prompt tokens.
    pub tokens_in: u64,
    /// Completion tokens.
    pub tokens_out: u64,
    /// Cached prompt tokens.
    pub tokens_cached: u64,
    pub tokens_reasoning: u64,
    /// Cost in USD.
    pub cost_usd: f64,
    /// Cost in nano-dollars (not serialised: the API speaks USD).
    #[serde(skip)]
    pub cost_nanos: u64,
    /// `catalog`, `custom`, `estimated`, `unpriced` or `cache`.
    pub cost_source: String,
    /// Total duration.
    pub duration_ms: u64,
    /// Time to first upstream byte.
    pub ttfb_ms: Option<u64>,
    /// `cf-aig-metadata`.
    pub metadata: Map<String, Value>,
    /// `cf-aig-event-id`.
    pub event_id: Option<String>,
    /// Route candidate index.
    pub step: u32,
    /// Spend rule decisions.
    pub rule_decisions: Value,
    /// Error message.
    pub error: Option<String>,
    /// Request body (single-row reads only, when payload logging stored one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_body: Option<String>,
    /// Response body (single-row reads only, when payload logging stored one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_body: Option<String>,
    /// The response-cache key (`DELETE /api/cache/{key}` takes it), when the cache applied.
    pub cache_key: Option<String>,
    /// For a cached answer: what it would have cost, in USD.
    pub saved_usd: f64,
}

fn display<S: serde::Serializer>(value: &Timestamp, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

/// Whether a query failed because an exact integer sum overflowed (Postgres `numeric_value_out_of_range`, SQLite
/// "integer overflow"): it is then run again with [`crate::sql::Dialect::saturating_sum`].
pub(crate) fn is_overflow(error: &QueryError) -> bool {
    let QueryError::Store(StoreError::Query(sqlx::Error::Database(db))) = error else { return false };
    db.code().is_some_and(|code| code == "22003") || db.message().contains("integer overflow")
}

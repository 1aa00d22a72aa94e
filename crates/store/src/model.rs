//! The store's data model: a request log row as the gateway hands it over (fields in docs/admin-api.md) and its
//! checked database form, and a batch of spend deltas. What the spill file holds, so it depends on nothing above.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use tollgate_accounting::CostSource;
use tollgate_limits::BucketDelta;

use crate::sql::{saturating_i64, timestamp_micros, timestamp_nanos};

#[cfg(test)]
mod tests;

/// One request log row. Money is integer nano-dollars.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogRecord {
    /// UUIDv7 string made by the gateway (the `cf-aig-log-id` header); a row with an id already stored is ignored.
    pub id: String,
    /// When the request arrived.
    #[serde(with = "timestamp_text")]
    pub created_at: Timestamp,
    /// The gateway from a Cloudflare-style URL, if any.
    pub gateway: Option<String>,
    pub provider: String,
    /// Model name without the provider prefix.
    pub model: String,
    /// Request path.
    pub path: String,
    /// HTTP status sent to the client.
    pub status: u16,
    /// Whether the request succeeded.
    pub success: bool,
    /// Served from the response cache.
    pub cached: bool,
    /// Streaming response.
    pub stream: bool,
    /// Prompt tokens.
    pub tokens_in: u64,
    /// Completion tokens.
    pub tokens_out: u64,
    /// Prompt tokens served from the provider's cache.
    pub tokens_cached: u64,
    /// Prompt tokens written to the provider's cache (5-minute and 1-hour writes together).
    pub tokens_cache_write: u64,
    /// Reasoning tokens (part of `tokens_out` where the provider counts them so).
    pub tokens_reasoning: u64,
    /// Cost in nano-dollars.
    pub cost_nanos: u64,
    /// Where the cost came from (`catalog`, `custom`, `estimated` or `unpriced` in the spill file).
    #[serde(with = "cost_source_text")]
    pub cost_source: CostSource,
    /// Total duration.
    pub duration_ms: u64,
    /// Time to the first upstream byte, when one arrived.
    pub ttfb_ms: Option<u64>,
    /// `cf-aig-metadata` entries.
    pub metadata: Map<String, Value>,
    /// `cf-aig-event-id`.
    pub event_id: Option<String>,
    /// Index of the route candidate that answered.
    pub step: u32,
    /// What each spend rule decided (JSON as the proxy builds it).
    pub rule_decisions: Value,
    /// Error message, for failed requests.
    pub error: Option<String>,
    /// Request body, only when payload logging is on for this request.
    pub request_body: Option<String>,
    /// Response body, only when payload logging is on for this request.
    pub response_body: Option<String>,
    /// Whether the row is shown by `/api/logs`. A request sent with `cf-aig-collect-log: false` is stored as a
    /// spend-only row (`false`: no bodies, no event id), so that its spend still counts in the rollups, `/spend`,
    /// `/api/stats` and a recompute. Spill lines written before the field existed read as `true`.
    #[serde(default = "listed_default")]
    pub listed: bool,
    /// The request's response-cache key, when the cache applied to it.
    #[serde(default)]
    pub cache_key: Option<String>,
    /// For a cached answer: what it would have cost, in nano-dollars.
    #[serde(default)]
    pub saved_nanos: u64,
}

fn listed_default() -> bool {
    true
}

/// Longest `id`, `gateway`, `provider` and `model` stored, in bytes: they are key columns of the log's indexes
/// and of the rollups, and every key column together must stay well below the Postgres b-tree limit (2,704 bytes
/// per index row) with metadata keys (64 bytes) and values ([`MAX_METADATA_VALUE_BYTES`]) added.
pub const MAX_NAME_BYTES: usize = 256;
/// Longest `path` stored, in bytes (not indexed; bounded so that a refused request cannot store 64 KB rows).
pub const MAX_PATH_BYTES: usize = 2_048;
/// Longest `error` and `event_id` stored, in bytes (`event_id` is indexed).
pub const MAX_TEXT_BYTES: usize = 1_024;
/// Longest metadata value counted in a rollup key, in bytes (the proxy already refuses longer values).
pub const MAX_METADATA_VALUE_BYTES: usize = 512;

impl LogRecord {
    /// The record with every key string cut to its bound at a char boundary (see [`MAX_NAME_BYTES`]), and a
    /// spend-only row stripped of its bodies and event id; borrowed when nothing needed cutting. What the row and
    /// the rollups are built from, so both agree.
    pub(crate) fn bounded(&self) -> std::borrow::Cow<'_, Self> {
        let long = |s: &str, max: usize| s.len() > max;
        let needs = long(&self.id, MAX_NAME_BYTES)
            || self.gateway.as_deref().is_some_and(|g| long(g, MAX_NAME_BYTES))
            || long(&self.provider, MAX_NAME_BYTES)
            || long(&self.model, MAX_NAME_BYTES)
            || long(&self.path, MAX_PATH_BYTES)
            || self.error.as_deref().is_some_and(|e| long(e, MAX_TEXT_BYTES))
            || self.event_id.as_deref().is_some_and(|e| long(e, MAX_TEXT_BYTES))
            || (!self.listed
                && (self.request_body.is_some() || self.response_body.is_some() || self.event_id.is_some()));
        if !needs {
            return std::borrow::Cow::Borrowed(self);
        }
        let mut r = self.clone();
        truncate(&mut r.id, MAX_NAME_BYTES);
        if let Some(g) = &mut r.gateway {
            truncate(g, MAX_NAME_BYTES);
        }
        truncate(&mut r.provider, MAX_NAME_BYTES);
        truncate(&mut r.model, MAX_NAME_BYTES);
        truncate(&mut r.path, MAX_PATH_BYTES);
        if let Some(e) = &mut r.error {
            truncate(e, MAX_TEXT_BYTES);
        }
        if let Some(e) = &mut r.event_id {
            truncate(e, MAX_TEXT_BYTES);
        }
        if !r.listed {
            r.request_body = None;
            r.response_body = None;
            r.event_id = None;
        }
        std::borrow::Cow::Owned(r)
    }
}

/// Cuts `text` to at most `max` bytes, at the last char boundary at or before `max`.
pub(crate) fn truncate(text: &mut String, max: usize) {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}

/// `text` cut to at most `max` bytes at a char boundary, borrowed when it fits.
pub(crate) fn truncated(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// [`LogRecord`] checked and converted to column values shared by both backends: integers that fit `i64`, text
/// without NUL (Postgres refuses `\0` in `TEXT` and `JSONB`), JSON as text.
#[derive(Debug, Clone)]
pub(crate) struct LogRow {
    pub id: String,
    pub created_at_us: i64,
    pub gateway: Option<String>,
    pub provider: String,
    pub model: String,
    pub path: String,
    pub status: i32,
    pub success: bool,
    pub cached: bool,
    pub stream: bool,
    pub tokens_in: i64,
    pub tokens_out: i64,
    pub tokens_cached: i64,
    pub tokens_cache_write: i64,
    pub tokens_reasoning: i64,
    pub cost_nanos: i64,
    pub cost_source: &'static str,
    pub duration_ms: i64,
    pub ttfb_ms: Option<i64>,
    pub metadata: String,
    pub event_id: Option<String>,
    pub step: i32,
    pub rule_decisions: String,
    pub error: Option<String>,
    pub request_body: Option<String>,
    pub response_body: Option<String>,
    pub listed: bool,
    pub cache_key: Option<String>,
    pub saved_nanos: i64,
}

impl From<&LogRecord> for LogRow {
    /// Numbers above `i64::MAX` are stored as `i64::MAX` (a cost or count that large is absurd, but the row and its
    /// spend must still be stored, never dropped). Strings are expected cut already ([`LogRecord::bounded`]).
    fn from(r: &LogRecord) -> Self {
        Self {
            id: clean(&r.id),
            created_at_us: timestamp_micros(r.created_at),
            gateway: r.gateway.as_deref().map(clean),
            provider: clean(&r.provider),
            model: clean(&r.model),
            path: clean(&r.path),
            status: i32::from(r.status),
            success: r.success,
            cached: r.cached,
            stream: r.stream,
            tokens_in: saturating_i64(r.tokens_in),
            tokens_out: saturating_i64(r.tokens_out),
            tokens_cached: saturating_i64(r.tokens_cached),
            tokens_cache_write: saturating_i64(r.tokens_cache_write),
            tokens_reasoning: saturating_i64(r.tokens_reasoning),
            cost_nanos: saturating_i64(r.cost_nanos),
            cost_source: r.cost_source.as_str(),
            duration_ms: saturating_i64(r.duration_ms),
            ttfb_ms: r.ttfb_ms.map(saturating_i64),
            metadata: json_text(&Value::Object(r.metadata.clone())),
            event_id: r.event_id.as_deref().map(clean),
            step: i32::try_from(r.step).unwrap_or(i32::MAX),
            rule_decisions: json_text(&r.rule_decisions),
            error: r.error.as_deref().map(clean),
            request_body: r.request_body.as_deref().map(clean),
            response_body: r.response_body.as_deref().map(clean),
            listed: r.listed,
            cache_key: r.cache_key.as_deref().map(clean),
            saved_nanos: saturating_i64(r.saved_nanos),
        }
    }
}

/// Replaces NUL, which Postgres cannot store in text, with U+FFFD.
fn clean(text: &str) -> String {
    if text.contains('\0') { text.replace('\0', "\u{FFFD}") } else { text.to_owned() }
}

/// Serialises JSON, with NUL in keys and strings (written `\u0000`, refused by `JSONB`) replaced by U+FFFD.
fn json_text(value: &Value) -> String {
    let text = value.to_string();
    if !text.contains("\\u0000") {
        return text;
    }
    let mut value = value.clone();
    clean_json(&mut value);
    value.to_string()
}

fn clean_json(value: &mut Value) {
    match value {
        Value::String(s) => *s = clean(s),
        Value::Array(items) => items.iter_mut().for_each(clean_json),
        Value::Object(map) => {
            let entries = std::mem::take(map);
            for (key, mut item) in entries {
                clean_json(&mut item);
                map.insert(clean(&key), item);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// `created_at` as RFC 3339 text in the spill file (jiff's serde support is not enabled in the workspace).
mod timestamp_text {
    use jiff::Timestamp;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(at: &Timestamp, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(at)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Timestamp, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The [`CostSource`] named `name`, if it is one of the five names (`CostSource::as_str`).
pub(crate) fn parse_cost_source(name: &str) -> Option<CostSource> {
    [CostSource::Catalog, CostSource::Custom, CostSource::Estimated, CostSource::Unpriced, CostSource::Cache]
        .into_iter()
        .find(|source| source.as_str() == name)
}

/// `cost_source` as its name in the spill file (the accounting crate is pure and has no serde derive on it).
mod cost_source_text {
    use serde::{Deserialize, Deserializer, Serializer};
    use tollgate_accounting::CostSource;

    #[expect(clippy::trivially_copy_pass_by_ref, reason = "serde's `with` calls `serialize(&field, serializer)`")]
    pub(super) fn serialize<S: Serializer>(source: &CostSource, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(source.as_str())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<CostSource, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        super::parse_cost_source(&text).ok_or_else(|| {
            serde::de::Error::unknown_variant(&text, &["catalog", "custom", "estimated", "unpriced", "cache"])
        })
    }
}

/// One drained batch of spend deltas with the id that makes adding it idempotent. Deltas are merged per
/// (rule, bucket, window start) and sorted, so that a batch touches each row once and replicas lock rows in the
/// same order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SpendBatch {
    pub id: String,
    pub deltas: Vec<SpendDelta>,
}

/// A delta as stored: window start in Unix nanoseconds (rolling slots need the precision).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SpendDelta {
    pub rule_id: String,
    pub bucket_key: String,
    pub window_start_ns: i64,
    pub delta_nanos: u64,
}

impl SpendBatch {
    pub(crate) fn new(deltas: Vec<BucketDelta>) -> Self {
        let mut merged: BTreeMap<(String, String, i64), u64> = BTreeMap::new();
        for d in deltas {
            let key = (d.rule_id.to_string(), d.bucket_key.to_string(), timestamp_nanos(d.window_start));
            let sum = merged.entry(key).or_default();
            *sum = sum.saturating_add(d.delta_nanos);
        }
        let deltas = merged
            .into_iter()
            .map(|((rule_id, bucket_key, window_start_ns), delta_nanos)| SpendDelta {
                rule_id,
                bucket_key,
                window_start_ns,
                delta_nanos,
            })
            .collect();
        Self { id: uuid::Uuid::now_v7().to_string(), deltas }
    }
}

//! One request log row as the gateway hands it over (CONTRACT §5), and its checked database form.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::StoreError;

#[cfg(test)]
mod tests;

/// Where a row's cost came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CostSource {
    /// The bundled or configured price catalog.
    Catalog,
    /// The request's `cf-aig-custom-cost` header.
    Custom,
    /// Estimated (usage missing, e.g. a stream cut short).
    Estimated,
    /// No price known: cost is 0.
    Unpriced,
}

impl CostSource {
    /// The name stored in the `cost_source` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Catalog => "catalog",
            Self::Custom => "custom",
            Self::Estimated => "estimated",
            Self::Unpriced => "unpriced",
        }
    }
}

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
    /// Provider name.
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
    /// Where the cost came from.
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
}

impl TryFrom<&LogRecord> for LogRow {
    type Error = StoreError;

    fn try_from(r: &LogRecord) -> Result<Self, Self::Error> {
        Ok(Self {
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
            tokens_in: to_i64(r.tokens_in, "tokens_in")?,
            tokens_out: to_i64(r.tokens_out, "tokens_out")?,
            tokens_cached: to_i64(r.tokens_cached, "tokens_cached")?,
            tokens_cache_write: to_i64(r.tokens_cache_write, "tokens_cache_write")?,
            tokens_reasoning: to_i64(r.tokens_reasoning, "tokens_reasoning")?,
            cost_nanos: to_i64(r.cost_nanos, "cost_nanos")?,
            cost_source: r.cost_source.as_str(),
            duration_ms: to_i64(r.duration_ms, "duration_ms")?,
            ttfb_ms: r.ttfb_ms.map(|v| to_i64(v, "ttfb_ms")).transpose()?,
            metadata: json_text(&Value::Object(r.metadata.clone())),
            event_id: r.event_id.as_deref().map(clean),
            step: i32::try_from(r.step).map_err(|_| StoreError::OutOfRange { field: "step" })?,
            rule_decisions: json_text(&r.rule_decisions),
            error: r.error.as_deref().map(clean),
            request_body: r.request_body.as_deref().map(clean),
            response_body: r.response_body.as_deref().map(clean),
        })
    }
}

pub(crate) fn to_i64(value: u64, field: &'static str) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::OutOfRange { field })
}

/// Unix microseconds (the precision of a Postgres `TIMESTAMPTZ`), rounded down.
pub(crate) fn timestamp_micros(at: Timestamp) -> i64 {
    at.as_microsecond()
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

//! The one record every request leaves behind, and where it goes.

use std::time::Duration;

use tollgate_accounting::{CostSource, Usage};

use crate::body::StreamEnd;
use crate::error::ErrorCode;
use crate::route::Api;

/// Everything known about a finished request: where it went, what it used, what it cost. One per request,
/// whatever the outcome (the log row fields of docs/admin-api.md).
#[derive(Debug, Clone)]
pub struct UsageRecord {
    pub log_id: String,
    pub created_at: jiff::Timestamp,
    pub gateway: String,
    pub provider: String,
    pub model: Option<String>,
    pub path: String,
    pub api: Api,
    pub stream: bool,
    /// The HTTP status the client got (the provider's, or the gateway's own for refusals).
    pub status: u16,
    pub success: bool,
    pub usage: Usage,
    pub cost_nanos: u64,
    pub cost_source: CostSource,
    /// Time from the request's arrival to the upstream response head (`None` when it never got one).
    pub ttfb: Option<Duration>,
    pub duration: Duration,
    /// Time the gateway spent on the request before sending it upstream (parsing, limits, rewriting).
    pub overhead: Option<Duration>,
    pub attempts: u32,
    pub step: Option<usize>,
    pub event_id: Option<String>,
    /// The validated `cf-aig-metadata`, as a JSON object.
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// Each applicable spend rule's decision: `[{"rule","bucket","decision"}]`.
    pub rule_decisions: serde_json::Value,
    /// Counts of the spend rules' decisions in `rule_decisions`, for the metrics.
    pub decisions: DecisionCounts,
    /// What went wrong: the gateway's error code, or the upstream's mid-stream error.
    pub error: Option<String>,
    /// The gateway's error code when the request ended with one (what the metrics count).
    pub error_code: Option<ErrorCode>,
    /// How the response ended (`None` for refusals that never had a body).
    pub end: Option<StreamEnd>,
    /// Bytes of response body the gateway saw from the upstream.
    pub response_bytes: u64,
    pub collect_log: bool,
    pub collect_log_payload: bool,
    /// Whether the request passed the gateway's authentication. Requests refused before it are counted in
    /// the metrics but never stored: whoever can reach the port must not be able to write rows.
    pub authenticated: bool,
    /// Request and response bodies, kept only when `[logging] payloads = true` and the request did not send
    /// `cf-aig-collect-log-payload: false`; each capped at [`PAYLOAD_CAP`] bytes.
    pub request_body: Option<bytes::Bytes>,
    pub response_body: Option<Vec<u8>>,
    /// Answered from the response cache (a stored entry, or a coalesced request's copy).
    pub cached: bool,
    /// The request's cache key, when the cache applied to it.
    pub cache_key: Option<tollgate_cache::CacheKey>,
    /// For a cached answer: what it would have cost now, in nano-dollars.
    pub saved_nanos: u64,
}

/// How many applicable spend rules allowed the request, and how many monitor rules would have blocked it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecisionCounts {
    pub allowed: u32,
    pub would_block: u32,
}

/// Stored bodies are cut at this many bytes (a log row is not an archive).
pub const PAYLOAD_CAP: usize = 64 * 1024;

impl UsageRecord {
    /// A record for a request that has not been routed yet; the phases fill it in.
    pub fn blank(log_id: String, created_at: jiff::Timestamp, path: &str) -> Self {
        UsageRecord {
            log_id,
            created_at,
            gateway: crate::route::DEFAULT_GATEWAY.to_string(),
            provider: String::new(),
            model: None,
            path: path.to_string(),
            api: Api::Other,
            stream: false,
            status: 0,
            success: false,
            usage: Usage::default(),
            cost_nanos: 0,
            cost_source: CostSource::Catalog,
            ttfb: None,
            duration: Duration::ZERO,
            overhead: None,
            attempts: 0,
            step: None,
            event_id: None,
            metadata: serde_json::Map::new(),
            rule_decisions: serde_json::Value::Array(Vec::new()),
            decisions: DecisionCounts::default(),
            error: None,
            error_code: None,
            end: None,
            response_bytes: 0,
            collect_log: true,
            collect_log_payload: true,
            authenticated: false,
            request_body: None,
            response_body: None,
            cached: false,
            cache_key: None,
            saved_nanos: 0,
        }
    }

    /// Prompt tokens in all: uncached, cache reads and cache writes.
    pub fn tokens_in(&self) -> u64 {
        self.usage.prompt_total()
    }
}

/// Receives finished records: the store writes them, tests collect them.
pub trait RecordSink: Send + Sync + 'static {
    /// Called once per request, from the request path: must not block (queue the work).
    fn record(&self, record: UsageRecord);
}

/// Logs one line per finished request (never a body, never a secret).
pub struct LogSink;

impl<S: RecordSink + ?Sized> RecordSink for std::sync::Arc<S> {
    fn record(&self, record: UsageRecord) {
        (**self).record(record);
    }
}

impl RecordSink for LogSink {
    fn record(&self, r: UsageRecord) {
        tracing::info!(
            log_id = %r.log_id,
            gateway = %r.gateway,
            provider = %r.provider,
            model = r.model.as_deref().unwrap_or(""),
            path = %r.path,
            status = r.status,
            stream = r.stream,
            tokens_in = r.tokens_in(),
            tokens_out = r.usage.output,
            cost_nanos = r.cost_nanos,
            cost_source = r.cost_source.as_str(),
            ttfb_ms = r.ttfb.map_or(0, |t| t.as_millis() as u64),
            duration_ms = r.duration.as_millis() as u64,
            error = r.error.as_deref().unwrap_or(""),
            "request finished"
        );
    }
}

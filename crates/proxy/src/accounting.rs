//! The accounting tap: the finalize step every proxied response passes exactly once.
//!
//! 1. While the body streams, the [`UsageTap`] reads usage from the same `Bytes` the client gets.
//! 2. At the end (complete, cut by the upstream, or after the background drain when the client left), the
//!    usage is priced: the provider's own numbers when the body reached its normal end; otherwise an
//!    estimate (prompt from the request body, output from the text already produced), marked `estimated`.
//! 3. The budget reservation is settled to the actual cost (or to 0 for an error answer), token rate limits
//!    are charged, and the [`UsageRecord`] goes to the sink.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tollgate_accounting::{CostSource, CustomCost, Observation, Priced, Usage, UsageTap, estimate_output_tokens};
use tollgate_limits::{Admission, Metadata, RequestDims};

use crate::Gateway;
use crate::body::{StreamEnd, Tap};
use crate::record::UsageRecord;

/// What the finalize step needs to know about the request.
pub struct Pending {
    pub gateway: Arc<Gateway>,
    pub record: UsageRecord,
    pub started: Instant,
    pub admission: Option<Admission>,
    pub metadata: Metadata,
    pub custom_cost: Option<CustomCost>,
    pub prompt_estimate: u64,
    pub date: jiff::civil::Date,
}

impl Pending {
    /// Settles and records a request that ends without a response body (refused, unreachable, timed out):
    /// nothing was spent, the reservation is released.
    pub fn finish_without_body(mut self, status: u16, error: &str) {
        self.record.status = status;
        self.record.success = false;
        self.record.error = Some(error.to_string());
        if let Some(admission) = self.admission.take() {
            admission.settle(0);
        }
        self.record.duration = self.started.elapsed();
        self.gateway.sink.record(self.record);
    }
}

/// The tap on a proxied response.
pub struct AccountingTap {
    pending: Pending,
    /// `None` for responses nothing is billed for (errors, model lists, file uploads...).
    usage: Option<UsageTap>,
    bytes: u64,
}

impl AccountingTap {
    pub fn new(pending: Pending, usage: Option<UsageTap>) -> Self {
        Self { pending, usage, bytes: 0 }
    }
}

impl Tap for AccountingTap {
    fn on_data(&mut self, chunk: &Bytes) {
        self.bytes += chunk.len() as u64;
        if let Some(body) = self.pending.record.response_body.as_mut() {
            let room = crate::record::PAYLOAD_CAP.saturating_sub(body.len());
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        }
        if let Some(usage) = self.usage.as_mut() {
            usage.observe(chunk);
        }
    }

    fn wants_drain(&self) -> bool {
        self.usage.is_some()
    }

    fn on_end(self: Box<Self>, end: StreamEnd) {
        let AccountingTap { mut pending, usage, bytes } = *self;
        let observation = usage.map(UsageTap::finish);
        let gateway = pending.gateway.clone();
        let body_complete = matches!(end, StreamEnd::Complete | StreamEnd::ClientGone { drained: true });
        let priced = observation.as_ref().map(|obs| price(&gateway, &pending, obs, body_complete));
        let record = &mut pending.record;
        record.response_bytes = bytes;
        record.duration = pending.started.elapsed();
        let ok_status = (200..300).contains(&record.status);
        if let (Some(obs), Some((usage, priced))) = (&observation, priced) {
            record.usage = usage;
            record.cost_nanos = priced.cost_nanos;
            record.cost_source = priced.source;
            if let Some(error) = &obs.upstream_error {
                record.error = Some(error.clone());
            }
        }
        record.error = record.error.take().or_else(|| match &end {
            StreamEnd::UpstreamError(e) => Some(format!("upstream stream broke: {e}")),
            StreamEnd::ClientGone { drained: false } => Some("client disconnected; usage estimated".into()),
            _ => None,
        });
        record.success = ok_status && body_complete && observation.as_ref().is_none_or(|o| o.upstream_error.is_none());
        record.end = Some(end);
        if let Some(admission) = pending.admission.take() {
            admission.settle(record.cost_nanos);
        }
        let tokens = record.usage.prompt_total() + record.usage.output;
        if tokens > 0 {
            let dims = RequestDims::new(&record.provider, record.model.as_deref().unwrap_or(""))
                .with_gateway(Some(&record.gateway))
                .with_metadata(&pending.metadata);
            gateway.rates.record_tokens(&dims, tokens);
        }
        if record.cost_source == CostSource::Unpriced {
            gateway.note_unpriced(&record.provider, record.model.as_deref().unwrap_or(""));
        }
        gateway.sink.record(pending.record);
    }
}

/// Prices what the tap observed (see the module steps).
fn price(gateway: &Gateway, pending: &Pending, obs: &Observation, body_complete: bool) -> (Usage, Priced) {
    let record = &pending.record;
    if !(200..300).contains(&record.status) {
        // Providers do not bill a refused request.
        return (Usage::default(), Priced { cost_nanos: 0, source: CostSource::Catalog });
    }
    let model = obs.model.as_deref().or(record.model.as_deref()).unwrap_or("");
    let exact = obs.terminal && body_complete && obs.usage.is_some();
    let usage = if exact {
        obs.usage.clone().unwrap_or_default()
    } else {
        // Keep whatever the provider had already reported (Anthropic's message_start input, Gemini's running
        // totals) and fill in the rest from what the gateway saw.
        let mut usage = obs.usage.clone().unwrap_or_default();
        if usage.prompt_total() == 0 {
            usage.input = pending.prompt_estimate;
        }
        usage.output = usage.output.max(estimate_output_tokens(obs.output_chars));
        usage
    };
    let priced = match (&pending.custom_cost, exact) {
        (Some(custom), true) => custom.price(&usage),
        (Some(custom), false) => Priced { source: CostSource::Estimated, ..custom.price(&usage) },
        (None, true) => gateway.catalog.price(&record.provider, model, &usage, pending.date),
        (None, false) => gateway.catalog.price_estimate(&record.provider, model, &usage, pending.date),
    };
    (usage, priced)
}

/// A record for a request that has not gone upstream yet; `finish_without_body` or the tap completes it.
pub fn blank_record(log_id: &str, created_at: jiff::Timestamp, path: &str) -> UsageRecord {
    UsageRecord {
        log_id: log_id.to_string(),
        created_at,
        gateway: crate::route::DEFAULT_GATEWAY.to_string(),
        provider: String::new(),
        model: None,
        path: path.to_string(),
        api: crate::route::Api::Other,
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
        error: None,
        end: None,
        response_bytes: 0,
        collect_log: true,
        collect_log_payload: true,
        request_body: None,
        response_body: None,
    }
}

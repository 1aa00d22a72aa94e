//! The request context: everything known about one request, and its finalize step.
//!
//! A [`RequestCtx`] is made when a request arrives and is dropped exactly once, wherever the request ends:
//! refused by a phase, failed upstream, answered and streamed to its end, or abandoned by the client. Its
//! `Drop` is the finalize step, so no exit can skip it:
//!
//! 1. Settle the budget admission with what the request is charged (see [`Charge`]); an uncharged admission
//!    is refunded.
//! 2. Charge the token rate limits with the tokens the request used (none for a cached answer).
//! 3. Count a response whose model has no price.
//! 4. Hand the [`UsageRecord`] to the sink (the log row, the metrics).
//!
//! Until a phase says otherwise, a request is recorded as abandoned by the client before it was sent
//! upstream (499, nothing charged): that is what a drop of the handler future means there.

use std::sync::Arc;
use std::time::Instant;

use tollgate_accounting::{CostSource, CustomCost, PromptEstimate, Usage};
use tollgate_limits::{Admission, Metadata, RequestDims};

use crate::Gateway;
use crate::error::ErrorCode;
use crate::record::UsageRecord;

/// The status recorded for a request whose client went away before it was answered (nginx's convention; no
/// client ever sees it).
pub const CLIENT_CLOSED: u16 = 499;

/// What the finalize step charges the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charge {
    /// Nothing reached a provider (refused, unreachable): the reservation is refunded.
    Nothing,
    /// The cost on the record, priced from the response.
    Recorded,
    /// The request reached a provider but its usage could not be read (timed out, connection lost): the
    /// worst-case cost is charged, marked `estimated`.
    WorstCase,
}

/// One request's state, from arrival to its record (see the module steps).
pub struct RequestCtx {
    pub gateway: Arc<Gateway>,
    pub record: UsageRecord,
    pub started: Instant,
    pub admission: Option<Admission>,
    pub metadata: Metadata,
    pub custom_cost: Option<CustomCost>,
    /// The prompt as the request body shows it (tokens, and whether the provider holds more of it).
    pub prompt: PromptEstimate,
    /// The `model` dimension of the limits: the catalog's canonical name of the model.
    pub model_dimension: String,
    /// The most output the client allowed (`max_tokens` and its relatives), when it said.
    pub max_output: Option<u64>,
    /// The worst-case cost of the chosen target, as admission computed it.
    pub worst_case: Option<u64>,
    pub date: jiff::civil::Date,
    pub charge: Charge,
    /// The status the provider answered with (0 before an answer). Differs from the record's status when the
    /// client never got the answer (499, 504) yet it was still read and priced.
    pub upstream_status: u16,
}

impl RequestCtx {
    pub fn new(gateway: Arc<Gateway>, log_id: String, path: &str) -> Self {
        let created_at = jiff::Timestamp::now();
        let mut record = UsageRecord::blank(log_id, created_at, path);
        record.status = CLIENT_CLOSED;
        record.error = Some(ErrorCode::ClientGoneBeforeRequestSent.as_str().into());
        record.error_code = Some(ErrorCode::ClientGoneBeforeRequestSent);
        Self {
            gateway,
            record,
            started: Instant::now(),
            admission: None,
            metadata: Metadata::default(),
            custom_cost: None,
            prompt: PromptEstimate::default(),
            model_dimension: String::new(),
            max_output: None,
            worst_case: None,
            date: created_at.to_zoned_datetime(jiff::tz::TimeZone::UTC).date(),
            charge: Charge::Nothing,
            upstream_status: 0,
        }
    }

    /// Marks the request as refused or failed with `status` and the error `code`; `charge` says whether it
    /// had reached a provider. The record goes out when the context is dropped.
    pub fn fail(&mut self, status: u16, code: ErrorCode, charge: Charge) {
        self.record.status = status;
        self.record.success = false;
        self.record.error = Some(code.as_str().to_string());
        self.record.error_code = Some(code);
        self.charge = charge;
    }

    /// Fills the record with the worst case: prompt estimate in, `max_tokens` (or nothing) out, the
    /// reservation's cost, or the catalog's estimate when admission had none.
    fn charge_worst_case(&mut self) {
        let usage = Usage { input: self.prompt.tokens, output: self.max_output.unwrap_or(0), ..Usage::default() };
        let cost = self.worst_case.unwrap_or_else(|| {
            let model = self.record.model.as_deref().unwrap_or("");
            match &self.custom_cost {
                Some(custom) => custom.price(&usage).cost_nanos,
                None => self.gateway.catalog.price_estimate(&self.record.provider, model, &usage, self.date).cost_nanos,
            }
        });
        self.record.usage = usage;
        self.record.cost_nanos = cost;
        self.record.cost_source = CostSource::Estimated;
    }
}

impl Drop for RequestCtx {
    fn drop(&mut self) {
        self.record.duration = self.started.elapsed();
        if self.charge == Charge::WorstCase {
            self.charge_worst_case();
        }
        if let Some(admission) = self.admission.take() {
            match self.charge {
                Charge::Nothing => drop(admission),
                Charge::Recorded | Charge::WorstCase => admission.settle(self.record.cost_nanos),
            }
        }
        let gateway = &self.gateway;
        let tokens = self.record.usage.total_tokens();
        // A cached answer used no provider tokens: token rate limits do not count it.
        if tokens > 0 && !self.record.cached {
            let dims = RequestDims::new(&self.record.provider, &self.model_dimension)
                .with_gateway(Some(&self.record.gateway))
                .with_metadata(&self.metadata);
            gateway.rates.record_tokens(&dims, tokens);
        }
        if self.record.cost_source == CostSource::Unpriced {
            gateway.note_unpriced(&self.record.provider, self.record.model.as_deref().unwrap_or(""));
        }
        let created_at = self.record.created_at;
        let record = std::mem::replace(&mut self.record, UsageRecord::blank(String::new(), created_at, ""));
        gateway.sink.record(record);
    }
}

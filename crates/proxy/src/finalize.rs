//! The accounting tap: prices a proxied response when its body ends, then lets the request context finalize.
//!
//! 1. While the body streams, the [`UsageTap`] reads usage from the same `Bytes` the client gets.
//! 2. At the end (complete, cut by the upstream, or after the background drain when the client left), the
//!    usage is priced: the provider's own numbers when the body reached its normal end; otherwise an
//!    estimate (prompt from the request body, output from the text already produced), marked `estimated`.
//! 3. With a [`CacheWrite`] (a cache miss that leads), every chunk is also published to the requests waiting
//!    on this one, and the response is stored when it ended normally (see [`CacheWrite::finish`]).
//! 4. The context is dropped with the cost on its record: its finalize step settles the reservation,
//!    charges the token rate limits and hands the record to the sink (see [`crate::ctx`]).

use bytes::Bytes;
use tollgate_accounting::{CostSource, Observation, Priced, Usage, UsageTap, estimate_output_tokens};

use crate::body::{StreamEnd, Tap};
use crate::cache::CacheWrite;
use crate::ctx::{Charge, RequestCtx};

/// The tap on a proxied response.
pub struct AccountingTap {
    ctx: RequestCtx,
    /// `None` for responses nothing is billed for (errors, model lists, file uploads...).
    usage: Option<UsageTap>,
    bytes: u64,
    cache: Option<CacheWrite>,
}

impl AccountingTap {
    pub fn new(ctx: RequestCtx, usage: Option<UsageTap>) -> Self {
        Self { ctx, usage, bytes: 0, cache: None }
    }

    /// Also publishes and stores the response for the cache.
    pub(crate) fn with_cache(mut self, cache: Option<CacheWrite>) -> Self {
        self.cache = cache;
        self
    }
}

impl Tap for AccountingTap {
    fn on_data(&mut self, chunk: &Bytes) {
        self.bytes = self.bytes.saturating_add(chunk.len() as u64);
        if let Some(body) = self.ctx.record.response_body.as_mut() {
            let room = crate::record::PAYLOAD_CAP.saturating_sub(body.len());
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        }
        if let Some(usage) = self.usage.as_mut() {
            usage.observe(chunk);
        }
        if let Some(cache) = self.cache.as_ref() {
            cache.frame(chunk);
        }
    }

    fn wants_drain(&self) -> bool {
        self.usage.is_some()
    }

    fn on_end(self: Box<Self>, end: StreamEnd) {
        let AccountingTap { mut ctx, usage, bytes, cache } = *self;
        let observation = usage.map(UsageTap::finish);
        if let Some(cache) = cache {
            let terminal = observation.as_ref().map(|o| o.terminal && !o.truncated);
            let error = observation.as_ref().is_some_and(|o| o.upstream_error.is_some());
            cache.finish(&end, ctx.upstream_status, terminal, error);
        }
        let body_complete = matches!(end, StreamEnd::Complete | StreamEnd::ClientGone { drained: true });
        let priced = observation.as_ref().map(|obs| price(&ctx, obs, body_complete));
        let record = &mut ctx.record;
        record.response_bytes = bytes;
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
        ctx.charge = Charge::Recorded;
    }
}

/// Prices what the tap observed (see the module steps).
pub(crate) fn price(ctx: &RequestCtx, obs: &Observation, body_complete: bool) -> (Usage, Priced) {
    let record = &ctx.record;
    if !(200..300).contains(&ctx.upstream_status) {
        // Providers do not bill a refused request.
        return (Usage::default(), Priced { cost_nanos: 0, source: CostSource::Catalog });
    }
    let catalog = &ctx.gateway.catalog;
    let requested = record.model.as_deref().unwrap_or("");
    let model = catalog.billing_model(&record.provider, requested, obs.model.as_deref(), ctx.date);
    let exact = obs.terminal && body_complete && obs.usage.is_some();
    let usage = if exact {
        obs.usage.clone().unwrap_or_default()
    } else {
        // Keep whatever the provider had already reported (Anthropic's message_start input, Gemini's running
        // totals) and fill in the rest from what the gateway saw.
        let mut usage = obs.usage.clone().unwrap_or_default();
        if usage.prompt_total() == 0 {
            usage.input = ctx.prompt.tokens;
        }
        usage.output = usage.output.max(estimate_output_tokens(obs.output_chars));
        usage
    };
    let priced = match (&ctx.custom_cost, exact) {
        (Some(custom), true) => custom.price(&usage),
        (Some(custom), false) => Priced { source: CostSource::Estimated, ..custom.price(&usage) },
        (None, true) => catalog.price(&record.provider, model, &usage, ctx.date),
        (None, false) => catalog.price_estimate(&record.provider, model, &usage, ctx.date),
    };
    (usage, priced)
}

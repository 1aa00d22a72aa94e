//! The RAII admission (settle replaces reservations by the actual cost; drop refunds them) and the refusal.

use std::sync::Arc;

use jiff::Timestamp;

use super::RuleSet;
use super::bucket::Bucket;
use crate::clock::timestamp_nanos;
use crate::money::nanos_to_usd;

/// What one rule decided for a request (for the log row's `rule_decisions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Within budget.
    Allowed,
    /// A `monitor` rule over budget: let through, recorded.
    WouldBlock,
    /// A `block` rule over budget: refused.
    Blocked,
}

/// One rule's decision, borrowed from the [`Admission`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct RuleDecision<'a> {
    /// The rule id.
    pub rule: &'a str,
    /// The bucket key.
    pub bucket: &'a str,
    /// The decision.
    pub decision: Decision,
}

/// One applicable rule's hold on one bucket.
#[derive(Debug)]
pub(crate) struct Held {
    pub(crate) rule_index: usize,
    pub(crate) bucket: Arc<Bucket>,
    /// Nano-dollars reserved in the bucket (0 for `reserve = "none"`, unknown worst case, or would-block).
    pub(crate) reserved: u64,
    pub(crate) decision: Decision,
}

/// An admitted request's holds on its buckets. Keep it for the request's lifetime, then call
/// [`Admission::settle`] with the actual cost; dropping it unsettled (error, disconnect before anything was
/// billed) refunds every reservation.
#[derive(Debug)]
#[must_use = "dropping an Admission refunds it; settle it with the actual cost"]
pub struct Admission {
    set: Arc<RuleSet>,
    held: Vec<Held>,
}

impl Admission {
    /// The holds taken (in rule order) under `set`.
    pub(crate) fn new(set: Arc<RuleSet>, held: Vec<Held>) -> Self {
        Self { set, held }
    }

    /// Every applicable rule's decision, in rule order.
    pub fn rule_decisions(&self) -> impl Iterator<Item = RuleDecision<'_>> {
        self.held.iter().map(|h| RuleDecision {
            rule: &self.set.rules[h.rule_index].rule.id,
            bucket: &h.bucket.key,
            decision: h.decision,
        })
    }

    /// True when some monitor rule would have blocked this request.
    pub fn would_block(&self) -> bool {
        self.held.iter().any(|h| h.decision == Decision::WouldBlock)
    }

    /// Total nano-dollars this admission holds in reservations, over all buckets.
    pub fn reserved_nanos(&self) -> u64 {
        self.held.iter().map(|h| h.reserved).fold(0, u64::saturating_add)
    }

    /// Replaces every reservation by `actual_cost_nanos`, counted in the window current now (by the engine clock).
    pub fn settle(self, actual_cost_nanos: u64) {
        let now = self.set.clock.now();
        self.settle_at(actual_cost_nanos, now);
    }

    /// [`Admission::settle`] at an explicit instant.
    pub fn settle_at(mut self, actual_cost_nanos: u64, now: Timestamp) {
        let now_ns = timestamp_nanos(now);
        for held in self.held.drain(..) {
            let window = &self.set.rules[held.rule_index].rule.window;
            let mut counters = held.bucket.lock();
            counters.reserved = counters.reserved.saturating_sub(held.reserved);
            counters.inflight = counters.inflight.saturating_sub(1);
            counters.roll(window, now_ns);
            counters.add_spend(window, now_ns, actual_cost_nanos);
        }
    }
}

impl Drop for Admission {
    /// Refunds whatever was not settled.
    fn drop(&mut self) {
        for held in self.held.drain(..) {
            let mut counters = held.bucket.lock();
            counters.reserved = counters.reserved.saturating_sub(held.reserved);
            counters.inflight = counters.inflight.saturating_sub(1);
        }
    }
}

/// A `block` rule refused the request: the 429 `spend_limit_exceeded`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "spend limit {rule_id:?} exceeded for bucket {bucket_key:?}: {spent_nanos} spent + {reserved_nanos} reserved of \
     {budget_nanos} nano-dollars; retry in {retry_after_secs}s"
)]
pub struct Blocked {
    /// The rule (`rule` in the 429 body).
    pub rule_id: Arc<str>,
    /// The bucket key (`bucket`).
    pub bucket_key: Arc<str>,
    /// The rule's budget (`budget_usd`).
    pub budget_nanos: u64,
    /// Settled spend in the window (`spent_usd`).
    pub spent_nanos: u64,
    /// In-flight reservations in the bucket.
    pub reserved_nanos: u64,
    /// The request's worst case, if known.
    pub requested_nanos: Option<u64>,
    /// When enough budget frees for this request (`resets_at`): the window end for fixed windows; for rolling
    /// windows, when enough old slots will have expired.
    pub resets_at: Timestamp,
    /// Whole seconds until `resets_at`, rounded up, at least 1 (`Retry-After`).
    pub retry_after_secs: u64,
}

impl Blocked {
    /// `budget_usd` for the 429 body.
    pub fn budget_usd(&self) -> f64 {
        nanos_to_usd(self.budget_nanos)
    }

    /// `spent_usd` for the 429 body.
    pub fn spent_usd(&self) -> f64 {
        nanos_to_usd(self.spent_nanos)
    }
}

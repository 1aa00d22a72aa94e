//! The RAII admission (settle replaces reservations by the actual cost; drop refunds them) and the refusal.

use std::sync::Arc;

use jiff::Timestamp;

use super::bucket::GroupBucket;
use super::{LocalSet, RuleSet};
use crate::clock::timestamp_nanos;

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
    pub rule: &'a str,
    pub bucket: &'a str,
    pub decision: Decision,
}

/// One applicable rule's hold on one bucket.
#[derive(Debug)]
pub(crate) struct Held {
    pub(crate) rule_index: usize,
    /// Index of the entry (in the admission's entries) holding the rule's counters.
    pub(crate) entry: usize,
    /// Nano-dollars reserved in the bucket (0 for `reserve = "none"`, unknown worst case, or would-block).
    pub(crate) reserved: u64,
    pub(crate) decision: Decision,
}

/// One bucket entry an admission holds (its in-flight count includes the admission).
#[derive(Debug)]
pub(crate) struct HeldEntry {
    /// The key group, in the admission's rule set.
    pub(crate) group: usize,
    pub(crate) bucket: Arc<GroupBucket>,
}

/// An admitted request's holds on its buckets. Keep it for the request's lifetime, then call
/// [`Admission::settle`] with the actual cost; dropping it unsettled (error, disconnect before anything was
/// billed) refunds every reservation.
#[derive(Debug)]
#[must_use = "dropping an Admission refunds it; settle it with the actual cost"]
pub struct Admission {
    local: Arc<LocalSet>,
    entries: Vec<HeldEntry>,
    /// Grouped by entry, in entry order (each entry holds at least one).
    held: Vec<Held>,
}

impl Admission {
    /// The holds taken under `local`'s set.
    pub(crate) fn new(local: Arc<LocalSet>, entries: Vec<HeldEntry>, held: Vec<Held>) -> Self {
        Self { local, entries, held }
    }

    fn set(&self) -> &RuleSet {
        &self.local.set
    }

    /// Every applicable rule's decision, in rule order.
    pub fn rule_decisions(&self) -> impl Iterator<Item = RuleDecision<'_>> {
        let mut held: Vec<&Held> = self.held.iter().collect();
        held.sort_unstable_by_key(|h| h.rule_index);
        held.into_iter().map(|h| RuleDecision {
            rule: &self.set().rules[h.rule_index].rule.id,
            bucket: &self.entries[h.entry].bucket.key,
            decision: h.decision,
        })
    }

    /// True when some monitor rule would have blocked this request.
    pub fn would_block(&self) -> bool {
        self.held.iter().any(|h| h.decision == Decision::WouldBlock)
    }

    /// Would-block decisions of rules before rule `index` (the ones a rule-by-rule check would have made).
    #[cfg(test)]
    pub(crate) fn would_block_before(&self, index: usize) -> u64 {
        self.held.iter().filter(|h| h.decision == Decision::WouldBlock && h.rule_index < index).count() as u64
    }

    /// Total nano-dollars this admission holds in reservations, over all buckets.
    pub fn reserved_nanos(&self) -> u64 {
        self.held.iter().map(|h| h.reserved).fold(0, u64::saturating_add)
    }

    /// Replaces every reservation by `actual_cost_nanos`, counted in the window current now (by the engine clock).
    pub fn settle(self, actual_cost_nanos: u64) {
        let now = self.set().clock.now();
        self.settle_at(actual_cost_nanos, now);
    }

    /// [`Admission::settle`] at an explicit instant.
    pub fn settle_at(mut self, actual_cost_nanos: u64, now: Timestamp) {
        let now_ns = timestamp_nanos(now);
        self.release(Some((actual_cost_nanos, now_ns)));
    }

    /// Takes back every reservation, each entry locked once; with `spend = Some((cost, now))`, counts `cost` for
    /// every held rule in the window current at `now`.
    fn release(&mut self, spend: Option<(u64, i64)>) {
        let entries = std::mem::take(&mut self.entries);
        let held = std::mem::take(&mut self.held);
        let set = self.set();
        for (entry, rules) in entries.iter().zip(held.chunk_by(|a, b| a.entry == b.entry)) {
            let layout = &set.groups[entry.group].layout;
            let mut state = entry.bucket.lock();
            for h in rules {
                let rule = &set.rules[h.rule_index];
                let counters = state.counters(layout, rule.pos);
                counters.reserved = counters.reserved.saturating_sub(h.reserved);
                if let Some((cost, now)) = spend {
                    counters.roll(&rule.rule.window, now);
                    counters.add_spend(&rule.rule.window, now, cost);
                }
            }
            state.inflight = state.inflight.saturating_sub(1);
        }
    }
}

impl Drop for Admission {
    /// Refunds whatever was not settled.
    fn drop(&mut self) {
        self.release(None);
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

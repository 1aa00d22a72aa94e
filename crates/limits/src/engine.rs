//! The spend-limit engine: a swappable rule set, per-bucket counters, admission with worst-case reservations.
//!
//! # Admission protocol
//!
//! 1. Load the current rule set (one `ArcSwap` load; a concurrent swap never pauses admissions).
//! 2. For each rule whose filters match the request, build its bucket key and lock that one bucket (a per-bucket
//!    mutex: admissions on different buckets never contend, and no lock is held across two buckets, so no
//!    deadlock is possible).
//! 3. Under that lock, check and reserve in one step: `spent + reserved + worst_case ≤ budget` for a reserving
//!    rule; `spent + reserved < budget` for `reserve = "none"` or when the worst case is unknown. On success the
//!    worst case is added to `reserved` (reserving rules only). There is no check-then-act gap.
//! 4. A `monitor` rule that would block records `would_block` and reserves nothing (it behaves as if the request
//!    had been refused, so its numbers show what `block` would do), but the request's actual cost is still
//!    counted at settlement.
//! 5. A `block` rule that would block ends the admission: every reservation already made is released (the
//!    `Admission` under construction is dropped) and [`Blocked`] says which rule, bucket, and when budget frees.
//!
//! A request refused at rule k briefly held reservations in rules 0..k; a concurrent admission that saw them may be
//! refused too. That errs on the safe side (never overshoot) and lasts only microseconds.
//!
//! # Settlement
//!
//! `Admission::settle(actual)` replaces each reservation by the actual cost, counted in the window (or rolling
//! slot) current at settlement. Reservations belong to no window: one made before a fixed window's reset keeps
//! counting against the new window until settled, so the new window's check already included it and the
//! budget still holds. A stream admitted at 23:59 and finished at 00:01 is charged to the new day. Dropping an
//! `Admission` without settling refunds everything.
//!
//! # Overshoot bound
//!
//! With `reserve = "worst_case"` and a known worst case that the actual cost does not exceed, no bucket ever goes
//! over budget, whatever the concurrency. With `reserve = "none"` or an unknown worst case, each request admitted
//! while the bucket still had headroom can add its whole actual cost: the overshoot is at most the sum of the
//! costs of such requests in flight at once (plus, across replicas, the spend of one store sync interval).
//!
//! # Rule swaps
//!
//! [`SpendEngine::replace_rules`] keeps a rule's bucket table (so its counted spend) when a rule with the same id
//! and the same window (length, kind, time zone) is in the new set: budget, action, reserve and dimensions may
//! change freely (buckets whose key no longer occurs simply age out). A rule whose window changed starts with
//! empty local buckets; the store's next `load_totals` brings back whatever the database has under the new
//! window starts. Removed or replaced tables stay drainable until their in-flight requests settle.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use jiff::Timestamp;

use crate::clock::{Clock, nanos_timestamp, timestamp_nanos};
use crate::dimension::RequestDims;
use crate::spec::{Action, Reserve, Route, RouteCandidate, SpendRule};
use crate::window::retry_after_secs;

mod admission;
mod bucket;
mod persist;
#[cfg(test)]
mod tests;

pub use admission::{Admission, Blocked, Decision, RuleDecision};
pub use persist::{BucketDelta, BucketTotal, BucketUsage, LiveBucket};

use admission::Held;
use bucket::{BucketTable, KeyProbe, hash_key};

/// A rule and the table holding its buckets.
#[derive(Debug)]
pub(crate) struct RuleState {
    pub(crate) rule: SpendRule,
    pub(crate) table: Arc<BucketTable>,
}

/// An immutable snapshot of the rules; admissions keep the one they started with.
#[derive(Debug)]
pub(crate) struct RuleSet {
    pub(crate) rules: Vec<RuleState>,
    /// Per rule, its key group: rules with the same split dimensions (in the same order) write the same bucket key
    /// for every request, so an admission builds that key once per group rather than once per rule.
    key_groups: Vec<usize>,
    /// Number of distinct key groups.
    group_count: usize,
    /// Carried here so an admission holds one shared `Arc` (the set), not two.
    pub(crate) clock: Arc<dyn Clock>,
}

impl RuleSet {
    fn new(rules: Vec<RuleState>, clock: Arc<dyn Clock>) -> Self {
        // Index of the first rule of each group. Quadratic in the number of groups, once per rule swap.
        let mut leaders: Vec<usize> = Vec::new();
        let mut key_groups = Vec::with_capacity(rules.len());
        for (index, state) in rules.iter().enumerate() {
            let dims = &state.rule.dimensions;
            let group = leaders.iter().position(|&l| rules[l].rule.dimensions.same_key_as(dims));
            key_groups.push(group.unwrap_or_else(|| {
                leaders.push(index);
                leaders.len() - 1
            }));
        }
        Self { rules, key_groups, group_count: leaders.len(), clock }
    }
}

/// Bucket keys of one admission, one per key group, each built the first time a rule of its group applies.
#[derive(Debug, Default)]
struct KeyBuffers {
    keys: Vec<String>,
    /// [`hash_key`] of each built key.
    hashes: Vec<u64>,
    built: Vec<bool>,
}

impl KeyBuffers {
    /// Forgets the previous admission's keys (keeping their allocations) and makes room for `groups` groups.
    fn reset(&mut self, groups: usize) {
        if self.keys.len() < groups {
            self.keys.resize_with(groups, String::new);
            self.hashes.resize(groups, 0);
        }
        self.built.clear();
        self.built.resize(groups, false);
    }

    /// The key of `group` and its hash, written and hashed by the first rule of the group that applies.
    #[inline]
    fn key(&mut self, group: usize, write: impl FnOnce(&mut String)) -> KeyProbe<'_> {
        if !self.built[group] {
            write(&mut self.keys[group]);
            self.hashes[group] = hash_key(&self.keys[group]);
            self.built[group] = true;
        }
        KeyProbe { hash: self.hashes[group], key: &self.keys[group] }
    }
}

/// Monotonic counters for metrics. Successful admissions are not counted here: a counter bumped by every
/// request would be one cache line shared by every core (the proxy counts requests anyway).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct EngineCounters {
    /// Admissions refused by a `block` rule.
    pub blocked: u64,
    /// Monitor-rule decisions that would have blocked.
    pub would_block: u64,
}

#[derive(Debug)]
struct Inner {
    rules: ArcSwap<RuleSet>,
    /// Tables no longer in the rule set that may still receive settlements; drained and swept until empty.
    retired: Mutex<Vec<Arc<BucketTable>>>,
    /// Serialises swaps (rare) so two of them cannot retire each other's tables.
    swap_lock: Mutex<()>,
    clock: Arc<dyn Clock>,
    blocked: AtomicU64,
    would_block: AtomicU64,
}

/// The spend-limit engine. Cheap to clone: clones share the same state.
#[derive(Debug, Clone)]
pub struct SpendEngine {
    inner: Arc<Inner>,
}

thread_local! {
    /// Reused buffers for bucket keys: a lookup allocates nothing; only a new bucket allocates its key.
    static KEY_BUFFERS: RefCell<KeyBuffers> = RefCell::new(KeyBuffers::default());
}

impl SpendEngine {
    /// An engine with `rules`, reading time from `clock`.
    pub fn new(rules: Vec<SpendRule>, clock: Arc<dyn Clock>) -> Self {
        let set = RuleSet::new(
            rules
                .into_iter()
                .map(|rule| RuleState {
                    table: Arc::new(BucketTable::new(Arc::clone(&rule.id), rule.window.clone())),
                    rule,
                })
                .collect(),
            Arc::clone(&clock),
        );
        Self {
            inner: Arc::new(Inner {
                rules: ArcSwap::from_pointee(set),
                retired: Mutex::new(Vec::new()),
                swap_lock: Mutex::new(()),
                clock,
                blocked: AtomicU64::new(0),
                would_block: AtomicU64::new(0),
            }),
        }
    }

    /// The engine's clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// The current rules.
    pub fn rules(&self) -> Vec<SpendRule> {
        self.inner.rules.load().rules.iter().map(|s| s.rule.clone()).collect()
    }

    /// Replaces the rule set while serving (see "Rule swaps" in the module docs). Admissions in progress finish
    /// on the set they started with.
    pub fn replace_rules(&self, rules: Vec<SpendRule>) {
        let _swap = self.inner.swap_lock.lock().unwrap_or_else(PoisonError::into_inner);
        let old = self.inner.rules.load_full();
        let mut kept: Vec<&Arc<BucketTable>> = Vec::new();
        let states: Vec<RuleState> = rules
            .into_iter()
            .map(|rule| {
                let reuse = old.rules.iter().find(|s| s.rule.id == rule.id && s.rule.window == rule.window);
                let table = match reuse {
                    Some(s) => {
                        kept.push(&s.table);
                        Arc::clone(&s.table)
                    }
                    None => Arc::new(BucketTable::new(Arc::clone(&rule.id), rule.window.clone())),
                };
                RuleState { rule, table }
            })
            .collect();
        let retiring: Vec<Arc<BucketTable>> = old
            .rules
            .iter()
            .filter(|s| !kept.iter().any(|k| Arc::ptr_eq(k, &s.table)))
            .map(|s| Arc::clone(&s.table))
            .collect();
        self.inner.rules.store(Arc::new(RuleSet::new(states, Arc::clone(&self.inner.clock))));
        self.inner.retired.lock().unwrap_or_else(PoisonError::into_inner).extend(retiring);
    }

    /// Counters since start.
    pub fn counters(&self) -> EngineCounters {
        EngineCounters {
            blocked: self.inner.blocked.load(Ordering::Relaxed),
            would_block: self.inner.would_block.load(Ordering::Relaxed),
        }
    }

    /// Admits a request now (by the engine's clock). `worst_case_nanos` is the most it can cost (prompt
    /// estimate + `max_tokens` at catalog prices), `None` when unknown.
    pub fn admit(&self, request: &RequestDims<'_>, worst_case_nanos: Option<u64>) -> Result<Admission, Blocked> {
        self.admit_at(request, worst_case_nanos, self.inner.clock.now())
    }

    /// [`SpendEngine::admit`] at an explicit instant (see the module docs for the protocol).
    pub fn admit_at(
        &self,
        request: &RequestDims<'_>,
        worst_case_nanos: Option<u64>,
        now: Timestamp,
    ) -> Result<Admission, Blocked> {
        let now_ns = timestamp_nanos(now);
        // One shared reference-count update per admission (the set moves into the `Admission`, never cloned).
        let set = self.inner.rules.load_full();
        let mut held = Vec::with_capacity(set.rules.len().min(32));
        let outcome = KEY_BUFFERS.with(|buffers| {
            let mut buffers = buffers.borrow_mut();
            buffers.reset(set.group_count);
            for (index, state) in set.rules.iter().enumerate() {
                let rule = &state.rule;
                if !rule.dimensions.applies_to(request) {
                    continue;
                }
                let key = buffers.key(set.key_groups[index], |out| rule.dimensions.write_bucket_key(request, out));
                let (result, bucket) = state.table.with_bucket(key, |bucket, counters| {
                    counters.roll(&rule.window, now_ns);
                    let spent = counters.spent(&rule.window, now_ns);
                    let reserving = rule.reserve == Reserve::WorstCase && worst_case_nanos.is_some();
                    let cost = if reserving { worst_case_nanos.unwrap_or(0) } else { 0 };
                    let committed = spent.saturating_add(counters.reserved);
                    let over = if reserving {
                        committed.saturating_add(cost) > rule.budget_nanos
                    } else {
                        committed >= rule.budget_nanos
                    };
                    if !over || rule.action == Action::Monitor {
                        let reserved = if over { 0 } else { cost };
                        counters.reserved = counters.reserved.saturating_add(reserved);
                        counters.inflight = counters.inflight.saturating_add(1);
                        let decision = if over { Decision::WouldBlock } else { Decision::Allowed };
                        return Ok((reserved, decision));
                    }
                    // Budget that must leave the window before this request fits.
                    let need = committed.saturating_add(cost.max(1)).saturating_sub(rule.budget_nanos);
                    let frees_at = counters.frees_at(&rule.window, now_ns, need);
                    Err(Blocked {
                        rule_id: Arc::clone(&rule.id),
                        bucket_key: Arc::clone(&bucket.key),
                        budget_nanos: rule.budget_nanos,
                        spent_nanos: spent,
                        reserved_nanos: counters.reserved,
                        requested_nanos: worst_case_nanos,
                        resets_at: nanos_timestamp(frees_at),
                        retry_after_secs: retry_after_secs(now_ns, frees_at),
                    })
                });
                match result {
                    Ok((reserved, decision)) => {
                        if decision == Decision::WouldBlock {
                            self.inner.would_block.fetch_add(1, Ordering::Relaxed);
                        }
                        // The bucket's in-flight count now includes this admission, so the sweep keeps it.
                        held.push(Held { rule_index: index, bucket, reserved, decision });
                    }
                    Err(blocked) => return Err(blocked),
                }
            }
            Ok(())
        });
        let admission = Admission::new(set, held);
        match outcome {
            Ok(()) => Ok(admission),
            Err(blocked) => {
                // Dropping the partial admission releases what it reserved.
                drop(admission);
                self.inner.blocked.fetch_add(1, Ordering::Relaxed);
                Err(blocked)
            }
        }
    }

    /// Admits a `dynamic/<route>` request: tries each candidate in order (with `base`'s gateway and metadata and
    /// the candidate's provider and model, and the worst case `worst_case` gives for it) and returns the index and
    /// admission of the first one every rule allows. When all are blocked, returns the [`Blocked`] with the
    /// smallest `retry_after_secs` (the first such candidate on ties): `Retry-After` is then the soonest moment
    /// any candidate could pass.
    pub fn admit_route(
        &self,
        route: &Route,
        base: &RequestDims<'_>,
        mut worst_case: impl FnMut(usize, &RouteCandidate) -> Option<u64>,
    ) -> Result<(usize, Admission), Blocked> {
        let now = self.inner.clock.now();
        let mut soonest: Option<Blocked> = None;
        for (index, candidate) in route.candidates().iter().enumerate() {
            let request = base.with_target(&candidate.provider, &candidate.model);
            match self.admit_at(&request, worst_case(index, candidate), now) {
                Ok(admission) => return Ok((index, admission)),
                Err(blocked) => {
                    if soonest.as_ref().is_none_or(|s| blocked.retry_after_secs < s.retry_after_secs) {
                        soonest = Some(blocked);
                    }
                }
            }
        }
        match soonest {
            Some(blocked) => Err(blocked),
            // A validated route is never empty; if one were, admit the base request as it is.
            None => self.admit_at(base, worst_case(0, &RouteCandidate::default()), now).map(|a| (0, a)),
        }
    }

    fn snapshot(&self) -> Arc<RuleSet> {
        self.inner.rules.load_full()
    }

    fn retired_tables(&self) -> Vec<Arc<BucketTable>> {
        self.inner.retired.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

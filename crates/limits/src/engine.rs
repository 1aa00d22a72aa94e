//! The spend-limit engine: a swappable rule set, per-bucket counters, admission with worst-case reservations.
//!
//! # Admission protocol
//!
//! 1. Load the current rule set (one `ArcSwap` load; a concurrent swap never pauses admissions).
//! 2. Rules whose split dimensions are the same (in the same order) write the same bucket key for every request:
//!    they form a key group, whose table holds one entry per key with the counters of every rule of the group.
//!    For each group with a rule whose filters match the request, build the key once, and lock that one entry (a
//!    per-entry mutex: admissions on different keys never contend, and no lock is held across two entries, so no
//!    deadlock is possible). 20 rules in 3 groups cost 3 lookups and 3 locks, not 20.
//! 3. Under that lock, for each applicable rule of the group, in rule order, check and reserve in one step:
//!    `spent + reserved + worst_case ≤ budget` for a reserving rule; `spent + reserved < budget` for
//!    `reserve = "none"` or when the worst case is unknown. On success the worst case is added to `reserved`
//!    (reserving rules only). There is no check-then-act gap.
//! 4. A `monitor` rule that would block records `would_block` and reserves nothing (it behaves as if the request
//!    had been refused, so its numbers show what `block` would do), but the request's actual cost is still
//!    counted at settlement.
//! 5. A `block` rule that would block ends the admission: every reservation already made is released (the
//!    `Admission` under construction is dropped) and [`Blocked`] names the rule, bucket, and when budget frees.
//!    Groups after a refusal are only checked, never reserved in, and only while they hold a rule that comes
//!    before the refusing one: the rule reported is the first refusing rule in rule order, as a rule-by-rule check
//!    would find.
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
//! [`SpendEngine::replace_rules`] keeps a rule's counters (so its counted spend and reservations) when a rule with
//! the same id and the same window (length, kind, time zone) is in the new set: budget, action, reserve and filters
//! may change freely; a rule whose split dimensions change moves to another key group, where its new keys start
//! empty (old keys no longer occur). Each rule counts under a tag (its id and window) kept across such swaps, and
//! a group keeps its table when a group with the same split dimensions is in the new set. A swap never touches the
//! entries: each moves to the new layout of its group the first time the new set uses it (kept rules' counters
//! move along; a departed rule's counters stay, as an orphan, while they hold reservations or undrained spend), and
//! an admission made under the old set finds its counters by tag, so it settles or refunds exactly what it
//! reserved. A rule whose window changed starts with empty local counters; the store's next `load_totals` brings
//! back whatever the database has under the new window starts. Tables of groups no longer in the set stay
//! drainable until their in-flight requests settle.

use std::cell::RefCell;
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

use admission::{Held, HeldEntry};
use bucket::{BucketState, EntryState, GroupBucket, GroupLayout, GroupTable, KeyProbe, RuleTag, hash_key};

/// A rule, the identity its counters live under, and where they are: its key group and position in it.
#[derive(Debug)]
pub(crate) struct RuleState {
    pub(crate) rule: SpendRule,
    pub(crate) tag: Arc<RuleTag>,
    pub(crate) group: usize,
    /// Position of the rule in its group's layout.
    pub(crate) pos: usize,
}

/// Rules whose split dimensions are the same, in the same order: they write the same bucket key for every
/// request, so they share one table whose entries hold all of their counters.
#[derive(Debug)]
pub(crate) struct KeyGroup {
    pub(crate) table: Arc<GroupTable>,
    pub(crate) layout: Arc<GroupLayout>,
    /// Indices of the group's rules in the set, ascending (the layout's order).
    pub(crate) members: Vec<usize>,
}

/// An immutable snapshot of the rules; admissions keep the one they started with.
#[derive(Debug)]
pub(crate) struct RuleSet {
    pub(crate) rules: Vec<RuleState>,
    /// Ordered by their first member.
    pub(crate) groups: Vec<KeyGroup>,
    /// Carried here so an admission holds one shared `Arc` (the set), not two.
    pub(crate) clock: Arc<dyn Clock>,
}

impl RuleSet {
    /// The set for `rules`, reusing from `old` each rule's tag (same id and window) and each group's table (same
    /// split dimensions) and layout (same tags); returns the old tables no longer used.
    fn build(
        rules: Vec<SpendRule>,
        old: Option<&RuleSet>,
        generation: u64,
        clock: Arc<dyn Clock>,
    ) -> (Self, Vec<Arc<GroupTable>>) {
        let mut states: Vec<RuleState> = Vec::with_capacity(rules.len());
        let mut members: Vec<Vec<usize>> = Vec::new();
        for rule in rules {
            let old_rule =
                old.and_then(|o| o.rules.iter().find(|s| s.rule.id == rule.id && s.rule.window == rule.window));
            let tag = match old_rule {
                Some(s) => Arc::clone(&s.tag),
                None => Arc::new(RuleTag { rule_id: Arc::clone(&rule.id), window: rule.window.clone() }),
            };
            // Quadratic in the number of groups, once per rule swap.
            let group = members.iter().position(|m| states[m[0]].rule.dimensions.same_key_as(&rule.dimensions));
            let group = group.unwrap_or_else(|| {
                members.push(Vec::new());
                members.len() - 1
            });
            let index = states.len();
            states.push(RuleState { rule, tag, group, pos: members[group].len() });
            members[group].push(index);
        }
        let mut reused: Vec<usize> = Vec::new();
        let groups = members
            .into_iter()
            .map(|members| {
                let dims = &states[members[0]].rule.dimensions;
                let previous = old.and_then(|o| {
                    o.groups.iter().enumerate().find(|(_, g)| o.rules[g.members[0]].rule.dimensions.same_key_as(dims))
                });
                let tags: Vec<Arc<RuleTag>> = members.iter().map(|&i| Arc::clone(&states[i].tag)).collect();
                let (table, layout) = match previous {
                    Some((index, g)) => {
                        reused.push(index);
                        let same = g.layout.tags.len() == tags.len()
                            && g.layout.tags.iter().zip(&tags).all(|(a, b)| Arc::ptr_eq(a, b));
                        let layout =
                            if same { Arc::clone(&g.layout) } else { Arc::new(GroupLayout { generation, tags }) };
                        (Arc::clone(&g.table), layout)
                    }
                    None => (Arc::new(GroupTable::new()), Arc::new(GroupLayout { generation, tags })),
                };
                KeyGroup { table, layout, members }
            })
            .collect();
        let retired = old.map_or_else(Vec::new, |o| {
            o.groups
                .iter()
                .enumerate()
                .filter(|(i, _)| !reused.contains(i))
                .map(|(_, g)| Arc::clone(&g.table))
                .collect()
        });
        (Self { rules: states, groups, clock }, retired)
    }
}

/// Refusals counted since start, for the engine's own tests only: the gateway's metrics count refusals from the
/// admission results, so production builds neither keep nor bump these counters. Successful admissions are not
/// counted: a counter bumped by every request would be one cache line shared by every core.
#[cfg(test)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EngineCounters {
    /// Admissions refused by a `block` rule.
    pub blocked: u64,
    /// Monitor-rule decisions that would have blocked.
    pub would_block: u64,
}

#[derive(Debug)]
struct Inner {
    rules: ArcSwap<RuleSet>,
    /// Tables no longer in the rule set that may still receive settlements; drained and swept until empty.
    retired: Mutex<Vec<Arc<GroupTable>>>,
    /// Serialises swaps (rare) so two of them cannot retire each other's tables; holds the last generation.
    swap_lock: Mutex<u64>,
    clock: Arc<dyn Clock>,
    #[cfg(test)]
    blocked: std::sync::atomic::AtomicU64,
    #[cfg(test)]
    would_block: std::sync::atomic::AtomicU64,
}

/// The spend-limit engine. Cheap to clone: clones share the same state.
#[derive(Debug, Clone)]
pub struct SpendEngine {
    inner: Arc<Inner>,
}

/// A thread's handle on a rule set. Admissions hold this rather than the set itself: the set's reference count is
/// one cache line shared by every core, and updating it twice per request (admit, settle) is what would stop
/// admissions on different buckets from scaling across cores. A thread moves its handle to the new set on its
/// first admission after a swap (until then an idle thread keeps the old set alive, which costs only memory).
#[derive(Debug)]
pub(crate) struct LocalSet {
    pub(crate) set: Arc<RuleSet>,
}

thread_local! {
    /// Reused buffer for bucket keys: a lookup allocates nothing; only a new entry allocates its key.
    static KEY_BUFFER: RefCell<String> = const { RefCell::new(String::new()) };
    /// This thread's handle on the set it last admitted under. Holding the set keeps its address from being
    /// reused, so comparing addresses tells whether it is still some engine's current set (engines never share
    /// a set).
    static LOCAL_SET: RefCell<Option<Arc<LocalSet>>> = const { RefCell::new(None) };
}

impl SpendEngine {
    /// An engine with `rules`, reading time from `clock`.
    pub fn new(rules: Vec<SpendRule>, clock: Arc<dyn Clock>) -> Self {
        let (set, _) = RuleSet::build(rules, None, 0, Arc::clone(&clock));
        Self {
            inner: Arc::new(Inner {
                rules: ArcSwap::from_pointee(set),
                retired: Mutex::new(Vec::new()),
                swap_lock: Mutex::new(0),
                clock,
                #[cfg(test)]
                blocked: std::sync::atomic::AtomicU64::new(0),
                #[cfg(test)]
                would_block: std::sync::atomic::AtomicU64::new(0),
            }),
        }
    }

    /// The engine's clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    pub fn rules(&self) -> Vec<SpendRule> {
        self.inner.rules.load().rules.iter().map(|s| s.rule.clone()).collect()
    }

    /// Replaces the rule set while serving (see "Rule swaps" in the module docs). Admissions in progress finish
    /// on the set they started with.
    pub fn replace_rules(&self, rules: Vec<SpendRule>) {
        let mut generation = self.inner.swap_lock.lock().unwrap_or_else(PoisonError::into_inner);
        *generation += 1;
        let old = self.inner.rules.load_full();
        let (set, retiring) = RuleSet::build(rules, Some(&old), *generation, Arc::clone(&self.inner.clock));
        self.inner.rules.store(Arc::new(set));
        self.inner.retired.lock().unwrap_or_else(PoisonError::into_inner).extend(retiring);
    }

    #[cfg(test)]
    pub(crate) fn counters(&self) -> EngineCounters {
        use std::sync::atomic::Ordering;
        EngineCounters {
            blocked: self.inner.blocked.load(Ordering::Relaxed),
            would_block: self.inner.would_block.load(Ordering::Relaxed),
        }
    }

    /// Adds an admission's would-block decisions (before the refusing rule, if any) and its refusal to
    /// [`SpendEngine::counters`].
    #[cfg(test)]
    fn count(&self, admission: &Admission, refused_at: Option<usize>) {
        use std::sync::atomic::Ordering;
        let would_block = admission.would_block_before(refused_at.unwrap_or(usize::MAX));
        self.inner.would_block.fetch_add(would_block, Ordering::Relaxed);
        if refused_at.is_some() {
            self.inner.blocked.fetch_add(1, Ordering::Relaxed);
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
        let local = self.local_set();
        let mut admitting = Admitting::new(&local.set, request, worst_case_nanos, now);
        KEY_BUFFER.with(|buffer| {
            let mut key = buffer.borrow_mut();
            for (group_index, group) in local.set.groups.iter().enumerate() {
                admitting.group(group_index, group, &mut key);
            }
        });
        let Admitting { entries, held, refusal, .. } = admitting;
        let admission = Admission::new(local, entries, held);
        #[cfg(test)]
        self.count(&admission, refusal.as_ref().map(|(index, _)| *index));
        match refusal {
            None => Ok(admission),
            Some((_, blocked)) => {
                // Dropping the partial admission releases what it reserved.
                drop(admission);
                Err(blocked)
            }
        }
    }

    /// Admits a `dynamic/<route>` request: tries each candidate in order (with `base`'s gateway and metadata and
    /// the candidate's provider and canonical model name, and the worst case `worst_case` gives for it) and returns the index and
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
            // Rules see the canonical model name, as for a request that names the model itself.
            let model = crate::canonical_model(&candidate.model);
            let request = base.with_target(&candidate.provider, &model);
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

    /// The current set, through this thread's handle (see [`LocalSet`]): no update of a shared reference count
    /// unless the set changed since this thread last admitted.
    fn local_set(&self) -> Arc<LocalSet> {
        let current = self.inner.rules.load();
        LOCAL_SET.with(|cell| {
            let mut cell = cell.borrow_mut();
            if let Some(local) = &*cell
                && Arc::ptr_eq(&local.set, &current)
            {
                return Arc::clone(local);
            }
            let local = Arc::new(LocalSet { set: arc_swap::Guard::into_inner(current) });
            *cell = Some(Arc::clone(&local));
            local
        })
    }

    fn snapshot(&self) -> Arc<RuleSet> {
        self.inner.rules.load_full()
    }

    fn retired_tables(&self) -> Vec<Arc<GroupTable>> {
        self.inner.retired.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

/// An admission under construction: steps 2 to 5 of the protocol (module docs), one key group at a time. Its
/// vectors are the ones the [`Admission`] keeps, so building it allocates nothing more.
struct Admitting<'a, 'r> {
    set: &'a RuleSet,
    request: &'a RequestDims<'r>,
    /// A worst case beyond what the store can hold is the largest storable amount (it is refused anyway).
    worst_case_nanos: Option<u64>,
    now_ns: i64,
    held: Vec<Held>,
    entries: Vec<HeldEntry>,
    /// The refusal with the lowest rule index (the one a rule-by-rule check would report).
    refusal: Option<(usize, Blocked)>,
}

/// Step 3's check of one rule against its bucket's counters (rolled to now).
struct Check {
    spent: u64,
    /// Spent plus reserved.
    committed: u64,
    /// What admitting reserves: the worst case for a reserving rule with a known one, else 0.
    cost: u64,
    over: bool,
}

impl Check {
    fn new(rule: &SpendRule, counters: &BucketState, now_ns: i64, worst_case_nanos: Option<u64>) -> Self {
        let spent = counters.spent(&rule.window, now_ns);
        let reserving = rule.reserve == Reserve::WorstCase && worst_case_nanos.is_some();
        let cost = if reserving { worst_case_nanos.unwrap_or(0) } else { 0 };
        let committed = spent.saturating_add(counters.reserved);
        // `reserve = "none"` or an unknown worst case: admitted while the bucket still has headroom.
        let over =
            if reserving { committed.saturating_add(cost) > rule.budget_nanos } else { committed >= rule.budget_nanos };
        Self { spent, committed, cost, over }
    }
}

impl<'a, 'r> Admitting<'a, 'r> {
    fn new(set: &'a RuleSet, request: &'a RequestDims<'r>, worst_case_nanos: Option<u64>, now: Timestamp) -> Self {
        Self {
            set,
            request,
            worst_case_nanos: worst_case_nanos.map(crate::money::clamp_nanos),
            now_ns: timestamp_nanos(now),
            held: Vec::with_capacity(set.rules.len().min(32)),
            entries: Vec::with_capacity(set.groups.len().min(8)),
            refusal: None,
        }
    }

    /// Step 2 for one key group: its first rule that applies to the request builds the bucket key (in `key`, a
    /// reused buffer) and the entry is locked once for steps 3 to 5 on every applicable rule of the group. After
    /// a refusal, a group is only checked (nothing reserved), and only for a refusal by an earlier rule.
    fn group(&mut self, group_index: usize, group: &KeyGroup, key: &mut String) {
        let set = self.set;
        let Some(first) = group.members.iter().position(|&i| set.rules[i].rule.dimensions.applies_to(self.request))
        else {
            return;
        };
        let check_only = match &self.refusal {
            Some((refused, _)) if group.members[first] > *refused => return,
            Some(_) => true,
            None => false,
        };
        set.rules[group.members[first]].rule.dimensions.write_bucket_key(self.request, key);
        let probe = KeyProbe { hash: hash_key(key), key };
        let held_before = self.held.len();
        let (refused, bucket) = group.table.with_entry(probe, &group.layout, |bucket, entry| {
            let refused = self.check_rules(&group.members[first..], &group.layout, check_only, bucket, entry);
            // Counted under the same lock as the reservations, so the sweep never evicts a held entry.
            if self.held.len() > held_before {
                entry.inflight = entry.inflight.saturating_add(1);
            }
            refused
        });
        if self.held.len() > held_before {
            self.entries.push(HeldEntry { group: group_index, bucket });
        }
        if let Some((index, blocked)) = refused
            && self.refusal.as_ref().is_none_or(|(refused, _)| index < *refused)
        {
            self.refusal = Some((index, blocked));
        }
    }

    /// Steps 3 to 5 under the entry's lock, for each of `members` that applies to the request, in rule order:
    /// check, then reserve (or record a would-block) unless `check_only`; the first `block` rule over budget ends
    /// the group with its refusal.
    fn check_rules(
        &mut self,
        members: &[usize],
        layout: &Arc<GroupLayout>,
        check_only: bool,
        bucket: &GroupBucket,
        entry: &mut EntryState,
    ) -> Option<(usize, Blocked)> {
        let set = self.set;
        for &index in members {
            let RuleState { rule, pos, .. } = &set.rules[index];
            if !rule.dimensions.applies_to(self.request) {
                continue;
            }
            let counters = entry.counters(layout, *pos);
            counters.roll(&rule.window, self.now_ns);
            let check = Check::new(rule, counters, self.now_ns, self.worst_case_nanos);
            if !check.over || rule.action == Action::Monitor {
                if !check_only {
                    self.hold(index, counters, &check);
                }
                continue;
            }
            return Some((index, self.blocked(rule, bucket, counters, &check)));
        }
        None
    }

    /// Step 3's reservation, or step 4's would-block record (which reserves nothing), for rule `index` in the
    /// entry about to be pushed (so at `entries.len()`).
    fn hold(&mut self, index: usize, counters: &mut BucketState, check: &Check) {
        let reserved = if check.over { 0 } else { check.cost };
        counters.reserved = counters.reserved.saturating_add(reserved);
        counters.touched = true;
        let decision = if check.over { Decision::WouldBlock } else { Decision::Allowed };
        self.held.push(Held { rule_index: index, entry: self.entries.len(), reserved, decision });
    }

    /// Step 5's refusal, with when enough budget leaves the window for this request to fit.
    fn blocked(&self, rule: &SpendRule, bucket: &GroupBucket, counters: &BucketState, check: &Check) -> Blocked {
        let need = check.committed.saturating_add(check.cost.max(1)).saturating_sub(rule.budget_nanos);
        let frees_at = counters.frees_at(&rule.window, self.now_ns, need);
        Blocked {
            rule_id: Arc::clone(&rule.id),
            bucket_key: Arc::clone(&bucket.key),
            budget_nanos: rule.budget_nanos,
            spent_nanos: check.spent,
            reserved_nanos: counters.reserved,
            requested_nanos: self.worst_case_nanos,
            resets_at: nanos_timestamp(frees_at),
            retry_after_secs: retry_after_secs(self.now_ns, frees_at),
        }
    }
}

//! One bucket's counters (settled spend per window or slot, in-flight reservations) and the per-rule table of
//! buckets.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use dashmap::DashMap;

use crate::window::{ROLLING_SLOTS, Window, WindowKind};

/// Buckets of one rule, keyed by bucket key. Sharded (dashmap) so admissions on different buckets never contend,
/// and hashed with foldhash, which is several times faster than SipHash on short keys.
#[derive(Debug)]
pub(crate) struct BucketTable {
    pub(crate) rule_id: Arc<str>,
    pub(crate) window: Window,
    pub(crate) buckets: DashMap<Arc<str>, Arc<Bucket>, foldhash::fast::RandomState>,
}

impl BucketTable {
    pub(crate) fn new(rule_id: Arc<str>, window: Window) -> Self {
        Self { rule_id, window, buckets: DashMap::with_hasher(foldhash::fast::RandomState::default()) }
    }

    /// Runs `f` on the bucket for `key` (created if absent) with its counters locked, and hands back the bucket
    /// with `f`'s result (so a caller that keeps it pays no second reference-count update). A bucket that the sweep
    /// evicted between lookup and lock is skipped and looked up again, so nothing is ever counted in an evicted
    /// bucket.
    pub(crate) fn with_bucket<R>(&self, key: &str, f: impl FnOnce(&Bucket, &mut BucketState) -> R) -> (R, Arc<Bucket>) {
        loop {
            let found = self.buckets.get(key).map(|b| Arc::clone(b.value()));
            let bucket = found.unwrap_or_else(|| {
                let key: Arc<str> = Arc::from(key);
                let entry = self.buckets.entry(Arc::clone(&key)).or_insert_with(|| Arc::new(Bucket::new(key)));
                Arc::clone(entry.value())
            });
            let mut state = bucket.lock();
            if !state.evicted {
                let result = f(&bucket, &mut state);
                drop(state);
                return (result, bucket);
            }
        }
    }

    /// Evicts buckets that no longer need to exist (see [`BucketState::must_keep`]); returns how many remain.
    pub(crate) fn sweep(&self, now: i64, only_unfinished: bool) -> usize {
        self.buckets.retain(|_, bucket| {
            let mut state = bucket.lock();
            state.roll(&self.window, now);
            let keep = state.must_keep(&self.window, now, only_unfinished);
            if !keep {
                state.evicted = true;
            }
            keep
        });
        self.buckets.len()
    }
}

/// One (rule, bucket key): its spend per window and its reservations.
#[derive(Debug)]
pub(crate) struct Bucket {
    pub(crate) key: Arc<str>,
    state: Mutex<BucketState>,
}

impl Bucket {
    fn new(key: Arc<str>) -> Self {
        Self { key, state: Mutex::new(BucketState::default()) }
    }

    /// Locks the counters. A panic while holding the lock cannot leave them torn (every update is a few plain
    /// integer writes), so a poisoned lock is simply taken over.
    pub(crate) fn lock(&self) -> MutexGuard<'_, BucketState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Settled spend of one fixed window, or of one rolling slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Slot {
    /// Unix nanoseconds at which the window or slot starts.
    pub(crate) start: i64,
    /// Spend known to the database (from `load_totals`) plus local spend drained since.
    pub(crate) settled: u64,
    /// Local spend not yet drained.
    pub(crate) pending: u64,
}

impl Slot {
    fn total(self) -> u64 {
        self.settled.saturating_add(self.pending)
    }
}

#[derive(Debug, Default)]
pub(crate) struct BucketState {
    /// Sum of the worst-case reservations of admitted, unsettled requests. Reservations belong to no window: they
    /// count against whichever window is current until they are settled or refunded.
    pub(crate) reserved: u64,
    /// Admissions holding this bucket (reserving or not); an evicted bucket must have none.
    pub(crate) inflight: u32,
    /// Set by the sweep when it removes the bucket from its table.
    pub(crate) evicted: bool,
    /// Fixed windows: end of the newest window (so admission does calendar math once per window, not per request).
    current_end: i64,
    /// Oldest first. Fixed: the current window last, older ones only while they hold undrained spend. Rolling:
    /// the slots with spend, expired ones only while they hold undrained spend.
    pub(crate) slots: Vec<Slot>,
}

impl BucketState {
    /// Brings the slots up to `now`: opens the current fixed window, forgets drained windows and expired slots.
    #[inline]
    pub(crate) fn roll(&mut self, window: &Window, now: i64) {
        // The common case, inline: a fixed window whose only slot is current (its bounds are cached in
        // `current_end`), where there is nothing to do.
        if window.kind() == WindowKind::Fixed
            && let [only] = self.slots.as_slice()
            && now < self.current_end
            && now >= only.start
        {
            return;
        }
        self.roll_slow(window, now);
    }

    fn roll_slow(&mut self, window: &Window, now: i64) {
        match window.kind() {
            WindowKind::Fixed => {
                let stale = self.slots.last().is_none_or(|s| now >= self.current_end || now < s.start);
                if stale {
                    let (start, end) = window.bounds_nanos(now);
                    if self.slots.last().is_none_or(|s| s.start < start) {
                        self.push_slot(Slot { start, settled: 0, pending: 0 });
                        self.current_end = end;
                    } else if self.slots.last().is_some_and(|s| s.start == start) {
                        self.current_end = end;
                    }
                    // A clock stepping back into an older window keeps counting the newest one: spend is never
                    // moved back in time.
                }
                if self.slots.len() == 1 {
                    return;
                }
                let current = self.slots.last().map_or(i64::MIN, |s| s.start);
                self.slots.retain(|s| s.start == current || s.pending > 0);
                if self.slots.capacity() > 2 * self.slots.len().max(1) {
                    self.slots.shrink_to_fit();
                }
            }
            WindowKind::Rolling => {
                let horizon = rolling_horizon(window, now);
                self.slots.retain(|s| s.start >= horizon || s.pending > 0);
            }
        }
    }

    /// Spend counted in the window at `now` (call [`BucketState::roll`] first).
    pub(crate) fn spent(&self, window: &Window, now: i64) -> u64 {
        match window.kind() {
            WindowKind::Fixed => self.slots.last().map_or(0, |s| s.total()),
            WindowKind::Rolling => {
                let horizon = rolling_horizon(window, now);
                self.slots.iter().filter(|s| s.start >= horizon).map(|s| s.total()).fold(0, u64::saturating_add)
            }
        }
    }

    /// Counts settled spend in the window or slot current at `now` (call [`BucketState::roll`] first).
    pub(crate) fn add_spend(&mut self, window: &Window, now: i64, amount: u64) {
        if amount == 0 {
            return;
        }
        let start = match window.kind() {
            WindowKind::Fixed => self.slots.last().map_or(now, |s| s.start),
            WindowKind::Rolling => {
                let slot = window.slot_nanos();
                now.div_euclid(slot) * slot
            }
        };
        match self.slots.last_mut() {
            // `<=`: a clock stepping back adds to the newest slot rather than reopening an old one.
            Some(last) if start <= last.start => last.pending = last.pending.saturating_add(amount),
            _ => self.push_slot(Slot { start, settled: 0, pending: amount }),
        }
    }

    /// When `need` nano-dollars of counted spend will have left the window (Unix ns): the window end for fixed
    /// windows; for rolling ones the expiry of the slot at which the oldest-first running sum reaches `need`, or
    /// of the newest slot if expiring everything settled is not enough (the rest is in-flight reservations).
    pub(crate) fn frees_at(&self, window: &Window, now: i64, need: u64) -> i64 {
        match window.kind() {
            WindowKind::Fixed => self.current_end,
            WindowKind::Rolling => {
                let span = window.slot_nanos() * ROLLING_SLOTS;
                let horizon = rolling_horizon(window, now);
                let mut freed = 0u64;
                let mut last_expiry = None;
                for slot in self.slots.iter().filter(|s| s.start >= horizon) {
                    freed = freed.saturating_add(slot.total());
                    last_expiry = Some(slot.start + span);
                    if freed >= need {
                        return slot.start + span;
                    }
                }
                last_expiry.unwrap_or_else(|| now + window.slot_nanos())
            }
        }
    }

    /// Merges a database total for the window or slot starting at `start`: the local view only ever rises
    /// (`max`), because the total includes every delta drained before it was read.
    pub(crate) fn load_total(&mut self, window: &Window, now: i64, start: i64, total: u64) {
        let live = match window.kind() {
            WindowKind::Fixed => self.slots.last().is_some_and(|s| s.start == start),
            WindowKind::Rolling => {
                let slot = window.slot_nanos();
                start.rem_euclid(slot) == 0 && start >= rolling_horizon(window, now) && start <= now
            }
        };
        if !live {
            return;
        }
        match self.slots.binary_search_by_key(&start, |s| s.start) {
            Ok(i) => self.slots[i].settled = self.slots[i].settled.max(total),
            Err(i) => {
                self.slots.reserve_exact(1);
                self.slots.insert(i, Slot { start, settled: total, pending: 0 });
            }
        }
    }

    /// Grows the slot list one at a time: most buckets hold a single slot, and `Vec`'s default first growth (to
    /// four) would cost ~80 bytes per bucket, a quarter of a million-bucket engine.
    fn push_slot(&mut self, slot: Slot) {
        self.slots.reserve_exact(1);
        self.slots.push(slot);
    }

    /// Moves undrained spend to settled and reports it per slot.
    pub(crate) fn drain(&mut self, mut emit: impl FnMut(i64, u64)) {
        for slot in &mut self.slots {
            if slot.pending > 0 {
                emit(slot.start, slot.pending);
                slot.settled = slot.settled.saturating_add(slot.pending);
                slot.pending = 0;
            }
        }
    }

    /// Whether the sweep must keep this bucket: something in flight, undrained, or (unless `only_unfinished`)
    /// spend still counted in the window.
    pub(crate) fn must_keep(&self, window: &Window, now: i64, only_unfinished: bool) -> bool {
        self.inflight > 0
            || self.reserved > 0
            || self.slots.iter().any(|s| s.pending > 0)
            || (!only_unfinished && self.spent(window, now) > 0)
    }

    pub(crate) fn current_end(&self) -> i64 {
        self.current_end
    }
}

/// Start of the oldest slot still inside a rolling window at `now`.
pub(crate) fn rolling_horizon(window: &Window, now: i64) -> i64 {
    let slot = window.slot_nanos();
    (now.div_euclid(slot) - ROLLING_SLOTS + 1) * slot
}

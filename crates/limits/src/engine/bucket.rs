//! One rule's counters under one bucket key (settled spend per window or slot, in-flight reservations), and the
//! per-key-group table of bucket entries that hold them.

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, PoisonError};

use dashmap::DashMap;

use crate::money::{add_nanos, clamp_nanos};
use crate::window::{ROLLING_SLOTS, Window, WindowKind};

/// The seed of every bucket-key hash. One per process (random, as foldhash's per-map seeds are), so the hash of a
/// key is the same in every table: an admission hashes each key group's key once and reuses the hash for every
/// rule of the group, and a table kept across a rule swap still finds its buckets.
static KEY_SEED: LazyLock<foldhash::fast::RandomState> = LazyLock::new(foldhash::fast::RandomState::default);

/// The hash of bucket key `key`, as every [`GroupTable`] expects it.
#[inline]
pub(crate) fn hash_key(key: &str) -> u64 {
    KEY_SEED.hash_one(key)
}

/// A bucket key as stored in a table, with its hash (from [`hash_key`]).
#[derive(Debug, Clone)]
pub(crate) struct StoredKey {
    hash: u64,
    key: Arc<str>,
}

/// A bucket key and its hash, as a table is searched: implemented by the stored key and by a borrowed probe, so a
/// lookup neither allocates nor hashes the key again. Hash and equality are those of the (hash, key) pair, the
/// same for both forms (as `Borrow` requires).
pub(crate) trait KeyLike {
    fn key_hash(&self) -> u64;
    fn key_str(&self) -> &str;
}

impl KeyLike for StoredKey {
    fn key_hash(&self) -> u64 {
        self.hash
    }
    fn key_str(&self) -> &str {
        &self.key
    }
}

/// A borrowed bucket key and its hash, to search a table.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyProbe<'a> {
    pub(crate) hash: u64,
    pub(crate) key: &'a str,
}

impl KeyLike for KeyProbe<'_> {
    fn key_hash(&self) -> u64 {
        self.hash
    }
    fn key_str(&self) -> &str {
        self.key
    }
}

impl<'a> Borrow<dyn KeyLike + 'a> for StoredKey {
    fn borrow(&self) -> &(dyn KeyLike + 'a) {
        self
    }
}

impl Hash for dyn KeyLike + '_ {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.key_hash());
    }
}

impl PartialEq for dyn KeyLike + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.key_hash() == other.key_hash() && self.key_str() == other.key_str()
    }
}

impl Eq for dyn KeyLike + '_ {}

impl Hash for StoredKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl PartialEq for StoredKey {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash && self.key == other.key
    }
}

impl Eq for StoredKey {}

/// Builds [`PassThrough`] hashers: table keys carry their hash already.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PassThroughState;

impl BuildHasher for PassThroughState {
    type Hasher = PassThrough;

    fn build_hasher(&self) -> PassThrough {
        PassThrough(0)
    }
}

/// A hasher whose result is the `u64` written to it (the key's precomputed hash). Keys only ever write one `u64`;
/// any other input is still mixed in, so the hasher stays a valid (if slow) `Hasher`.
#[derive(Debug)]
pub(crate) struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// What a rule counts under: its id and its window. A rule swap that keeps both keeps the same `Arc`, so the rule's
/// counters in every bucket carry over; identity is the pointer.
#[derive(Debug)]
pub(crate) struct RuleTag {
    pub(crate) rule_id: Arc<str>,
    pub(crate) window: Window,
}

/// The rules of one key group, in rule order. An entry laid out by this layout holds the counters of `tags[i]` at
/// position `i`.
#[derive(Debug)]
pub(crate) struct GroupLayout {
    /// The rule swap that made this layout (0 at start). Entries only ever move to a newer layout.
    pub(crate) generation: u64,
    pub(crate) tags: Vec<Arc<RuleTag>>,
}

/// Shards per table: dashmap's default (four per core) but at least 64. Readers of one shard share its lock word, so
/// two cores admitting on different keys slow each other when the keys land in one shard; with 3 tables of 8 shards
/// (a 2-core default) that happened in a third of the bench runs. 64 makes it rare, for 8 KiB per table.
static SHARDS: LazyLock<usize> = LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    (cores * 4).next_power_of_two().max(64)
});

/// The buckets of one key group (rules whose split dimensions write the same key), keyed by bucket key: one entry
/// per key holds the counters of every rule of the group, so an admission looks up and locks each distinct key
/// once, whatever the number of rules sharing it. Sharded (dashmap) so admissions on different keys never contend.
/// Keys carry their foldhash hash (see [`hash_key`]), so the map itself does not hash.
#[derive(Debug)]
pub(crate) struct GroupTable {
    pub(crate) buckets: DashMap<StoredKey, Arc<GroupBucket>, PassThroughState>,
}

impl GroupTable {
    pub(crate) fn new() -> Self {
        Self { buckets: DashMap::with_hasher_and_shard_amount(PassThroughState, *SHARDS) }
    }

    /// Runs `f` on the entry for `probe` (created with `layout` if absent) with its counters locked, and hands
    /// back the entry with `f`'s result (so a caller that keeps it pays no second reference-count update). An
    /// entry that the sweep evicted between lookup and lock is skipped and looked up again, so nothing is ever
    /// counted in an evicted entry. `probe.hash` must be [`hash_key`] of `probe.key`.
    #[inline]
    pub(crate) fn with_entry<R>(
        &self,
        probe: KeyProbe<'_>,
        layout: &Arc<GroupLayout>,
        f: impl FnOnce(&GroupBucket, &mut EntryState) -> R,
    ) -> (R, Arc<GroupBucket>) {
        debug_assert_eq!(probe.hash, hash_key(probe.key));
        loop {
            let found = self.buckets.get(&probe as &dyn KeyLike).map(|b| Arc::clone(b.value()));
            let bucket = found.unwrap_or_else(|| {
                let key: Arc<str> = Arc::from(probe.key);
                let stored = StoredKey { hash: probe.hash, key: Arc::clone(&key) };
                let entry =
                    self.buckets.entry(stored).or_insert_with(|| Arc::new(GroupBucket::new(key, Arc::clone(layout))));
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

    /// Evicts entries that no longer need to exist (see [`EntryState::sweep`]); returns how many remain.
    pub(crate) fn sweep(&self, now: i64, only_unfinished: bool) -> usize {
        self.buckets.retain(|_, bucket| {
            let mut state = bucket.lock();
            let keep = state.sweep(now, only_unfinished);
            if !keep {
                state.evicted = true;
            }
            keep
        });
        self.buckets.len()
    }
}

/// One bucket key of a key group: the counters of each of the group's rules under that key.
#[derive(Debug)]
pub(crate) struct GroupBucket {
    pub(crate) key: Arc<str>,
    state: Mutex<EntryState>,
}

impl GroupBucket {
    fn new(key: Arc<str>, layout: Arc<GroupLayout>) -> Self {
        Self { key, state: Mutex::new(EntryState::new(layout)) }
    }

    /// Locks the counters. A panic while holding the lock cannot leave them torn (every update is a few plain
    /// integer writes), so a poisoned lock is simply taken over.
    pub(crate) fn lock(&self) -> MutexGuard<'_, EntryState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Where a rule's counters sit in an [`EntryState`].
#[derive(Debug, Clone, Copy)]
enum Place {
    /// `rules[i]`.
    Rule(usize),
    /// `orphans[i]`.
    Orphan(usize),
}

/// The locked part of a [`GroupBucket`].
///
/// `rules[i]` belongs to `layout.tags[i]`. After a rule swap, the first access through the new layout moves the
/// entry to it (counters of kept rules move to their new position; counters of rules no longer in the group are
/// kept as orphans while they hold reservations or undrained spend). An admission made under an older layout finds
/// its counters by tag instead (and counts in an orphan if its rule has left the group), so a swap never moves,
/// loses or doubles a reservation or a settlement.
#[derive(Debug)]
pub(crate) struct EntryState {
    /// Admissions holding this entry (reserving or not); an evicted entry must have none.
    pub(crate) inflight: u32,
    /// Set by the sweep when it removes the entry from its table.
    pub(crate) evicted: bool,
    layout: Arc<GroupLayout>,
    rules: Vec<BucketState>,
    /// Counters of rules that left this entry's layout and still hold reservations or undrained spend.
    orphans: Vec<(Arc<RuleTag>, BucketState)>,
}

impl EntryState {
    fn new(layout: Arc<GroupLayout>) -> Self {
        // Exactly one slot per rule (`resize_with` on an empty `Vec` would round up to four).
        let mut rules = Vec::with_capacity(layout.tags.len());
        rules.resize_with(layout.tags.len(), BucketState::default);
        Self { inflight: 0, evicted: false, layout, rules, orphans: Vec::new() }
    }

    /// The counters of rule `pos` of `layout` (created if this entry has none for it yet).
    #[inline]
    pub(crate) fn counters(&mut self, layout: &Arc<GroupLayout>, pos: usize) -> &mut BucketState {
        if Arc::ptr_eq(&self.layout, layout) {
            return &mut self.rules[pos];
        }
        self.counters_slow(layout, pos)
    }

    fn counters_slow(&mut self, layout: &Arc<GroupLayout>, pos: usize) -> &mut BucketState {
        if layout.generation > self.layout.generation {
            self.relayout(layout);
            return &mut self.rules[pos];
        }
        let tag = &layout.tags[pos];
        let place = self.locate(tag).unwrap_or_else(|| {
            self.orphans.push((Arc::clone(tag), BucketState::default()));
            Place::Orphan(self.orphans.len() - 1)
        });
        match place {
            Place::Rule(i) => &mut self.rules[i],
            Place::Orphan(i) => &mut self.orphans[i].1,
        }
    }

    /// The counters of rule `pos` of `layout`, if this entry has any (read only: never moves the entry).
    pub(crate) fn find(&self, layout: &Arc<GroupLayout>, pos: usize) -> Option<&BucketState> {
        if Arc::ptr_eq(&self.layout, layout) {
            return self.rules.get(pos);
        }
        match self.locate(layout.tags.get(pos)?)? {
            Place::Rule(i) => self.rules.get(i),
            Place::Orphan(i) => self.orphans.get(i).map(|(_, s)| s),
        }
    }

    /// Where the counters of `tag` are in this entry (under its own layout, or orphaned), if anywhere.
    fn locate(&self, tag: &Arc<RuleTag>) -> Option<Place> {
        if let Some(i) = self.layout.tags.iter().position(|t| Arc::ptr_eq(t, tag)) {
            return Some(Place::Rule(i));
        }
        self.orphans.iter().position(|(t, _)| Arc::ptr_eq(t, tag)).map(Place::Orphan)
    }

    /// Moves the entry to `layout` (a newer one): kept rules' counters move to their new position, new rules start
    /// empty, and departed rules' counters become orphans if anything in them is unfinished.
    fn relayout(&mut self, layout: &Arc<GroupLayout>) {
        let old_layout = std::mem::replace(&mut self.layout, Arc::clone(layout));
        let mut old_rules = std::mem::take(&mut self.rules);
        let mut rules = Vec::with_capacity(layout.tags.len());
        for tag in &layout.tags {
            let state = match old_layout.tags.iter().position(|t| Arc::ptr_eq(t, tag)) {
                Some(i) => std::mem::take(&mut old_rules[i]),
                None => BucketState::default(),
            };
            rules.push(state);
        }
        self.rules = rules;
        for (tag, state) in old_layout.tags.iter().zip(old_rules) {
            if state.unfinished() {
                self.orphans.push((Arc::clone(tag), state));
            }
        }
    }

    /// Every rule's counters with its tag: the layout's, then the orphans.
    pub(crate) fn all_mut(&mut self) -> impl Iterator<Item = (&Arc<RuleTag>, &mut BucketState)> {
        self.layout.tags.iter().zip(self.rules.iter_mut()).chain(self.orphans.iter_mut().map(|(t, s)| (&*t, s)))
    }

    /// Rolls every rule's counters to `now`, drops finished orphans and forgets rules with nothing counted; returns
    /// whether the entry must stay: something in flight or unfinished, or (unless `only_unfinished`) spend still
    /// counted in some rule's window.
    pub(crate) fn sweep(&mut self, now: i64, only_unfinished: bool) -> bool {
        let mut keep = self.inflight > 0;
        for (tag, state) in self.layout.tags.iter().zip(self.rules.iter_mut()) {
            state.roll(&tag.window, now);
            if state.must_keep(&tag.window, now, only_unfinished) {
                keep = true;
            } else {
                // Listed again (usage, live buckets) only once the rule counts something here.
                state.touched = false;
            }
        }
        self.orphans.retain_mut(|(tag, state)| {
            state.roll(&tag.window, now);
            state.unfinished()
        });
        keep || !self.orphans.is_empty()
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
        add_nanos(self.settled, self.pending)
    }
}

#[derive(Debug, Default)]
pub(crate) struct BucketState {
    /// Sum of the worst-case reservations of admitted, unsettled requests. Reservations belong to no window: they
    /// count against whichever window is current until they are settled or refunded.
    pub(crate) reserved: u64,
    /// Set when the rule counts anything here (an admission, a settlement, a database total); an entry holds
    /// counters for every rule of its group, and only touched ones are listed.
    pub(crate) touched: bool,
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
                self.slots.iter().filter(|s| s.start >= horizon).map(|s| s.total()).fold(0, add_nanos)
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
                now.div_euclid(slot).saturating_mul(slot)
            }
        };
        match self.slots.last_mut() {
            // `<=`: a clock stepping back adds to the newest slot rather than reopening an old one.
            Some(last) if start <= last.start => last.pending = add_nanos(last.pending, amount),
            _ => self.push_slot(Slot { start, settled: 0, pending: clamp_nanos(amount) }),
        }
    }

    /// When `need` nano-dollars of counted spend will have left the window (Unix ns): the window end for fixed
    /// windows; for rolling ones the expiry of the slot at which the oldest-first running sum reaches `need`, or
    /// of the newest slot if expiring everything settled is not enough (the rest is in-flight reservations).
    pub(crate) fn frees_at(&self, window: &Window, now: i64, need: u64) -> i64 {
        match window.kind() {
            WindowKind::Fixed => self.current_end,
            WindowKind::Rolling => {
                let span = window.slot_nanos().saturating_mul(ROLLING_SLOTS);
                let horizon = rolling_horizon(window, now);
                let mut freed = 0u64;
                let mut last_expiry = None;
                for slot in self.slots.iter().filter(|s| s.start >= horizon) {
                    freed = freed.saturating_add(slot.total());
                    last_expiry = Some(slot.start.saturating_add(span));
                    if freed >= need {
                        return slot.start.saturating_add(span);
                    }
                }
                last_expiry.unwrap_or_else(|| now.saturating_add(window.slot_nanos()))
            }
        }
    }

    /// Merges a database total for the window or slot starting at `start`: the local view only ever rises
    /// (`max`), because the total includes every delta drained before it was read.
    pub(crate) fn load_total(&mut self, window: &Window, now: i64, start: i64, total: u64) {
        let total = clamp_nanos(total);
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

    /// Sets the settled spend of the window or slot starting at `start` to `total` (a recompute's result); pending
    /// (undrained) spend stays on top.
    pub(crate) fn replace_total(&mut self, window: &Window, now: i64, start: i64, total: u64) {
        let total = clamp_nanos(total);
        if let Ok(i) = self.slots.binary_search_by_key(&start, |s| s.start) {
            self.slots[i].settled = total;
        } else {
            self.load_total(window, now, start, total);
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
                slot.settled = add_nanos(slot.settled, slot.pending);
                slot.pending = 0;
            }
        }
    }

    /// Whether these counters must be kept: reserved, undrained, or (unless `only_unfinished`) spend still counted
    /// in the window.
    pub(crate) fn must_keep(&self, window: &Window, now: i64, only_unfinished: bool) -> bool {
        self.unfinished() || (!only_unfinished && self.spent(window, now) > 0)
    }

    /// Reservations or undrained spend.
    pub(crate) fn unfinished(&self) -> bool {
        self.reserved > 0 || self.slots.iter().any(|s| s.pending > 0)
    }

    pub(crate) fn current_end(&self) -> i64 {
        self.current_end
    }
}

/// Start of the oldest slot still inside a rolling window at `now`.
pub(crate) fn rolling_horizon(window: &Window, now: i64) -> i64 {
    let slot = window.slot_nanos();
    now.div_euclid(slot).saturating_sub(ROLLING_SLOTS - 1).saturating_mul(slot)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_compare_the_key_not_only_its_hash() {
        let window = Window::fixed_utc(crate::window::parse_window("1d").unwrap());
        let layout =
            Arc::new(GroupLayout { generation: 0, tags: vec![Arc::new(RuleTag { rule_id: Arc::from("r"), window })] });
        let table = GroupTable::new();
        // Two different keys forced onto one hash: a lookup must still tell them apart.
        let stored = StoredKey { hash: 7, key: Arc::from("a") };
        table.buckets.insert(stored, Arc::new(GroupBucket::new(Arc::from("a"), Arc::clone(&layout))));
        let hit = KeyProbe { hash: 7, key: "a" };
        let miss = KeyProbe { hash: 7, key: "b" };
        assert!(table.buckets.get(&hit as &dyn KeyLike).is_some());
        assert!(table.buckets.get(&miss as &dyn KeyLike).is_none());
        // The same key hashes the same everywhere (tables share one seed).
        assert_eq!(hash_key("user_id=u1"), hash_key(&String::from("user_id=u1")));
        let probe = KeyProbe { hash: hash_key("x"), key: "x" };
        let ((), first) = table.with_entry(probe, &layout, |_, _| ());
        let ((), second) = table.with_entry(probe, &layout, |_, _| ());
        assert!(Arc::ptr_eq(&first, &second));
        assert_eq!(table.buckets.len(), 2);
    }
}

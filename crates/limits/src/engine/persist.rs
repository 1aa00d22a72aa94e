//! The store-facing side of the engine: drain settled deltas, merge database totals, list live buckets, evict
//! expired ones, report usage.
//!
//! # Sync protocol (one store task per replica, on an interval)
//!
//! 1. `drain_deltas()`: every settled nano-dollar since the previous drain, per (rule, bucket, window or slot
//!    start), each exactly once. The drained amount stays counted locally.
//! 2. The store adds the deltas to its rows (shared by every replica).
//! 3. It reads back the rows of `live_buckets()` (and may add any other row of a current window).
//! 4. `load_totals(rows)`: each total, which includes the deltas written in step 2 and every other replica's,
//!    raises the local count to it. Spend settled locally since step 1 is still pending and stays on top.
//!
//! Totals only ever raise the local view (`max`), so a row read before step 2 landed cannot lose local spend. The
//! cost: a total lowered in the database (a recompute after a price fix) takes effect at the next window.

use std::sync::Arc;

use jiff::Timestamp;

use super::SpendEngine;
use super::bucket::{GroupTable, KeyProbe, hash_key};
use crate::clock::{nanos_timestamp, timestamp_nanos};
use crate::window::WindowKind;

/// Settled spend not yet persisted, for one (rule, bucket, window or rolling slot).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketDelta {
    /// The rule id.
    pub rule_id: Arc<str>,
    /// The bucket key.
    pub bucket_key: Arc<str>,
    /// Start of the fixed window, or of the rolling slot.
    pub window_start: Timestamp,
    /// Nano-dollars to add; at most [`MAX_NANOS`](crate::money::MAX_NANOS), so it always fits the store's `i64`.
    pub delta_nanos: u64,
}

/// A persisted total for one (rule, bucket, window or rolling slot), as read from the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketTotal {
    /// The rule id.
    pub rule_id: String,
    /// The bucket key.
    pub bucket_key: String,
    /// Start of the fixed window, or of the rolling slot.
    pub window_start: Timestamp,
    /// Nano-dollars in the database, every replica included.
    pub total_nanos: u64,
}

/// A bucket the store should read back: rows with this rule and key whose `window_start` lies in
/// `[window_start, window_end)` (one row for a fixed window; one per slot for a rolling one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveBucket {
    /// The rule id.
    pub rule_id: Arc<str>,
    /// The bucket key.
    pub bucket_key: Arc<str>,
    /// Fixed or rolling.
    pub window_kind: WindowKind,
    /// Start of the current window (fixed) or of the oldest slot still counted (rolling).
    pub window_start: Timestamp,
    /// End of the current window or slot.
    pub window_end: Timestamp,
}

/// One bucket's state for `GET /api/spend-limits/{id}/usage`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketUsage {
    /// The bucket key.
    pub bucket: Arc<str>,
    /// Spend counted in the window.
    pub spent_nanos: u64,
    /// In-flight reservations.
    pub reserved_nanos: u64,
    /// The rule's budget.
    pub budget_nanos: u64,
    /// Window (fixed) or covered span (rolling) start.
    pub window_start: Timestamp,
    /// Window end (fixed) or end of the current slot (rolling).
    pub window_end: Timestamp,
}

impl SpendEngine {
    /// Takes every settled delta not yet drained (step 1 of the sync protocol). Concurrent settlements land
    /// either in this drain or in the next, never in both and never in neither.
    pub fn drain_deltas(&self) -> Vec<BucketDelta> {
        let mut out = Vec::new();
        let mut drain_table = |table: &GroupTable| {
            for entry in &table.buckets {
                let bucket = entry.value();
                let mut state = bucket.lock();
                for (tag, counters) in state.all_mut() {
                    counters.drain(|start, delta| {
                        out.push(BucketDelta {
                            rule_id: Arc::clone(&tag.rule_id),
                            bucket_key: Arc::clone(&bucket.key),
                            window_start: nanos_timestamp(start),
                            delta_nanos: delta,
                        });
                    });
                }
            }
        };
        for group in &self.snapshot().groups {
            drain_table(&group.table);
        }
        for table in self.retired_tables() {
            drain_table(&table);
        }
        out
    }

    /// Merges database totals (step 4 of the sync protocol). Totals of unknown rules, of windows that are no
    /// longer current, or of rolling slots that expired, are ignored; a total for a bucket not yet seen locally
    /// creates it (so spend from other replicas counts before this replica's first request to it). A total only
    /// ever raises the settled count: a stale read never loses local spend.
    pub fn load_totals(&self, totals: impl IntoIterator<Item = BucketTotal>) {
        self.merge_totals(totals, false);
    }

    /// Sets database totals as the settled baseline, lowering as well as raising it (after a recompute rewrote
    /// them). Unlike [`SpendEngine::load_totals`], a total replaces the settled count of its window or slot:
    /// reservations and undrained local spend are kept on top. Spend drained before the totals were computed and
    /// not in them is lost locally until the next `load_totals` brings it back from the database. Totals of
    /// unknown rules or of windows that are no longer current are ignored, as in `load_totals`.
    pub fn replace_totals(&self, totals: impl IntoIterator<Item = BucketTotal>) {
        self.merge_totals(totals, true);
    }

    fn merge_totals(&self, totals: impl IntoIterator<Item = BucketTotal>, replace: bool) {
        let now = timestamp_nanos(self.clock().now());
        let set = self.snapshot();
        for total in totals {
            let Some(state) = set.rules.iter().find(|s| *s.rule.id == *total.rule_id) else {
                continue;
            };
            let start = timestamp_nanos(total.window_start);
            let window = &state.rule.window;
            if window.kind() == WindowKind::Fixed && window.bounds_nanos(now).0 != start {
                continue;
            }
            let group = &set.groups[state.group];
            let ((), _bucket) = group.table.with_entry(
                KeyProbe { hash: hash_key(&total.bucket_key), key: &total.bucket_key },
                &group.layout,
                |_, entry| {
                    let counters = entry.counters(&group.layout, state.pos);
                    counters.touched = true;
                    counters.roll(window, now);
                    if replace {
                        counters.replace_total(window, now, start, total.total_nanos);
                    } else {
                        counters.load_total(window, now, start, total.total_nanos);
                    }
                },
            );
        }
    }

    /// Every bucket of the current rules, with the span of window starts the store should read back.
    pub fn live_buckets(&self) -> Vec<LiveBucket> {
        let now = self.clock().now();
        let set = self.snapshot();
        let mut out = Vec::new();
        for group in &set.groups {
            for entry in &group.table.buckets {
                let bucket = entry.value();
                let state = bucket.lock();
                for &index in &group.members {
                    let rule = &set.rules[index];
                    if !state.find(&group.layout, rule.pos).is_some_and(|c| c.touched) {
                        continue;
                    }
                    let window = &rule.rule.window;
                    let (start, end) = window.bounds(now);
                    out.push(LiveBucket {
                        rule_id: Arc::clone(&rule.rule.id),
                        bucket_key: Arc::clone(&bucket.key),
                        window_kind: window.kind(),
                        window_start: start,
                        window_end: end,
                    });
                }
            }
        }
        out
    }

    /// Evicts buckets whose windows have expired (fixed) or whose slots have all expired (rolling), once
    /// nothing is in flight or undrained in them; retired tables go once empty. Run it periodically (e.g. after
    /// each store sync). Returns the number of bucket entries left (one per key group and key).
    pub fn sweep(&self) -> usize {
        self.sweep_at(self.clock().now())
    }

    /// [`SpendEngine::sweep`] at an explicit instant.
    pub fn sweep_at(&self, now: Timestamp) -> usize {
        let now = timestamp_nanos(now);
        let mut left = 0;
        for group in &self.snapshot().groups {
            left += group.table.sweep(now, false);
        }
        let mut retired = self.inner.retired.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        retired.retain(|table| {
            let remaining = table.sweep(now, true);
            left += remaining;
            remaining > 0
        });
        left
    }

    /// Usage of every bucket of rule `rule_id` now, or `None` if there is no such rule.
    pub fn usage(&self, rule_id: &str) -> Option<Vec<BucketUsage>> {
        let now = self.clock().now();
        let now_ns = timestamp_nanos(now);
        let set = self.snapshot();
        let state = set.rules.iter().find(|s| &*s.rule.id == rule_id)?;
        let group = &set.groups[state.group];
        let window = &state.rule.window;
        let mut out = Vec::new();
        for entry in &group.table.buckets {
            let bucket = entry.value();
            let mut locked = bucket.lock();
            if !locked.find(&group.layout, state.pos).is_some_and(|c| c.touched) {
                continue;
            }
            let counters = locked.counters(&group.layout, state.pos);
            counters.roll(window, now_ns);
            let (start, end) = match window.kind() {
                WindowKind::Fixed => {
                    let start = counters.slots.last().map_or(now_ns, |s| s.start);
                    (start, counters.current_end())
                }
                WindowKind::Rolling => window.bounds_nanos(now_ns),
            };
            out.push(BucketUsage {
                bucket: Arc::clone(&bucket.key),
                spent_nanos: counters.spent(window, now_ns),
                reserved_nanos: counters.reserved,
                budget_nanos: state.rule.budget_nanos,
                window_start: nanos_timestamp(start),
                window_end: nanos_timestamp(end),
            });
        }
        out.sort_by(|a, b| a.bucket.cmp(&b.bucket));
        Some(out)
    }
}

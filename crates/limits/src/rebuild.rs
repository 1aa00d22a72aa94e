//! Rebuilding spend buckets from the request log: per rule, the cost of the rows in its current span, summed under
//! the keys the engine counts them under (bucket key, and window start when fixed or slot start when rolling).

use std::collections::BTreeMap;

use jiff::Timestamp;

use crate::{LiveBucket, RequestDims, SpendRule, Window, WindowKind, bucket_key};

/// The span a window counts at one instant, and the window or slot start each instant in it counts under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// [`Window::bounds`]: the current window (fixed), or the span of the slots still counted (rolling).
    pub start: Timestamp,
    pub end: Timestamp,
    /// Rolling windows: the slot length in nanoseconds (the span is exactly [`crate::ROLLING_SLOTS`] of them).
    slot_nanos: Option<i128>,
}

impl Span {
    pub fn of(window: &Window, now: Timestamp) -> Self {
        let (start, end) = window.bounds(now);
        let slot_nanos = (window.kind() == WindowKind::Rolling).then(|| i128::from(window.slot_nanos()));
        Self { start, end, slot_nanos }
    }

    pub fn contains(&self, at: Timestamp) -> bool {
        self.start <= at && at < self.end
    }

    /// The window start (fixed) or the start of `at`'s slot (rolling) that spend at `at` counts under; `None`
    /// outside the span.
    pub fn start_of(&self, at: Timestamp) -> Option<Timestamp> {
        if !self.contains(at) {
            return None;
        }
        let Some(slot) = self.slot_nanos else { return Some(self.start) };
        let offset = (at.as_nanosecond() - self.start.as_nanosecond()) / slot * slot;
        Timestamp::from_nanosecond(self.start.as_nanosecond() + offset).ok()
    }
}

/// Per spend rule, the cost of the rows added, by bucket key and window or slot start, over the rule's span at
/// the instant the rebuild began.
pub struct SpendRebuild {
    rules: Vec<RuleSums>,
}

struct RuleSums {
    rule: SpendRule,
    span: Span,
    sums: BTreeMap<(String, Timestamp), u64>,
}

/// A rule's rebuilt bucket rows over its current span.
pub struct RebuiltRule {
    pub rule: SpendRule,
    /// `[start, end)`: the rule's current window or rolling span.
    pub span: (Timestamp, Timestamp),
    /// (bucket key, window or slot start, nano-dollars).
    pub rows: Vec<(String, Timestamp, u64)>,
}

impl SpendRebuild {
    pub fn new(rules: impl IntoIterator<Item = SpendRule>, now: Timestamp) -> Self {
        let rules = rules
            .into_iter()
            .map(|rule| RuleSums { span: Span::of(rule.window(), now), rule, sums: BTreeMap::new() })
            .collect();
        Self { rules }
    }

    /// Whether some rule's span holds `at`: a row outside them all need not be looked at further.
    pub fn counts(&self, at: Timestamp) -> bool {
        self.rules.iter().any(|r| r.span.contains(at))
    }

    /// Adds a row's cost to the bucket and window or slot of every rule whose span holds `at` and whose filters
    /// match `dims` (the same test as admission).
    pub fn add(&mut self, at: Timestamp, dims: &RequestDims<'_>, cost_nanos: u64) {
        for rule in &mut self.rules {
            let Some(start) = rule.span.start_of(at) else { continue };
            if !rule.rule.applies_to(dims) {
                continue;
            }
            let sum = rule.sums.entry((bucket_key(rule.rule.dimensions(), dims), start)).or_default();
            *sum = sum.saturating_add(cost_nanos);
        }
    }

    /// Gives every live engine bucket of a fixed-window rule a sum for the current window (zero when no row fell
    /// into it). Rolling buckets get none (a zero per slot would make 60 slots per bucket): a slot the database had
    /// and the rebuild does not is zeroed when the span is replaced instead.
    pub fn keep_live(&mut self, live: &[LiveBucket]) {
        for bucket in live.iter().filter(|b| b.window_kind == WindowKind::Fixed) {
            for rule in &mut self.rules {
                if rule.span.slot_nanos.is_none()
                    && *rule.rule.id() == *bucket.rule_id
                    && rule.span.start == bucket.window_start
                {
                    rule.sums.entry((bucket.bucket_key.to_string(), rule.span.start)).or_insert(0);
                }
            }
        }
    }

    /// Per rule: its span and its rows.
    pub fn finish(self) -> impl Iterator<Item = RebuiltRule> {
        self.rules.into_iter().map(|r| RebuiltRule {
            rows: r.sums.into_iter().map(|((key, start), total)| (key, start, total)).collect(),
            span: (r.span.start, r.span.end),
            rule: r.rule,
        })
    }
}

#[cfg(test)]
mod tests;

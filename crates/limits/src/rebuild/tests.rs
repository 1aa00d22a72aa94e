//! Tests for the span and slot arithmetic of a rebuild: which start a row counts under, and which rows count.

use super::*;
use crate::{Action, DimensionModeSpec, DimensionSpec, Reserve, SpendRuleSpec};

fn ts(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn rule(id: &str, window: &str, window_kind: WindowKind, split: Option<&str>) -> SpendRule {
    SpendRuleSpec {
        id: id.into(),
        budget_usd: 1.0,
        window: window.into(),
        window_kind,
        timezone: "UTC".into(),
        dimensions: split
            .map(|key| DimensionSpec { key: key.into(), mode: DimensionModeSpec::Split, values: None })
            .into_iter()
            .collect(),
        action: Action::Block,
        reserve: Reserve::WorstCase,
    }
    .validate()
    .unwrap()
}

#[test]
fn a_fixed_window_counts_its_rows_under_its_start() {
    let rule = rule("daily", "1d", WindowKind::Fixed, None);
    let span = Span::of(rule.window(), ts("2026-05-01T10:00:00Z"));
    assert_eq!((span.start, span.end), (ts("2026-05-01T00:00:00Z"), ts("2026-05-02T00:00:00Z")));
    assert_eq!(span.start_of(ts("2026-05-01T23:59:59Z")), Some(span.start));
    assert_eq!(span.start_of(ts("2026-05-02T00:00:00Z")), None);
    assert_eq!(span.start_of(ts("2026-04-30T23:59:59Z")), None);
}

#[test]
fn a_rolling_window_counts_each_row_under_its_slot() {
    // One hour in 60 slots of one minute.
    let rule = rule("hourly", "1h", WindowKind::Rolling, None);
    let span = Span::of(rule.window(), ts("2026-05-01T10:30:20Z"));
    assert_eq!((span.start, span.end), (ts("2026-05-01T09:31:00Z"), ts("2026-05-01T10:31:00Z")));
    assert_eq!(span.start_of(ts("2026-05-01T10:00:59Z")), Some(ts("2026-05-01T10:00:00Z")));
    assert_eq!(span.start_of(ts("2026-05-01T09:30:59Z")), None);
}

#[test]
fn rows_are_summed_per_bucket_and_live_fixed_buckets_get_a_zero() {
    let daily = rule("daily", "1d", WindowKind::Fixed, Some("model"));
    let mut rebuild = SpendRebuild::new([daily], ts("2026-05-01T10:00:00Z"));
    let dims = RequestDims::new("openai", "m1");
    assert!(!rebuild.counts(ts("2026-04-30T10:00:00Z")));
    rebuild.add(ts("2026-05-01T01:00:00Z"), &dims, 5);
    rebuild.add(ts("2026-05-01T02:00:00Z"), &dims, 7);
    rebuild.add(ts("2026-04-30T02:00:00Z"), &dims, 100);
    rebuild.keep_live(&[LiveBucket {
        rule_id: "daily".into(),
        bucket_key: "model=m2".into(),
        window_kind: WindowKind::Fixed,
        window_start: ts("2026-05-01T00:00:00Z"),
        window_end: ts("2026-05-02T00:00:00Z"),
    }]);
    let rebuilt: Vec<RebuiltRule> = rebuild.finish().collect();
    let start = ts("2026-05-01T00:00:00Z");
    let key = bucket_key(rebuilt[0].rule.dimensions(), &dims);
    assert_eq!(rebuilt[0].rows, vec![(key, start, 12), ("model=m2".to_owned(), start, 0)]);
}

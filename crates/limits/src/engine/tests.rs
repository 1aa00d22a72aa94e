//! Engine tests: applicability and buckets, block/monitor/none, Retry-After, settlement, swaps, persistence,
//! eviction.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};

use super::*;
use crate::clock::ManualClock;
use crate::metadata::Metadata;
use crate::spec::{DimensionModeSpec, DimensionSpec, RouteSpec, SpendRuleSpec};
use crate::window::WindowKind;

const USD: u64 = 1_000_000_000;

fn ts(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn spec(id: &str, budget_usd: f64, window: &str) -> SpendRuleSpec {
    SpendRuleSpec {
        id: id.into(),
        budget_usd,
        window: window.into(),
        window_kind: WindowKind::Fixed,
        timezone: "UTC".into(),
        dimensions: Vec::new(),
        action: Action::Block,
        reserve: Reserve::WorstCase,
    }
}

fn split(key: &str) -> DimensionSpec {
    DimensionSpec { key: key.into(), mode: DimensionModeSpec::Split, values: None }
}

fn filter(key: &str, values: &[&str]) -> DimensionSpec {
    DimensionSpec {
        key: key.into(),
        mode: DimensionModeSpec::Filter,
        values: Some(values.iter().map(|v| (*v).to_owned()).collect()),
    }
}

fn engine(specs: &[SpendRuleSpec], at: &str) -> (SpendEngine, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(ts(at)));
    let rules = specs.iter().map(|s| s.validate().unwrap()).collect();
    (SpendEngine::new(rules, clock.clone()), clock)
}

fn meta(json: &str) -> Metadata {
    Metadata::parse(json, 20).unwrap()
}

fn decisions(admission: &Admission) -> Vec<(String, String, Decision)> {
    admission.rule_decisions().map(|d| (d.rule.to_owned(), d.bucket.to_owned(), d.decision)).collect()
}

fn usage(engine: &SpendEngine, rule: &str) -> Vec<(String, u64, u64)> {
    engine.usage(rule).unwrap().into_iter().map(|u| (u.bucket.to_string(), u.spent_nanos, u.reserved_nanos)).collect()
}

#[test]
fn filters_and_splits_pick_buckets() {
    let mut rule = spec("per-user", 5.0, "1d");
    rule.dimensions = vec![split("metadata.user_id"), filter("provider", &["openai", "anthropic"])];
    let (engine, _) = engine(&[rule], "2026-05-01T12:00:00Z");
    let m = meta(r#"{"user_id":"u1"}"#);
    let a = engine.admit(&RequestDims::new("openai", "gpt-4o").with_metadata(&m), Some(USD)).unwrap();
    assert_eq!(decisions(&a), [("per-user".into(), "metadata.user_id=u1".into(), Decision::Allowed)]);
    // Filtered out: no rule applies, nothing held.
    let b = engine.admit(&RequestDims::new("groq", "llama").with_metadata(&m), Some(USD)).unwrap();
    assert_eq!(decisions(&b), []);
    // Missing split value → (none).
    let c = engine.admit(&RequestDims::new("anthropic", "claude"), Some(USD)).unwrap();
    assert_eq!(decisions(&c)[0].1, "metadata.user_id=(none)");
    a.settle(USD);
    c.settle(2 * USD);
    assert_eq!(
        usage(&engine, "per-user"),
        [("metadata.user_id=(none)".into(), 2 * USD, 0), ("metadata.user_id=u1".into(), USD, 0)]
    );
}

#[test]
fn two_split_dimensions_give_one_bucket_per_pair() {
    let mut rule = spec("pairs", 100.0, "1d");
    rule.dimensions = vec![split("provider"), split("metadata.team")];
    let (engine, _) = engine(&[rule], "2026-05-01T12:00:00Z");
    let (a, b) = (meta(r#"{"team":"a"}"#), meta(r#"{"team":"b"}"#));
    for (provider, m) in [("openai", &a), ("openai", &b), ("anthropic", &a), ("openai", &a)] {
        engine.admit(&RequestDims::new(provider, "m").with_metadata(m), Some(USD)).unwrap().settle(USD);
    }
    assert_eq!(
        usage(&engine, "pairs"),
        [
            ("provider=anthropic|metadata.team=a".into(), USD, 0),
            ("provider=openai|metadata.team=a".into(), 2 * USD, 0),
            ("provider=openai|metadata.team=b".into(), USD, 0),
        ]
    );
}

#[test]
fn no_dimensions_share_one_bucket() {
    let (engine, _) = engine(&[spec("global", 10.0, "1d")], "2026-05-01T12:00:00Z");
    engine.admit(&RequestDims::new("openai", "a"), Some(USD)).unwrap().settle(USD);
    engine.admit(&RequestDims::new("groq", "b"), Some(USD)).unwrap().settle(USD);
    assert_eq!(usage(&engine, "global"), [("*".into(), 2 * USD, 0)]);
}

#[test]
fn worst_case_reservation_blocks_before_overshoot() {
    let (engine, clock) = engine(&[spec("daily", 5.0, "1d")], "2026-05-01T12:00:00Z");
    let req = RequestDims::new("openai", "gpt");
    let a = engine.admit(&req, Some(3 * USD)).unwrap();
    assert_eq!(usage(&engine, "daily"), [("*".into(), 0, 3 * USD)]);
    // 3 reserved + 3 > 5: blocked even though nothing is settled yet.
    let blocked = engine.admit(&req, Some(3 * USD)).unwrap_err();
    assert_eq!(blocked.rule_id.as_ref(), "daily");
    assert_eq!(blocked.bucket_key.as_ref(), "*");
    assert_eq!(blocked.budget_nanos, 5 * USD);
    assert_eq!(blocked.spent_nanos, 0);
    assert_eq!(blocked.reserved_nanos, 3 * USD);
    assert_eq!(blocked.resets_at, ts("2026-05-02T00:00:00Z"));
    assert_eq!(blocked.retry_after_secs, 12 * 3_600);
    // 3 + 2 = 5 fits exactly.
    let b = engine.admit(&req, Some(2 * USD)).unwrap();
    a.settle(USD);
    b.settle(USD);
    assert_eq!(usage(&engine, "daily"), [("*".into(), 2 * USD, 0)]);
    // Retry-After is exact to the second, rounded up.
    clock.advance(SignedDuration::from_millis(11 * 3_600_000 + 59 * 60_000 + 59_500));
    let blocked = engine.admit(&req, Some(4 * USD)).unwrap_err();
    assert_eq!(blocked.retry_after_secs, 1);
    assert_eq!(engine.counters().blocked, 2);
    // The next day starts empty.
    clock.advance(SignedDuration::from_millis(500));
    engine.admit(&req, Some(5 * USD)).unwrap().settle(5 * USD);
}

#[test]
fn dropping_an_admission_refunds_everything() {
    let mut per_user = spec("per-user", 1.0, "1d");
    per_user.dimensions = vec![split("metadata.user_id")];
    let (engine, _) = engine(&[spec("global", 10.0, "1d"), per_user], "2026-05-01T12:00:00Z");
    let m = meta(r#"{"user_id":"u1"}"#);
    let req = RequestDims::new("openai", "gpt").with_metadata(&m);
    let a = engine.admit(&req, Some(USD)).unwrap();
    assert_eq!(a.reserved_nanos(), 2 * USD);
    drop(a);
    assert_eq!(usage(&engine, "global"), [("*".into(), 0, 0)]);
    assert_eq!(usage(&engine, "per-user"), [("metadata.user_id=u1".into(), 0, 0)]);
    // A refusal by the second rule releases the first rule's reservation.
    assert!(engine.admit(&req, Some(2 * USD)).is_err());
    assert_eq!(usage(&engine, "global"), [("*".into(), 0, 0)]);
}

#[test]
fn monitor_never_blocks_but_records() {
    let mut rule = spec("watch", 1.0, "1d");
    rule.action = Action::Monitor;
    let (engine, _) = engine(&[rule], "2026-05-01T12:00:00Z");
    let req = RequestDims::new("openai", "gpt");
    for _ in 0..3 {
        let a = engine.admit(&req, Some(USD)).unwrap();
        a.settle(USD);
    }
    let a = engine.admit(&req, Some(USD)).unwrap();
    assert!(a.would_block());
    assert_eq!(decisions(&a)[0].2, Decision::WouldBlock);
    a.settle(USD);
    assert_eq!(engine.counters().would_block, 3);
    assert_eq!(usage(&engine, "watch"), [("*".into(), 4 * USD, 0)]);
}

#[test]
fn reserve_none_checks_settled_spend_only() {
    let mut rule = spec("after", 2.0, "1d");
    rule.reserve = Reserve::None;
    let (engine, _) = engine(&[rule], "2026-05-01T12:00:00Z");
    let req = RequestDims::new("openai", "gpt");
    // Nothing is reserved, so concurrent requests all pass while settled spend is under budget.
    let a = engine.admit(&req, Some(5 * USD)).unwrap();
    let b = engine.admit(&req, Some(5 * USD)).unwrap();
    assert_eq!(a.reserved_nanos(), 0);
    a.settle(USD);
    b.settle(USD);
    // Settled 2 ≥ 2: blocked.
    assert!(engine.admit(&req, Some(1)).is_err());
}

#[test]
fn unknown_worst_case_behaves_as_reserve_none() {
    let (engine, _) = engine(&[spec("daily", 2.0, "1d")], "2026-05-01T12:00:00Z");
    let req = RequestDims::new("openai", "gpt");
    let a = engine.admit(&req, None).unwrap();
    assert_eq!(a.reserved_nanos(), 0);
    a.settle(3 * USD);
    let blocked = engine.admit(&req, None).unwrap_err();
    assert_eq!(blocked.spent_nanos, 3 * USD);
    assert_eq!(blocked.requested_nanos, None);
}

#[test]
fn rolling_window_expires_slot_by_slot_with_exact_retry_after() {
    let mut rule = spec("hourly", 3.0, "1h");
    rule.window_kind = WindowKind::Rolling;
    // Slots are one minute.
    let (engine, clock) = engine(&[rule], "2026-05-01T10:00:00Z");
    let req = RequestDims::new("openai", "gpt");
    engine.admit(&req, Some(USD)).unwrap().settle(USD); // slot 10:00
    clock.advance(SignedDuration::from_mins(10));
    engine.admit(&req, Some(USD)).unwrap().settle(USD); // slot 10:10
    clock.advance(SignedDuration::from_mins(10));
    engine.admit(&req, Some(USD)).unwrap().settle(USD); // slot 10:20
    clock.advance(SignedDuration::from_secs(30)); // 10:20:30
    let blocked = engine.admit(&req, Some(USD)).unwrap_err();
    // One dollar must expire: the 10:00 slot leaves the window at 11:00.
    assert_eq!(blocked.resets_at, ts("2026-05-01T11:00:00Z"));
    assert_eq!(blocked.retry_after_secs, 39 * 60 + 30);
    // Two dollars must expire: 10:10 leaves at 11:10.
    let blocked = engine.admit(&req, Some(2 * USD)).unwrap_err();
    assert_eq!(blocked.resets_at, ts("2026-05-01T11:10:00Z"));
    clock.set(ts("2026-05-01T10:59:59Z"));
    assert!(engine.admit(&req, Some(USD)).is_err());
    clock.set(ts("2026-05-01T11:00:00Z"));
    let a = engine.admit(&req, Some(USD)).unwrap();
    assert_eq!(usage(&engine, "hourly"), [("*".into(), 2 * USD, USD)]);
    drop(a);
    clock.set(ts("2026-05-01T11:10:00Z"));
    assert_eq!(usage(&engine, "hourly"), [("*".into(), USD, 0)]);
    clock.set(ts("2026-05-01T11:20:00Z"));
    assert_eq!(usage(&engine, "hourly"), [("*".into(), 0, 0)]);
}

#[test]
fn settlement_after_a_reset_counts_in_the_new_window() {
    let (engine, clock) = engine(&[spec("daily", 5.0, "1d")], "2026-05-01T23:59:00Z");
    let req = RequestDims::new("openai", "gpt");
    let long = engine.admit(&req, Some(4 * USD)).unwrap();
    clock.set(ts("2026-05-02T00:01:00Z"));
    // The in-flight reservation still counts in the new day: 4 + 2 > 5.
    assert!(engine.admit(&req, Some(2 * USD)).is_err());
    long.settle(3 * USD);
    assert_eq!(usage(&engine, "daily"), [("*".into(), 3 * USD, 0)]);
    let deltas = engine.drain_deltas();
    assert_eq!(deltas.len(), 1);
    assert_eq!(deltas[0].window_start, ts("2026-05-02T00:00:00Z"));
}

#[test]
fn swapping_rules_keeps_spend_when_the_window_is_unchanged() {
    let (engine, _) = engine(&[spec("daily", 5.0, "1d"), spec("hourly", 5.0, "1h")], "2026-05-01T12:00:00Z");
    let req = RequestDims::new("openai", "gpt");
    let in_flight = engine.admit(&req, Some(USD)).unwrap();
    engine.admit(&req, Some(USD)).unwrap().settle(2 * USD);
    // Raise the daily budget (same window: kept); change the hourly window (starts empty); add a rule.
    let mut hourly = spec("hourly", 5.0, "2h");
    hourly.window_kind = WindowKind::Fixed;
    let new_rules = vec![
        spec("daily", 6.0, "1d").validate().unwrap(),
        hourly.validate().unwrap(),
        spec("new", 1.0, "1d").validate().unwrap(),
    ];
    engine.replace_rules(new_rules);
    assert_eq!(usage(&engine, "daily"), [("*".into(), 2 * USD, USD)]);
    assert_eq!(usage(&engine, "hourly"), []);
    // The admission made before the swap settles into the tables it holds: the kept one and the retired one.
    in_flight.settle(USD);
    assert_eq!(usage(&engine, "daily"), [("*".into(), 3 * USD, 0)]);
    let mut deltas: Vec<_> =
        engine.drain_deltas().into_iter().map(|d| (d.rule_id.to_string(), d.delta_nanos)).collect();
    deltas.sort();
    assert_eq!(deltas, [("daily".into(), 3 * USD), ("hourly".into(), 3 * USD)]);
    // The retired table goes at the next sweep once drained.
    assert_eq!(engine.sweep(), 1);
    assert_eq!(engine.rules().len(), 3);
}

#[test]
fn deltas_drain_exactly_once() {
    let (engine, _) = engine(&[spec("daily", 50.0, "1d")], "2026-05-01T12:00:00Z");
    let req = RequestDims::new("openai", "gpt");
    engine.admit(&req, Some(USD)).unwrap().settle(USD);
    engine.admit(&req, Some(USD)).unwrap().settle(2 * USD);
    let first = engine.drain_deltas();
    assert_eq!(
        first,
        [BucketDelta {
            rule_id: "daily".into(),
            bucket_key: "*".into(),
            window_start: ts("2026-05-01T00:00:00Z"),
            delta_nanos: 3 * USD,
        }]
    );
    assert_eq!(engine.drain_deltas(), []);
    // Drained spend stays counted.
    assert_eq!(usage(&engine, "daily"), [("*".into(), 3 * USD, 0)]);
    engine.admit(&req, Some(USD)).unwrap().settle(USD);
    assert_eq!(engine.drain_deltas()[0].delta_nanos, USD);
}

#[test]
fn load_totals_merges_with_undrained_local_spend() {
    let mut per_user = spec("per-user", 10.0, "1d");
    per_user.dimensions = vec![split("metadata.user_id")];
    let (engine, _) = engine(&[per_user], "2026-05-01T12:00:00Z");
    let m = meta(r#"{"user_id":"u1"}"#);
    let req = RequestDims::new("openai", "gpt").with_metadata(&m);
    engine.admit(&req, Some(USD)).unwrap().settle(USD);
    let drained = engine.drain_deltas();
    assert_eq!(drained.len(), 1);
    // Settled after the drain: still pending locally.
    engine.admit(&req, Some(USD)).unwrap().settle(2 * USD);
    let total = |key: &str, window_start: &str, total_nanos| BucketTotal {
        rule_id: "per-user".into(),
        bucket_key: key.into(),
        window_start: ts(window_start),
        total_nanos,
    };
    engine.load_totals([
        // Our drained 1 plus 4 from another replica.
        total("metadata.user_id=u1", "2026-05-01T00:00:00Z", 5 * USD),
        // A user only the other replica has seen.
        total("metadata.user_id=u2", "2026-05-01T00:00:00Z", 7 * USD),
        // Yesterday and an unknown rule: ignored.
        total("metadata.user_id=u3", "2026-04-30T00:00:00Z", 7 * USD),
        BucketTotal { rule_id: "gone".into(), ..total("x", "2026-05-01T00:00:00Z", 1) },
    ]);
    assert_eq!(
        usage(&engine, "per-user"),
        [("metadata.user_id=u1".into(), 7 * USD, 0), ("metadata.user_id=u2".into(), 7 * USD, 0)]
    );
    // A stale total (read before our write landed) never lowers the local count.
    engine.load_totals([total("metadata.user_id=u1", "2026-05-01T00:00:00Z", 0)]);
    assert_eq!(usage(&engine, "per-user")[0].1, 7 * USD);
    // Only the undrained 2 goes out next.
    let next = engine.drain_deltas();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].delta_nanos, 2 * USD);
    let u2 = meta(r#"{"user_id":"u2"}"#);
    let blocked = engine.admit(&RequestDims::new("openai", "gpt").with_metadata(&u2), Some(4 * USD)).unwrap_err();
    assert_eq!(blocked.spent_nanos, 7 * USD);
}

#[test]
fn rolling_totals_load_per_slot() {
    let mut rule = spec("hourly", 3.0, "1h");
    rule.window_kind = WindowKind::Rolling;
    let (engine, clock) = engine(&[rule], "2026-05-01T10:30:00Z");
    engine.load_totals([
        BucketTotal {
            rule_id: "hourly".into(),
            bucket_key: "*".into(),
            window_start: ts("2026-05-01T09:40:00Z"),
            total_nanos: 2 * USD,
        },
        BucketTotal {
            rule_id: "hourly".into(),
            bucket_key: "*".into(),
            // Not a slot boundary: ignored.
            window_start: ts("2026-05-01T09:40:30Z"),
            total_nanos: 9 * USD,
        },
    ]);
    assert_eq!(usage(&engine, "hourly"), [("*".into(), 2 * USD, 0)]);
    let live = engine.live_buckets();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].window_start, ts("2026-05-01T09:31:00Z"));
    assert_eq!(live[0].window_end, ts("2026-05-01T10:31:00Z"));
    clock.set(ts("2026-05-01T10:40:00Z"));
    assert_eq!(usage(&engine, "hourly"), [("*".into(), 0, 0)]);
}

#[test]
fn sweep_evicts_expired_buckets_only() {
    let mut per_user = spec("per-user", 10.0, "1d");
    per_user.dimensions = vec![split("metadata.user_id")];
    let (engine, clock) = engine(&[per_user], "2026-05-01T12:00:00Z");
    let users: Vec<_> = (0..3).map(|i| meta(&format!(r#"{{"user_id":"u{i}"}}"#))).collect();
    let held = engine.admit(&RequestDims::new("p", "m").with_metadata(&users[0]), Some(USD)).unwrap();
    engine.admit(&RequestDims::new("p", "m").with_metadata(&users[1]), Some(USD)).unwrap().settle(USD);
    // Admitted and refunded: nothing to keep.
    drop(engine.admit(&RequestDims::new("p", "m").with_metadata(&users[2]), Some(USD)).unwrap());
    assert_eq!(engine.sweep(), 2);
    clock.set(ts("2026-05-02T00:00:00Z"));
    // u1's window ended but its spend is undrained: kept. u0 is in flight: kept.
    assert_eq!(engine.sweep(), 2);
    assert_eq!(engine.drain_deltas().len(), 1);
    assert_eq!(engine.sweep(), 1);
    held.settle(USD);
    // Settled into today's window: kept until drained and the day ends.
    assert_eq!(engine.sweep(), 1);
    engine.drain_deltas();
    clock.set(ts("2026-05-03T00:00:00Z"));
    assert_eq!(engine.sweep(), 0);
    // A swept bucket is recreated on demand.
    engine.admit(&RequestDims::new("p", "m").with_metadata(&users[0]), Some(USD)).unwrap().settle(USD);
    assert_eq!(usage(&engine, "per-user"), [("metadata.user_id=u0".into(), USD, 0)]);
}

#[test]
fn route_admits_the_first_candidate_with_budget() {
    let mut anthropic = spec("anthropic-cap", 1.0, "1d");
    anthropic.dimensions = vec![filter("provider", &["anthropic"])];
    let mut openai = spec("openai-cap", 1.0, "1h");
    openai.dimensions = vec![filter("provider", &["openai"])];
    let (engine, _) = engine(&[anthropic, openai], "2026-05-01T12:00:00Z");
    let route = RouteSpec {
        name: "cheap-first".into(),
        candidates: vec!["anthropic/claude-sonnet-4-5".into(), "openai/gpt-4o-mini".into()],
    }
    .validate()
    .unwrap();
    let base = RequestDims::new("dynamic", "cheap-first");
    let (index, first) = engine.admit_route(&route, &base, |_, _| Some(USD)).unwrap();
    assert_eq!(index, 0);
    let (index, second) = engine.admit_route(&route, &base, |_, _| Some(USD)).unwrap();
    assert_eq!(index, 1);
    assert_eq!(decisions(&second)[0].0, "openai-cap");
    // Both full: the refusal with the soonest Retry-After (the hourly rule) is returned.
    let blocked = engine.admit_route(&route, &base, |_, _| Some(USD)).unwrap_err();
    assert_eq!(blocked.rule_id.as_ref(), "openai-cap");
    assert_eq!(blocked.retry_after_secs, 3_600);
    first.settle(USD);
    second.settle(USD);
}

#[test]
fn rules_sharing_split_dimensions_share_the_key_but_not_the_filters() {
    // Same split dimensions (one key group), different filters; and the same dimensions in the other order.
    let mut openai = spec("openai-user", 10.0, "1d");
    openai.dimensions = vec![split("metadata.user"), filter("provider", &["openai"])];
    let mut other = spec("other-user", 10.0, "1d");
    other.dimensions = vec![split("metadata.user"), filter("provider", &["anthropic"])];
    let mut user = spec("user", 10.0, "1d");
    user.dimensions = vec![split("metadata.user")];
    let mut pair = spec("user-model", 10.0, "1d");
    pair.dimensions = vec![split("metadata.user"), split("model")];
    let mut reversed = spec("model-user", 10.0, "1d");
    reversed.dimensions = vec![split("model"), split("metadata.user")];
    let (engine, _) = engine(&[other, openai, user, pair, reversed], "2026-05-01T12:00:00Z");
    let m = meta(r#"{"user":"u1"}"#);
    let admission = engine.admit(&RequestDims::new("openai", "gpt").with_metadata(&m), Some(USD)).unwrap();
    assert_eq!(
        decisions(&admission),
        [
            ("openai-user".into(), "metadata.user=u1".into(), Decision::Allowed),
            ("user".into(), "metadata.user=u1".into(), Decision::Allowed),
            ("user-model".into(), "metadata.user=u1|model=gpt".into(), Decision::Allowed),
            ("model-user".into(), "model=gpt|metadata.user=u1".into(), Decision::Allowed),
        ]
    );
    admission.settle(USD);
    // The next request, from another user, builds its own keys (nothing is left over from the first).
    let m = meta(r#"{"user":"u2"}"#);
    let admission = engine.admit(&RequestDims::new("anthropic", "claude").with_metadata(&m), Some(USD)).unwrap();
    assert_eq!(
        decisions(&admission),
        [
            ("other-user".into(), "metadata.user=u2".into(), Decision::Allowed),
            ("user".into(), "metadata.user=u2".into(), Decision::Allowed),
            ("user-model".into(), "metadata.user=u2|model=claude".into(), Decision::Allowed),
            ("model-user".into(), "model=claude|metadata.user=u2".into(), Decision::Allowed),
        ]
    );
    drop(admission);
    assert_eq!(usage(&engine, "user"), [("metadata.user=u1".into(), USD, 0), ("metadata.user=u2".into(), 0, 0)]);
}

#[test]
fn cached_window_bounds_follow_boundaries_and_dst() {
    // Europe/Berlin springs forward on 2026-03-29: that day lasts 23 hours.
    let mut daily = spec("daily", 5.0, "1d");
    daily.timezone = "Europe/Berlin".into();
    let (engine, clock) = engine(&[daily], "2026-03-28T22:30:00Z"); // 23:30 on the 28th, Berlin time
    let req = RequestDims::new("openai", "gpt");
    engine.admit(&req, Some(USD)).unwrap().settle(4 * USD);
    let bounds = |engine: &SpendEngine| {
        let u = &engine.usage("daily").unwrap()[0];
        (u.window_start, u.window_end, u.spent_nanos)
    };
    assert_eq!(bounds(&engine), (ts("2026-03-27T23:00:00Z"), ts("2026-03-28T23:00:00Z"), 4 * USD));
    // Just before the boundary, the cached window still applies: 4 + 2 > 5.
    clock.set(ts("2026-03-28T22:59:59.999999999Z"));
    assert!(engine.admit(&req, Some(2 * USD)).is_err());
    // At the boundary the bucket moves to the new (23-hour) day.
    clock.set(ts("2026-03-28T23:00:00Z"));
    engine.admit(&req, Some(2 * USD)).unwrap().settle(2 * USD);
    assert_eq!(bounds(&engine), (ts("2026-03-28T23:00:00Z"), ts("2026-03-29T22:00:00Z"), 2 * USD));
    // One nanosecond before that day's end (23 hours later, not 24) it still counts; at its end it resets.
    clock.set(ts("2026-03-29T21:59:59.999999999Z"));
    assert!(engine.admit(&req, Some(4 * USD)).is_err());
    clock.set(ts("2026-03-29T22:00:00Z"));
    engine.admit(&req, Some(4 * USD)).unwrap().settle(USD);
    assert_eq!(bounds(&engine), (ts("2026-03-29T22:00:00Z"), ts("2026-03-30T22:00:00Z"), USD));
}

#[test]
fn a_swap_that_reorders_a_group_keeps_each_rules_counters_and_old_admissions_settle_into_them() {
    let with_user = |id: &str, budget: f64| {
        let mut s = spec(id, budget, "1d");
        s.dimensions = vec![split("metadata.user")];
        s
    };
    let (engine, _) = engine(&[with_user("a", 10.0), with_user("b", 10.0)], "2026-05-01T12:00:00Z");
    let m = meta(r#"{"user":"u1"}"#);
    let req = RequestDims::new("openai", "gpt").with_metadata(&m);
    engine.admit(&req, Some(USD)).unwrap().settle(USD);
    let in_flight = engine.admit(&req, Some(2 * USD)).unwrap();
    // A new rule first in the same key group: every kept rule moves to a new position in the entry.
    engine.replace_rules(
        [with_user("c", 10.0), with_user("b", 10.0), with_user("a", 10.0)]
            .iter()
            .map(|s| s.validate().unwrap())
            .collect(),
    );
    assert_eq!(usage(&engine, "a"), [("metadata.user=u1".into(), USD, 2 * USD)]);
    assert_eq!(usage(&engine, "b"), [("metadata.user=u1".into(), USD, 2 * USD)]);
    assert_eq!(usage(&engine, "c"), []);
    // Admitted under the old layout, settled after the entry moved to the new one: found by rule, not position.
    in_flight.settle(3 * USD);
    assert_eq!(usage(&engine, "a"), [("metadata.user=u1".into(), 4 * USD, 0)]);
    assert_eq!(usage(&engine, "b"), [("metadata.user=u1".into(), 4 * USD, 0)]);
    assert_eq!(usage(&engine, "c"), []);
    let admission = engine.admit(&req, Some(USD)).unwrap();
    assert_eq!(decisions(&admission).into_iter().map(|(rule, _, _)| rule).collect::<Vec<_>>(), ["c", "b", "a"]);
    admission.settle(USD);
    let mut deltas: Vec<_> =
        engine.drain_deltas().into_iter().map(|d| (d.rule_id.to_string(), d.delta_nanos)).collect();
    deltas.sort();
    assert_eq!(deltas, [("a".into(), 5 * USD), ("b".into(), 5 * USD), ("c".into(), USD)]);
}

#[test]
fn a_removed_rule_keeps_its_in_flight_reservation_until_settled_then_drains_and_goes() {
    let mut by_user = spec("by-user", 10.0, "1d");
    by_user.dimensions = vec![split("metadata.user")];
    let mut also_by_user = spec("also-by-user", 10.0, "1d");
    also_by_user.dimensions = vec![split("metadata.user")];
    let mut by_team = spec("by-team", 10.0, "1d");
    by_team.dimensions = vec![split("metadata.team")];
    let (engine, _) = engine(&[by_user.clone(), also_by_user, by_team], "2026-05-01T12:00:00Z");
    let m = meta(r#"{"user":"u1","team":"t1"}"#);
    let req = RequestDims::new("openai", "gpt").with_metadata(&m);
    let in_flight = engine.admit(&req, Some(2 * USD)).unwrap();
    // "also-by-user" leaves the group that stays; "by-team" leaves with its whole group (its table is retired).
    engine.replace_rules(vec![by_user.validate().unwrap()]);
    // The next admission moves the entry to the new layout; the departed rule's reservation stays (orphaned).
    engine.admit(&req, Some(USD)).unwrap().settle(USD);
    assert_eq!(usage(&engine, "by-user"), [("metadata.user=u1".into(), USD, 2 * USD)]);
    in_flight.settle(2 * USD);
    assert_eq!(usage(&engine, "by-user"), [("metadata.user=u1".into(), 3 * USD, 0)]);
    let mut deltas: Vec<_> = engine
        .drain_deltas()
        .into_iter()
        .map(|d| (d.rule_id.to_string(), d.bucket_key.to_string(), d.delta_nanos))
        .collect();
    deltas.sort();
    assert_eq!(
        deltas,
        [
            ("also-by-user".into(), "metadata.user=u1".into(), 2 * USD),
            ("by-team".into(), "metadata.team=t1".into(), 2 * USD),
            ("by-user".into(), "metadata.user=u1".into(), 3 * USD),
        ]
    );
    // Drained and settled: the orphan and the retired table go; the live entry stays (it has spend).
    assert_eq!(engine.sweep(), 1);
    assert_eq!(engine.drain_deltas(), []);
}

#[test]
fn the_refusal_reported_is_the_first_rule_in_order_whatever_its_key_group() {
    let mut user_wide = spec("user-wide", 100.0, "1d");
    user_wide.dimensions = vec![split("metadata.user")];
    let mut team_tight = spec("team-tight", 1.0, "1d");
    team_tight.dimensions = vec![split("metadata.team")];
    let mut user_tight = spec("user-tight", 1.0, "1d");
    user_tight.dimensions = vec![split("metadata.user")];
    let mut watch = spec("watch", 0.5, "1d");
    watch.action = Action::Monitor;
    watch.dimensions = vec![split("metadata.user")];
    let (engine, _) = engine(&[user_wide, watch, team_tight, user_tight], "2026-05-01T12:00:00Z");
    let m = meta(r#"{"user":"u1","team":"t1"}"#);
    let req = RequestDims::new("openai", "gpt").with_metadata(&m);
    // Both tight rules refuse; the user group (rules 0, 1, 3) is checked before the team group (rule 2), but
    // rule 2 comes first in rule order.
    let blocked = engine.admit(&req, Some(2 * USD)).unwrap_err();
    assert_eq!(&*blocked.rule_id, "team-tight");
    assert_eq!(&*blocked.bucket_key, "metadata.team=t1");
    // Only the monitor decision before the refusing rule counts, as in a rule-by-rule check.
    assert_eq!(engine.counters(), EngineCounters { blocked: 1, would_block: 1 });
    // Nothing stays reserved anywhere.
    for rule in ["user-wide", "watch", "team-tight", "user-tight"] {
        assert!(usage(&engine, rule).iter().all(|(_, spent, reserved)| *spent == 0 && *reserved == 0), "{rule}");
    }
    // Within budget of every block rule: admitted, with the decisions in rule order.
    let admission = engine.admit(&req, Some(USD / 2 + 1)).unwrap();
    assert_eq!(
        decisions(&admission),
        [
            ("user-wide".into(), "metadata.user=u1".into(), Decision::Allowed),
            ("watch".into(), "metadata.user=u1".into(), Decision::WouldBlock),
            ("team-tight".into(), "metadata.team=t1".into(), Decision::Allowed),
            ("user-tight".into(), "metadata.user=u1".into(), Decision::Allowed),
        ]
    );
}

#[test]
fn s17_a_model_filter_applies_to_dated_and_upper_case_aliases() {
    let mut mini = spec("mini", 1.0, "1d");
    mini.dimensions = vec![filter("model", &["GPT-4o-Mini"])];
    let mut per_model = spec("per-model", 100.0, "1d");
    per_model.dimensions = vec![split("model")];
    let (engine, _) = engine(&[mini, per_model], "2026-05-01T12:00:00Z");
    // The proxy hands the engine the canonical name of what the client sent.
    for alias in ["gpt-4o-mini", "GPT-4o-mini", "gpt-4o-mini-2024-07-18", "openai/gpt-4o-mini"] {
        let model = crate::canonical_model(alias);
        let admission = engine.admit(&RequestDims::new("openai", &model), Some(USD / 4)).unwrap();
        assert_eq!(
            decisions(&admission),
            vec![
                ("mini".into(), "*".into(), Decision::Allowed),
                ("per-model".into(), "model=gpt-4o-mini".into(), Decision::Allowed)
            ],
            "{alias}"
        );
        admission.settle(USD / 4);
    }
    // Every alias counted against the filter's budget and in one split bucket; the budget is now spent.
    assert_eq!(usage(&engine, "mini"), vec![("*".to_owned(), USD, 0)]);
    assert_eq!(usage(&engine, "per-model"), vec![("model=gpt-4o-mini".to_owned(), USD, 0)]);
    let model = crate::canonical_model("GPT-4O-MINI-2024-07-18");
    assert_eq!(&*engine.admit(&RequestDims::new("openai", &model), Some(1)).unwrap_err().rule_id, "mini");
    // Another model is not filtered in.
    let other = crate::canonical_model("gpt-4o");
    let admission = engine.admit(&RequestDims::new("openai", &other), Some(USD)).unwrap();
    assert_eq!(decisions(&admission), vec![("per-model".into(), "model=gpt-4o".into(), Decision::Allowed)]);
}

#[test]
fn s17_route_candidates_are_matched_by_canonical_name() {
    let mut rule = spec("mini", 1.0, "1d");
    rule.dimensions = vec![filter("model", &["gpt-4o-mini"])];
    let (engine, _) = engine(&[rule], "2026-05-01T12:00:00Z");
    let route = RouteSpec { name: "cheap".into(), candidates: vec!["openai/GPT-4o-mini-2024-07-18".into()] }
        .validate()
        .unwrap();
    let (index, admission) =
        engine.admit_route(&route, &RequestDims::new("dynamic", "cheap"), |_, _| Some(USD)).unwrap();
    assert_eq!(index, 0);
    assert_eq!(admission.rule_decisions().count(), 1, "the filter applies to the dated candidate");
}

#[test]
fn s23_absurd_costs_saturate_at_the_storable_maximum() {
    // A monitor rule keeps admitting past its budget, so spend keeps being added to a saturated counter.
    let mut all = spec("all", 1e9, "1d");
    all.action = Action::Monitor;
    let (engine, _) = engine(&[all], "2026-05-01T12:00:00Z");
    let request = RequestDims::new("openai", "gpt-4o");
    for cost in [u64::MAX, u64::MAX, crate::MAX_NANOS, 1] {
        engine.admit(&request, None).unwrap().settle(cost);
    }
    let deltas = engine.drain_deltas();
    assert_eq!(deltas.len(), 1);
    assert_eq!(deltas[0].delta_nanos, crate::MAX_NANOS, "clamped to what the store's i64 holds");
    assert_eq!(crate::nanos_to_i64(deltas[0].delta_nanos), i64::MAX);
    // More spend after the drain stays at the maximum too.
    engine.admit(&request, None).unwrap().settle(u64::MAX);
    assert_eq!(engine.drain_deltas()[0].delta_nanos, crate::MAX_NANOS);
    assert_eq!(usage(&engine, "all"), vec![("*".to_owned(), crate::MAX_NANOS, 0)]);
    // A database total beyond the maximum is clamped as well.
    engine.load_totals([BucketTotal {
        rule_id: "all".into(),
        bucket_key: "*".into(),
        window_start: ts("2026-05-01T00:00:00Z"),
        total_nanos: u64::MAX,
    }]);
    assert_eq!(usage(&engine, "all"), vec![("*".to_owned(), crate::MAX_NANOS, 0)]);
    // A worst case beyond every budget would block, and reserves nothing (never a wrapped, small reservation).
    let admission = engine.admit(&request, Some(u64::MAX)).unwrap();
    assert!(admission.would_block());
    assert_eq!(admission.reserved_nanos(), 0);
    let (blocking, _) = self::engine(&[spec("block", 1e9, "1d")], "2026-05-01T12:00:00Z");
    let blocked = blocking.admit(&request, Some(u64::MAX)).unwrap_err();
    assert_eq!(blocked.requested_nanos, Some(crate::MAX_NANOS));
}

#[test]
fn s23_a_clock_at_the_edge_of_time_does_not_overflow_window_arithmetic() {
    let mut rolling = spec("rolling", 1.0, "1h");
    rolling.window_kind = WindowKind::Rolling;
    for at in [Timestamp::MAX, Timestamp::MIN] {
        let clock = Arc::new(ManualClock::new(at));
        let rules = vec![rolling.validate().unwrap(), spec("fixed", 1.0, "15m").validate().unwrap()];
        let engine = SpendEngine::new(rules, clock.clone());
        let request = RequestDims::new("openai", "gpt-4o");
        engine.admit(&request, Some(USD / 2)).unwrap().settle(USD / 2);
        let blocked = engine.admit(&request, Some(USD)).unwrap_err();
        assert!(blocked.retry_after_secs >= 1);
        let _ = engine.drain_deltas();
        let _ = engine.live_buckets();
        let _ = engine.sweep();
    }
}

mod saturation {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Settlement and reservation with amounts near `u64::MAX` / `i64::MAX` never wrap: the counted spend is
        /// the saturated sum (so it never decreases), every drained delta fits the store's `i64`, reservations
        /// never exceed the budget, and refunds bring them back to zero.
        #[test]
        fn s23_spend_and_reservations_never_wrap(
            costs in proptest::collection::vec(
                prop_oneof![
                    any::<u64>(),
                    (0u64..1024).prop_map(|d| u64::MAX - d),
                    (0u64..1024).prop_map(|d| crate::MAX_NANOS - d),
                    0u64..10 * USD,
                ],
                1..24,
            ),
            worst in prop_oneof![Just(None), any::<u64>().prop_map(Some), (0u64..2 * USD).prop_map(Some)],
            drain_every in 1usize..6,
        ) {
            let mut rolling = spec("rolling", 1e9, "1h");
            rolling.window_kind = WindowKind::Rolling;
            let (engine, clock) = engine(&[spec("fixed", 1e9, "1d"), rolling], "2026-05-01T12:00:00Z");
            let request = RequestDims::new("openai", "gpt-4o");
            let mut expected: u64 = 0;
            let mut last_spent = 0;
            for (i, cost) in costs.iter().enumerate() {
                if let Ok(admission) = engine.admit(&request, worst) {
                    prop_assert!(admission.reserved_nanos() <= 2 * 1_000_000_000 * USD);
                    admission.settle(*cost);
                    expected = expected.saturating_add(*cost).min(crate::MAX_NANOS);
                }
                clock.advance(SignedDuration::from_secs(1));
                if i % drain_every == 0 {
                    for delta in engine.drain_deltas() {
                        prop_assert!(delta.delta_nanos <= crate::MAX_NANOS);
                        prop_assert!(i64::try_from(delta.delta_nanos).is_ok());
                    }
                }
                for rule in ["fixed", "rolling"] {
                    let buckets = engine.usage(rule).unwrap();
                    let spent = buckets.first().map_or(0, |b| b.spent_nanos);
                    prop_assert_eq!(spent, expected, "{}", rule);
                    prop_assert!(spent >= last_spent);
                    prop_assert!(buckets.iter().all(|b| b.reserved_nanos == 0));
                }
                last_spent = expected;
            }
        }
    }
}

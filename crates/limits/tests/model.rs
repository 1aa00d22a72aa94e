//! Proptest: random interleavings of admissions, settlements, refunds, drains and clock moves against a simple

#![expect(clippy::unwrap_used, reason = "setup helpers outside #[test]: a failure should abort loudly")]
//! sequential model. No lost update (engine == model per bucket) and, with actual ≤ worst case, never over budget.

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;
use tollgate_limits::{Admission, ManualClock, Metadata, RequestDims, SpendEngine, SpendRuleSpec};

const DAILY_BUDGET: u64 = 1_000;
const HOURLY_BUDGET: u64 = 600;
const AFTER_BUDGET: u64 = 800;
const SLOT_SECS: i64 = 60; // 1h rolling / 60

#[derive(Debug, Clone)]
enum Op {
    Admit { user: usize, worst: u64 },
    Settle { pick: usize, percent: u64 },
    Drop { pick: usize },
    Advance { secs: i64 },
    Drain,
    Sweep,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..2usize, 1..300u64).prop_map(|(user, worst)| Op::Admit { user, worst }),
        3 => (any::<usize>(), 0..=100u64).prop_map(|(pick, percent)| Op::Settle { pick, percent }),
        1 => any::<usize>().prop_map(|pick| Op::Drop { pick }),
        2 => prop_oneof![0..120i64, 0..4_000i64, 0..90_000i64].prop_map(|secs| Op::Advance { secs }),
        1 => Just(Op::Drain),
        1 => Just(Op::Sweep),
    ]
}

fn rules() -> Vec<tollgate_limits::SpendRule> {
    let specs = serde_json::json!([
        { "id": "daily", "budget_usd": DAILY_BUDGET as f64 / 1e9, "window": "1d",
          "dimensions": [{ "key": "metadata.user", "mode": "split" }] },
        { "id": "hourly", "budget_usd": HOURLY_BUDGET as f64 / 1e9, "window": "1h", "window_kind": "rolling" },
        { "id": "after", "budget_usd": AFTER_BUDGET as f64 / 1e9, "window": "1d", "reserve": "none" },
    ]);
    serde_json::from_value::<Vec<SpendRuleSpec>>(specs).unwrap().iter().map(|s| s.validate().unwrap()).collect()
}

/// The sequential model: settled spend as (instant in seconds, amount) per bucket, reservations per bucket.
#[derive(Default)]
struct Model {
    settled: BTreeMap<String, Vec<(i64, u64)>>,
    reserved: BTreeMap<String, u64>,
    undrained: BTreeMap<String, u64>,
}

impl Model {
    fn spent(&self, bucket: &str, now: i64) -> u64 {
        let events = self.settled.get(bucket).map_or(&[][..], Vec::as_slice);
        if bucket.starts_with("hourly") {
            let current = now.div_euclid(SLOT_SECS);
            events.iter().filter(|(t, _)| t.div_euclid(SLOT_SECS) > current - 60).map(|(_, a)| a).sum()
        } else {
            events.iter().filter(|(t, _)| t.div_euclid(86_400) == now.div_euclid(86_400)).map(|(_, a)| a).sum()
        }
    }
}

struct Open {
    admission: Admission,
    buckets: Vec<String>,
    worst: u64,
}

fn buckets_of(user: usize) -> Vec<(String, u64, bool)> {
    vec![
        (format!("daily/metadata.user=u{user}"), DAILY_BUDGET, true),
        ("hourly/*".to_owned(), HOURLY_BUDGET, true),
        ("after/*".to_owned(), AFTER_BUDGET, false),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn engine_matches_sequential_model(ops in proptest::collection::vec(op(), 1..120)) {
        let start: Timestamp = "2026-05-01T22:30:00Z".parse().unwrap();
        let clock = Arc::new(ManualClock::new(start));
        let engine = SpendEngine::new(rules(), clock.clone());
        let users: Vec<Metadata> = (0..2).map(|u| Metadata::parse(&format!(r#"{{"user":"u{u}"}}"#), 20).unwrap()).collect();
        let mut model = Model::default();
        let mut open: Vec<Open> = Vec::new();
        let mut now = start.as_second();

        for op in ops {
            match op {
                Op::Admit { user, worst } => {
                    let buckets = buckets_of(user);
                    let fits = buckets.iter().all(|(b, budget, reserving)| {
                        let committed = model.spent(b, now) + model.reserved.get(b).copied().unwrap_or(0);
                        if *reserving { committed + worst <= *budget } else { committed < *budget }
                    });
                    let request = RequestDims::new("openai", "gpt").with_metadata(&users[user]);
                    let result = engine.admit(&request, Some(worst));
                    prop_assert_eq!(result.is_ok(), fits, "admission decision differs from the model");
                    if let Ok(admission) = result {
                        for (b, _, reserving) in &buckets {
                            if *reserving {
                                *model.reserved.entry(b.clone()).or_default() += worst;
                            }
                        }
                        open.push(Open { admission, buckets: buckets.into_iter().map(|b| b.0).collect(), worst });
                    }
                }
                Op::Settle { pick, percent } if !open.is_empty() => {
                    let o = open.remove(pick % open.len());
                    let actual = o.worst * percent / 100;
                    o.admission.settle(actual);
                    for b in &o.buckets {
                        if !b.starts_with("after") {
                            *model.reserved.entry(b.clone()).or_default() -= o.worst;
                        }
                        if actual > 0 {
                            model.settled.entry(b.clone()).or_default().push((now, actual));
                            *model.undrained.entry(b.clone()).or_default() += actual;
                        }
                    }
                }
                Op::Drop { pick } if !open.is_empty() => {
                    let o = open.remove(pick % open.len());
                    drop(o.admission);
                    for b in &o.buckets {
                        if !b.starts_with("after") {
                            *model.reserved.entry(b.clone()).or_default() -= o.worst;
                        }
                    }
                }
                Op::Settle { .. } | Op::Drop { .. } => {}
                Op::Advance { secs } => {
                    clock.advance(SignedDuration::from_secs(secs));
                    now += secs;
                }
                Op::Drain => {
                    let mut drained: BTreeMap<String, u64> = BTreeMap::new();
                    for d in engine.drain_deltas() {
                        *drained.entry(format!("{}/{}", d.rule_id, d.bucket_key)).or_default() += d.delta_nanos;
                    }
                    let expected: BTreeMap<String, u64> =
                        std::mem::take(&mut model.undrained).into_iter().filter(|(_, v)| *v > 0).collect();
                    prop_assert_eq!(drained, expected, "drained deltas differ from settled spend");
                }
                Op::Sweep => {
                    engine.sweep();
                }
            }
            // No lost update, no leak: every bucket the engine shows equals the model.
            for rule in ["daily", "hourly", "after"] {
                for usage in engine.usage(rule).unwrap() {
                    let b = format!("{rule}/{}", usage.bucket);
                    prop_assert_eq!(usage.spent_nanos, model.spent(&b, now), "spent of {}", b);
                    prop_assert_eq!(usage.reserved_nanos, model.reserved.get(&b).copied().unwrap_or(0), "reserved of {}", b);
                    if rule != "after" {
                        prop_assert!(usage.spent_nanos + usage.reserved_nanos <= usage.budget_nanos, "over budget: {}", b);
                    }
                }
            }
        }
    }
}

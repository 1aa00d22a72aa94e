//! Threads hammering one bucket: exactly ⌊B/c⌋ admissions succeed, no reservation leaks, no lost update.

#![expect(clippy::unwrap_used, reason = "setup helpers outside #[test]: a failure should abort loudly")]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tollgate_limits::{ManualClock, RequestDims, SpendEngine, SpendRuleSpec};

const THREADS: usize = 8;

fn engine(budget_usd: f64) -> SpendEngine {
    let spec: SpendRuleSpec = serde_json::from_value(serde_json::json!({
        "id": "shared", "budget_usd": budget_usd, "window": "1d"
    }))
    .unwrap();
    let clock = Arc::new(ManualClock::new("2026-05-01T12:00:00Z".parse().unwrap()));
    SpendEngine::new(vec![spec.validate().unwrap()], clock)
}

#[test]
fn exactly_floor_budget_over_cost_admissions_succeed() {
    let cost = 7_000_000; // $0.007
    let budget_nanos = 20_003_500_000u64; // $20.0035 → ⌊B/c⌋ = 2857
    let engine = engine(20.0035);
    let admitted = Arc::new(AtomicU64::new(0));
    std::thread::scope(|scope| {
        for _ in 0..THREADS {
            let (engine, admitted) = (engine.clone(), Arc::clone(&admitted));
            scope.spawn(move || {
                let request = RequestDims::new("openai", "gpt-4o");
                // Once refused, every reservation that caused it settles at full cost: the bucket is full for good.
                while let Ok(admission) = engine.admit(&request, Some(cost)) {
                    admitted.fetch_add(1, Ordering::Relaxed);
                    admission.settle(cost);
                }
            });
        }
    });
    let admitted = admitted.load(Ordering::Relaxed);
    assert_eq!(admitted, budget_nanos / cost);
    assert!(admitted * cost <= budget_nanos);
    let usage = engine.usage("shared").unwrap();
    assert_eq!(usage[0].spent_nanos, admitted * cost);
    assert_eq!(usage[0].reserved_nanos, 0);
    let drained: u64 = engine.drain_deltas().iter().map(|d| d.delta_nanos).sum();
    assert_eq!(drained, admitted * cost);
}

#[test]
fn refunds_and_settlements_interleaved_never_leak() {
    let engine = engine(1_000.0);
    let settled = Arc::new(AtomicU64::new(0));
    std::thread::scope(|scope| {
        for t in 0..THREADS as u64 {
            let (engine, settled) = (engine.clone(), Arc::clone(&settled));
            scope.spawn(move || {
                let request = RequestDims::new("openai", "gpt-4o");
                for i in 0..2_000u64 {
                    let worst = 1_000 + (i * 7 + t) % 5_000;
                    let Ok(admission) = engine.admit(&request, Some(worst)) else { continue };
                    if (i + t) % 3 == 0 {
                        drop(admission);
                    } else {
                        let actual = worst / 2;
                        admission.settle(actual);
                        settled.fetch_add(actual, Ordering::Relaxed);
                    }
                    if i % 500 == 0 {
                        engine.sweep();
                    }
                }
            });
        }
    });
    let usage = engine.usage("shared").unwrap();
    assert_eq!(usage[0].reserved_nanos, 0);
    assert_eq!(usage[0].spent_nanos, settled.load(Ordering::Relaxed));
}

#[test]
fn concurrent_drains_see_every_delta_exactly_once() {
    let engine = engine(1_000_000.0);
    let drained = Arc::new(AtomicU64::new(0));
    std::thread::scope(|scope| {
        for _ in 0..THREADS - 1 {
            let engine = engine.clone();
            scope.spawn(move || {
                let request = RequestDims::new("openai", "gpt-4o");
                for _ in 0..5_000 {
                    engine.admit(&request, Some(10)).unwrap().settle(3);
                }
            });
        }
        let (engine, drained) = (engine.clone(), Arc::clone(&drained));
        scope.spawn(move || {
            for _ in 0..200 {
                let sum: u64 = engine.drain_deltas().iter().map(|d| d.delta_nanos).sum();
                drained.fetch_add(sum, Ordering::Relaxed);
            }
        });
    });
    let rest: u64 = engine.drain_deltas().iter().map(|d| d.delta_nanos).sum();
    assert_eq!(drained.load(Ordering::Relaxed) + rest, (THREADS as u64 - 1) * 5_000 * 3);
}

#[test]
fn rule_swaps_during_admissions_lose_and_double_nothing() {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    let rule = |id: &str, window: &str| {
        let spec: SpendRuleSpec = serde_json::from_value(serde_json::json!({
            "id": id, "budget_usd": 1e6, "window": window,
            "dimensions": [{ "key": "metadata.user", "mode": "split" }]
        }))
        .unwrap();
        spec.validate().unwrap()
    };
    let clock = Arc::new(ManualClock::new("2026-05-01T12:00:00Z".parse().unwrap()));
    let engine = SpendEngine::new(vec![rule("kept", "1d")], clock);
    // Per rule: what settled admissions counted in it (each admission says which rules it held), and what drains
    // reported.
    let settled: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
    let drained: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
    let add = |map: &Mutex<BTreeMap<String, u64>>, rule: &str, amount: u64| {
        *map.lock().unwrap().entry(rule.to_owned()).or_default() += amount;
    };
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    std::thread::scope(|scope| {
        let mut workers = Vec::new();
        for t in 0..THREADS - 2 {
            let (engine, settled) = (engine.clone(), Arc::clone(&settled));
            workers.push(scope.spawn(move || {
                for i in 0..4_000u64 {
                    // Half the requests share one user (one entry, contended), half spread over a few.
                    let user = if i % 2 == 0 { "shared".to_owned() } else { format!("u{}", (i as usize + t) % 5) };
                    let metadata = tollgate_limits::Metadata::parse(&format!(r#"{{"user":"{user}"}}"#), 20).unwrap();
                    let request = RequestDims::new("openai", "gpt-4o").with_metadata(&metadata);
                    let admission = engine.admit(&request, Some(10)).unwrap();
                    if i % 5 == 0 {
                        drop(admission);
                    } else {
                        let rules: Vec<String> = admission.rule_decisions().map(|d| d.rule.to_owned()).collect();
                        admission.settle(3);
                        for rule in rules {
                            add(&settled, &rule, 3);
                        }
                    }
                }
            }));
        }
        // Swaps: "kept" moves between positions in its key group as other rules come and go (and one changes
        // window), so entries are re-laid out under admissions made with every older layout, and departed rules
        // leave orphaned reservations behind.
        let swapper_engine = engine.clone();
        let swapper_done = Arc::clone(&done);
        scope.spawn(move || {
            let sets = [
                vec![rule("kept", "1d")],
                vec![rule("other", "1d"), rule("kept", "1d")],
                vec![rule("other", "2d"), rule("third", "1h"), rule("kept", "1d")],
                vec![rule("kept", "1d"), rule("third", "1h")],
            ];
            let mut n = 0;
            while !swapper_done.load(Ordering::Relaxed) {
                swapper_engine.replace_rules(sets[n % sets.len()].clone());
                n += 1;
                std::thread::yield_now();
            }
        });
        let (drain_engine, drain_totals, drain_done) = (engine.clone(), Arc::clone(&drained), Arc::clone(&done));
        scope.spawn(move || {
            while !drain_done.load(Ordering::Relaxed) {
                for delta in drain_engine.drain_deltas() {
                    add(&drain_totals, &delta.rule_id, delta.delta_nanos);
                }
                drain_engine.sweep();
            }
        });
        for worker in workers {
            worker.join().unwrap();
        }
        done.store(true, Ordering::Relaxed);
    });
    for delta in engine.drain_deltas() {
        add(&drained, &delta.rule_id, delta.delta_nanos);
    }
    let settled = settled.lock().unwrap().clone();
    assert_eq!(*drained.lock().unwrap(), settled);
    assert!(settled.len() >= 2, "the swaps happened during admissions: {settled:?}");
    let usage = engine.usage("kept").unwrap();
    assert_eq!(usage.iter().map(|u| u.spent_nanos).sum::<u64>(), settled["kept"]);
    for rule in engine.rules() {
        assert!(engine.usage(rule.id()).unwrap().iter().all(|u| u.reserved_nanos == 0), "{}", rule.id());
    }
    assert_eq!(engine.drain_deltas(), []);
}

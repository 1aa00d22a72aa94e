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

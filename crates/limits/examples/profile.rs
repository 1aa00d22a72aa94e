//! A loop of admit + settle with 20 applicable rules (the bench's setup), for profilers:
//! `valgrind --tool=callgrind target/release/examples/profile 20000`. A second argument runs that many threads at
//! once, each on its own user and team (distinct buckets), to see how throughput scales with cores.

#![expect(clippy::unwrap_used, reason = "setup helpers outside #[test]: a failure should abort loudly")]

#[path = "../benches/fixture.rs"]
mod fixture;

use tollgate_limits::{Metadata, RequestDims};

fn main() {
    let iterations: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let threads: usize = std::env::args().nth(2).and_then(|a| a.parse().ok()).unwrap_or(1);
    let engine = fixture::engine();
    let barrier = std::sync::Barrier::new(threads);
    let start = std::time::Instant::now();
    std::thread::scope(|scope| {
        for thread in 0..threads {
            let (engine, barrier) = (engine.clone(), &barrier);
            scope.spawn(move || {
                let m =
                    Metadata::parse(&format!(r#"{{"user_id":"user-{thread}","team":"team-{thread}"}}"#), 20).unwrap();
                let request = RequestDims::new("openai", "gpt-4o-mini").with_metadata(&m);
                barrier.wait();
                for _ in 0..iterations {
                    let admission = engine.admit(std::hint::black_box(&request), Some(20_000_000)).unwrap();
                    admission.settle(12_000_000);
                }
            });
        }
    });
    let elapsed = start.elapsed();
    let total = iterations * threads as u64;
    eprintln!(
        "{threads} thread(s) × {iterations} admit+settle: {:.0} ns wall per op per thread, {:.2} M ops/s in all",
        elapsed.as_nanos() as f64 / iterations as f64,
        total as f64 / elapsed.as_secs_f64() / 1e6
    );
}

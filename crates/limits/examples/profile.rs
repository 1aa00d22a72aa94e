//! A loop of admit + settle with 20 applicable rules (the bench's setup), for profilers:
//! `valgrind --tool=callgrind target/release/examples/profile 20000`.

#![expect(clippy::unwrap_used, reason = "setup helpers outside #[test]: a failure should abort loudly")]

#[path = "../benches/fixture.rs"]
mod fixture;

use tollgate_limits::{Metadata, RequestDims};

fn main() {
    let iterations: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let engine = fixture::engine();
    let m = Metadata::parse(r#"{"user_id":"user-0","team":"team-0"}"#, 20).unwrap();
    let request = RequestDims::new("openai", "gpt-4o-mini").with_metadata(&m);
    let start = std::time::Instant::now();
    for _ in 0..iterations {
        let admission = engine.admit(std::hint::black_box(&request), Some(20_000_000)).unwrap();
        admission.settle(12_000_000);
    }
    let per = start.elapsed().as_nanos() as f64 / iterations as f64;
    eprintln!("{iterations} admit+settle: {per:.0} ns each");
}

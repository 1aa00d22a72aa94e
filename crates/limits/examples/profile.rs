//! A loop of admit + settle with 20 applicable rules (the bench's setup), for profilers:
//! `valgrind --tool=callgrind target/release/examples/profile 20000`.

#![expect(clippy::unwrap_used, reason = "setup helpers outside #[test]: a failure should abort loudly")]

use std::sync::Arc;

use tollgate_limits::{Metadata, RequestDims, SpendEngine, SpendRuleSpec, SystemClock};

fn main() {
    let iterations: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let mut specs = Vec::new();
    for i in 0..20 {
        let dimensions = match i % 4 {
            0 | 1 => serde_json::json!([{ "key": "metadata.user_id", "mode": "split" }]),
            2 => serde_json::json!([
                { "key": "metadata.team", "mode": "split" },
                { "key": "provider", "mode": "filter", "values": ["openai", "anthropic"] }
            ]),
            _ => serde_json::json!([
                { "key": "model", "mode": "split" },
                { "key": "metadata.user_id", "mode": "split" }
            ]),
        };
        let window = ["1d", "1h", "1mo", "15m"][i % 4];
        let kind = if i % 4 == 1 && i < 12 { "rolling" } else { "fixed" };
        let spec: SpendRuleSpec = serde_json::from_value(serde_json::json!({
            "id": format!("rule-{i}"), "budget_usd": 1e9, "window": window, "window_kind": kind,
            "timezone": "Europe/Berlin", "dimensions": dimensions
        }))
        .unwrap();
        specs.push(spec.validate().unwrap());
    }
    let engine = SpendEngine::new(specs, Arc::new(SystemClock));
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

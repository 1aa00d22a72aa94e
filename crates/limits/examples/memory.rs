//! Memory of 1,000 rules and 1,000,000 live buckets, measured as resident set size before and after

#![expect(clippy::unwrap_used, reason = "setup helpers outside #[test]: a failure should abort loudly")]
//! (`/proc/self/statm`, Linux). Run: `cargo run --release -p tollgate-limits --example memory`.

use std::sync::Arc;

use tollgate_limits::{ManualClock, Metadata, RequestDims, SpendEngine, SpendRuleSpec};

const RULES: usize = 1_000;
const USERS: usize = 1_000;

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * 4_096
}

fn main() {
    // `distinct`: every rule splits on its own dimensions (no sharing of bucket entries, the worst case).
    let distinct = std::env::args().nth(1).as_deref() == Some("distinct");
    let before = rss_bytes();
    let rules = (0..RULES)
        .map(|i| {
            let spec: SpendRuleSpec = serde_json::from_value(serde_json::json!({
                "id": format!("rule-{i}"), "budget_usd": 1000.0, "window": if i % 2 == 0 { "1d" } else { "1h" },
                "window_kind": if i % 10 == 0 { "rolling" } else { "fixed" },
                "dimensions": if distinct {
                    // A second split on a key no request carries: the same buckets, but no two rules share a key group.
                    serde_json::json!([{ "key": "metadata.user_id", "mode": "split" }, { "key": format!("metadata.k{i}"), "mode": "split" }])
                } else {
                    serde_json::json!([{ "key": "metadata.user_id", "mode": "split" }])
                }
            }))
            .unwrap();
            spec.validate().unwrap()
        })
        .collect();
    let clock = Arc::new(ManualClock::new("2026-05-01T12:00:00Z".parse().unwrap()));
    let engine = SpendEngine::new(rules, clock);
    let after_rules = rss_bytes();
    for user in 0..USERS {
        let m = Metadata::parse(&format!(r#"{{"user_id":"user-{user:06}"}}"#), 20).unwrap();
        let request = RequestDims::new("openai", "gpt-4o-mini").with_metadata(&m);
        engine.admit(&request, Some(1_000_000)).unwrap().settle(500_000);
    }
    // Measured before listing the buckets: the listing itself allocates.
    let after_buckets = rss_bytes();
    let buckets = engine.live_buckets().len();
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    eprintln!(
        "rules: {RULES}, live buckets: {buckets}\nRSS before: {:.1} MiB, after rules: {:.1} MiB, after buckets: {:.1} MiB\n\
         buckets cost {:.1} MiB ({:.0} bytes each)",
        mib(before),
        mib(after_rules),
        mib(after_buckets),
        mib(after_buckets - after_rules),
        (after_buckets - after_rules) as f64 / buckets as f64
    );
}

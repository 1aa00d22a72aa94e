//! Rate limiter tests, driven by a manual clock (governor included): no sleeps.

use jiff::{SignedDuration, Timestamp};

use super::*;
use crate::clock::ManualClock;
use crate::spec::RateRuleSpec;

fn limiter(json: &[&str]) -> (RateLimiter, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new("2026-05-01T12:00:00Z".parse::<Timestamp>().unwrap()));
    let rules = json.iter().map(|j| serde_json::from_str::<RateRuleSpec>(j).unwrap().validate().unwrap()).collect();
    (RateLimiter::new(rules, clock.clone()), clock)
}

#[test]
fn requests_limit_uses_gcra_and_the_manual_clock() {
    let (limiter, clock) = limiter(&[r#"{"id":"rpm","limit":3,"per":"requests","window":"1m",
        "dimensions":[{"key":"provider","mode":"split"}]}"#]);
    let req = RequestDims::new("openai", "gpt");
    for _ in 0..3 {
        limiter.check(&req).unwrap();
    }
    let limited = limiter.check(&req).unwrap_err();
    assert_eq!(limited.rule_id.as_ref(), "rpm");
    assert_eq!(limited.bucket_key, "provider=openai");
    // One request per 20 s replenishes.
    assert_eq!(limited.retry_after_secs, 20);
    // Another bucket is independent.
    limiter.check(&RequestDims::new("groq", "x")).unwrap();
    clock.advance(SignedDuration::from_secs(19));
    assert_eq!(limiter.check(&req).unwrap_err().retry_after_secs, 1);
    clock.advance(SignedDuration::from_secs(1));
    limiter.check(&req).unwrap();
    limiter.sweep();
}

#[test]
fn tokens_limit_counts_after_the_fact_per_window() {
    let (limiter, clock) = limiter(&[r#"{"id":"tpm","limit":1000,"per":"tokens","window":"1h"}"#]);
    let req = RequestDims::new("openai", "gpt");
    limiter.check(&req).unwrap();
    limiter.record_tokens(&req, 999);
    limiter.check(&req).unwrap();
    limiter.record_tokens(&req, 500);
    let limited = limiter.check(&req).unwrap_err();
    assert_eq!(limited.retry_after_secs, 3_600);
    clock.advance(SignedDuration::from_mins(60));
    limiter.check(&req).unwrap();
    limiter.sweep();
}

#[test]
fn swap_keeps_counts_of_unchanged_rules() {
    let tpm = r#"{"id":"tpm","limit":10,"per":"tokens","window":"1h"}"#;
    let (limiter, _) = limiter(&[tpm]);
    let req = RequestDims::new("openai", "gpt");
    limiter.record_tokens(&req, 10);
    assert!(limiter.check(&req).is_err());
    let raised = serde_json::from_str::<RateRuleSpec>(r#"{"id":"tpm","limit":20,"per":"tokens","window":"1h"}"#)
        .unwrap()
        .validate()
        .unwrap();
    limiter.replace_rules(vec![raised]);
    limiter.check(&req).unwrap();
    limiter.record_tokens(&req, 10);
    assert!(limiter.check(&req).is_err());
}

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

fn model_split(per: &str, limit: u64, window: &str) -> String {
    format!(
        r#"{{"id":"r","limit":{limit},"per":"{per}","window":"{window}","dimensions":[{{"key":"model","mode":"split"}}]}}"#
    )
}

#[test]
fn s13_sweep_drops_idle_request_buckets_and_keeps_busy_ones() {
    let (limiter, clock) = limiter(&[&model_split("requests", 3, "1m")]);
    let names: Vec<String> = (0..500).map(|i| format!("model-{i}")).collect();
    for name in &names {
        limiter.check(&RequestDims::new("openai", name)).unwrap();
    }
    let busy = RequestDims::new("openai", "busy");
    for _ in 0..3 {
        limiter.check(&busy).unwrap();
    }
    assert_eq!(limiter.tracked_buckets(), 501);
    // Right away nothing is idle: every key used a cell that has not come back yet.
    assert_eq!(limiter.sweep(), 501);
    // A one-off key is back to a fresh state after one emission interval (20 s) plus one more; the busy key,
    // which used its whole burst, needs the full minute.
    clock.advance(SignedDuration::from_secs(41));
    assert_eq!(limiter.sweep(), 1);
    assert!(limiter.check(&busy).is_ok(), "two cells came back for the busy key");
    // Keeping the busy key kept its state: it is still limited.
    limiter.check(&busy).unwrap();
    assert!(limiter.check(&busy).is_err());
    clock.advance(SignedDuration::from_mins(2));
    assert_eq!(limiter.sweep(), 0);
    assert_eq!(limiter.tracked_buckets(), 0);
    // A swept key starts fresh: the full burst again.
    for _ in 0..3 {
        limiter.check(&busy).unwrap();
    }
    assert!(limiter.check(&busy).is_err());
}

#[test]
fn s13_sweep_drops_token_counts_of_ended_windows_only() {
    let (limiter, clock) = limiter(&[&model_split("tokens", 100, "1h")]);
    for i in 0..200 {
        limiter.record_tokens(&RequestDims::new("openai", &format!("model-{i}")), 1);
    }
    let full = RequestDims::new("openai", "full");
    limiter.record_tokens(&full, 100);
    assert_eq!(limiter.sweep(), 201, "every window is still current");
    assert!(limiter.check(&full).is_err(), "the sweep kept the count");
    clock.advance(SignedDuration::from_mins(60));
    assert_eq!(limiter.sweep(), 0);
    limiter.check(&full).unwrap();
}

#[test]
fn a_shared_limit_is_left_to_the_caller_and_names_its_buckets() {
    let (limiter, _) = limiter(&[
        r#"{"id":"shared-rpm","limit":6,"per":"requests","window":"1m","shared":true,
            "dimensions":[{"key":"provider","mode":"split"}]}"#,
        r#"{"id":"local","limit":100,"per":"requests","window":"1m"}"#,
    ]);
    assert!(limiter.has_shared());
    let req = RequestDims::new("openai", "gpt");
    // `check` counts only the per-replica rule: far more than 6 pass.
    for _ in 0..50 {
        limiter.check(&req).unwrap();
    }
    let mut buckets = Vec::new();
    limiter.shared_buckets(&req, &mut buckets);
    assert_eq!(
        buckets,
        vec![SharedBucket {
            rule_id: Arc::from("shared-rpm"),
            bucket_key: "provider=openai".into(),
            redis_key: "shared-rpm:6:10000000:provider=openai".into(),
            burst: 6,
            period_us: 10_000_000,
        }]
    );
    let refusal = limiter.shared_refusal(&buckets[0], 9_000_001);
    assert_eq!((refusal.rule_id.as_ref(), refusal.retry_after_secs), ("shared-rpm", 10));
}

#[test]
fn without_redis_a_shared_limit_counts_this_replicas_share() {
    let (limiter, clock) = limiter(&[r#"{"id":"rpm","limit":10,"per":"requests","window":"1m","shared":true}"#]);
    let req = RequestDims::new("openai", "gpt");
    limiter.set_replicas(3);
    assert_eq!(limiter.replicas(), 3);
    // 10 / 3 replicas: 3 each.
    for _ in 0..3 {
        limiter.check_shared_locally(&req).unwrap();
    }
    let refused = limiter.check_shared_locally(&req).unwrap_err();
    assert_eq!(refused.rule_id.as_ref(), "rpm");
    // The share replenishes at window / share: one every 20 s.
    assert_eq!(refused.retry_after_secs, 20);
    clock.advance(SignedDuration::from_secs(20));
    limiter.check_shared_locally(&req).unwrap();
    // More replicas than the limit still leaves each one request.
    limiter.set_replicas(50);
    limiter.check_shared_locally(&req).unwrap();
    assert!(limiter.check_shared_locally(&req).is_err());
    // Zero is read as one replica.
    limiter.set_replicas(0);
    assert_eq!(limiter.replicas(), 1);
    for _ in 0..10 {
        limiter.check_shared_locally(&req).unwrap();
    }
    assert!(limiter.check_shared_locally(&req).is_err());
    assert_eq!(limiter.tracked_buckets(), 1);
}

#[test]
fn a_tokens_limit_cannot_be_shared() {
    let spec =
        serde_json::from_str::<RateRuleSpec>(r#"{"id":"t","limit":5,"per":"tokens","window":"1h","shared":true}"#)
            .unwrap();
    let errors = spec.validate().unwrap_err();
    assert_eq!(errors[0].path, "shared");
}

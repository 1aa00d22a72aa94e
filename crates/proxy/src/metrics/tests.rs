//! The metrics count from the record's types: error codes, decision counts and cost sources.

use std::sync::atomic::Ordering;

use tollgate_accounting::CostSource;

use super::Metrics;
use crate::error::ErrorCode;
use crate::record::{DecisionCounts, UsageRecord};

fn record() -> UsageRecord {
    let mut r = UsageRecord::blank("log".into(), jiff::Timestamp::UNIX_EPOCH, "/v1/chat/completions");
    r.provider = "openai".into();
    r
}

#[test]
fn refusals_are_counted_by_their_code_not_their_text() {
    let metrics = Metrics::new(["openai"]);
    let mut blocked = record();
    blocked.status = 429;
    blocked.error_code = Some(ErrorCode::SpendLimitExceeded);
    blocked.error = Some("a message that says nothing about spend".into());
    metrics.observe(&blocked);
    let mut text_only = record();
    text_only.error = Some("spend_limit_exceeded".into());
    metrics.observe(&text_only);
    let mut limited = record();
    limited.error_code = Some(ErrorCode::RateLimited);
    metrics.observe(&limited);
    assert_eq!(metrics.spend_blocked.load(Ordering::Relaxed), 1);
    assert_eq!(metrics.rate_limited.load(Ordering::Relaxed), 1);
}

#[test]
fn decisions_and_cost_sources_are_counted_from_the_record() {
    let metrics = Metrics::new(["openai"]);
    let mut r = record();
    r.decisions = DecisionCounts { allowed: 2, would_block: 1 };
    r.cost_source = CostSource::Estimated;
    metrics.observe(&r);
    assert_eq!(metrics.spend_allowed.load(Ordering::Relaxed), 2);
    assert_eq!(metrics.spend_would_block.load(Ordering::Relaxed), 1);
    let (_, openai) = metrics.providers().next().unwrap_or_else(|| unreachable!());
    let estimated = super::COST_SOURCES.iter().position(|s| *s == CostSource::Estimated).unwrap_or(usize::MAX);
    assert_eq!(openai.by_cost_source[estimated].load(Ordering::Relaxed), 1);
}

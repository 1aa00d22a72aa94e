//! Unit tests for `rollup`: aggregation per hour and per metadata key, bounded keys.

use std::collections::BTreeSet;

use serde_json::json;

use super::*;
use crate::record::CostSource;

fn rec(at: &str, provider: &str, success: bool, cost: u64, metadata: serde_json::Value) -> LogRecord {
    let serde_json::Value::Object(metadata) = metadata else { panic!("metadata is an object") };
    LogRecord {
        id: String::new(),
        created_at: at.parse().unwrap(),
        gateway: None,
        provider: provider.into(),
        model: "m".into(),
        path: "/".into(),
        status: 200,
        success,
        cached: false,
        stream: false,
        tokens_in: 1,
        tokens_out: 2,
        tokens_cached: 3,
        tokens_cache_write: 0,
        tokens_reasoning: 4,
        cost_nanos: cost,
        cost_source: CostSource::Catalog,
        duration_ms: 0,
        ttfb_ms: None,
        metadata,
        event_id: None,
        step: 0,
        rule_decisions: json!([]),
        error: None,
        request_body: None,
        response_body: None,
    }
}

#[test]
fn sums_per_hour_provider_model_gateway() {
    let keys = BTreeSet::new();
    let mut r = Rollups::default();
    r.add(&rec("2026-05-01T10:00:00Z", "a", true, 5, json!({})), &keys, 8);
    r.add(&rec("2026-05-01T10:59:59Z", "a", false, 7, json!({})), &keys, 8);
    r.add(&rec("2026-05-01T11:00:00Z", "a", true, 1, json!({})), &keys, 8);
    r.add(&rec("2026-05-01T10:30:00Z", "b", true, 1, json!({})), &keys, 8);
    let hour = |s: &str| s.parse::<jiff::Timestamp>().unwrap().as_microsecond();
    let first = r.hourly[&(hour("2026-05-01T10:00:00Z"), "a".into(), "m".into(), String::new())];
    assert_eq!(
        first,
        Measures {
            requests: 2,
            tokens_in: 2,
            tokens_out: 4,
            tokens_cached: 6,
            tokens_reasoning: 8,
            cost_nanos: 12,
            errors: 1
        }
    );
    assert_eq!(r.hourly.len(), 3);
    assert!(r.metadata.is_empty());
}

#[test]
fn metadata_only_for_listed_keys_and_bounded_per_row() {
    let keys: BTreeSet<String> = ["a", "b", "c"].iter().map(|k| (*k).to_owned()).collect();
    let mut r = Rollups::default();
    let meta = json!({"a": "x", "b": 2, "c": true, "other": "y", "d": null});
    r.add(&rec("2026-05-01T10:00:00Z", "p", true, 5, meta), &keys, 2);
    let picked: Vec<(String, String)> = r.metadata.keys().map(|k| (k.0.clone(), k.2.clone())).collect();
    assert_eq!(picked, [("a".to_owned(), "x".to_owned()), ("b".to_owned(), "2".to_owned())]);
}

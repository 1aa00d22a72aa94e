//! Unit tests for `rollup`: aggregation per hour, day and metadata key, keys bounded per row oldest first.

use serde_json::json;

use super::*;
use crate::CostSource;

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
        listed: true,
        cache_key: None,
        saved_nanos: 0,
    }
}

#[test]
fn sums_per_hour_provider_model_gateway() {
    let keys = RollupKeys { keys: vec![], max_per_row: 8 };
    let mut r = Rollups::default();
    r.add(&rec("2026-05-01T10:00:00Z", "a", true, 5, json!({})), &keys);
    r.add(&rec("2026-05-01T10:59:59Z", "a", false, 7, json!({})), &keys);
    r.add(&rec("2026-05-01T11:00:00Z", "a", true, 1, json!({})), &keys);
    r.add(&rec("2026-05-01T10:30:00Z", "b", true, 1, json!({})), &keys);
    // A cache hit: counted as a request at no cost, with its saving; a saving on a row the cache did not answer
    // is not one.
    let hit = LogRecord {
        cached: true,
        cost_source: CostSource::Cache,
        saved_nanos: 40,
        ..rec("2026-05-01T10:20:00Z", "a", true, 0, json!({}))
    };
    r.add(&hit, &keys);
    r.add(&LogRecord { saved_nanos: 1_000, ..rec("2026-05-01T10:40:00Z", "b", true, 1, json!({})) }, &keys);
    let hour = |s: &str| s.parse::<jiff::Timestamp>().unwrap().as_microsecond();
    let first = r.hourly[&(hour("2026-05-01T10:00:00Z"), "a".into(), "m".into(), String::new())];
    assert_eq!(
        first,
        Measures {
            requests: 3,
            tokens_in: 3,
            tokens_out: 6,
            tokens_cached: 9,
            tokens_reasoning: 12,
            cost_nanos: 12,
            errors: 1,
            cached_requests: 1,
            saved_nanos: 40,
        }
    );
    let other = r.hourly[&(hour("2026-05-01T10:00:00Z"), "b".into(), "m".into(), String::new())];
    assert_eq!((other.requests, other.cached_requests, other.saved_nanos), (2, 0, 0));
    assert_eq!(r.hourly.len(), 3);
    assert!(r.metadata.is_empty());
    assert!(r.metadata_daily.is_empty());
}

fn keys(list: &[&str], max_per_row: usize) -> RollupKeys {
    RollupKeys { keys: list.iter().map(|k| (*k).to_owned()).collect(), max_per_row }
}

#[test]
fn metadata_only_for_listed_keys_and_bounded_per_row() {
    let mut r = Rollups::default();
    let meta = json!({"a": "x", "b": 2, "c": true, "other": "y", "d": null});
    r.add(&rec("2026-05-01T10:00:00Z", "p", true, 5, meta), &keys(&["a", "b", "c"], 2));
    let picked: Vec<(String, String)> = r.metadata.keys().map(|k| (k.0.clone(), k.2.clone())).collect();
    assert_eq!(picked, [("a".to_owned(), "x".to_owned()), ("b".to_owned(), "2".to_owned())]);
}

#[test]
fn older_keys_win_and_a_backfill_adds_only_what_the_writer_would() {
    let meta = json!({"a": "x", "b": "y", "c": "z", "d": null});
    let row = rec("2026-05-01T10:00:00Z", "p", true, 5, meta);
    // Oldest first: c then a, whatever their names; d has no scalar value and does not use up the bound.
    let mut r = Rollups::default();
    r.add(&row, &keys(&["d", "c", "a", "b"], 2));
    let picked: Vec<&str> = r.metadata.keys().map(|k| k.0.as_str()).collect();
    assert_eq!(picked, ["a", "c"]);
    // Adding b later (the bound is reached by c and a): the backfill of b counts nothing, as the writer would.
    let mut backfill = Rollups::default();
    backfill.add_metadata(&row, &keys(&["d", "c", "a", "b"], 2), 3);
    assert_eq!(backfill.len(), 0);
    // With room left, the backfill counts only the new key, never an older one again.
    let mut backfill = Rollups::default();
    backfill.add_metadata(&row, &keys(&["c", "a", "b"], 8), 2);
    let picked: Vec<&str> = backfill.metadata.keys().map(|k| k.0.as_str()).collect();
    assert_eq!(picked, ["b"]);
    assert!(backfill.hourly.is_empty());
}

#[test]
fn daily_metadata_sums_the_hours_of_a_utc_day() {
    let keys = keys(&["team"], 8);
    let mut r = Rollups::default();
    for at in ["2026-05-01T00:00:00Z", "2026-05-01T13:10:00Z", "2026-05-01T23:59:59.999999Z", "2026-05-02T00:00:00Z"] {
        r.add(&rec(at, "p", true, 10, json!({"team": "t"})), &keys);
    }
    let day = |s: &str| s.parse::<jiff::Timestamp>().unwrap().as_microsecond();
    let daily: Vec<(i64, i64)> = r.metadata_daily.iter().map(|(k, m)| (k.1, m.requests)).collect();
    assert_eq!(daily, [(day("2026-05-01T00:00:00Z"), 3), (day("2026-05-02T00:00:00Z"), 1)]);
    assert_eq!(r.metadata.len(), 4);
    // The per-value totals sum over providers too.
    r.add(&rec("2026-05-01T08:00:00Z", "q", true, 10, json!({"team": "t"})), &keys);
    assert_eq!(r.metadata_daily.len(), 3);
    let totals: Vec<(i64, i64)> = r.metadata_value_daily.iter().map(|(k, m)| (k.1, m.requests)).collect();
    assert_eq!(totals, [(day("2026-05-01T00:00:00Z"), 4), (day("2026-05-02T00:00:00Z"), 1)]);
    assert_eq!(r.len(), 5 + 5 + 3 + 2);
}

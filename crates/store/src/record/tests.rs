//! Unit tests for `record`: checked conversion to column values, spill serialisation.

use serde_json::json;

use super::*;

fn sample() -> LogRecord {
    LogRecord {
        id: "0190c1d2-0000-7000-8000-000000000001".into(),
        created_at: "2026-05-01T10:15:00.123456789Z".parse().unwrap(),
        gateway: None,
        provider: "openai".into(),
        model: "gpt-4o-mini".into(),
        path: "/v1/chat/completions".into(),
        status: 200,
        success: true,
        cached: false,
        stream: true,
        tokens_in: 10,
        tokens_out: 20,
        tokens_cached: 0,
        tokens_cache_write: 0,
        tokens_reasoning: 0,
        cost_nanos: 1_234,
        cost_source: CostSource::Custom,
        duration_ms: 300,
        ttfb_ms: None,
        metadata: json!({"user_id": "u1", "n": 3}).as_object().unwrap().clone(),
        event_id: None,
        step: 1,
        rule_decisions: json!([]),
        error: None,
        request_body: None,
        response_body: None,
    }
}

#[test]
fn converts_to_columns() {
    let row = LogRow::try_from(&sample()).unwrap();
    assert_eq!(row.created_at_us, 1_777_630_500_123_456);
    assert_eq!(row.cost_source, "custom");
    assert_eq!(row.metadata, r#"{"n":3,"user_id":"u1"}"#);
    assert_eq!(row.status, 200);
}

#[test]
fn refuses_numbers_above_i64() {
    let mut r = sample();
    r.cost_nanos = u64::MAX;
    assert!(matches!(LogRow::try_from(&r), Err(StoreError::OutOfRange { field: "cost_nanos" })));
}

#[test]
fn replaces_nul_in_text_and_json() {
    let mut r = sample();
    r.error = Some("a\0b".into());
    r.metadata.insert("k\0".into(), json!(["x\0y", {"z": "\0"}]));
    r.metadata.insert("literal".into(), json!("\\u0000 stays"));
    let row = LogRow::try_from(&r).unwrap();
    assert_eq!(row.error.as_deref(), Some("a\u{FFFD}b"));
    let metadata: serde_json::Value = serde_json::from_str(&row.metadata).unwrap();
    assert_eq!(metadata["k\u{FFFD}"], json!(["x\u{FFFD}y", {"z": "\u{FFFD}"}]));
    assert_eq!(metadata["literal"], json!("\\u0000 stays"));
}

#[test]
fn round_trips_through_json() {
    let r = sample();
    let text = serde_json::to_string(&r).unwrap();
    assert!(text.contains(r#""created_at":"2026-05-01T10:15:00.123456789Z""#), "{text}");
    assert_eq!(serde_json::from_str::<LogRecord>(&text).unwrap(), r);
}

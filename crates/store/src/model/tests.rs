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
        listed: true,
        cache_key: None,
        saved_nanos: 0,
    }
}

#[test]
fn converts_to_columns() {
    let row = LogRow::from(&sample());
    assert_eq!(row.created_at_us, 1_777_630_500_123_456);
    assert_eq!(row.cost_source, "custom");
    assert_eq!(row.metadata, r#"{"n":3,"user_id":"u1"}"#);
    assert_eq!(row.status, 200);
}

#[test]
fn s1_numbers_above_i64_are_clamped_not_refused() {
    let mut r = sample();
    r.cost_nanos = u64::MAX;
    r.tokens_in = u64::MAX;
    r.ttfb_ms = Some(u64::MAX);
    r.step = u32::MAX;
    let row = LogRow::from(&r);
    assert_eq!((row.cost_nanos, row.tokens_in, row.ttfb_ms, row.step), (i64::MAX, i64::MAX, Some(i64::MAX), i32::MAX));
}

#[test]
fn s3_long_strings_are_cut_at_a_char_boundary() {
    let mut r = sample();
    r.gateway = Some("g".repeat(3_000));
    r.model = "é".repeat(200);
    r.path = "p".repeat(70_000);
    r.error = Some("e".repeat(5_000));
    r.event_id = Some("v".repeat(5_000));
    let bounded = r.bounded();
    assert_eq!(bounded.gateway.as_ref().map(String::len), Some(MAX_NAME_BYTES));
    assert_eq!(bounded.model.len(), MAX_NAME_BYTES, "128 two-byte chars");
    assert_eq!(bounded.path.len(), MAX_PATH_BYTES);
    assert_eq!(bounded.error.as_ref().map(String::len), Some(MAX_TEXT_BYTES));
    assert_eq!(bounded.event_id.as_ref().map(String::len), Some(MAX_TEXT_BYTES));
    let mut odd = "a".to_owned();
    odd.push_str(&"é".repeat(200));
    let mut cut = odd.clone();
    truncate(&mut cut, MAX_NAME_BYTES);
    assert_eq!(cut.len(), MAX_NAME_BYTES - 1, "never splits a char");
    assert!(matches!(sample().bounded(), std::borrow::Cow::Borrowed(_)), "nothing to cut: no copy");
}

#[test]
fn s12_a_spend_only_record_keeps_no_body_and_no_event_id() {
    let mut r = sample();
    r.listed = false;
    r.event_id = Some("ev".into());
    r.request_body = Some("prompt".into());
    r.response_body = Some("answer".into());
    let bounded = r.bounded();
    assert_eq!((&bounded.event_id, &bounded.request_body, &bounded.response_body), (&None, &None, &None));
    assert_eq!(bounded.cost_nanos, r.cost_nanos);
}

#[test]
fn spill_lines_without_listed_read_as_listed() {
    let mut value = serde_json::to_value(sample()).unwrap();
    value.as_object_mut().unwrap().remove("listed");
    assert!(serde_json::from_value::<LogRecord>(value).unwrap().listed);
}

#[test]
fn replaces_nul_in_text_and_json() {
    let mut r = sample();
    r.error = Some("a\0b".into());
    r.metadata.insert("k\0".into(), json!(["x\0y", {"z": "\0"}]));
    r.metadata.insert("literal".into(), json!("\\u0000 stays"));
    let row = LogRow::from(&r);
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

//! Tests of the include_usage request rewrite and the usage-only event filter.

use bytes::Bytes;
use proptest::prelude::*;
use serde_json::{Value, json};

use super::{IncludeUsage, InjectedUsageFilter, ensure_include_usage};

fn injected(body: &str) -> Value {
    match ensure_include_usage(body.as_bytes()) {
        Some(IncludeUsage::Injected(rewritten)) => serde_json::from_slice(&rewritten).unwrap(),
        other => panic!("expected a rewrite of {body}, got {other:?}"),
    }
}

fn injected_text(body: &str) -> String {
    match ensure_include_usage(body.as_bytes()) {
        Some(IncludeUsage::Injected(rewritten)) => String::from_utf8(rewritten).unwrap(),
        other => panic!("expected a rewrite of {body}, got {other:?}"),
    }
}

#[test]
fn adds_stream_options_when_absent() {
    let body = r#"{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"stream_options"}]}"#;
    assert_eq!(
        injected_text(body),
        r#"{"stream_options":{"include_usage":true},"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"stream_options"}]}"#
    );
    assert_eq!(injected_text("{}"), r#"{"stream_options":{"include_usage":true}}"#);
    assert_eq!(injected_text(" {\n} "), " {\"stream_options\":{\"include_usage\":true}\n} ");
}

#[test]
fn keeps_other_stream_options() {
    let body = r#"{"stream":true,"stream_options":{"include_obfuscation":false}}"#;
    assert_eq!(
        injected_text(body),
        r#"{"stream":true,"stream_options":{"include_usage":true,"include_obfuscation":false}}"#
    );
    assert_eq!(injected(r#"{"stream_options": { } }"#), json!({"stream_options":{"include_usage":true}}));
}

#[test]
fn overrides_include_usage_false_or_null() {
    assert_eq!(
        injected_text(r#"{"stream_options":{"include_usage":false,"x":1},"stream":true}"#),
        r#"{"stream_options":{"include_usage":true,"x":1},"stream":true}"#
    );
    assert_eq!(
        injected(r#"{"stream_options":{"include_usage":null}}"#),
        json!({"stream_options":{"include_usage":true}})
    );
    assert_eq!(
        injected_text(r#"{"stream_options": null, "stream": true}"#),
        r#"{"stream_options": {"include_usage":true}, "stream": true}"#
    );
}

#[test]
fn escaped_keys_are_recognised() {
    assert_eq!(
        injected(r#"{"stream\u005foptions":{"include\u005fusage":false}}"#),
        json!({"stream_options":{"include_usage":true}})
    );
}

#[test]
fn client_that_asked_is_left_alone() {
    assert_eq!(
        ensure_include_usage(br#"{"stream":true,"stream_options":{"include_usage":true}}"#),
        Some(IncludeUsage::ClientAsked)
    );
}

#[test]
fn bodies_that_cannot_be_rewritten() {
    assert_eq!(ensure_include_usage(b"not json"), None);
    assert_eq!(ensure_include_usage(b"[1,2]"), None);
    assert_eq!(ensure_include_usage(br#"{"stream_options":"yes"}"#), None);
    assert_eq!(ensure_include_usage(br#"{"a":1"#), None);
    // What a full parse refuses is refused too: invalid UTF-8, a lone surrogate, a number out of range.
    assert_eq!(ensure_include_usage(b"{\"a\":\"\xff\"}"), None);
    assert_eq!(ensure_include_usage(br#"{"a":"\ud800"}"#), None);
    assert_eq!(ensure_include_usage(br#"{"a":1e400}"#), None);
}

#[test]
fn rewrite_preserves_every_other_member() {
    let body = r#"{"model":"m","messages":[{"role":"user","content":"hi \"there\" {"}],"temperature":0.7,"stream":true,"n":1,"stream_options":{"include_obfuscation":false}}"#;
    let mut expected: Value = serde_json::from_str(body).unwrap();
    expected["stream_options"]["include_usage"] = json!(true);
    assert_eq!(injected(body), expected);
}

const CONTENT: &str =
    "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}],\"usage\":null}\n\n";
const USAGE: &str = "data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1}}\n\n";
const AZURE: &str = "data: {\"id\":\"\",\"choices\":[],\"created\":0,\"model\":\"\",\"prompt_filter_results\":[]}\n\n";
const AZURE_NULL_USAGE: &str = "data: {\"id\":\"\",\"choices\":[],\"usage\":null}\n\n";
const DONE: &str = "data: [DONE]\n\n";

fn filter_chunks(chunks: &[Bytes]) -> (Vec<u8>, Vec<Bytes>) {
    let mut filter = InjectedUsageFilter::new();
    let mut pieces = Vec::new();
    for chunk in chunks {
        filter.push(chunk, &mut |piece| pieces.push(piece));
    }
    filter.finish(&mut |piece| pieces.push(piece));
    (pieces.iter().flat_map(|piece| piece.iter().copied()).collect(), pieces)
}

fn filter_all_splits(stream: &[u8]) -> Vec<u8> {
    let bytes = Bytes::copy_from_slice(stream);
    let (whole, _) = filter_chunks(std::slice::from_ref(&bytes));
    for at in 0..=bytes.len() {
        let (split, _) = filter_chunks(&[bytes.slice(..at), bytes.slice(at..)]);
        assert_eq!(split, whole, "split at {at}");
    }
    let bytewise: Vec<Bytes> = (0..bytes.len()).map(|at| bytes.slice(at..=at)).collect();
    assert_eq!(filter_chunks(&bytewise).0, whole, "one byte at a time");
    whole
}

#[test]
fn removes_exactly_the_usage_event() {
    let stream = [CONTENT, CONTENT, USAGE, DONE].concat();
    let expected = [CONTENT, CONTENT, DONE].concat();
    assert_eq!(filter_all_splits(stream.as_bytes()), expected.as_bytes());
}

#[test]
fn fixture_stream_loses_only_its_usage_chunk() {
    let stream = include_bytes!("../../tests/fixtures/openai_chat_stream_usage.sse");
    let text = std::str::from_utf8(stream).unwrap();
    let events: Vec<&str> = text.split_inclusive("\n\n").collect();
    let expected: String = events.iter().filter(|event| !event.contains("\"choices\":[]")).copied().collect();
    assert_eq!(events.len(), 5);
    assert_eq!(filter_all_splits(stream), expected.as_bytes());
}

#[test]
fn azure_filter_chunk_and_null_usage_stay() {
    let stream = [AZURE, AZURE_NULL_USAGE, CONTENT, USAGE, DONE].concat();
    let expected = [AZURE, AZURE_NULL_USAGE, CONTENT, DONE].concat();
    assert_eq!(filter_all_splits(stream.as_bytes()), expected.as_bytes());
}

#[test]
fn crlf_and_lone_cr_line_ends() {
    let crlf = |event: &str| event.replace('\n', "\r\n");
    let cr = |event: &str| event.replace('\n', "\r");
    let stream = [crlf(CONTENT), crlf(USAGE), crlf(DONE)].concat();
    assert_eq!(filter_all_splits(stream.as_bytes()), [crlf(CONTENT), crlf(DONE)].concat().as_bytes());
    let stream = [cr(CONTENT), cr(USAGE), cr(DONE)].concat();
    assert_eq!(filter_all_splits(stream.as_bytes()), [cr(CONTENT), cr(DONE)].concat().as_bytes());
}

#[test]
fn comments_and_stray_blank_lines_pass() {
    let stream = [": OPENROUTER PROCESSING\n\n", "\n\n", CONTENT, ": ping\n", USAGE, DONE].concat();
    // A comment line inside the usage event's block belongs to that event and goes with it.
    let expected = [": OPENROUTER PROCESSING\n\n", "\n\n", CONTENT, DONE].concat();
    assert_eq!(filter_all_splits(stream.as_bytes()), expected.as_bytes());
}

#[test]
fn usage_event_at_eof_without_blank_line_is_removed() {
    let stream = [CONTENT, USAGE.trim_end()].concat();
    assert_eq!(filter_all_splits(stream.as_bytes()), CONTENT.as_bytes());
    let cut = [CONTENT, &USAGE[..30]].concat();
    assert_eq!(filter_all_splits(cut.as_bytes()), cut.as_bytes());
}

#[test]
fn complete_events_are_emitted_immediately_as_slices_of_the_input() {
    let chunk = Bytes::from([CONTENT, CONTENT].concat());
    let mut filter = InjectedUsageFilter::new();
    let mut pieces = Vec::new();
    filter.push(&chunk, &mut |piece| pieces.push(piece));
    assert_eq!(pieces.len(), 1, "one contiguous slice");
    assert_eq!(pieces[0].as_ptr(), chunk.as_ptr(), "zero-copy");
    assert_eq!(pieces[0].len(), chunk.len());

    // An unfinished event is held, then released with its end.
    let mut pieces = Vec::new();
    let partial = Bytes::from(&CONTENT[..20]);
    filter.push(&partial, &mut |piece| pieces.push(piece));
    assert!(pieces.is_empty());
    filter.push(&Bytes::from(&CONTENT[20..]), &mut |piece| pieces.push(piece));
    assert_eq!(pieces.len(), 2);
    assert_eq!(pieces[0].as_ptr(), partial.as_ptr());
    assert_eq!(filter.removed(), 0);
}

#[test]
fn oversized_event_is_passed_through() {
    let big = format!(
        "data: {{\"choices\":[],\"usage\":{{\"x\":\"{}\"}}}}\n\n",
        "a".repeat(InjectedUsageFilter::MAX_EVENT_BYTES + 10_000)
    );
    let stream = [CONTENT, &big, USAGE, DONE].concat();
    let bytes = Bytes::from(stream);
    let chunks: Vec<Bytes> =
        (0..bytes.len()).step_by(4096).map(|at| bytes.slice(at..(at + 4096).min(bytes.len()))).collect();
    let (out, _) = filter_chunks(&chunks);
    let expected = [CONTENT, &big, DONE].concat();
    assert!(out == expected.as_bytes(), "got {} bytes, expected {}", out.len(), expected.len());
}

fn piece() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        Just(CONTENT),
        Just(USAGE),
        Just(AZURE),
        Just(AZURE_NULL_USAGE),
        Just(DONE),
        Just(": keep-alive\n\n"),
        Just("\n")
    ]
}

proptest! {
    #[test]
    fn filtering_is_split_invariant_and_keeps_other_bytes_identical(
        pieces in proptest::collection::vec(piece(), 0..12),
        line_end in prop_oneof![Just("\n"), Just("\r\n"), Just("\r")],
        raw_points in proptest::collection::vec(any::<prop::sample::Index>(), 0..10),
    ) {
        let render = |text: &str| text.replace('\n', line_end);
        // A lone "\n" piece right before an event would merge with nothing: it is a stray blank line.
        let stream: String = pieces.iter().map(|piece| render(piece)).collect();
        let expected: String = pieces.iter().filter(|piece| **piece != USAGE).map(|piece| render(piece)).collect();
        let bytes = Bytes::from(stream);
        let mut points: Vec<usize> = raw_points.iter().map(|index| index.index(bytes.len() + 1)).collect();
        points.sort_unstable();
        points.dedup();
        let mut chunks = Vec::new();
        let mut start = 0;
        for point in points {
            chunks.push(bytes.slice(start..point));
            start = point;
        }
        chunks.push(bytes.slice(start..));
        let (out, _) = filter_chunks(&chunks);
        prop_assert_eq!(String::from_utf8(out).unwrap(), expected);
    }
}

#[test]
fn s14_a_24_mib_body_is_rewritten_by_splicing() {
    let mut body = Vec::with_capacity(24 * 1024 * 1024 + 64);
    body.extend_from_slice(br#"{"model":"x","stream":true,"a":[0"#);
    while body.len() < 24 * 1024 * 1024 {
        body.extend_from_slice(b",0");
    }
    body.extend_from_slice(b"]}");
    let Some(IncludeUsage::Injected(rewritten)) = ensure_include_usage(&body) else {
        panic!("expected a rewrite");
    };
    let prefix = br#"{"stream_options":{"include_usage":true},"#;
    assert_eq!(rewritten.len(), body.len() + prefix.len() - 1);
    assert!(rewritten.starts_with(prefix));
    assert_eq!(&rewritten[prefix.len()..], &body[1..]);
}

#[test]
fn duplicate_keys_follow_the_last_one_as_a_map_would() {
    assert_eq!(
        ensure_include_usage(br#"{"stream_options":{"include_usage":false},"stream_options":{"include_usage":true}}"#),
        Some(IncludeUsage::ClientAsked)
    );
    assert_eq!(
        injected_text(r#"{"stream_options":{"include_usage":true,"include_usage":1}}"#),
        r#"{"stream_options":{"include_usage":true,"include_usage":true}}"#
    );
    assert_eq!(ensure_include_usage(br#"{"stream_options":null,"stream_options":7}"#), None);
}

proptest! {
    /// Whatever the body, the rewrite never panics, and a rewritten body is valid JSON with the option set and
    /// every other top-level member unchanged.
    #[test]
    fn rewritten_bodies_are_valid_json(
        members in proptest::collection::vec(
            (
                prop_oneof![Just("stream_options".to_owned()), Just("stream".to_owned()), "[a-z_]{1,8}"],
                prop_oneof![
                    Just("null".to_owned()),
                    Just("true".to_owned()),
                    Just(r#"{"include_usage":false}"#.to_owned()),
                    Just(r#"{ "x" : [1, {"include_usage": true}] }"#.to_owned()),
                    Just(r#""a \"quoted\" {string}""#.to_owned()),
                    (0u32..1000).prop_map(|n| n.to_string()),
                ],
            ),
            0..6,
        ),
        spaces in "[ \n]{0,2}",
    ) {
        let mut seen = std::collections::HashSet::new();
        let unique: Vec<_> = members.into_iter().filter(|(key, _)| seen.insert(key.clone())).collect();
        let body = format!(
            "{spaces}{{{}}}{spaces}",
            unique.iter().map(|(key, value)| format!("\"{key}\":{spaces}{value}")).collect::<Vec<_>>().join(",")
        );
        let original: Value = serde_json::from_str(&body).unwrap();
        match ensure_include_usage(body.as_bytes()) {
            Some(IncludeUsage::Injected(rewritten)) => {
                let value: Value = serde_json::from_slice(&rewritten).unwrap();
                prop_assert_eq!(&value["stream_options"]["include_usage"], &json!(true));
                for (key, original_value) in original.as_object().unwrap() {
                    if key != "stream_options" {
                        prop_assert_eq!(&value[key], original_value);
                    }
                }
            }
            Some(IncludeUsage::ClientAsked) => {
                prop_assert_eq!(&original["stream_options"]["include_usage"], &json!(true));
            }
            None => prop_assert!(!matches!(original.get("stream_options"), None | Some(Value::Null | Value::Object(_)))),
        }
    }
}

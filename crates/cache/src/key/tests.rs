//! Key derivation: stable, tenant-separated, insensitive to JSON key order and `stream_options`.

use super::*;

fn key(scope: &Scope<'_>, body: &[u8]) -> CacheKey {
    CacheKey::derive(scope, "openai", "/chat/completions", "gpt-4o-mini", BodyPart::Canonical(&canonical_body(body)))
}

#[test]
fn key_order_whitespace_and_stream_options_do_not_change_the_key() {
    let scope = Scope::gateway("default", b"sk-1");
    let a = key(&scope, br#"{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}"#);
    let b = key(
        &scope,
        br#"{ "messages":[{"content":"hi","role":"user"}], "stream_options":{"include_usage":true}, "stream":true, "model":"m" }"#,
    );
    assert_eq!(a, b);
    let c = key(&scope, br#"{"model":"m","stream":false,"messages":[{"role":"user","content":"hi"}]}"#);
    assert_ne!(a, c, "stream stays in the key");
}

#[test]
fn tenants_never_share_a_key() {
    let body = br#"{"model":"m"}"#;
    let keys = [
        key(&Scope::gateway("default", b"sk-1"), body),
        key(&Scope::gateway("default", b"sk-2"), body),
        key(&Scope::gateway("other", b"sk-1"), body),
        key(&Scope::gateway_stored("default", b"sk-1"), body),
        key(&Scope::VirtualKey("vk1"), body),
        key(&Scope::Jwt("vk1"), body),
    ];
    for (i, a) in keys.iter().enumerate() {
        for b in &keys[i + 1..] {
            assert_ne!(a, b);
        }
    }
}

#[test]
fn parts_are_length_prefixed() {
    let scope = Scope::gateway("g", b"k");
    let a = CacheKey::derive(&scope, "open", "ai/x", "m", BodyPart::Canonical(b"{}"));
    let b = CacheKey::derive(&scope, "openai", "/x", "m", BodyPart::Canonical(b"{}"));
    assert_ne!(a, b);
    let custom = CacheKey::derive(&scope, "openai", "/x", "m", BodyPart::Custom("{}"));
    assert_ne!(custom, CacheKey::derive(&scope, "openai", "/x", "m", BodyPart::Canonical(b"{}")));
}

#[test]
fn derived_keys_parse_back_and_others_do_not() {
    let k = key(&Scope::gateway("default", b""), b"{}");
    assert_eq!(CacheKey::parse(&k.to_string()).unwrap(), k);
    for bad in ["", "abc", &"A".repeat(64), &"g".repeat(64), &"a".repeat(65)] {
        assert!(CacheKey::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn a_body_that_is_not_json_is_taken_as_it_is() {
    assert_eq!(canonical_body(b"not json"), b"not json");
    assert_eq!(canonical_body(b"[1, 2]"), b"[1, 2]");
}

#[test]
fn the_canonical_form_sorts_keys_at_every_depth_and_drops_whitespace() {
    let body = br#" { "b" : [ { "y" : 1 , "x" : "two words" } , null ] , "a" : { "d" : true , "c" : -1.5e3 } , "stream_options" : { } } "#;
    assert_eq!(
        String::from_utf8(canonical_body(body)).unwrap(),
        r#"{"a":{"c":-1.5e3,"d":true},"b":[{"x":"two words","y":1},null]}"#
    );
    // Only the top level's stream_options is dropped; escaped keys are compared decoded, values as written.
    assert_eq!(
        String::from_utf8(canonical_body(br#"{"m":{"stream_options":1},"k\u0065y":"\u00e9"}"#)).unwrap(),
        r#"{"key":"\u00e9","m":{"stream_options":1}}"#
    );
    // A later duplicate key wins.
    assert_eq!(canonical_body(br#"{"a":1,"a":2}"#), br#"{"a":2}"#);
    // Broken JSON is taken as it is.
    assert_eq!(canonical_body(br#"{"a":"#), br#"{"a":"#);
}

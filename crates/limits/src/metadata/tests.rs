//! Tests for parsing and validating the `cf-aig-metadata` header.

use super::*;

fn err(header: &str) -> String {
    Metadata::parse(header, DEFAULT_MAX_ENTRIES).unwrap_err().to_string()
}

#[test]
fn parses_strings_numbers_and_booleans_in_order() {
    let m = Metadata::parse(r#"{"user_id":"u1","tier":3,"beta":true,"ratio":1.5}"#, 20).unwrap();
    assert_eq!(m.len(), 4);
    let values: Vec<_> = m.iter().map(|(k, v)| (k, v.as_dimension_value())).collect();
    assert_eq!(values, [("user_id", "u1"), ("tier", "3"), ("beta", "true"), ("ratio", "1.5")]);
    assert_eq!(m.get("tier"), Some(&MetadataValue::Number("3".into())));
    assert_eq!(m.get("absent"), None);
    assert_eq!(serde_json::to_string(&m).unwrap(), r#"{"user_id":"u1","tier":3,"beta":true,"ratio":1.5}"#);
}

#[test]
fn empty_object_is_fine() {
    assert!(Metadata::parse("{}", 20).unwrap().is_empty());
    assert!(Metadata::empty().is_empty());
}

#[test]
fn rejects_nested_and_null_values_by_name() {
    assert_eq!(
        err(r#"{"user_id":{"a":1}}"#),
        r#"value of "user_id" is an object; only string, number or boolean are allowed"#
    );
    assert_eq!(err(r#"{"tags":[1]}"#), r#"value of "tags" is an array; only string, number or boolean are allowed"#);
    assert_eq!(err(r#"{"x":null}"#), r#"value of "x" is null; only string, number or boolean are allowed"#);
}

#[test]
fn rejects_too_many_entries() {
    let header = format!("{{{}}}", (0..23).map(|i| format!(r#""k{i}":{i}"#)).collect::<Vec<_>>().join(","));
    assert_eq!(err(&header), "cf-aig-metadata has 23 entries, at most 20");
    assert_eq!(Metadata::parse(&header, 23).unwrap().len(), 23);
}

#[test]
fn rejects_non_objects_and_bad_json() {
    assert!(err("[1,2]").starts_with("cf-aig-metadata must be a flat JSON object"));
    assert!(err("\"x\"").starts_with("cf-aig-metadata must be a flat JSON object"));
    assert!(err("{\"a\":1").starts_with("cf-aig-metadata must be a flat JSON object"));
    assert!(err("{\"a\":1} trailing").starts_with("cf-aig-metadata must be a flat JSON object"));
}

#[test]
fn rejects_duplicate_empty_and_long_keys_and_long_values() {
    assert_eq!(err(r#"{"a":1,"a":2}"#), r#"cf-aig-metadata key "a" appears twice"#);
    assert_eq!(err(r#"{"":1}"#), r#"cf-aig-metadata key "" must be 1 to 64 bytes long"#);
    let long_key = "k".repeat(65);
    assert!(err(&format!(r#"{{"{long_key}":1}}"#)).contains("must be 1 to 64 bytes long"));
    let long_value = "v".repeat(513);
    assert_eq!(err(&format!(r#"{{"note":"{long_value}"}}"#)), r#"value of "note" is 513 bytes, at most 512"#);
    let huge = format!(r#"{{"a":"{}"}}"#, "x".repeat(5_000));
    assert_eq!(err(&huge), format!("cf-aig-metadata is {} bytes, at most 4096", huge.len()));
}

#[test]
fn deserialize_applies_the_default_limits() {
    let m: Metadata = serde_json::from_str(r#"{"a":"b"}"#).unwrap();
    assert_eq!(m.get("a").map(MetadataValue::as_dimension_value), Some("b"));
    assert!(serde_json::from_str::<Metadata>(r#"{"a":null}"#).is_err());
}

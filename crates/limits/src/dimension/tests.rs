//! Tests for dimension parsing, filters, and the bucket key format.

use super::*;

fn dims(list: Vec<(DimensionKey, DimensionMode)>) -> Vec<Dimension> {
    list.into_iter().map(|(key, mode)| Dimension { key, mode }).collect()
}

#[test]
fn parses_dimension_keys() {
    assert_eq!(DimensionKey::parse("provider"), Ok(DimensionKey::Provider));
    assert_eq!(DimensionKey::parse("metadata.user_id"), Ok(DimensionKey::Metadata("user_id".into())));
    assert!(DimensionKey::parse("metadata.").unwrap_err().contains("needs a key"));
    assert!(DimensionKey::parse("user").unwrap_err().contains("unknown dimension"));
    assert_eq!(DimensionKey::Metadata("a".into()).name(), "metadata.a");
}

#[test]
fn bucket_keys_are_stable_and_escaped() {
    let split_user_provider = dims(vec![
        (DimensionKey::Metadata("user_id".into()), DimensionMode::Split),
        (DimensionKey::Provider, DimensionMode::Split),
        (DimensionKey::Model, DimensionMode::Filter(vec!["m".into()])),
    ]);
    let m = Metadata::parse(r#"{"user_id":"a|b=c\\d"}"#, 20).unwrap();
    let request = RequestDims::new("openai", "m").with_metadata(&m);
    assert_eq!(bucket_key(&split_user_provider, &request), r"metadata.user_id=a\|b\=c\\d|provider=openai");
    let none = Metadata::parse(r#"{"user_id":"(none)"}"#, 20).unwrap();
    assert_eq!(
        bucket_key(&split_user_provider, &RequestDims::new("openai", "m").with_metadata(&none)),
        r"metadata.user_id=\(none)|provider=openai"
    );
    assert_eq!(
        bucket_key(&split_user_provider, &RequestDims::new("openai", "m")),
        "metadata.user_id=(none)|provider=openai"
    );
    assert_eq!(bucket_key(&[], &request), "*");
    let gateway = dims(vec![(DimensionKey::Gateway, DimensionMode::Split)]);
    assert_eq!(bucket_key(&gateway, &request.with_gateway(Some("prod"))), "gateway=prod");
}

#[test]
fn filters_need_the_value_present_and_listed() {
    let d = Dimensions::new(dims(vec![(
        DimensionKey::Metadata("tier".into()),
        DimensionMode::Filter(vec!["3".into(), "true".into()]),
    )]));
    let number = Metadata::parse(r#"{"tier":3}"#, 20).unwrap();
    let boolean = Metadata::parse(r#"{"tier":true}"#, 20).unwrap();
    let other = Metadata::parse(r#"{"tier":"4"}"#, 20).unwrap();
    assert!(d.applies_to(&RequestDims::new("p", "m").with_metadata(&number)));
    assert!(d.applies_to(&RequestDims::new("p", "m").with_metadata(&boolean)));
    assert!(!d.applies_to(&RequestDims::new("p", "m").with_metadata(&other)));
    assert!(!d.applies_to(&RequestDims::new("p", "m")));
}

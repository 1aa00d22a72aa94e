//! Tests of the body rewrite.

use bytes::Bytes;

use super::{byte_span, splice_model};
use crate::route::BodyPeek;

#[test]
fn splice_replaces_only_the_model_value() {
    let body =
        Bytes::from_static(br#"{ "stream":true, "model" : "anthropic/claude-x" ,"messages":[{"model":"keep"}]}"#);
    let peek = BodyPeek::parse(&body).unwrap().unwrap();
    let span = byte_span(&body, peek.model.unwrap().get());
    let out = splice_model(&body, span.clone(), "claude-x");
    assert_eq!(&out[..], br#"{ "stream":true, "model" : "claude-x" ,"messages":[{"model":"keep"}]}"#);
    let quoted = splice_model(&body, span, "we\"ird");
    assert!(std::str::from_utf8(&quoted).unwrap().contains(r#""we\"ird""#));
}

#[test]
fn log_ids_are_unique_version_7_and_ordered_within_a_thread() {
    let ids: Vec<String> = (0..10_000).map(|_| super::new_log_id()).collect();
    let unique: std::collections::HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len());
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids sort by creation");
    let parsed = uuid::Uuid::parse_str(&ids[0]).unwrap();
    assert_eq!(parsed.get_version_num(), 7);
}

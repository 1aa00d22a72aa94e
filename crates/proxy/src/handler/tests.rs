//! Tests of the body rewrite.

use bytes::Bytes;

use super::splice_model;
use crate::route::BodyPeek;

#[test]
fn splice_replaces_only_the_model_value() {
    let body =
        Bytes::from_static(br#"{ "stream":true, "model" : "anthropic/claude-x" ,"messages":[{"model":"keep"}]}"#);
    let peek = BodyPeek::parse(&body).unwrap().unwrap();
    let out = splice_model(&body, peek.model.unwrap().get(), "claude-x");
    assert_eq!(&out[..], br#"{ "stream":true, "model" : "claude-x" ,"messages":[{"model":"keep"}]}"#);
    let quoted = splice_model(&body, peek.model.unwrap().get(), "we\"ird");
    assert!(std::str::from_utf8(&quoted).unwrap().contains(r#""we\"ird""#));
}

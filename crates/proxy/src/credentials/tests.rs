//! Tests of the credential rules, header by header.

use http::HeaderMap;
use tollgate_config::{AuthStyle, Provider, ProviderFamily, Secret};

use super::*;

fn provider(family: ProviderFamily, key: Option<&str>) -> Provider {
    Provider {
        name: "p".into(),
        family,
        base_url: None,
        api_key: key.map(Secret::new),
        zdr_base_url: None,
        hosted: false,
    }
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (k, v) in pairs {
        map.insert(*k, v.parse().unwrap());
    }
    map
}

#[test]
fn token_in_any_sdk_slot_is_swapped() {
    let token = Secret::new("tok");
    for (name, value) in [
        ("authorization", "Bearer tok"),
        ("authorization", "bearer tok"),
        ("x-api-key", "tok"),
        ("x-goog-api-key", "tok"),
        ("api-key", "tok"),
    ] {
        let mut h = headers(&[(name, value)]);
        apply(&mut h, Some(&token), &provider(ProviderFamily::OpenAi, Some("sk")), AuthStyle::Bearer).unwrap();
        assert_eq!(h.get("authorization").unwrap(), "Bearer sk", "{name}");
        assert!(h.get(name).is_none_or(|v| v == "Bearer sk"), "{name}");
    }
}

#[test]
fn wrong_or_missing_credentials() {
    let token = Secret::new("tok");
    let p = provider(ProviderFamily::OpenAi, Some("sk"));
    let mut h = headers(&[]);
    assert!(matches!(apply(&mut h, Some(&token), &p, AuthStyle::Bearer), Err(GatewayError::GatewayAuthRequired)));
    let mut h = headers(&[("cf-aig-authorization", "Bearer nope")]);
    assert!(matches!(apply(&mut h, Some(&token), &p, AuthStyle::Bearer), Err(GatewayError::GatewayAuthInvalid)));
    let mut h = headers(&[("authorization", "Basic abc")]);
    assert!(matches!(apply(&mut h, Some(&token), &p, AuthStyle::Bearer), Err(GatewayError::GatewayAuthInvalid)));
    // Valid cf-aig-authorization but another key in a provider header: that key is the client's own.
    let mut h = headers(&[("cf-aig-authorization", "Bearer tok"), ("x-api-key", "own")]);
    apply(&mut h, Some(&token), &provider(ProviderFamily::Anthropic, Some("stored")), AuthStyle::XApiKey).unwrap();
    assert_eq!(h.get("x-api-key").unwrap(), "own");
    assert_eq!(h.get("anthropic-version").unwrap(), "2023-06-01");
    assert!(h.get("cf-aig-authorization").is_none());
}

#[test]
fn token_in_one_slot_and_an_unvouched_key_in_another_sends_the_stored_key() {
    let token = Secret::new("tok");
    let mut h = headers(&[("authorization", "Bearer tok"), ("x-api-key", "someone-elses")]);
    apply(&mut h, Some(&token), &provider(ProviderFamily::Anthropic, Some("stored")), AuthStyle::XApiKey).unwrap();
    assert_eq!(h.get("x-api-key").unwrap(), "stored");
    assert!(h.get("authorization").is_none());
}

#[test]
fn stored_key_marked_sensitive() {
    let mut h = headers(&[]);
    apply(&mut h, None, &provider(ProviderFamily::Google, Some("g")), AuthStyle::XGoogApiKey).unwrap();
    assert!(h.get("x-goog-api-key").unwrap().is_sensitive());
}

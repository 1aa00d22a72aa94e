//! Credentials and header rules (docs/proxy.md "Credentials", RFC 9110 hop-by-hop), through real sockets.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests fail by panicking")]

mod harness;

use harness::{Harness, chat_body};
use http::StatusCode;
use serde_json::json;

const TOKEN: &str = "gw-token-123";

async fn gated() -> Harness {
    Harness::with_config(&format!("[gateway]\nauth_token = \"{TOKEN}\"\n")).await
}

fn header<'a>(recorded: &'a tollgate_testkit::Recorded, name: &str) -> Option<&'a str> {
    recorded.headers.get(name).map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn without_a_gateway_credential_the_request_is_refused_and_never_reaches_a_provider() {
    let h = gated().await;
    let body = chat_body("gpt-4o-mini", false);
    let response = h.client.post_json("/v1/chat/completions", &[], &body).await;
    assert_eq!(response.status, StatusCode::UNAUTHORIZED);
    assert_eq!(response.json()["error"]["code"], "gateway_auth_required");

    let response = h.client.post_json("/v1/chat/completions", &[("cf-aig-authorization", "Bearer wrong")], &body).await;
    assert_eq!(response.status, StatusCode::UNAUTHORIZED);
    assert_eq!(response.json()["error"]["code"], "gateway_auth_invalid");

    // A provider key of the client's own, without the gateway token, is not enough.
    let response = h.client.post_json("/v1/chat/completions", &[("authorization", "Bearer sk-client")], &body).await;
    assert_eq!(response.status, StatusCode::UNAUTHORIZED);
    assert_eq!(response.json()["error"]["code"], "gateway_auth_invalid");

    // Anthropic and Gemini clients get their own error shapes.
    let response = h
        .client
        .post_json("/v1/messages", &[], &json!({"model": "claude-haiku-4-5", "max_tokens": 1, "messages": []}))
        .await;
    assert_eq!(response.status, StatusCode::UNAUTHORIZED);
    let body = response.json();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "authentication_error");
    assert_eq!(body["error"]["code"], "gateway_auth_required");

    let response =
        h.client.post_json("/google-ai-studio/v1beta/models/gemini-2.5-flash:generateContent", &[], &json!({})).await;
    assert_eq!(response.status, StatusCode::UNAUTHORIZED);
    let body = response.json();
    assert_eq!(body["error"]["status"], "UNAUTHENTICATED");
    assert_eq!(body["error"]["code"], "gateway_auth_required");

    assert!(h.fake.requests().is_empty());
}

#[tokio::test]
async fn the_gateway_token_in_the_sdks_key_slot_is_swapped_for_the_stored_key() {
    let h = gated().await;
    // OpenAI(base_url=..., api_key=GATEWAY_TOKEN)
    let response = h
        .client
        .post_json(
            "/v1/chat/completions",
            &[("authorization", &format!("Bearer {TOKEN}"))],
            &chat_body("gpt-4o", false),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(header(&h.fake.last_request(), "authorization"), Some("Bearer sk-openai-stored"));

    // Anthropic(base_url=..., api_key=GATEWAY_TOKEN)
    let body = json!({"model": "claude-haiku-4-5", "max_tokens": 1, "messages": []});
    let response = h.client.post_json("/v1/messages", &[("x-api-key", TOKEN)], &body).await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(header(&h.fake.last_request(), "x-api-key"), Some("sk-anthropic-stored"));

    // google-genai with api_key=GATEWAY_TOKEN
    let response = h
        .client
        .post_json(
            "/google-ai-studio/v1beta/models/gemini-2.5-flash:generateContent",
            &[("x-goog-api-key", TOKEN)],
            &json!({}),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(header(&h.fake.last_request(), "x-goog-api-key"), Some("google-stored"));

    // cf-aig-authorization alone: the stored key is injected.
    let response = h
        .client
        .post_json(
            "/v1/chat/completions",
            &[("cf-aig-authorization", &format!("Bearer {TOKEN}"))],
            &chat_body("gpt-4o", false),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK);
    let got = h.fake.last_request();
    assert_eq!(header(&got, "authorization"), Some("Bearer sk-openai-stored"));
    assert_eq!(header(&got, "cf-aig-authorization"), None);
}

#[tokio::test]
async fn a_clients_own_key_with_a_valid_gateway_credential_passes_untouched() {
    let h = gated().await;
    let response = h
        .client
        .post_json(
            "/v1/chat/completions",
            &[("cf-aig-authorization", &format!("Bearer {TOKEN}")), ("authorization", "Bearer sk-client-own")],
            &chat_body("gpt-4o", false),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK);
    let got = h.fake.last_request();
    assert_eq!(header(&got, "authorization"), Some("Bearer sk-client-own"));
    for (name, _) in &got.headers {
        assert!(!name.as_str().starts_with("cf-aig-"), "{name} went upstream");
    }
    for (_, value) in &got.headers {
        assert!(!value.to_str().unwrap_or("").contains(TOKEN), "the gateway token went upstream");
    }
}

#[tokio::test]
async fn without_a_gateway_token_client_keys_pass_and_missing_ones_are_injected() {
    let h = Harness::start().await;
    let response = h
        .client
        .post_json("/v1/chat/completions", &[("authorization", "Bearer sk-byok")], &chat_body("gpt-4o", false))
        .await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(header(&h.fake.last_request(), "authorization"), Some("Bearer sk-byok"));

    let response = h.client.post_json("/v1/chat/completions", &[], &chat_body("gpt-4o", false)).await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(header(&h.fake.last_request(), "authorization"), Some("Bearer sk-openai-stored"));
}

#[tokio::test]
async fn gateway_and_hop_by_hop_headers_stay_at_the_gateway() {
    let h = Harness::start().await;
    let response = h
        .client
        .post_json(
            "/v1/chat/completions",
            &[
                ("cf-aig-metadata", r#"{"user_id":"u1"}"#),
                ("cf-aig-event-id", "evt-1"),
                ("cf-aig-cache-ttl", "60"),
                ("cf-aig-collect-log", "true"),
                ("connection", "x-private-hop"),
                ("x-private-hop", "secret"),
                ("te", "trailers"),
                ("proxy-authorization", "Basic abc"),
                ("accept-encoding", "gzip, br"),
                ("x-custom", "kept"),
                ("openai-organization", "org-1"),
            ],
            &chat_body("gpt-4o", false),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK);
    let got = h.fake.last_request();
    for gone in [
        "cf-aig-metadata",
        "cf-aig-event-id",
        "cf-aig-cache-ttl",
        "cf-aig-collect-log",
        "x-private-hop",
        "te",
        "proxy-authorization",
        "accept-encoding",
    ] {
        assert!(got.headers.get(gone).is_none(), "{gone} went upstream");
    }
    assert_eq!(header(&got, "x-custom"), Some("kept"));
    assert_eq!(header(&got, "openai-organization"), Some("org-1"));
    assert_eq!(response.header("x-request-id"), Some("req_fake"), "provider response headers come back");
    let ended = h.recorder.wait_for(1).await;
    assert_eq!(ended[0].event_id.as_deref(), Some("evt-1"));
}

//! Every path shape of docs/proxy.md, through real sockets, against the fake provider.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests fail by panicking")]

mod harness;

use harness::{Harness, chat_body};
use http::{Method, StatusCode};
use serde_json::{Value, json};

fn body_json(recorded: &tollgate_testkit::Recorded) -> Value {
    serde_json::from_slice(&recorded.body).unwrap()
}

fn header<'a>(recorded: &'a tollgate_testkit::Recorded, name: &str) -> Option<&'a str> {
    recorded.headers.get(name).map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn bare_model_goes_to_the_default_provider_unchanged() {
    let h = Harness::start().await;
    let sent = r#"{"model":"gpt-4o-mini",  "messages":[{"role":"user","content":"hi \u2028 there"}]}"#;
    let response =
        h.client.request(Method::POST, "/v1/chat/completions", &[("content-type", "application/json")], sent).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    assert_eq!(response.json()["object"], "chat.completion");
    assert!(response.header("cf-aig-log-id").is_some());
    let got = h.fake.last_request();
    assert_eq!(got.uri, "/openai/v1/chat/completions");
    // Not a byte changed when the model needs no rewrite.
    assert_eq!(got.body, sent.as_bytes());
    assert_eq!(header(&got, "authorization"), Some("Bearer sk-openai-stored"));
}

#[tokio::test]
async fn provider_prefixed_models_go_to_that_providers_openai_endpoint_with_the_bare_name() {
    let h = Harness::start().await;
    let cases = [
        (
            "anthropic/claude-haiku-4-5",
            "/anthropic/v1/chat/completions",
            "claude-haiku-4-5",
            "Bearer sk-anthropic-stored",
        ),
        (
            "google-ai-studio/gemini-2.5-flash",
            "/google/v1beta/openai/chat/completions",
            "gemini-2.5-flash",
            "Bearer google-stored",
        ),
        ("groq/openai/gpt-oss-120b", "/groq/openai/v1/chat/completions", "openai/gpt-oss-120b", "Bearer groq-stored"),
        ("local/llama3", "/local/v1/chat/completions", "llama3", "Bearer local-stored"),
        (
            "mistral/mistral-small-latest",
            "/mistral/v1/chat/completions",
            "mistral-small-latest",
            "Bearer mistral-stored",
        ),
        ("deepseek/deepseek-chat", "/deepseek/chat/completions", "deepseek-chat", "Bearer deepseek-stored"),
        ("xai/grok-4", "/xai/v1/chat/completions", "grok-4", "Bearer xai-stored"),
        (
            "openrouter/openai/gpt-4o",
            "/openrouter/api/v1/chat/completions",
            "openai/gpt-4o",
            "Bearer openrouter-stored",
        ),
        ("vllm/meta-llama/Llama-3.1-8B", "/vllm/v1/chat/completions", "meta-llama/Llama-3.1-8B", "Bearer vllm-stored"),
    ];
    for (model, path, bare, auth) in cases {
        let mut body = chat_body(model, false);
        body["temperature"] = json!(0.25);
        let response = h.client.post_json("/v1/chat/completions", &[], &body).await;
        assert_eq!(response.status, StatusCode::OK, "{model}: {}", response.text());
        let got = h.fake.last_request();
        assert_eq!(got.uri, path, "{model}");
        let sent = body_json(&got);
        assert_eq!(sent["model"], bare, "{model}");
        assert_eq!(sent["temperature"], 0.25, "{model}: other fields are kept");
        assert_eq!(sent["messages"], body["messages"], "{model}");
        assert_eq!(header(&got, "authorization"), Some(auth), "{model}");
    }
}

#[tokio::test]
async fn azure_uses_its_api_key_header() {
    let h = Harness::start().await;
    let response = h.client.post_json("/v1/chat/completions", &[], &chat_body("azure-openai/gpt-4o", false)).await;
    assert_eq!(response.status, StatusCode::OK);
    let got = h.fake.last_request();
    assert_eq!(got.uri, "/azure/openai/v1/chat/completions");
    assert_eq!(header(&got, "api-key"), Some("azure-stored"));
    assert_eq!(header(&got, "authorization"), None);
}

#[tokio::test]
async fn unknown_prefix_on_v1_is_a_model_name_for_the_default_provider() {
    let h = Harness::start().await;
    let response = h.client.post_json("/v1/chat/completions", &[], &chat_body("meta-llama/Llama-3", false)).await;
    assert_eq!(response.status, StatusCode::OK);
    let got = h.fake.last_request();
    assert_eq!(got.uri, "/openai/v1/chat/completions");
    assert_eq!(body_json(&got)["model"], "meta-llama/Llama-3");
}

#[tokio::test]
async fn the_other_openai_drop_in_paths() {
    let h = Harness::start().await;
    let response =
        h.client.post_json("/v1/embeddings", &[], &json!({"model": "text-embedding-3-small", "input": "hello"})).await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.json()["object"], "list");
    assert_eq!(h.fake.last_request().uri, "/openai/v1/embeddings");

    let response =
        h.client.post_json("/v1/completions", &[], &json!({"model": "gpt-3.5-turbo-instruct", "prompt": "a"})).await;
    assert_eq!(response.json()["object"], "text_completion");
    assert_eq!(h.fake.last_request().uri, "/openai/v1/completions");

    let response = h.client.post_json("/v1/responses", &[], &json!({"model": "openai/o4-mini", "input": "2+2"})).await;
    assert_eq!(response.json()["object"], "response");
    let got = h.fake.last_request();
    assert_eq!(got.uri, "/openai/v1/responses");
    assert_eq!(body_json(&got)["model"], "o4-mini");

    let response = h.client.request(Method::GET, "/v1/models", &[], "").await;
    assert_eq!(response.status, StatusCode::OK);
    let got = h.fake.last_request();
    assert_eq!(got.method, Method::GET);
    assert_eq!(got.uri, "/openai/v1/models");
}

#[tokio::test]
async fn anthropic_drop_in_messages() {
    let h = Harness::start().await;
    let body = json!({"model": "claude-haiku-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]});
    let response = h.client.post_json("/v1/messages", &[], &body).await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.json()["type"], "message");
    let got = h.fake.last_request();
    assert_eq!(got.uri, "/anthropic/v1/messages");
    assert_eq!(header(&got, "x-api-key"), Some("sk-anthropic-stored"));
    assert_eq!(header(&got, "anthropic-version"), Some("2023-06-01"));
    assert_eq!(header(&got, "authorization"), None);

    // A client's own anthropic-version is kept.
    let response = h.client.post_json("/v1/messages", &[("anthropic-version", "2024-01-01")], &body).await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(header(&h.fake.last_request(), "anthropic-version"), Some("2024-01-01"));
}

#[tokio::test]
async fn compat_endpoint_needs_provider_slash_model() {
    let h = Harness::start().await;
    let response =
        h.client.post_json("/compat/chat/completions", &[], &chat_body("groq/llama-3.3-70b-versatile", false)).await;
    assert_eq!(response.status, StatusCode::OK);
    let got = h.fake.last_request();
    assert_eq!(got.uri, "/groq/openai/v1/chat/completions");
    assert_eq!(body_json(&got)["model"], "llama-3.3-70b-versatile");

    let before = h.fake.requests().len();
    for (model, needle) in [("gpt-4o", "provider/name"), ("nope/gpt-4o", "\\\"nope\\\"")] {
        let response = h.client.post_json("/compat/chat/completions", &[], &chat_body(model, false)).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{model}");
        let error = &response.json()["error"];
        assert_eq!(error["code"], "unknown_model_prefix", "{model}");
        assert_eq!(error["param"], "model");
        assert!(response.text().contains(needle), "{model}: {}", response.text());
    }
    assert_eq!(h.fake.requests().len(), before, "refused requests never reach a provider");
}

#[tokio::test]
async fn passthrough_appends_the_rest_and_the_query_to_the_base_url() {
    let h = Harness::start().await;
    let response = h.client.post_json("/openai/chat/completions", &[], &chat_body("gpt-4o-mini", false)).await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(h.fake.last_request().uri, "/openai/v1/chat/completions");

    let body = json!({"model": "claude-haiku-4-5", "max_tokens": 5, "messages": []});
    let response = h.client.post_json("/anthropic/v1/messages", &[], &body).await;
    assert_eq!(response.status, StatusCode::OK);
    let got = h.fake.last_request();
    assert_eq!(got.uri, "/anthropic/v1/messages");
    assert_eq!(header(&got, "x-api-key"), Some("sk-anthropic-stored"));

    let gemini = json!({"contents": [{"parts": [{"text": "hi"}]}]});
    let response = h
        .client
        .post_json("/google-ai-studio/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", &[], &gemini)
        .await;
    assert_eq!(response.status, StatusCode::OK);
    assert!(response.text().contains("\r\n\r\n"), "Gemini's CRLF framing reaches the client as sent");
    let got = h.fake.last_request();
    assert_eq!(got.uri, "/google/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse");
    assert_eq!(header(&got, "x-goog-api-key"), Some("google-stored"));
    let ended = h.recorder.wait_for(3).await;
    let last = ended.iter().find(|e| e.path.contains("gemini")).unwrap();
    assert_eq!(last.model.as_deref(), Some("gemini-2.5-flash"));
    assert!(last.stream);

    // A passthrough body need not be JSON.
    let response = h
        .client
        .request(Method::POST, "/openai/files", &[("content-type", "multipart/form-data; boundary=x")], "--x--")
        .await;
    assert_eq!(response.status, StatusCode::NOT_FOUND, "the fake answers 404 for paths it does not know");
    assert_eq!(h.fake.last_request().body, "--x--");
}

#[tokio::test]
async fn every_builtin_provider_passes_through_with_its_auth_style() {
    let h = Harness::start().await;
    let cases = [
        ("openai", "/openai/v1/chat/completions", "authorization", "Bearer sk-openai-stored"),
        ("groq", "/groq/openai/v1/chat/completions", "authorization", "Bearer groq-stored"),
        ("mistral", "/mistral/v1/chat/completions", "authorization", "Bearer mistral-stored"),
        ("deepseek", "/deepseek/chat/completions", "authorization", "Bearer deepseek-stored"),
        ("xai", "/xai/v1/chat/completions", "authorization", "Bearer xai-stored"),
        ("openrouter", "/openrouter/api/v1/chat/completions", "authorization", "Bearer openrouter-stored"),
        ("azure-openai", "/azure/openai/v1/chat/completions", "api-key", "azure-stored"),
        ("vllm", "/vllm/v1/chat/completions", "authorization", "Bearer vllm-stored"),
        ("local", "/local/v1/chat/completions", "authorization", "Bearer local-stored"),
    ];
    for (provider, upstream, auth_header, auth) in cases {
        let response = h.client.post_json(&format!("/{provider}/chat/completions"), &[], &chat_body("m", false)).await;
        assert_eq!(response.status, StatusCode::OK, "{provider}");
        let got = h.fake.last_request();
        assert_eq!(got.uri, upstream, "{provider}");
        assert_eq!(header(&got, auth_header), Some(auth), "{provider}");
    }
    // ollama has no stored key: nothing is injected.
    let response = h.client.post_json("/ollama/chat/completions", &[], &chat_body("llama3", false)).await;
    assert_eq!(response.status, StatusCode::OK);
    let got = h.fake.last_request();
    assert_eq!(got.uri, "/ollama/v1/chat/completions");
    assert_eq!(header(&got, "authorization"), None);
}

#[tokio::test]
async fn cloudflare_url_shape_names_the_gateway() {
    let h = Harness::start().await;
    let response =
        h.client.post_json("/v1/acct123/my-gw/openai/chat/completions", &[], &chat_body("gpt-4o-mini", false)).await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(h.fake.last_request().uri, "/openai/v1/chat/completions");

    let response = h
        .client
        .post_json("/v1/acct123/other-gw/compat/chat/completions", &[], &chat_body("anthropic/claude-haiku-4-5", false))
        .await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(h.fake.last_request().uri, "/anthropic/v1/chat/completions");

    let response = h.client.post_json("/v1/chat/completions", &[], &chat_body("gpt-4o-mini", false)).await;
    assert_eq!(response.status, StatusCode::OK);

    let ended = h.recorder.wait_for(3).await;
    let gateways: Vec<&str> = ended.iter().map(|e| e.gateway.as_str()).collect();
    assert_eq!(gateways, ["my-gw", "other-gw", "default"]);
}

#[tokio::test]
async fn dynamic_route_uses_its_first_candidate_and_says_so() {
    let h = Harness::start().await;
    let response = h.client.post_json("/v1/chat/completions", &[], &chat_body("dynamic/cheap-first", false)).await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.header("cf-aig-step"), Some("0"));
    assert_eq!(response.header("cf-aig-provider"), Some("anthropic"));
    assert_eq!(response.header("cf-aig-model"), Some("claude-haiku-4-5"));
    let got = h.fake.last_request();
    assert_eq!(got.uri, "/anthropic/v1/chat/completions");
    assert_eq!(body_json(&got)["model"], "claude-haiku-4-5");

    let response = h.client.post_json("/v1/chat/completions", &[], &chat_body("dynamic/nope", false)).await;
    assert_eq!(response.status, StatusCode::NOT_FOUND);
    assert_eq!(response.json()["error"]["code"], "unknown_route");
}

#[tokio::test]
async fn unknown_providers_and_routes_are_404_in_the_clients_format() {
    let h = Harness::start().await;
    let response = h.client.post_json("/nope/chat/completions", &[], &chat_body("m", false)).await;
    assert_eq!(response.status, StatusCode::NOT_FOUND);
    assert_eq!(response.json()["error"]["code"], "unknown_provider");

    for path in ["/", "/healthz", "/v1/unknown", "/compat/embeddings"] {
        let response = h.client.request(Method::GET, path, &[], "").await;
        assert_eq!(response.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(response.json()["error"]["code"], "unknown_route", "{path}");
        assert!(response.header("cf-aig-log-id").is_some());
    }
    assert!(h.fake.requests().is_empty());
}

#[tokio::test]
async fn zdr_goes_to_the_zdr_base_or_is_refused() {
    let h = Harness::start().await;
    let response =
        h.client.post_json("/v1/chat/completions", &[("cf-aig-zdr", "true")], &chat_body("gpt-4o-mini", false)).await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(h.fake.last_request().uri, "/openai-zdr/v1/chat/completions");

    let response =
        h.client.post_json("/v1/chat/completions", &[("cf-aig-zdr", "true")], &chat_body("groq/llama", false)).await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    let error = &response.json()["error"];
    assert_eq!(error["code"], "invalid_header");
    assert!(error["message"].as_str().unwrap().contains("zdr_base_url"));
    assert_eq!(h.fake.requests().len(), 1, "never a silent fallback to the normal base URL");

    let response =
        h.client.post_json("/v1/chat/completions", &[("cf-aig-zdr", "false")], &chat_body("groq/llama", false)).await;
    assert_eq!(response.status, StatusCode::OK);
}

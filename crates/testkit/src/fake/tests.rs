//! Tests of the fake provider's path handling.

use super::*;

#[test]
fn the_fake_routes_on_the_path_a_decoding_server_sees() {
    for (raw, served) in [
        ("/openai/v1/chat/completion%73", "/openai/v1/chat/completions"),
        ("/anthropic/v1/messag%65s", "/anthropic/v1/messages"),
        (
            "/google/v1beta/models/gemini-2.5-pro%3AgenerateContent",
            "/google/v1beta/models/gemini-2.5-pro:generateContent",
        ),
        ("/anthropic/v1/messages/../messages", "/anthropic/v1/messages"),
        ("/anthropic/v1/messages/", "/anthropic/v1/messages"),
        ("/local/v1/../../x", "/x"),
        ("/a/%2e%2e/b%2Fc", "/b/c"),
        ("/a/./b//c", "/a/b/c"),
    ] {
        assert_eq!(served_path(raw), served, "{raw}");
    }
    assert_eq!(Api::from_path(&served_path("/google/v1beta/models/g%3AgenerateContent")), Some(Api::GeminiGenerate));
    assert_eq!(Api::from_path("/anthropic/v1/chat/completions"), Some(Api::Chat));
    assert_eq!(Api::from_path("/google/v1beta/openai/chat/completions"), Some(Api::Chat));
}

#[tokio::test]
async fn the_providers_openai_compatible_chat_endpoints_answer_in_openai_shape() {
    let fake = FakeProvider::start().await;
    let client = crate::TestClient::new(fake.url());
    for path in ["/anthropic/v1/chat/completions", "/google/v1beta/openai/chat/completions"] {
        let body = serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
        let response = client.post_json(path, &[], &body).await;
        assert_eq!(response.status, StatusCode::OK, "{path}");
        assert_eq!(response.json()["object"], "chat.completion", "{path}");
        assert!(response.json()["usage"]["prompt_tokens"].as_u64().unwrap() > 0, "{path}");

        let mut streamed = body.clone();
        streamed["stream"] = serde_json::json!(true);
        let text = client.post_json(path, &[], &streamed).await.text();
        assert!(!text.contains("prompt_tokens"), "{path}: no usage unless include_usage is asked for");
        streamed["stream_options"] = serde_json::json!({"include_usage": true});
        let text = client.post_json(path, &[], &streamed).await.text();
        assert!(text.contains("prompt_tokens"), "{path}: usage when include_usage is asked for");
        assert!(text.ends_with("data: [DONE]\n\n"), "{path}");
    }
    // An encoded spelling is served like the plain one.
    let response = client
        .post_json("/anthropic/v1/messag%65s", &[], &serde_json::json!({"model": "claude-haiku-4-5", "messages": []}))
        .await;
    assert_eq!(response.json()["type"], "message");
}

#[test]
fn the_model_a_path_names() {
    assert_eq!(model_in_path("/google/v1beta/models/gemini-2.5-pro:generateContent"), "gemini-2.5-pro");
    assert_eq!(model_in_path("/azure/openai/deployments/gpt-4o/chat/completions"), "gpt-4o");
    assert_eq!(model_in_path("/openai/v1/chat/completions"), "");
}

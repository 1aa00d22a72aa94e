//! Tests of usage normalisation and the choice of API format by path.

use super::{ApiFormat, Family, RawUsage, Usage, UsageSnapshot};

fn snapshot(objects: &[&str]) -> UsageSnapshot {
    let mut snapshot = UsageSnapshot::default();
    for object in objects {
        snapshot.merge(serde_json::from_str::<RawUsage>(object).unwrap());
    }
    snapshot
}

#[test]
fn formats_are_chosen_by_path() {
    let cases = [
        ("/v1/chat/completions", Some(ApiFormat::OpenAiChat)),
        ("/compat/chat/completions", Some(ApiFormat::OpenAiChat)),
        ("/openai/deployments/gpt4/chat/completions?api-version=2024-10-21", Some(ApiFormat::OpenAiChat)),
        ("/v1/completions", Some(ApiFormat::OpenAiCompletions)),
        ("/v1/embeddings", Some(ApiFormat::OpenAiEmbeddings)),
        ("/v1/responses", Some(ApiFormat::OpenAiResponses)),
        ("/anthropic/v1/messages", Some(ApiFormat::AnthropicMessages)),
        ("/v1beta/models/gemini-2.5-flash:generateContent", Some(ApiFormat::GeminiGenerate)),
        (
            "/google-ai-studio/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
            Some(ApiFormat::GeminiGenerate),
        ),
        ("/v1/models", None),
        ("/v1/messages/count_tokens", None),
    ];
    for (path, expected) in cases {
        assert_eq!(ApiFormat::from_path(path), expected, "{path}");
    }
}

#[test]
fn openai_cached_and_cache_write_are_subsets_of_prompt() {
    let usage = snapshot(&[
        r#"{"prompt_tokens":1000,"completion_tokens":50,"prompt_tokens_details":{"cached_tokens":600,"cache_write_tokens":300},"completion_tokens_details":{"reasoning_tokens":20}}"#,
    ])
    .normalise(Family::OpenAi);
    assert_eq!(
        usage,
        Usage { input: 100, cache_read: 600, cache_write_5m: 300, output: 50, reasoning: 20, ..Usage::default() }
    );
}

#[test]
fn anthropic_input_excludes_cache_and_falls_back_to_5m_writes() {
    let usage = snapshot(&[
        r#"{"input_tokens":5,"cache_creation_input_tokens":100,"cache_read_input_tokens":7,"output_tokens":3}"#,
    ])
    .normalise(Family::Anthropic);
    assert_eq!((usage.input, usage.cache_write_5m, usage.cache_write_1h, usage.cache_read), (5, 100, 0, 7));
}

#[test]
fn last_non_null_value_wins_per_field() {
    let usage = snapshot(&[
        r#"{"input_tokens":25,"cache_read_input_tokens":10,"output_tokens":1,"server_tool_use":{"web_search_requests":1}}"#,
        r#"{"output_tokens":40,"input_tokens":null}"#,
        r#"{"output_tokens":90,"server_tool_use":{"web_search_requests":2}}"#,
    ])
    .normalise(Family::Anthropic);
    assert_eq!((usage.input, usage.cache_read, usage.output, usage.web_search_requests), (25, 10, 90, 2));
}

#[test]
fn gemini_thoughts_and_tool_prompt_are_added() {
    let usage = snapshot(&[
        r#"{"promptTokenCount":100,"cachedContentTokenCount":40,"candidatesTokenCount":5,"thoughtsTokenCount":7,"toolUsePromptTokenCount":3}"#,
    ])
    .normalise(Family::Gemini);
    assert_eq!((usage.input, usage.cache_read, usage.output, usage.reasoning), (63, 40, 12, 7));
}

#[test]
fn deepseek_hit_and_miss_win_over_cached_tokens() {
    let usage = snapshot(&[
        r#"{"prompt_tokens":100,"completion_tokens":5,"prompt_tokens_details":{"cached_tokens":64},"prompt_cache_hit_tokens":64,"prompt_cache_miss_tokens":36}"#,
    ])
    .normalise(Family::OpenAi);
    assert_eq!((usage.input, usage.cache_read, usage.output), (36, 64, 5));
}

#[test]
fn counters_never_underflow() {
    let usage =
        snapshot(&[r#"{"prompt_tokens":10,"prompt_tokens_details":{"cached_tokens":50}}"#]).normalise(Family::OpenAi);
    assert_eq!(usage.input, 0);
    assert_eq!(Usage { input: u64::MAX, cache_read: 5, ..Usage::default() }.prompt_total(), u64::MAX);
}

#[test]
fn empty_snapshot_is_empty() {
    assert!(snapshot(&["{}"]).is_empty());
    assert!(snapshot(&[r#"{"service_tier":"standard"}"#]).is_empty());
    assert!(!snapshot(&[r#"{"output_tokens":0}"#]).is_empty());
}

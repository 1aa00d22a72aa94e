//! Tests of the usage tap against every fixture, whole and split at every byte boundary.

use proptest::prelude::*;

use super::{Observation, UsageTap};
use crate::usage::{ApiFormat, Usage};

macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!("../../tests/fixtures/", $name)).as_slice()
    };
}

fn observe(format: ApiFormat, streaming: bool, chunks: &[&[u8]]) -> Observation {
    let mut tap = UsageTap::new(format, streaming);
    for chunk in chunks {
        tap.observe(chunk);
    }
    tap.finish()
}

/// Observes `bytes` whole, split in two at every byte boundary, and one byte at a time; all must agree.
fn observe_every_split(format: ApiFormat, streaming: bool, bytes: &[u8]) -> Observation {
    let whole = observe(format, streaming, &[bytes]);
    for at in 0..=bytes.len() {
        let (head, tail) = bytes.split_at(at);
        assert_eq!(observe(format, streaming, &[head, tail]), whole, "split at byte {at}");
    }
    let bytewise: Vec<&[u8]> = bytes.chunks(1).collect();
    assert_eq!(observe(format, streaming, &bytewise), whole, "one byte at a time");
    whole
}

fn usage(input: u64, cache_read: u64, output: u64) -> Usage {
    Usage { input, cache_read, output, ..Usage::default() }
}

#[test]
fn openai_chat_nonstream() {
    let seen = observe_every_split(ApiFormat::OpenAiChat, false, fixture!("openai_chat_nonstream.json"));
    let expected = Usage { service_tier: Some("default".into()), ..usage(226, 1024, 42) };
    assert_eq!(seen.usage, Some(expected));
    assert_eq!(seen.model.as_deref(), Some("gpt-4.1-mini-2025-04-14"));
    assert!(seen.terminal);
    assert_eq!(seen.upstream_error, None);
    assert_eq!(seen.output_chars, 6);
}

#[test]
fn openai_chat_stream_with_usage_chunk() {
    let seen = observe_every_split(ApiFormat::OpenAiChat, true, fixture!("openai_chat_stream_usage.sse"));
    assert_eq!(seen.usage, Some(usage(12, 0, 3)));
    assert_eq!(seen.model.as_deref(), Some("gpt-4o-mini-2024-07-18"));
    assert!(seen.terminal);
    assert_eq!((seen.output_chars, seen.output_bytes), (3, 3));
}

#[test]
fn openai_chat_stream_mid_stream_error() {
    let seen = observe_every_split(ApiFormat::OpenAiChat, true, fixture!("openai_chat_stream_error.sse"));
    assert_eq!(seen.usage, None);
    assert!(!seen.terminal);
    assert_eq!(
        seen.upstream_error.as_deref(),
        Some("server_error: The server had an error while processing your request.")
    );
    assert_eq!(seen.output_chars, 3);
}

#[test]
fn openai_chat_stream_cut_without_terminal() {
    let seen = observe_every_split(ApiFormat::OpenAiChat, true, fixture!("openai_chat_stream_cut.sse"));
    assert_eq!(seen.usage, None);
    assert!(!seen.terminal);
    assert_eq!(seen.upstream_error, None);
    assert_eq!(seen.output_chars, 3);
}

#[test]
fn openai_responses_nonstream() {
    let seen = observe_every_split(ApiFormat::OpenAiResponses, false, fixture!("openai_responses_nonstream.json"));
    let expected = Usage { reasoning: 256, service_tier: Some("default".into()), ..usage(52, 2048, 260) };
    assert_eq!(seen.usage, Some(expected));
    assert_eq!(seen.model.as_deref(), Some("o4-mini-2025-04-16"));
    assert!(seen.terminal);
    assert_eq!(seen.output_chars, 1);
}

#[test]
fn openai_responses_stream_completed() {
    let seen = observe_every_split(ApiFormat::OpenAiResponses, true, fixture!("openai_responses_stream.sse"));
    assert_eq!(seen.usage, Some(usage(9, 0, 1)));
    assert_eq!(seen.model.as_deref(), Some("gpt-4.1-nano-2025-04-14"));
    assert!(seen.terminal);
    assert_eq!(seen.output_chars, 5, "only deltas count, not the completed response's copy");
}

#[test]
fn openai_responses_stream_incomplete_carries_usage() {
    let seen = observe_every_split(ApiFormat::OpenAiResponses, true, fixture!("openai_responses_incomplete.sse"));
    assert_eq!(seen.usage, Some(usage(9, 0, 16)));
    assert!(seen.terminal);
    assert_eq!(seen.upstream_error, None);
}

#[test]
fn openai_responses_stream_failed_carries_usage_and_error() {
    let seen = observe_every_split(ApiFormat::OpenAiResponses, true, fixture!("openai_responses_failed.sse"));
    assert_eq!(seen.usage, Some(usage(9, 0, 1)));
    assert!(seen.terminal);
    assert_eq!(seen.upstream_error.as_deref(), Some("server_error: The model failed to generate a response."));
}

#[test]
fn openai_responses_stream_error_event() {
    let seen = observe_every_split(ApiFormat::OpenAiResponses, true, fixture!("openai_responses_error_event.sse"));
    assert_eq!(seen.usage, None);
    assert!(!seen.terminal);
    assert_eq!(seen.upstream_error.as_deref(), Some("rate_limit_exceeded: Slow down."));
}

#[test]
fn openai_completions_nonstream_and_stream() {
    let seen = observe_every_split(ApiFormat::OpenAiCompletions, false, fixture!("openai_completions_nonstream.json"));
    assert_eq!(seen.usage, Some(usage(5, 0, 4)));
    assert_eq!(seen.output_chars, 8);
    let seen = observe_every_split(ApiFormat::OpenAiCompletions, true, fixture!("openai_completions_stream.sse"));
    assert_eq!(seen.usage, Some(usage(5, 0, 1)));
    assert!(seen.terminal);
    assert_eq!(seen.model.as_deref(), Some("gpt-3.5-turbo-instruct"));
    assert_eq!(seen.output_chars, 2);
}

#[test]
fn openai_embeddings_prompt_tokens_only() {
    let seen = observe_every_split(ApiFormat::OpenAiEmbeddings, false, fixture!("openai_embeddings.json"));
    assert_eq!(seen.usage, Some(usage(8, 0, 0)));
    assert_eq!(seen.model.as_deref(), Some("text-embedding-3-small"));
    assert!(seen.terminal);
    assert_eq!(seen.output_chars, 0);
}

#[test]
fn anthropic_nonstream() {
    let seen = observe_every_split(ApiFormat::AnthropicMessages, false, fixture!("anthropic_nonstream.json"));
    let expected = Usage { cache_write_5m: 1800, service_tier: Some("standard".into()), ..usage(21, 4000, 9) };
    assert_eq!(seen.usage, Some(expected));
    assert_eq!(seen.model.as_deref(), Some("claude-sonnet-4-5-20250929"));
    assert!(seen.terminal);
    assert_eq!(seen.output_chars, 6);
}

#[test]
fn anthropic_one_hour_cache_split() {
    let seen = observe_every_split(ApiFormat::AnthropicMessages, false, fixture!("anthropic_cache_1h.json"));
    let expected = Usage {
        cache_write_5m: 1000,
        cache_write_1h: 2000,
        service_tier: Some("standard".into()),
        ..usage(10, 500, 20)
    };
    assert_eq!(seen.usage, Some(expected));
}

#[test]
fn anthropic_stream_delta_overwrites_start() {
    let seen = observe_every_split(ApiFormat::AnthropicMessages, true, fixture!("anthropic_stream.sse"));
    let expected = Usage { service_tier: Some("standard".into()), ..usage(25, 0, 4) };
    assert_eq!(seen.usage, Some(expected));
    assert_eq!(seen.model.as_deref(), Some("claude-haiku-4-5-20251001"));
    assert!(seen.terminal);
    assert_eq!(seen.output_chars, 8);
}

#[test]
fn anthropic_stream_error_event_keeps_start_usage() {
    let seen = observe_every_split(ApiFormat::AnthropicMessages, true, fixture!("anthropic_stream_error.sse"));
    assert_eq!(seen.usage.map(|usage| (usage.input, usage.output)), Some((25, 1)));
    assert!(!seen.terminal);
    assert_eq!(seen.upstream_error.as_deref(), Some("overloaded_error: Overloaded"));
}

#[test]
fn anthropic_stream_cut_keeps_start_usage() {
    let seen = observe_every_split(ApiFormat::AnthropicMessages, true, fixture!("anthropic_stream_cut.sse"));
    assert_eq!(seen.usage.map(|usage| (usage.input, usage.output)), Some((25, 1)));
    assert!(!seen.terminal);
    assert_eq!(seen.upstream_error, None);
}

#[test]
fn gemini_nonstream() {
    let seen = observe_every_split(ApiFormat::GeminiGenerate, false, fixture!("gemini_nonstream.json"));
    let expected = Usage { reasoning: 100, ..usage(176, 1024, 103) };
    assert_eq!(seen.usage, Some(expected));
    assert_eq!(seen.model.as_deref(), Some("gemini-2.5-flash"));
    assert!(seen.terminal);
}

#[test]
fn gemini_crlf_stream_running_totals() {
    let seen = observe_every_split(ApiFormat::GeminiGenerate, true, fixture!("gemini_stream.sse"));
    let expected = Usage { reasoning: 28, ..usage(8, 0, 31) };
    assert_eq!(seen.usage, Some(expected));
    assert!(seen.terminal);
    assert_eq!(seen.output_chars, 6);
}

#[test]
fn gemini_raw_json_error_mid_stream() {
    let seen = observe_every_split(ApiFormat::GeminiGenerate, true, fixture!("gemini_stream_raw_error.sse"));
    assert_eq!(seen.usage, Some(usage(8, 0, 0)));
    assert!(!seen.terminal);
    assert_eq!(seen.upstream_error.as_deref(), Some("UNAVAILABLE: The model is overloaded. Please try again later."));
}

#[test]
fn plain_json_error_body_on_a_stream_request() {
    let body = b"{\"error\":{\"message\":\"Rate limit\",\"type\":\"requests\",\"param\":null,\"code\":\"rate_limit_exceeded\"}}";
    let seen = observe_every_split(ApiFormat::OpenAiChat, true, body);
    assert_eq!(seen.upstream_error.as_deref(), Some("requests: Rate limit"));
    let seen = observe_every_split(ApiFormat::OpenAiChat, false, body);
    assert_eq!(seen.upstream_error.as_deref(), Some("requests: Rate limit"));
    assert!(!seen.terminal);
}

#[test]
fn groq_double_usage_counted_once() {
    let seen = observe_every_split(ApiFormat::OpenAiChat, true, fixture!("groq_stream_double_usage.sse"));
    assert_eq!(seen.usage, Some(usage(40, 0, 10)));
    assert_eq!(seen.model.as_deref(), Some("llama-3.3-70b-versatile"));
    assert!(seen.terminal);
}

#[test]
fn xai_usage_on_second_to_last_chunk() {
    let seen = observe_every_split(ApiFormat::OpenAiChat, true, fixture!("xai_stream_second_to_last.sse"));
    let expected = Usage { reasoning: 300, ..usage(24, 6, 320) };
    assert_eq!(seen.usage, Some(expected));
    assert!(seen.terminal);
}

#[test]
fn deepseek_hit_miss() {
    let seen = observe_every_split(ApiFormat::OpenAiChat, true, fixture!("deepseek_stream_hit_miss.sse"));
    assert_eq!(seen.usage, Some(usage(76, 1024, 50)));
}

#[test]
fn mistral_usage_on_last_content_chunk() {
    let seen = observe_every_split(ApiFormat::OpenAiChat, true, fixture!("mistral_stream_last_chunk.sse"));
    assert_eq!(seen.usage, Some(usage(7, 0, 3)));
    assert_eq!(seen.model.as_deref(), Some("mistral-small-latest"));
    assert_eq!(seen.output_chars, 8);
}

#[test]
fn azure_filter_chunk_is_not_usage() {
    let seen = observe_every_split(ApiFormat::OpenAiChat, true, fixture!("azure_stream_filter_chunk.sse"));
    assert_eq!(seen.usage, Some(usage(20, 0, 2)));
    assert_eq!(seen.model.as_deref(), Some("gpt-4o-2024-11-20"));
    assert_eq!(seen.upstream_error, None);
}

#[test]
fn openrouter_comments_are_ignored() {
    let seen = observe_every_split(ApiFormat::OpenAiChat, true, fixture!("openrouter_stream_comments.sse"));
    assert_eq!(seen.usage, Some(usage(100, 0, 5)));
    assert_eq!(seen.model.as_deref(), Some("anthropic/claude-sonnet-4.5"));
    assert!(seen.terminal);
}

#[test]
fn openrouter_mid_stream_error() {
    let seen = observe_every_split(ApiFormat::OpenAiChat, true, fixture!("openrouter_stream_error.sse"));
    assert_eq!(seen.usage, None);
    assert_eq!(seen.upstream_error.as_deref(), Some("502: Provider disconnected"));
    assert!(!seen.terminal);
}

#[test]
fn usage_text_inside_content_is_not_usage() {
    let body = b"data: {\"choices\":[{\"delta\":{\"content\":\"\\\"usage\\\":{\\\"prompt_tokens\\\":9}\"}}]}\n\n";
    let seen = observe_every_split(ApiFormat::OpenAiChat, true, body);
    assert_eq!(seen.usage, None);
}

#[test]
fn oversized_nonstream_body_is_reported_truncated() {
    let mut tap = UsageTap::new(ApiFormat::OpenAiChat, false);
    let chunk = vec![b' '; 1024 * 1024];
    for _ in 0..33 {
        tap.observe(&chunk);
    }
    tap.observe(br#"{"usage":{"prompt_tokens":1}}"#);
    let seen = tap.finish();
    assert!(seen.truncated);
    assert_eq!(seen.usage, None);
}

#[test]
fn service_tier_is_taken_from_the_chunk() {
    let body = b"data: {\"service_tier\":\"priority\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1}}\n\ndata: [DONE]\n\n";
    let seen = observe_every_split(ApiFormat::OpenAiChat, true, body);
    assert_eq!(seen.usage.and_then(|usage| usage.service_tier).as_deref(), Some("priority"));
}

fn every_fixture() -> Vec<(ApiFormat, bool, &'static [u8])> {
    vec![
        (ApiFormat::OpenAiChat, true, fixture!("openai_chat_stream_usage.sse")),
        (ApiFormat::OpenAiChat, true, fixture!("groq_stream_double_usage.sse")),
        (ApiFormat::OpenAiChat, true, fixture!("azure_stream_filter_chunk.sse")),
        (ApiFormat::OpenAiResponses, true, fixture!("openai_responses_failed.sse")),
        (ApiFormat::AnthropicMessages, true, fixture!("anthropic_stream.sse")),
        (ApiFormat::AnthropicMessages, true, fixture!("anthropic_stream_error.sse")),
        (ApiFormat::GeminiGenerate, true, fixture!("gemini_stream.sse")),
        (ApiFormat::GeminiGenerate, true, fixture!("gemini_stream_raw_error.sse")),
        (ApiFormat::GeminiGenerate, false, fixture!("gemini_nonstream.json")),
    ]
}

proptest! {
    #[test]
    fn observation_does_not_depend_on_splits(
        which in 0usize..9,
        raw_points in proptest::collection::vec(any::<prop::sample::Index>(), 0..16),
    ) {
        let (format, streaming, bytes) = every_fixture()[which];
        let mut points: Vec<usize> = raw_points.iter().map(|index| index.index(bytes.len() + 1)).collect();
        points.sort_unstable();
        points.dedup();
        let mut chunks = Vec::new();
        let mut start = 0;
        for point in points {
            chunks.push(&bytes[start..point]);
            start = point;
        }
        chunks.push(&bytes[start..]);
        prop_assert_eq!(observe(format, streaming, &chunks), observe(format, streaming, &[bytes]));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512), streaming: bool) {
        for format in [ApiFormat::OpenAiChat, ApiFormat::OpenAiResponses, ApiFormat::AnthropicMessages, ApiFormat::GeminiGenerate] {
            let _ = observe(format, streaming, &[&bytes]);
        }
    }
}

/// A Gemini function call whose arguments (written by the model, steerable by the prompt) hold keys that look
/// like the response's own `modelVersion` and `usageMetadata`, ahead of the real ones.
const GEMINI_STEERED_ARGS: &str = r#"{"functionCall":{"name":"lookup","args":{"modelVersion":"free","model":"gemini-2.5-flash-lite","usageMetadata":{"cachedContentTokenCount":1000,"promptTokenCount":1,"candidatesTokenCount":1},"finishReason":"STOP"}}}"#;

#[test]
fn s9_gemini_function_call_args_do_not_steer_the_price() {
    let body = format!(
        r#"{{"candidates":[{{"content":{{"role":"model","parts":[{GEMINI_STEERED_ARGS}]}},"finishReason":"STOP","index":0}}],"usageMetadata":{{"promptTokenCount":2000,"candidatesTokenCount":10,"totalTokenCount":2010}},"modelVersion":"gemini-2.5-pro","responseId":"r1"}}"#
    );
    let seen = observe_every_split(ApiFormat::GeminiGenerate, false, body.as_bytes());
    assert_eq!(seen.usage, Some(usage(2000, 0, 10)), "no cached tokens from the args");
    assert_eq!(seen.model.as_deref(), Some("gemini-2.5-pro"));
}

#[test]
fn s9_gemini_stream_function_call_args_do_not_steer_the_price() {
    let first = format!(
        r#"data: {{"candidates":[{{"content":{{"role":"model","parts":[{GEMINI_STEERED_ARGS}]}},"index":0}}],"usageMetadata":{{"promptTokenCount":2000,"totalTokenCount":2000}},"modelVersion":"gemini-2.5-pro","responseId":"r2"}}"#
    );
    // A cut stream: the model's `finishReason` inside the args must not make it look complete.
    let cut = format!("{first}\r\n\r\n");
    let seen = observe_every_split(ApiFormat::GeminiGenerate, true, cut.as_bytes());
    assert_eq!(seen.usage, Some(usage(2000, 0, 0)));
    assert_eq!(seen.model.as_deref(), Some("gemini-2.5-pro"));
    assert!(!seen.terminal);
    let last = r#"data: {"candidates":[{"content":{"role":"model","parts":[{"text":"done"}]},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":2000,"candidatesTokenCount":12,"totalTokenCount":2012},"modelVersion":"gemini-2.5-pro","responseId":"r2"}"#;
    let stream = format!("{first}\r\n\r\n{last}\r\n\r\n");
    let seen = observe_every_split(ApiFormat::GeminiGenerate, true, stream.as_bytes());
    assert_eq!(seen.usage, Some(usage(2000, 0, 12)));
    assert_eq!(seen.model.as_deref(), Some("gemini-2.5-pro"));
    assert!(seen.terminal);
}

#[test]
fn s9_responses_echoed_tools_do_not_set_the_tier_model_or_usage() {
    let body = br#"{"id":"resp_1","object":"response","status":"completed","model":"gpt-5-2025-08-07","service_tier":"default","output":[{"type":"message","role":"assistant","content":[{"type":"output_text","text":"ok"}]}],"tools":[{"type":"function","name":"f","parameters":{"type":"object","service_tier":"flex","model":"gpt-5-nano","usage":{"input_tokens":1,"input_tokens_details":{"cached_tokens":1000000}},"properties":{}}}],"text":{"format":{"type":"json_schema","schema":{"service_tier":"flex"}}},"usage":{"input_tokens":1000,"output_tokens":10,"total_tokens":1010}}"#;
    let seen = observe_every_split(ApiFormat::OpenAiResponses, false, body);
    let expected = Usage { service_tier: Some("default".into()), ..usage(1000, 0, 10) };
    assert_eq!(seen.usage, Some(expected));
    assert_eq!(seen.model.as_deref(), Some("gpt-5-2025-08-07"));
}

#[test]
fn s9_responses_stream_reads_the_response_object_only() {
    let stream = "event: response.created\n\
data: {\"type\":\"response.created\",\"response\":{\"id\":\"r\",\"status\":\"in_progress\",\"model\":\"gpt-5-2025-08-07\",\"service_tier\":\"auto\",\"tools\":[{\"type\":\"function\",\"parameters\":{\"service_tier\":\"flex\"}}],\"usage\":null}}\n\n\
event: response.output_item.added\n\
data: {\"type\":\"response.output_item.added\",\"item\":{\"type\":\"function_call\",\"model\":\"gpt-5-nano\",\"usage\":{\"input_tokens\":1}}}\n\n\
event: response.completed\n\
data: {\"type\":\"response.completed\",\"response\":{\"id\":\"r\",\"status\":\"completed\",\"model\":\"gpt-5-2025-08-07\",\"service_tier\":\"default\",\"tools\":[{\"type\":\"function\",\"parameters\":{\"service_tier\":\"flex\"}}],\"usage\":{\"input_tokens\":50,\"output_tokens\":5,\"total_tokens\":55}}}\n\n";
    let seen = observe_every_split(ApiFormat::OpenAiResponses, true, stream.as_bytes());
    let expected = Usage { service_tier: Some("default".into()), ..usage(50, 0, 5) };
    assert_eq!(seen.usage, Some(expected));
    assert_eq!(seen.model.as_deref(), Some("gpt-5-2025-08-07"));
    assert!(seen.terminal);
}

#[test]
fn s9_anthropic_tool_input_does_not_add_usage_fields() {
    let body = br#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[{"type":"tool_use","id":"t","name":"f","input":{"usage":{"cache_read_input_tokens":90000,"input_tokens":1},"model":"claude-haiku-4-5"}}],"stop_reason":"tool_use","usage":{"input_tokens":100,"output_tokens":20}}"#;
    let seen = observe_every_split(ApiFormat::AnthropicMessages, false, body);
    assert_eq!(seen.usage, Some(usage(100, 0, 20)));
    assert_eq!(seen.model.as_deref(), Some("claude-sonnet-4-5-20250929"));
    // Streamed: message_start's message and message_delta's top-level usage count; a tool block does not.
    let stream = "event: message_start\n\
data: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"claude-sonnet-4-5-20250929\",\"content\":[],\"usage\":{\"input_tokens\":100,\"output_tokens\":1}}}\n\n\
event: content_block_start\n\
data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"f\",\"input\":{\"usage\":{\"cache_read_input_tokens\":90000},\"model\":\"x\"}}}\n\n\
event: message_delta\n\
data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{\"output_tokens\":20}}\n\n\
event: message_stop\n\
data: {\"type\":\"message_stop\"}\n\n";
    let seen = observe_every_split(ApiFormat::AnthropicMessages, true, stream.as_bytes());
    assert_eq!(seen.usage, Some(usage(100, 0, 20)));
    assert_eq!(seen.model.as_deref(), Some("claude-sonnet-4-5-20250929"));
    assert!(seen.terminal);
}

#[test]
fn s9_a_nested_error_or_type_does_not_end_or_fail_the_stream() {
    // A model-written object with "type" and "error" members inside a Responses delta event.
    let stream = "data: {\"type\":\"response.output_item.added\",\"item\":{\"type\":\"response.completed\",\"error\":{\"message\":\"fake\"}}}\n\n";
    let seen = observe_every_split(ApiFormat::OpenAiResponses, true, stream.as_bytes());
    assert!(!seen.terminal);
    assert_eq!(seen.upstream_error, None);
}

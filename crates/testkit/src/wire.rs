//! The providers' wire formats as the fake provider writes them, field for field as the real APIs do.

use bytes::Bytes;
use serde_json::{Value, json};

/// Token counts the fake reports; by default derived from the request so tests can predict them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageNumbers {
    pub input: u64,
    pub output: u64,
    pub cached: u64,
}

/// What the fake answers: the text it generates and the usage it reports.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The generated text, sent as one delta per word in streams.
    pub text: String,
    /// `None`: input = request body bytes / 4 (at least 1), output = words of `text`, cached = 0.
    pub usage: Option<UsageNumbers>,
}

impl Default for Reply {
    fn default() -> Self {
        Self { text: "Hello from the fake provider.".into(), usage: None }
    }
}

impl Reply {
    pub fn usage_for(&self, request_body: &[u8]) -> UsageNumbers {
        self.usage.unwrap_or_else(|| UsageNumbers {
            input: (request_body.len() as u64 / 4).max(1),
            output: self.words().len() as u64,
            cached: 0,
        })
    }

    /// Words with their leading space, so their concatenation is `text`.
    pub fn words(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (i, word) in self.text.split(' ').enumerate() {
            out.push(if i == 0 { word.to_string() } else { format!(" {word}") });
        }
        out
    }
}

/// The API a request path asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    Chat,
    Completions,
    Embeddings,
    Responses,
    AnthropicMessages,
    GeminiGenerate,
    GeminiStream,
    Models,
}

impl Api {
    pub fn from_path(path: &str) -> Option<Self> {
        Some(if path.ends_with("/chat/completions") {
            Api::Chat
        } else if path.ends_with("/completions") {
            Api::Completions
        } else if path.ends_with("/embeddings") {
            Api::Embeddings
        } else if path.ends_with("/responses") {
            Api::Responses
        } else if path.ends_with("/messages") {
            Api::AnthropicMessages
        } else if path.ends_with(":streamGenerateContent") {
            Api::GeminiStream
        } else if path.ends_with(":generateContent") {
            Api::GeminiGenerate
        } else if path.ends_with("/models") {
            Api::Models
        } else {
            return None;
        })
    }
}

/// A whole response: content type and the body as a list of wire events (one element = one SSE event or the
/// whole JSON body).
pub struct Rendered {
    pub content_type: &'static str,
    pub events: Vec<Bytes>,
}

fn sse(value: &Value) -> Bytes {
    Bytes::from(format!("data: {value}\n\n"))
}

fn named(event: &str, value: &Value) -> Bytes {
    Bytes::from(format!("event: {event}\ndata: {value}\n\n"))
}

fn json_body(value: &Value) -> Rendered {
    Rendered { content_type: "application/json", events: vec![Bytes::from(value.to_string())] }
}

/// Renders the response to `body` for `api` (`path_model`: the model the path names, for bodies without one).
pub fn render(api: Api, body: &Value, raw_body: &[u8], path_model: &str, query: &str, reply: &Reply) -> Rendered {
    let usage = reply.usage_for(raw_body);
    let model = body.get("model").and_then(Value::as_str).unwrap_or(path_model).to_string();
    let stream = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
    match api {
        Api::Chat => chat(&model, stream, body, reply, usage),
        Api::Completions => completions(&model, stream, body, reply, usage),
        Api::Embeddings => json_body(&json!({
            "object": "list",
            "data": [{"object": "embedding", "index": 0, "embedding": [0.0123, -0.0456, 0.0789]}],
            "model": model,
            "usage": {"prompt_tokens": usage.input, "total_tokens": usage.input},
        })),
        Api::Responses => responses(&model, stream, reply, usage),
        Api::AnthropicMessages => anthropic(&model, stream, reply, usage),
        Api::GeminiGenerate => gemini(&model, false, query, reply, usage),
        Api::GeminiStream => gemini(&model, true, query, reply, usage),
        Api::Models => json_body(&json!({"object": "list", "data": [{"id": "gpt-4o-mini", "object": "model"}]})),
    }
}

fn openai_usage(u: UsageNumbers) -> Value {
    json!({
        "prompt_tokens": u.input,
        "completion_tokens": u.output,
        "total_tokens": u.input + u.output,
        "prompt_tokens_details": {"cached_tokens": u.cached, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
            "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
    })
}

fn chat(model: &str, stream: bool, body: &Value, reply: &Reply, usage: UsageNumbers) -> Rendered {
    let id = "chatcmpl-fake";
    if !stream {
        return json_body(&json!({
            "id": id, "object": "chat.completion", "created": 1_767_225_600, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": reply.text, "refusal": null,
                "annotations": []}, "logprobs": null, "finish_reason": "stop"}],
            "usage": openai_usage(usage), "service_tier": "default", "system_fingerprint": "fp_fake",
        }));
    }
    let include_usage = body.pointer("/stream_options/include_usage").and_then(Value::as_bool).unwrap_or(false);
    let chunk = |delta: Value, finish: Value| {
        let mut c = json!({"id": id, "object": "chat.completion.chunk", "created": 1_767_225_600, "model": model,
            "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]});
        if include_usage {
            c["usage"] = Value::Null;
        }
        sse(&c)
    };
    let mut events = vec![chunk(json!({"role": "assistant", "content": ""}), Value::Null)];
    for word in reply.words() {
        events.push(chunk(json!({"content": word}), Value::Null));
    }
    events.push(chunk(json!({}), json!("stop")));
    if include_usage {
        events.push(sse(&json!({"id": id, "object": "chat.completion.chunk", "created": 1_767_225_600,
            "model": model, "system_fingerprint": "fp_fake", "choices": [], "usage": openai_usage(usage)})));
    }
    events.push(Bytes::from_static(b"data: [DONE]\n\n"));
    Rendered { content_type: "text/event-stream", events }
}

fn completions(model: &str, stream: bool, body: &Value, reply: &Reply, usage: UsageNumbers) -> Rendered {
    let usage_json = json!({"prompt_tokens": usage.input, "completion_tokens": usage.output,
        "total_tokens": usage.input + usage.output});
    if !stream {
        return json_body(&json!({"id": "cmpl-fake", "object": "text_completion", "created": 1_767_225_600,
            "model": model, "choices": [{"text": reply.text, "index": 0, "logprobs": null, "finish_reason": "stop"}],
            "usage": usage_json}));
    }
    let mut events: Vec<Bytes> = reply
        .words()
        .into_iter()
        .map(|w| {
            sse(&json!({"id": "cmpl-fake", "object": "text_completion", "created": 1_767_225_600, "model": model,
                "choices": [{"text": w, "index": 0, "logprobs": null, "finish_reason": null}]}))
        })
        .collect();
    if body.pointer("/stream_options/include_usage").and_then(Value::as_bool).unwrap_or(false) {
        events.push(sse(&json!({"id": "cmpl-fake", "object": "text_completion", "created": 1_767_225_600,
            "model": model, "choices": [], "usage": usage_json})));
    }
    events.push(Bytes::from_static(b"data: [DONE]\n\n"));
    Rendered { content_type: "text/event-stream", events }
}

fn responses(model: &str, stream: bool, reply: &Reply, usage: UsageNumbers) -> Rendered {
    let usage_json = json!({"input_tokens": usage.input, "input_tokens_details": {"cached_tokens": usage.cached},
        "output_tokens": usage.output, "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage.input + usage.output});
    let output = json!([{"id": "msg_fake", "type": "message", "status": "completed", "role": "assistant",
        "content": [{"type": "output_text", "text": reply.text, "annotations": []}]}]);
    let done = json!({"id": "resp_fake", "object": "response", "created_at": 1_767_225_600, "status": "completed",
        "model": model, "output": output, "usage": usage_json});
    if !stream {
        return json_body(&done);
    }
    let mut seq = 0;
    let mut next = || {
        seq += 1;
        seq - 1
    };
    let mut events = vec![named(
        "response.created",
        &json!({"type": "response.created", "sequence_number": next(),
        "response": {"id": "resp_fake", "object": "response", "created_at": 1_767_225_600,
            "status": "in_progress", "model": model, "output": [], "usage": null}}),
    )];
    for word in reply.words() {
        events.push(named(
            "response.output_text.delta",
            &json!({"type": "response.output_text.delta",
            "sequence_number": next(), "item_id": "msg_fake", "output_index": 0, "content_index": 0,
            "delta": word, "logprobs": []}),
        ));
    }
    events.push(named(
        "response.completed",
        &json!({"type": "response.completed", "sequence_number": next(),
        "response": done}),
    ));
    Rendered { content_type: "text/event-stream", events }
}

fn anthropic(model: &str, stream: bool, reply: &Reply, usage: UsageNumbers) -> Rendered {
    let full_usage = json!({"input_tokens": usage.input, "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": usage.cached,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        "output_tokens": usage.output, "service_tier": "standard"});
    if !stream {
        return json_body(&json!({"id": "msg_fake", "type": "message", "role": "assistant", "model": model,
            "content": [{"type": "text", "text": reply.text}], "stop_reason": "end_turn", "stop_sequence": null,
            "usage": full_usage}));
    }
    let mut start_usage = full_usage.clone();
    start_usage["output_tokens"] = json!(1);
    let mut events = vec![
        named(
            "message_start",
            &json!({"type": "message_start", "message": {"id": "msg_fake", "type": "message",
            "role": "assistant", "model": model, "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": start_usage}}),
        ),
        named(
            "content_block_start",
            &json!({"type": "content_block_start", "index": 0,
            "content_block": {"type": "text", "text": ""}}),
        ),
        named("ping", &json!({"type": "ping"})),
    ];
    for word in reply.words() {
        events.push(named(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": 0,
            "delta": {"type": "text_delta", "text": word}}),
        ));
    }
    events.push(named("content_block_stop", &json!({"type": "content_block_stop", "index": 0})));
    events.push(named(
        "message_delta",
        &json!({"type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": usage.output}}),
    ));
    events.push(named("message_stop", &json!({"type": "message_stop"})));
    Rendered { content_type: "text/event-stream", events }
}

fn gemini(model: &str, stream: bool, query: &str, reply: &Reply, usage: UsageNumbers) -> Rendered {
    let candidate = |text: &str, finish: bool| {
        let mut c = json!({"content": {"role": "model", "parts": [{"text": text}]}, "index": 0});
        if finish {
            c["finishReason"] = json!("STOP");
        }
        c
    };
    let full_usage = json!({"promptTokenCount": usage.input, "candidatesTokenCount": usage.output,
        "totalTokenCount": usage.input + usage.output, "cachedContentTokenCount": usage.cached});
    if !stream {
        return json_body(&json!({"candidates": [candidate(&reply.text, true)], "usageMetadata": full_usage,
            "modelVersion": model, "responseId": "fake"}));
    }
    let words = reply.words();
    let last = words.len().saturating_sub(1);
    let chunks: Vec<Value> = words
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let usage = if i == last {
                full_usage.clone()
            } else {
                json!({"promptTokenCount": usage.input, "totalTokenCount": usage.input})
            };
            json!({"candidates": [candidate(w, i == last)], "usageMetadata": usage, "modelVersion": model,
                "responseId": "fake"})
        })
        .collect();
    if query.contains("alt=sse") {
        // Gemini ends its events with CRLF, which naive "\n\n" splitters miss.
        let events = chunks.iter().map(|c| Bytes::from(format!("data: {c}\r\n\r\n"))).collect();
        Rendered { content_type: "text/event-stream", events }
    } else {
        // Without alt=sse the stream is one JSON array written piece by piece.
        let mut events = Vec::new();
        for (i, c) in chunks.iter().enumerate() {
            let sep = if i == 0 { "[" } else { ",\r\n" };
            events.push(Bytes::from(format!("{sep}{c}")));
        }
        events.push(Bytes::from_static(b"]"));
        Rendered { content_type: "application/json", events }
    }
}

//! The usage tap: watches a response body pass by, chunk by chunk, and reports what it cost in tokens.
//!
//! How an event is read (the hot path; it runs for every streamed event of the gateway):
//! 1. The SSE parser frames events from raw chunks (streaming) or the body is buffered up to a cap
//!    (non-streaming, [`UsageTap::MAX_BODY_BYTES`]).
//! 2. One pass over the event's JSON keys (`json_scan::KeyWalk`) skips string contents whole and looks only at
//!    the keys that matter: usage objects (`usage`, `usageMetadata`), generated text (for estimation), the
//!    model, the service tier, error objects and terminal markers. Usage, model and tier count only at their
//!    documented positions (top-level members, Responses `response.*`, Anthropic `message_start.message.*`,
//!    Groq `x_groq.usage`), never inside model-written JSON such as Gemini `functionCall.args`. No event is
//!    fully deserialised; a usage object found on the walk is deserialised alone, in place.
//! 3. Every usage object is layered over a per-field snapshot: the last non-null value of each field wins and
//!    nothing is summed across chunks (Anthropic `message_start` + cumulative `message_delta`, Gemini running
//!    totals, Groq `x_groq.usage` beside `usage`, usage on xAI's second-to-last or DeepSeek's last content chunk).
//! 4. [`UsageTap::finish`] normalises the snapshot for the format ([`Usage`]) and reports whether the stream
//!    reached its normal end, so a cut stream can be billed as such.
//!
//! Non-field SSE lines (raw JSON, as Gemini sends for mid-stream errors, or a plain JSON error body on a
//! stream request) are collected until their braces balance and read as an error object.

#[cfg(test)]
mod tests;

use serde::Deserialize;

use crate::json_scan::{self as scan, KeyWalk};
use crate::sse::{SseItem, SseParser};
use crate::usage::{ApiFormat, RawUsage, Usage, UsageSnapshot};

/// What the tap learnt from one response body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observation {
    /// Normalised usage, when the body reported any.
    pub usage: Option<Usage>,
    /// The model the provider says answered: the first non-empty `model`/`modelVersion` at its documented
    /// position (see [`UsageTap`]'s module documentation). Price with
    /// [`PriceCatalog::billing_model`](crate::PriceCatalog::billing_model), which prefers the request's model.
    pub model: Option<String>,
    /// The format's normal end was seen: `[DONE]` (OpenAI chat/completions), `response.completed`,
    /// `response.incomplete` or `response.failed` (Responses), `message_stop` (Anthropic), a `finishReason`
    /// (Gemini), or for a non-streaming body: the body is one complete JSON document.
    pub terminal: bool,
    /// An error the upstream reported inside the body (`type: message` when a type or code is given).
    pub upstream_error: Option<String>,
    /// UTF-8 bytes of generated text seen (content, reasoning, tool arguments), for estimation.
    pub output_bytes: u64,
    /// Characters of generated text seen, for estimation.
    pub output_chars: u64,
    /// Part of the body was not inspected: a non-streaming body over [`UsageTap::MAX_BODY_BYTES`], or an SSE
    /// line over the parser's cap. Usage may then be missing.
    pub truncated: bool,
}

/// Watches one response body and extracts usage; see the module documentation.
#[derive(Debug)]
pub struct UsageTap {
    streaming: bool,
    sse: SseParser,
    body: Vec<u8>,
    body_overflowed: bool,
    reader: EventReader,
}

impl UsageTap {
    /// Bytes of a non-streaming body buffered before the tap gives up (32 MiB, above any usage-bearing body).
    pub const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

    /// A tap for a response in `format`. `streaming` must be true exactly when the response is an event
    /// stream (`Content-Type: text/event-stream`), not merely when the request asked for one: an upstream
    /// error on a stream request is a plain JSON body.
    pub fn new(format: ApiFormat, streaming: bool) -> Self {
        Self {
            streaming,
            sse: SseParser::new(),
            body: Vec::new(),
            body_overflowed: false,
            reader: EventReader::new(format),
        }
    }

    /// Inspects the next chunk of the response body, as it passes to the client.
    pub fn observe(&mut self, chunk: &[u8]) {
        if self.streaming {
            let reader = &mut self.reader;
            self.sse.push(chunk, &mut |item| reader.item(&item));
        } else if !self.body_overflowed {
            if self.body.len() + chunk.len() > Self::MAX_BODY_BYTES {
                self.body_overflowed = true;
                self.body = Vec::new();
            } else {
                self.body.extend_from_slice(chunk);
            }
        }
    }

    /// Ends the body (normally or not) and reports what was seen.
    pub fn finish(mut self) -> Observation {
        let truncated = if self.streaming {
            let reader = &mut self.reader;
            self.sse.finish(&mut |item| reader.item(&item));
            self.reader.raw_json_end();
            self.sse.discarded_events() > 0
        } else {
            if !self.body_overflowed {
                self.reader.body(&self.body);
            }
            self.body_overflowed
        };
        self.reader.observation(truncated)
    }
}

/// Bytes of raw (non-`data:`) JSON collected before giving up on it (64 KiB: error objects are small).
const MAX_RAW_JSON_BYTES: usize = 64 * 1024;

/// The per-format reading of events and bodies.
#[derive(Debug)]
struct EventReader {
    format: ApiFormat,
    snapshot: UsageSnapshot,
    model: Option<String>,
    terminal: bool,
    upstream_error: Option<String>,
    output_bytes: u64,
    output_chars: u64,
    raw_json: RawJson,
}

/// Raw JSON lines outside `data:` fields, collected until their braces balance.
#[derive(Debug, Default)]
struct RawJson {
    text: String,
    depth: i64,
    in_string: bool,
    escaped: bool,
}

impl RawJson {
    /// Adds a line; returns the collected document once its outermost braces close.
    fn line(&mut self, line: &str) -> Option<String> {
        if self.text.is_empty() && !line.trim_start().starts_with('{') {
            return None;
        }
        if self.text.len() + line.len() > MAX_RAW_JSON_BYTES {
            *self = Self::default();
            return None;
        }
        for byte in line.bytes() {
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if byte == b'\\' {
                    self.escaped = true;
                } else if byte == b'"' {
                    self.in_string = false;
                }
            } else if byte == b'"' {
                self.in_string = true;
            } else if byte == b'{' {
                self.depth += 1;
            } else if byte == b'}' {
                self.depth -= 1;
            }
        }
        self.text.push_str(line);
        self.text.push('\n');
        if self.depth <= 0 && !self.in_string {
            let document = std::mem::take(&mut self.text);
            *self = Self::default();
            Some(document)
        } else {
            None
        }
    }
}

/// Where generated text lives, per format and mode: the keys whose string values are counted.
fn text_keys(format: ApiFormat, streaming: bool) -> &'static [&'static [u8]] {
    match (format, streaming) {
        (ApiFormat::OpenAiChat, _) => &[b"content", b"reasoning_content", b"reasoning", b"refusal", b"arguments"],
        (ApiFormat::OpenAiCompletions | ApiFormat::GeminiGenerate, _) => &[b"text"],
        (ApiFormat::OpenAiEmbeddings, _) => &[],
        (ApiFormat::OpenAiResponses, true) => &[b"delta"],
        (ApiFormat::OpenAiResponses, false) => &[b"text", b"arguments"],
        (ApiFormat::AnthropicMessages, _) => &[b"text", b"thinking", b"partial_json"],
    }
}

/// Whether the key just found by a walk sits where its format documents usage (`usage`), or the model and
/// service tier (`model`):
/// - every format: members of the body or event object itself (depth 1);
/// - Responses stream events: members of the event's `response` object (`response.completed`, `.incomplete`,
///   `.failed`, `.created`);
/// - Anthropic stream: members of `message_start`'s `message` (`message_delta` carries its usage at the top);
/// - OpenAI chat (Groq): `x_groq.usage`, usage only.
#[derive(Debug, Clone, Copy, Default)]
struct Home {
    usage: bool,
    model: bool,
}

impl Home {
    fn of(format: ApiFormat, streaming: bool, walk: &KeyWalk<'_>) -> Self {
        match walk.depth() {
            1 => Self { usage: true, model: true },
            2 => match (format, streaming, walk.label(2)) {
                (ApiFormat::OpenAiResponses, true, Some(b"response"))
                | (ApiFormat::AnthropicMessages, true, Some(b"message")) => Self { usage: true, model: true },
                (ApiFormat::OpenAiChat, _, Some(b"x_groq")) => Self { usage: true, model: false },
                _ => Self::default(),
            },
            _ => Self::default(),
        }
    }
}

/// What one walk over an event found beyond usage and text, resolved after the walk.
#[derive(Default)]
struct EventFacts<'a> {
    first_type: Option<&'a [u8]>,
    has_error_object: bool,
    finish_reason: bool,
}

impl EventReader {
    fn new(format: ApiFormat) -> Self {
        Self {
            format,
            snapshot: UsageSnapshot::default(),
            model: None,
            terminal: false,
            upstream_error: None,
            output_bytes: 0,
            output_chars: 0,
            raw_json: RawJson::default(),
        }
    }

    fn item(&mut self, item: &SseItem<'_>) {
        match item {
            SseItem::Event(event) => self.event(event.event, event.data.as_bytes()),
            SseItem::NamedOnly { event } => self.event(Some(event), b""),
            SseItem::OtherLine(line) => {
                if let Some(document) = self.raw_json.line(line) {
                    self.error_document(document.as_bytes());
                }
            }
        }
    }

    /// At EOF, a raw JSON document still open is read as far as it goes (it will usually fail to parse).
    fn raw_json_end(&mut self) {
        let document = std::mem::take(&mut self.raw_json.text);
        if !document.is_empty() {
            self.error_document(document.as_bytes());
        }
    }

    /// A whole non-streaming body.
    fn body(&mut self, body: &[u8]) {
        self.inspect(body, false);
        self.terminal = serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok() && self.upstream_error.is_none();
    }

    /// One SSE event.
    fn event(&mut self, name: Option<&str>, data: &[u8]) {
        let is_openai_sentinel_format =
            matches!(self.format, ApiFormat::OpenAiChat | ApiFormat::OpenAiCompletions | ApiFormat::OpenAiEmbeddings);
        if is_openai_sentinel_format && data.trim_ascii_start().starts_with(b"[DONE]") {
            self.terminal = true;
            return;
        }
        let facts = self.inspect(data, true);
        let kind = name.map(str::as_bytes).or(facts.first_type);
        match self.format {
            ApiFormat::OpenAiResponses => match kind {
                Some(b"response.completed" | b"response.incomplete") => self.terminal = true,
                Some(b"response.failed") => {
                    self.terminal = true;
                    self.responses_failure(data);
                }
                Some(b"error") => self.error_document(data),
                _ => {}
            },
            ApiFormat::AnthropicMessages => match kind {
                Some(b"message_stop") => self.terminal = true,
                Some(b"error") => self.error_document(data),
                _ => {}
            },
            ApiFormat::GeminiGenerate => {
                if facts.finish_reason {
                    self.terminal = true;
                }
            }
            ApiFormat::OpenAiChat | ApiFormat::OpenAiCompletions | ApiFormat::OpenAiEmbeddings => {}
        }
    }

    /// The single walk over an event or body: usage, text, model, tier, and facts for the caller.
    ///
    /// Usage, model and service tier are read only at their documented positions ([`Home`]), never deeper:
    /// model-written JSON (Gemini `functionCall.args`, tool schemas echoed by the Responses API) can hold keys
    /// named `usage`, `modelVersion` or `service_tier`, and must not steer the price. Generated text is counted
    /// at any depth (it only feeds estimates).
    fn inspect<'a>(&mut self, data: &'a [u8], streaming: bool) -> EventFacts<'a> {
        let text_keys = text_keys(self.format, streaming);
        let usage_key: &[u8] = if self.format == ApiFormat::GeminiGenerate { b"usageMetadata" } else { b"usage" };
        let model_key: &[u8] = if self.format == ApiFormat::GeminiGenerate { b"modelVersion" } else { b"model" };
        let mut facts = EventFacts::default();
        let mut walk = KeyWalk::new(data);
        while let Some((key, value)) = walk.next_key() {
            if text_keys.contains(&key) {
                if let Some(raw) = scan::string_at(data, value) {
                    let (bytes, chars) = scan::text_size(raw);
                    self.output_bytes = self.output_bytes.saturating_add(bytes);
                    self.output_chars = self.output_chars.saturating_add(chars);
                    walk.resume_at(value + raw.len() + 2);
                }
                continue;
            }
            let home = Home::of(self.format, streaming, &walk);
            if key == usage_key && home.usage {
                if scan::is_object_at(data, value) {
                    let mut stream = serde_json::Deserializer::from_slice(&data[value..]).into_iter::<RawUsage>();
                    if let Some(Ok(raw)) = stream.next() {
                        self.snapshot.merge(raw);
                        walk.resume_at(value + stream.byte_offset());
                    }
                }
            } else if key == model_key && home.model {
                if self.model.is_none() {
                    self.model = scan::decoded_string_at(data, value).filter(|model| !model.is_empty());
                }
            } else if key == b"service_tier" && home.model {
                if let Some(tier) = scan::string_at(data, value).and_then(|tier| std::str::from_utf8(tier).ok()) {
                    self.snapshot.set_service_tier(tier);
                }
            } else if walk.depth() == 1 {
                if key == b"type" {
                    if facts.first_type.is_none() {
                        facts.first_type = scan::string_at(data, value);
                    }
                } else if key == b"error" {
                    facts.has_error_object |= scan::is_object_at(data, value);
                }
            } else if key == b"finishReason" && walk.depth() == 3 && walk.label(2) == Some(b"candidates") {
                facts.finish_reason |= scan::string_at(data, value).is_some();
            }
        }
        if facts.has_error_object {
            self.error_document(data);
        }
        facts
    }

    /// Reads a top-level error (`{"error":{…}}`, or Responses' `{"type":"error","message":…}`).
    fn error_document(&mut self, data: &[u8]) {
        let Ok(document) = serde_json::from_slice::<ErrorDocument>(data) else {
            return;
        };
        if let Some(error) = document.error {
            self.upstream_error = Some(error.describe());
        } else if let Some(message) = document.message {
            let detail = ErrorDetail { message: Some(message), kind: None, code: document.code, status: None };
            self.upstream_error = Some(detail.describe());
        }
    }

    /// A Responses `response.failed` event: its `response.error` is the upstream error.
    fn responses_failure(&mut self, data: &[u8]) {
        #[derive(Deserialize)]
        struct Failed {
            response: Option<FailedResponse>,
        }
        #[derive(Deserialize)]
        struct FailedResponse {
            error: Option<ErrorDetail>,
        }
        if let Ok(Failed { response: Some(FailedResponse { error: Some(error) }) }) =
            serde_json::from_slice::<Failed>(data)
        {
            self.upstream_error = Some(error.describe());
        } else {
            self.upstream_error = Some("response.failed".to_owned());
        }
    }

    fn observation(self, truncated: bool) -> Observation {
        let usage = (!self.snapshot.is_empty()).then(|| self.snapshot.normalise(self.format.family()));
        Observation {
            usage,
            model: self.model,
            terminal: self.terminal,
            upstream_error: self.upstream_error,
            output_bytes: self.output_bytes,
            output_chars: self.output_chars,
            truncated,
        }
    }
}

/// The error shapes of every format, read leniently.
#[derive(Deserialize)]
struct ErrorDocument {
    error: Option<ErrorDetail>,
    message: Option<String>,
    code: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct ErrorDetail {
    message: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    code: Option<serde_json::Value>,
    status: Option<String>,
}

impl ErrorDetail {
    /// `kind: message`, with the most specific label available.
    fn describe(self) -> String {
        let code = self.code.and_then(|code| match code {
            serde_json::Value::String(code) => Some(code),
            serde_json::Value::Number(code) => Some(code.to_string()),
            _ => None,
        });
        let label = self.kind.or(self.status).or(code);
        match (label, self.message) {
            (Some(label), Some(message)) => format!("{label}: {message}"),
            (Some(label), None) => label,
            (None, Some(message)) => message,
            (None, None) => "error".to_owned(),
        }
    }
}

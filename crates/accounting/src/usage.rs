//! Normalised token usage, the API formats it is read from, and the per-field snapshot merge behind it.
//!
//! Providers disagree on what their counters mean: OpenAI, Gemini and DeepSeek report
//! cached tokens as a subset of the prompt, Anthropic's `input_tokens` excludes cache reads and writes, and
//! Gemini reports thinking tokens beside (not inside) the candidates. [`Usage`] is the one shape pricing sees.

use serde::Deserialize;

#[cfg(test)]
mod tests;

/// Token usage of one request, normalised across providers. All counts are tokens.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    /// Prompt tokens read neither from nor into a cache (billed at the input rate).
    pub input: u64,
    /// Prompt tokens read from a prompt cache.
    pub cache_read: u64,
    /// Prompt tokens written to a cache with the default (5 minute) lifetime. OpenAI's `cache_write_tokens`
    /// lands here too.
    pub cache_write_5m: u64,
    /// Prompt tokens written to a 1 hour cache (Anthropic).
    pub cache_write_1h: u64,
    /// Generated tokens, reasoning/thinking included (the billed output).
    pub output: u64,
    /// Reasoning/thinking tokens: an informational subset of `output`.
    pub reasoning: u64,
    /// Service tier the provider reports having served the request on (`priority`, `flex`, `standard`, …).
    pub service_tier: Option<String>,
    /// Anthropic server-side web searches (billed per request by the provider; not priced here).
    pub web_search_requests: u64,
    /// Anthropic server-side web fetches (informational).
    pub web_fetch_requests: u64,
}

impl Usage {
    /// Every prompt token, cached or not: the size that long-context price tiers compare to their threshold.
    pub fn prompt_total(&self) -> u64 {
        self.input
            .saturating_add(self.cache_read)
            .saturating_add(self.cache_write_5m)
            .saturating_add(self.cache_write_1h)
    }

    /// Every token of the request, prompt (cached or not) and output, saturating: what token rate limits count.
    pub fn total_tokens(&self) -> u64 {
        self.prompt_total().saturating_add(self.output)
    }
}

/// The wire format of a request/response pair, which decides where usage lives and what it means.
///
/// The proxy picks it from the request path ([`ApiFormat::from_path`]); OpenAI-compatible providers (Azure
/// OpenAI, OpenRouter, DeepSeek, Groq, xAI, Mistral and the `/compat` endpoint) all use the OpenAI formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApiFormat {
    /// `POST …/chat/completions`.
    OpenAiChat,
    /// `POST …/completions` (legacy text completions).
    OpenAiCompletions,
    /// `POST …/embeddings` (never streamed; prompt tokens only).
    OpenAiEmbeddings,
    /// `POST …/responses`.
    OpenAiResponses,
    /// `POST …/v1/messages`.
    AnthropicMessages,
    /// `…:generateContent` and `…:streamGenerateContent?alt=sse` (Gemini API and Vertex AI).
    GeminiGenerate,
}

impl ApiFormat {
    /// The format served at `path` (a query string is ignored), or `None` for paths that carry no usage
    /// this crate understands (e.g. `/v1/models`, `/v1/messages/count_tokens`).
    pub fn from_path(path: &str) -> Option<Self> {
        let path = path.split_once('?').map_or(path, |(path, _)| path);
        let path = path.trim_end_matches('/');
        if path.ends_with(":generateContent") || path.ends_with(":streamGenerateContent") {
            Some(Self::GeminiGenerate)
        } else if path.ends_with("/chat/completions") {
            Some(Self::OpenAiChat)
        } else if path.ends_with("/completions") {
            Some(Self::OpenAiCompletions)
        } else if path.ends_with("/embeddings") {
            Some(Self::OpenAiEmbeddings)
        } else if path.ends_with("/responses") {
            Some(Self::OpenAiResponses)
        } else if path.ends_with("/messages") {
            Some(Self::AnthropicMessages)
        } else {
            None
        }
    }

    /// How this format's counters relate to each other.
    pub(crate) fn family(self) -> Family {
        match self {
            Self::OpenAiChat | Self::OpenAiCompletions | Self::OpenAiEmbeddings | Self::OpenAiResponses => {
                Family::OpenAi
            }
            Self::AnthropicMessages => Family::Anthropic,
            Self::GeminiGenerate => Family::Gemini,
        }
    }
}

/// Counter semantics shared by several formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    /// Cached (and cache-written) tokens are a subset of the prompt count; reasoning inside output.
    OpenAi,
    /// `input_tokens` excludes cache reads and writes.
    Anthropic,
    /// Cached tokens are a subset of the prompt; thinking tokens are separate from candidates.
    Gemini,
}

/// Every usage counter of every supported format, as last reported. `None` = never reported (or `null`).
///
/// Each usage object seen in a response overwrites only the fields it carries, so the last non-null value of
/// every field wins and nothing is ever summed across chunks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct UsageSnapshot {
    prompt: Option<u64>,
    completion: Option<u64>,
    cached: Option<u64>,
    cache_write: Option<u64>,
    cache_write_5m: Option<u64>,
    cache_write_1h: Option<u64>,
    reasoning: Option<u64>,
    cache_hit: Option<u64>,
    cache_miss: Option<u64>,
    candidates: Option<u64>,
    thoughts: Option<u64>,
    tool_use_prompt: Option<u64>,
    web_search: Option<u64>,
    web_fetch: Option<u64>,
    service_tier: Option<String>,
}

/// Overwrites `slot` when `value` is present.
fn keep_last<T>(slot: &mut Option<T>, value: Option<T>) {
    if value.is_some() {
        *slot = value;
    }
}

impl UsageSnapshot {
    /// Whether any counter has been seen.
    pub(crate) fn is_empty(&self) -> bool {
        self.prompt.is_none()
            && self.completion.is_none()
            && self.cached.is_none()
            && self.cache_write.is_none()
            && self.cache_write_5m.is_none()
            && self.cache_write_1h.is_none()
            && self.cache_hit.is_none()
            && self.cache_miss.is_none()
            && self.candidates.is_none()
            && self.thoughts.is_none()
    }

    /// Layers one usage object (in any format's field names) over the snapshot.
    pub(crate) fn merge(&mut self, raw: RawUsage) {
        keep_last(&mut self.prompt, raw.prompt_tokens.or(raw.input_tokens).or(raw.prompt_token_count));
        keep_last(&mut self.completion, raw.completion_tokens.or(raw.output_tokens));
        let input_details = raw.prompt_tokens_details.or(raw.input_tokens_details);
        if let Some(details) = input_details {
            keep_last(&mut self.cached, details.cached_tokens);
            keep_last(&mut self.cache_write, details.cache_write_tokens);
        }
        keep_last(&mut self.cached, raw.cache_read_input_tokens.or(raw.cached_content_token_count));
        keep_last(&mut self.cache_write, raw.cache_creation_input_tokens);
        if let Some(split) = raw.cache_creation {
            keep_last(&mut self.cache_write_5m, split.ephemeral_5m_input_tokens);
            keep_last(&mut self.cache_write_1h, split.ephemeral_1h_input_tokens);
        }
        if let Some(details) = raw.completion_tokens_details.or(raw.output_tokens_details) {
            keep_last(&mut self.reasoning, details.reasoning_tokens);
        }
        keep_last(&mut self.cache_hit, raw.prompt_cache_hit_tokens);
        keep_last(&mut self.cache_miss, raw.prompt_cache_miss_tokens);
        keep_last(&mut self.candidates, raw.candidates_token_count);
        keep_last(&mut self.thoughts, raw.thoughts_token_count);
        keep_last(&mut self.tool_use_prompt, raw.tool_use_prompt_token_count);
        if let Some(tools) = raw.server_tool_use {
            keep_last(&mut self.web_search, tools.web_search_requests);
            keep_last(&mut self.web_fetch, tools.web_fetch_requests);
        }
        keep_last(&mut self.service_tier, raw.service_tier);
    }

    /// Records the service tier reported outside the usage object (OpenAI's top-level `service_tier`).
    pub(crate) fn set_service_tier(&mut self, tier: &str) {
        self.service_tier = Some(tier.to_owned());
    }

    /// Normalises the snapshot to the meaning above: uncached input, cache reads and cache writes apart.
    pub(crate) fn normalise(&self, family: Family) -> Usage {
        let zero = |value: Option<u64>| value.unwrap_or(0);
        let mut usage = Usage {
            service_tier: self.service_tier.clone(),
            web_search_requests: zero(self.web_search),
            web_fetch_requests: zero(self.web_fetch),
            ..Usage::default()
        };
        match family {
            Family::OpenAi => {
                if self.cache_hit.is_some() || self.cache_miss.is_some() {
                    // DeepSeek: prompt = hit + miss; cache writes are free and not reported.
                    usage.cache_read = zero(self.cache_hit);
                    usage.input = self.cache_miss.unwrap_or_else(|| zero(self.prompt).saturating_sub(usage.cache_read));
                } else {
                    usage.cache_read = zero(self.cached);
                    usage.cache_write_5m = zero(self.cache_write);
                    usage.input =
                        zero(self.prompt).saturating_sub(usage.cache_read).saturating_sub(usage.cache_write_5m);
                }
                usage.output = zero(self.completion);
                usage.reasoning = zero(self.reasoning);
            }
            Family::Anthropic => {
                usage.input = zero(self.prompt);
                usage.cache_read = zero(self.cached);
                if self.cache_write_5m.is_some() || self.cache_write_1h.is_some() {
                    usage.cache_write_5m = zero(self.cache_write_5m);
                    usage.cache_write_1h = zero(self.cache_write_1h);
                } else {
                    usage.cache_write_5m = zero(self.cache_write);
                }
                usage.output = zero(self.completion);
                usage.reasoning = zero(self.reasoning);
            }
            Family::Gemini => {
                usage.cache_read = zero(self.cached);
                // Tool-use prompt tokens are outside promptTokenCount (they add up to totalTokenCount).
                usage.input =
                    zero(self.prompt).saturating_sub(usage.cache_read).saturating_add(zero(self.tool_use_prompt));
                usage.reasoning = zero(self.thoughts);
                usage.output = zero(self.candidates).saturating_add(usage.reasoning);
            }
        }
        usage
    }
}

/// A usage object in any supported format; unknown fields are ignored, `null` reads as absent.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawUsage {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    prompt_tokens_details: Option<InputDetails>,
    completion_tokens_details: Option<OutputDetails>,
    prompt_cache_hit_tokens: Option<u64>,
    prompt_cache_miss_tokens: Option<u64>,
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    input_tokens_details: Option<InputDetails>,
    output_tokens_details: Option<OutputDetails>,
    cache_creation_input_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
    cache_creation: Option<CacheCreation>,
    server_tool_use: Option<ServerToolUse>,
    service_tier: Option<String>,
    #[serde(rename = "promptTokenCount")]
    prompt_token_count: Option<u64>,
    #[serde(rename = "candidatesTokenCount")]
    candidates_token_count: Option<u64>,
    #[serde(rename = "cachedContentTokenCount")]
    cached_content_token_count: Option<u64>,
    #[serde(rename = "thoughtsTokenCount")]
    thoughts_token_count: Option<u64>,
    #[serde(rename = "toolUsePromptTokenCount")]
    tool_use_prompt_token_count: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
struct InputDetails {
    cached_tokens: Option<u64>,
    cache_write_tokens: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
struct OutputDetails {
    reasoning_tokens: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
struct CacheCreation {
    ephemeral_5m_input_tokens: Option<u64>,
    ephemeral_1h_input_tokens: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
struct ServerToolUse {
    web_search_requests: Option<u64>,
    web_fetch_requests: Option<u64>,
}

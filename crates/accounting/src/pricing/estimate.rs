//! Token estimates for when no usage was reported (a cut stream) and for worst-case budget reservations.
//!
//! The rule is the common "four bytes per token" approximation. For a JSON request body only the text a model
//! reads is measured: the bytes of every string value, except values of keys that are structure, not prompt
//! (`model`, `role`, `type`, MIME types) and inline media (`data` members, `data:` URLs), which are billed by
//! providers per image/second and would otherwise inflate the estimate a thousandfold. A body that is not JSON
//! is measured whole. Estimates are marked [`CostSource::Estimated`](super::CostSource::Estimated) when priced.

/// Bytes per estimated token.
const BYTES_PER_TOKEN: u64 = 4;

/// Keys whose string values are not prompt text.
const NON_PROMPT_KEYS: &[&str] =
    &["model", "role", "type", "mime_type", "mimeType", "media_type", "data", "id", "tool_call_id"];

/// Estimated prompt tokens of a request body (see the module documentation).
pub fn estimate_prompt_tokens(request_body: &[u8]) -> u64 {
    match serde_json::from_slice::<serde_json::Value>(request_body) {
        Ok(value) => prompt_bytes(&value).div_ceil(BYTES_PER_TOKEN),
        Err(_) => (request_body.len() as u64).div_ceil(BYTES_PER_TOKEN),
    }
}

/// Estimated output tokens from the characters of generated text seen
/// ([`Observation::output_chars`](crate::Observation::output_chars)).
pub fn estimate_output_tokens(output_chars: u64) -> u64 {
    output_chars.div_ceil(BYTES_PER_TOKEN)
}

fn prompt_bytes(value: &serde_json::Value) -> u64 {
    match value {
        serde_json::Value::String(text) if !text.starts_with("data:") => text.len() as u64,
        serde_json::Value::Array(items) => items.iter().map(prompt_bytes).sum(),
        serde_json::Value::Object(members) => members
            .iter()
            .filter(|(key, _)| !NON_PROMPT_KEYS.contains(&key.as_str()))
            .map(|(_, value)| prompt_bytes(value))
            .sum(),
        _ => 0,
    }
}

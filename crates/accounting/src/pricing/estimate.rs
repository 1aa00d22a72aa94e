//! Token estimates for when no usage was reported (a cut stream) and for worst-case budget reservations.
//!
//! The rule is the common "four bytes per token" approximation. For a JSON request body only the text a model
//! reads is measured: the bytes of every string value, except values of keys that are structure, not prompt
//! (`model`, `role`, `type`, MIME types) and inline media (`data` members, `data:` URLs), which are billed by
//! providers per image/second and would otherwise inflate the estimate a thousandfold. A body that is not JSON
//! is measured whole. Estimates are marked [`CostSource::Estimated`](super::CostSource::Estimated) when priced.
//!
//! The same pass tells whether part of the prompt is **not in the body's text** ([`PromptEstimate::held_by_provider`]),
//! so that a reservation does not trust the text alone:
//! - a prompt the provider already holds: OpenAI Responses `previous_response_id` or `conversation`, Gemini
//!   `cachedContent` (top-level members, when not `null`);
//! - file and media inputs anywhere in the body: members `file_id`, `file`, `file_data`, `file_url`, `image_url`,
//!   `input_image`, `input_file`, `input_audio`, Gemini `fileData`/`inlineData` (and their snake-case forms), and
//!   content blocks whose `type` is `image`, `document`, `file`, `image_url`, `input_image`, `input_file` or
//!   `input_audio` (Anthropic image/document blocks with a `source`, OpenAI content parts).
//!
//! Tool definitions, response formats and metadata (`tools`, `functions`, `tool_choice`, `response_format`,
//! `text`, `metadata` at the top level) describe shapes, not inputs: a parameter named `file` in a JSON schema is
//! not a file, so those members are not searched.
//!
//! Memory: the body is read by a streaming visitor (serde's `Deserializer` driving [`Visitor`]s that only count),
//! so no document tree is built; the only buffer is the JSON decoder's scratch space for a string that contains
//! escapes (at most the longest such string). Nesting deeper than serde_json's recursion limit (128) makes the
//! body "not JSON", as a full parse would.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// Bytes per estimated token.
const BYTES_PER_TOKEN: u64 = 4;

/// Keys whose string values are not prompt text.
const NON_PROMPT_KEYS: &[&str] =
    &["model", "role", "type", "mime_type", "mimeType", "media_type", "data", "id", "tool_call_id"];

/// Top-level members naming a prompt the provider holds (when not `null`).
const PROVIDER_PROMPT_KEYS: &[&str] = &["previous_response_id", "conversation", "cachedContent", "cached_content"];

/// Members, at any depth, that carry a file or media input (when not `null`).
const MEDIA_KEYS: &[&str] = &[
    "file_id",
    "file",
    "file_data",
    "file_url",
    "image_url",
    "input_image",
    "input_file",
    "input_audio",
    "fileData",
    "inlineData",
    "inline_data",
];

/// `type` values of content blocks that carry a file or media input.
const MEDIA_TYPES: &[&str] = &["image", "document", "file", "image_url", "input_image", "input_file", "input_audio"];

/// Top-level members that describe shapes (schemas, formats) or labels, not inputs: not searched for media.
const SHAPE_KEYS: &[&str] = &["tools", "functions", "tool_choice", "response_format", "text", "metadata"];

/// What a request body says about its prompt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PromptEstimate {
    /// Estimated prompt tokens from the body's text (see the module documentation).
    pub tokens: u64,
    /// Part of the prompt is not in the body's text: held by the provider (a previous response, a conversation,
    /// a cached context) or given as files or media. The text estimate is then a lower bound only.
    pub held_by_provider: bool,
}

/// Estimates a request body's prompt in one streaming pass (see the module documentation).
pub fn estimate_prompt(request_body: &[u8]) -> PromptEstimate {
    let mut scan = Scan::default();
    let mut deserializer = serde_json::Deserializer::from_slice(request_body);
    let node = Node { scan: &mut scan, place: Place { count: true, detect: true, top: true } };
    match node.deserialize(&mut deserializer).and_then(|_| deserializer.end()) {
        Ok(()) => PromptEstimate { tokens: scan.bytes.div_ceil(BYTES_PER_TOKEN), held_by_provider: scan.held },
        Err(_) => {
            PromptEstimate { tokens: (request_body.len() as u64).div_ceil(BYTES_PER_TOKEN), held_by_provider: false }
        }
    }
}

/// Estimated prompt tokens of a request body (see the module documentation).
pub fn estimate_prompt_tokens(request_body: &[u8]) -> u64 {
    estimate_prompt(request_body).tokens
}

/// Whether part of a request body's prompt is held by the provider or not in text (see the module documentation).
pub fn prompt_held_by_provider(request_body: &[u8]) -> bool {
    estimate_prompt(request_body).held_by_provider
}

/// Estimated output tokens from the characters of generated text seen
/// ([`Observation::output_chars`](crate::Observation::output_chars)).
pub fn estimate_output_tokens(output_chars: u64) -> u64 {
    output_chars.div_ceil(BYTES_PER_TOKEN)
}

/// What the pass has found so far.
#[derive(Debug, Default)]
struct Scan {
    bytes: u64,
    held: bool,
}

/// Where a value sits.
#[derive(Debug, Clone, Copy)]
struct Place {
    /// Its strings are prompt text.
    count: bool,
    /// It is searched for provider-held prompts and media.
    detect: bool,
    /// It is the document itself (its members are top-level members).
    top: bool,
}

/// The shape of a value, as much as its parent needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Null,
    /// A string that is one of [`MEDIA_TYPES`].
    MediaType,
    Other,
}

/// Visits one value, counting its prompt bytes and noting held prompts.
struct Node<'s> {
    scan: &'s mut Scan,
    place: Place,
}

impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = Shape;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Shape, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_> {
    type Value = Shape;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_str<E>(self, text: &str) -> Result<Shape, E> {
        if self.place.count && !text.starts_with("data:") {
            self.scan.bytes = self.scan.bytes.saturating_add(text.len() as u64);
        }
        Ok(if MEDIA_TYPES.contains(&text) { Shape::MediaType } else { Shape::Other })
    }

    fn visit_unit<E>(self) -> Result<Shape, E> {
        Ok(Shape::Null)
    }

    fn visit_none<E>(self) -> Result<Shape, E> {
        Ok(Shape::Null)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Shape, E> {
        Ok(Shape::Other)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Shape, E> {
        Ok(Shape::Other)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Shape, E> {
        Ok(Shape::Other)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Shape, E> {
        Ok(Shape::Other)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<Shape, A::Error> {
        let place = Place { top: false, ..self.place };
        while items.next_element_seed(Node { scan: &mut *self.scan, place })?.is_some() {}
        Ok(Shape::Other)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut members: A) -> Result<Shape, A::Error> {
        while let Some(key) = members.next_key_seed(KeySeed)? {
            let place = Place {
                count: self.place.count && !key.non_prompt,
                detect: self.place.detect && !(self.place.top && key.shape),
                top: false,
            };
            let shape = members.next_value_seed(Node { scan: &mut *self.scan, place })?;
            if self.place.detect && shape != Shape::Null {
                let held =
                    key.media || (key.provider_prompt && self.place.top) || (key.is_type && shape == Shape::MediaType);
                self.scan.held |= held;
            }
        }
        Ok(Shape::Other)
    }
}

/// What an object key means to the pass.
#[derive(Debug, Clone, Copy, Default)]
struct KeyInfo {
    non_prompt: bool,
    provider_prompt: bool,
    media: bool,
    is_type: bool,
    shape: bool,
}

/// Classifies a key without keeping it.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = KeyInfo;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<KeyInfo, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for KeySeed {
    type Value = KeyInfo;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("an object key")
    }

    fn visit_str<E>(self, key: &str) -> Result<KeyInfo, E> {
        Ok(KeyInfo {
            non_prompt: NON_PROMPT_KEYS.contains(&key),
            provider_prompt: PROVIDER_PROMPT_KEYS.contains(&key),
            media: MEDIA_KEYS.contains(&key),
            is_type: key == "type",
            shape: SHAPE_KEYS.contains(&key),
        })
    }
}

//! Usage reporting the gateway injects into OpenAI-style streams, and its removal before the client sees it.
//!
//! Without `stream_options.include_usage` an OpenAI-style stream carries no usage at all, so the gateway
//! must ask for it upstream ([`ensure_include_usage`]). A client that did not ask must not receive the extra
//! usage-only chunk (`"choices":[]` with a non-null `usage`): clients that index `choices[0]` crash on it.
//! [`InjectedUsageFilter`] removes exactly that event and passes every other byte through unchanged, in
//! order, as zero-copy slices of the input chunks.
//!
//! The filter's protocol, per chunk:
//! 1. Scan line ends (`\n`, `\r\n`, `\r`, also split across chunks) to find where each event ends (a blank
//!    line). Bytes between events (stray blank lines) pass.
//! 2. A complete event is checked (a cheap substring test, then a parse of its data only when it mentions
//!    both `"usage"` and `"choices"`); a usage-only event is dropped with its blank line, anything else is
//!    passed as part of one contiguous slice of the chunk.
//! 3. The tail of the chunk that belongs to an unfinished event is held (as slices, not copies) until the
//!    event ends, since it might be the usage event; an event held beyond [`InjectedUsageFilter::MAX_EVENT_BYTES`]
//!    is released and passed through unexamined.
//! 4. At EOF ([`InjectedUsageFilter::finish`]) a held event is dropped if it is a complete usage-only event,
//!    otherwise released.

#[cfg(test)]
mod tests;

use bytes::Bytes;
use serde::Deserialize;

use crate::json_scan::{self, string_end};
use crate::sse::{SseItem, SseParser};

/// The outcome of [`ensure_include_usage`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IncludeUsage {
    /// The client already set `stream_options.include_usage: true`: forward the body unchanged and do not
    /// filter the stream.
    ClientAsked,
    /// The rewritten body to send upstream; the stream must go through an [`InjectedUsageFilter`].
    Injected(Vec<u8>),
}

/// Makes an OpenAI-style request body ask for usage in the stream: adds `"stream_options":
/// {"include_usage":true}`, keeping other `stream_options` keys and every other byte of the body as it was.
///
/// Returns `None` when the body is not a JSON object or its `stream_options` is neither an object nor
/// `null` (forward it unchanged: the upstream will refuse it). Call it for streaming requests only.
///
/// Memory: the body is validated as a full parse would (but without building a document), then only the byte
/// ranges of its top-level members (and of `stream_options`' members) are collected and the result is spliced
/// from the original bytes: extra memory is O(top-level members) plus the output. As in a JSON object read
/// into a map, the last of duplicate keys wins.
pub fn ensure_include_usage(body: &[u8]) -> Option<IncludeUsage> {
    if !json_scan::is_valid_document(body) {
        return None;
    }
    let members = object_members(body, 0)?;
    let stream_options = members.members.iter().rev().find(|member| member.key_is(body, "stream_options"));
    let mut rewritten = Vec::with_capacity(body.len() + 40);
    match stream_options.map(|member| (member.value.clone(), body.get(member.value.start))) {
        Some((options_value, Some(b'{'))) => {
            let inner = object_members(body, options_value.start)?;
            let include = inner.members.iter().rev().find(|member| member.key_is(body, "include_usage"));
            match include {
                Some(include) if &body[include.value.clone()] == b"true" => return Some(IncludeUsage::ClientAsked),
                Some(include) => splice(&mut rewritten, body, include.value.clone(), b"true"),
                None => insert_member(&mut rewritten, body, &inner, b"\"include_usage\":true"),
            }
        }
        Some((value, Some(b'n'))) => splice(&mut rewritten, body, value, b"{\"include_usage\":true}"),
        Some(_) => return None,
        None => insert_member(&mut rewritten, body, &members, b"\"stream_options\":{\"include_usage\":true}"),
    }
    Some(IncludeUsage::Injected(rewritten))
}

/// Byte ranges of an object's members in a JSON text already known to be valid.
struct ObjectMembers {
    /// Offset just after the opening `{`.
    after_open: usize,
    members: Vec<Member>,
}

struct Member {
    /// The key including its quotes.
    key: std::ops::Range<usize>,
    value: std::ops::Range<usize>,
}

impl Member {
    fn key_is(&self, text: &[u8], name: &str) -> bool {
        let raw = &text[self.key.clone()];
        if memchr::memchr(b'\\', raw).is_none() {
            return raw.get(1..raw.len() - 1) == Some(name.as_bytes());
        }
        serde_json::from_slice::<String>(raw).is_ok_and(|key| key == name)
    }
}

/// Replaces `range` of `body` with `replacement`.
fn splice(out: &mut Vec<u8>, body: &[u8], range: std::ops::Range<usize>, replacement: &[u8]) {
    out.extend_from_slice(&body[..range.start]);
    out.extend_from_slice(replacement);
    out.extend_from_slice(&body[range.end..]);
}

/// Inserts `member` as the first member of `object`.
fn insert_member(out: &mut Vec<u8>, body: &[u8], object: &ObjectMembers, member: &[u8]) {
    out.extend_from_slice(&body[..object.after_open]);
    out.extend_from_slice(member);
    if !object.members.is_empty() {
        out.push(b',');
    }
    out.extend_from_slice(&body[object.after_open..]);
}

fn skip_whitespace(text: &[u8], mut pos: usize) -> usize {
    while matches!(text.get(pos), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        pos += 1;
    }
    pos
}

/// The members of the object starting at (or after whitespace from) `pos`.
fn object_members(text: &[u8], pos: usize) -> Option<ObjectMembers> {
    let open = skip_whitespace(text, pos);
    if text.get(open) != Some(&b'{') {
        return None;
    }
    let after_open = open + 1;
    let mut members = Vec::new();
    let mut pos = skip_whitespace(text, after_open);
    if text.get(pos) == Some(&b'}') {
        return Some(ObjectMembers { after_open, members });
    }
    loop {
        if text.get(pos) != Some(&b'"') {
            return None;
        }
        let key_end = string_end(text, pos + 1)? + 1;
        let colon = skip_whitespace(text, key_end);
        if text.get(colon) != Some(&b':') {
            return None;
        }
        let value_start = skip_whitespace(text, colon + 1);
        let value_end = value_end(text, value_start)?;
        members.push(Member { key: pos..key_end, value: value_start..value_end });
        pos = skip_whitespace(text, value_end);
        match text.get(pos) {
            Some(b',') => pos = skip_whitespace(text, pos + 1),
            Some(b'}') => return Some(ObjectMembers { after_open, members }),
            _ => return None,
        }
    }
}

/// The offset just past the JSON value starting at `pos`.
fn value_end(text: &[u8], pos: usize) -> Option<usize> {
    match text.get(pos)? {
        b'"' => Some(string_end(text, pos + 1)? + 1),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut at = pos;
            loop {
                match text.get(at)? {
                    b'"' => at = string_end(text, at + 1)?,
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(at + 1);
                        }
                    }
                    _ => {}
                }
                at += 1;
            }
        }
        _ => Some(
            pos + text[pos..]
                .iter()
                .take_while(|byte| !matches!(byte, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))
                .count(),
        ),
    }
}

/// A `\r` ended the previous chunk; a `\n` opening the next one belongs to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PendingCr {
    None,
    /// The `\r` ended a line inside the current event.
    InEvent,
    /// The `\r` was an event's blank line; `dropped` says whether that event was removed.
    AfterEvent {
        dropped: bool,
    },
}

/// Removes the usage-only event from an OpenAI-style stream; see the module documentation.
#[derive(Debug)]
pub struct InjectedUsageFilter {
    /// Slices of the unfinished event from earlier chunks.
    held: Vec<Bytes>,
    held_len: usize,
    /// The current line has bytes (it is not blank).
    line_has_bytes: bool,
    /// The current event has at least one line.
    event_has_lines: bool,
    pending_cr: PendingCr,
    /// The current event outgrew the hold cap and is passed through unexamined.
    passthrough: bool,
    removed: u64,
}

impl Default for InjectedUsageFilter {
    fn default() -> Self {
        Self::new()
    }
}

impl InjectedUsageFilter {
    /// Bytes of one unfinished event held back at most (1 MiB; a usage chunk is under 1 KiB, and a bigger
    /// event is surely content that must not be delayed further).
    pub const MAX_EVENT_BYTES: usize = 1024 * 1024;

    /// A filter at the start of a stream.
    pub fn new() -> Self {
        Self {
            held: Vec::new(),
            held_len: 0,
            line_has_bytes: false,
            event_has_lines: false,
            pending_cr: PendingCr::None,
            passthrough: false,
            removed: 0,
        }
    }

    /// Usage-only events removed so far.
    pub fn removed(&self) -> u64 {
        self.removed
    }

    /// Feeds one chunk of the upstream body; `emit` receives the bytes to forward, in order, as slices of
    /// this and earlier chunks.
    pub fn push(&mut self, chunk: &Bytes, emit: &mut impl FnMut(Bytes)) {
        let len = chunk.len();
        if len == 0 {
            return;
        }
        let mut run_start = 0;
        let mut event_start = 0;
        let mut pos = 0;
        if chunk[0] == b'\n' {
            match self.pending_cr {
                PendingCr::InEvent => pos = 1,
                PendingCr::AfterEvent { dropped } => {
                    pos = 1;
                    event_start = 1;
                    if dropped {
                        run_start = 1;
                    }
                }
                PendingCr::None => {}
            }
        }
        self.pending_cr = PendingCr::None;
        while let Some(found) = memchr::memchr2(b'\n', b'\r', &chunk[pos..]) {
            let at = pos + found;
            let blank = !self.line_has_bytes && at == pos;
            let mut end = at + 1;
            let cr_at_end = chunk[at] == b'\r' && end == len;
            if chunk[at] == b'\r' && chunk.get(end) == Some(&b'\n') {
                end += 1;
            }
            self.line_has_bytes = false;
            if !blank {
                self.event_has_lines = true;
                if cr_at_end {
                    self.pending_cr = PendingCr::InEvent;
                }
            } else if self.event_has_lines {
                let dropped = self.complete_event(chunk, run_start, event_start, end, emit);
                if dropped {
                    run_start = end;
                }
                event_start = end;
                if cr_at_end {
                    self.pending_cr = PendingCr::AfterEvent { dropped };
                }
            } else {
                // A blank line outside any event: it passes with the bytes around it.
                event_start = end;
                if cr_at_end {
                    self.pending_cr = PendingCr::AfterEvent { dropped: false };
                }
            }
            pos = end;
        }
        if pos < len {
            self.line_has_bytes = true;
        }
        if self.passthrough {
            emit_range(chunk, run_start, len, emit);
            return;
        }
        emit_range(chunk, run_start, event_start, emit);
        if event_start < len {
            self.held.push(chunk.slice(event_start..));
            self.held_len += len - event_start;
            if self.held_len > Self::MAX_EVENT_BYTES {
                self.release_held(emit);
                self.passthrough = true;
            }
        }
    }

    /// Ends the stream: a held event is dropped if it is a complete usage-only event, otherwise released.
    pub fn finish(&mut self, emit: &mut impl FnMut(Bytes)) {
        if !self.held.is_empty() {
            let bytes: Vec<u8> = self.held.iter().flat_map(|part| part.iter().copied()).collect();
            if is_usage_only_event(&bytes) {
                self.held.clear();
                self.held_len = 0;
                self.removed += 1;
            } else {
                self.release_held(emit);
            }
        }
        *self = Self { removed: self.removed, ..Self::new() };
    }

    /// Decides a complete event spanning the held slices and `chunk[event_start..end]`; returns whether it
    /// was dropped. Bytes before it in the chunk (from `run_start`) are emitted first when it is dropped.
    fn complete_event(
        &mut self,
        chunk: &Bytes,
        run_start: usize,
        event_start: usize,
        end: usize,
        emit: &mut impl FnMut(Bytes),
    ) -> bool {
        self.event_has_lines = false;
        if self.passthrough {
            self.passthrough = false;
            return false;
        }
        let usage_only = if self.held.is_empty() {
            is_usage_only_event(&chunk[event_start..end])
        } else {
            let mut bytes = Vec::with_capacity(self.held_len + end - event_start);
            for part in &self.held {
                bytes.extend_from_slice(part);
            }
            bytes.extend_from_slice(&chunk[event_start..end]);
            is_usage_only_event(&bytes)
        };
        if usage_only {
            emit_range(chunk, run_start, event_start, emit);
            self.held.clear();
            self.held_len = 0;
            self.removed += 1;
        } else {
            self.release_held(emit);
        }
        usage_only
    }

    fn release_held(&mut self, emit: &mut impl FnMut(Bytes)) {
        for part in self.held.drain(..) {
            emit(part);
        }
        self.held_len = 0;
    }
}

fn emit_range(chunk: &Bytes, start: usize, end: usize, emit: &mut impl FnMut(Bytes)) {
    if start < end {
        emit(chunk.slice(start..end));
    }
}

/// Whether the raw bytes of one event are a usage-only chunk: `"choices":[]` and a non-null `usage`.
/// (Azure's first chunk also has empty `choices`, but no usage, so it stays.)
fn is_usage_only_event(bytes: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct Probe {
        choices: Option<Vec<serde::de::IgnoredAny>>,
        usage: Option<serde::de::IgnoredAny>,
    }
    // Cheap rejection first: every content chunk of an include_usage stream has `"usage":null` and a
    // non-empty `choices`, so only a chunk with both an empty array and a usage object is parsed.
    let followed_by = |key: &[u8], shape: &[u8]| {
        memchr::memmem::find_iter(bytes, key).any(|at| {
            let mut rest = &bytes[at + key.len()..];
            shape.iter().all(|&expected| {
                rest = rest.trim_ascii_start();
                let matched = rest.first() == Some(&expected);
                rest = rest.get(1..).unwrap_or_default();
                matched
            })
        })
    };
    if !followed_by(b"\"choices\"", b":[]") || !followed_by(b"\"usage\"", b":{") {
        return false;
    }
    let mut usage_only = false;
    let mut events = 0;
    let mut judge = |item: SseItem<'_>| {
        if let SseItem::Event(event) = item {
            events += 1;
            usage_only = serde_json::from_str::<Probe>(event.data)
                .is_ok_and(|probe| probe.usage.is_some() && probe.choices.is_some_and(|choices| choices.is_empty()));
        }
    };
    let mut parser = SseParser::new();
    parser.push(bytes, &mut judge);
    parser.finish(&mut judge);
    usage_only && events == 1
}

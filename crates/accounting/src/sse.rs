//! Incremental `text/event-stream` parser (WHATWG HTML §9.2) over raw byte chunks.
//!
//! The parser is fed the response body chunk by chunk, in whatever pieces the network delivered, and calls
//! back with [`SseItem`]s. It produces the same items however the bytes were split (a proptest holds it to
//! that), including splits inside `\r\n` and inside multi-byte UTF-8 characters.
//!
//! Decisions where the spec leaves room or where accounting needs more than a browser:
//! - Lines are split on `\n`, `\r\n` and a lone `\r` only; U+2028/U+2029/NEL inside JSON are ordinary text.
//! - Bytes are decoded per complete line with lossy UTF-8 (invalid sequences become U+FFFD), so an invalid
//!   upstream never panics the gateway and a character split across chunks is decoded whole.
//! - A block with an `event:` field but no `data:` dispatches nothing per spec; it is still reported as
//!   [`SseItem::NamedOnly`] so a caller that cares about the name can see it.
//! - Lines whose field name is not `data`, `event`, `id` or `retry` are ignored by the spec; they are reported
//!   as [`SseItem::OtherLine`] because Gemini sends raw multi-line JSON errors without `data:` mid-stream.
//! - `id:` and `retry:` are parsed away and ignored (no reconnection here).
//! - At EOF ([`SseParser::finish`]) a pending event is delivered even without its blank line (the spec discards
//!   it; accounting would rather see a final usage chunk that a proxy cut short).
//! - One line (and one event's data) is capped at [`SseParser::DEFAULT_MAX_LINE_BYTES`] unless configured
//!   otherwise: the bytes over the cap are dropped, the event they belong to is discarded, and
//!   [`SseParser::discarded_events`] counts it, so a hostile upstream cannot make the gateway buffer without bound.

#[cfg(test)]
mod tests;

/// One thing the parser recognised in the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseItem<'a> {
    /// A dispatched event: at least one `data:` line followed by a blank line (or EOF).
    Event(SseEvent<'a>),
    /// A block that had an `event:` field but no `data:` line; the spec dispatches nothing.
    NamedOnly {
        /// The value of the last `event:` field of the block.
        event: &'a str,
    },
    /// A non-empty line that is neither a comment nor a known field, e.g. a line of raw JSON.
    OtherLine(&'a str),
}

/// A dispatched server-sent event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent<'a> {
    /// The `event:` field, `None` when absent (the spec's default type `message`).
    pub event: Option<&'a str>,
    /// The `data:` lines joined with `\n`.
    pub data: &'a str,
}

/// Where the previous chunk ended relative to a `\r`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LineEnd {
    /// Nothing pending.
    Clear,
    /// The previous chunk ended with `\r`: a `\n` at the start of the next chunk belongs to that line end.
    AfterCr,
}

/// Incremental SSE parser; see the module documentation for the exact rules.
#[derive(Debug)]
pub struct SseParser {
    /// Bytes of a line that started in an earlier chunk and has not ended yet.
    partial: Vec<u8>,
    /// The current line exceeded the cap: drop bytes until its end.
    skipping_line: bool,
    line_end: LineEnd,
    /// No line has been completed yet (a leading BOM is stripped from the first line only).
    first_line: bool,
    data: String,
    has_data: bool,
    event: String,
    has_event: bool,
    /// The current event lost bytes to the cap and will not be dispatched.
    event_poisoned: bool,
    max_line_bytes: usize,
    discarded_events: u64,
}

impl Default for SseParser {
    fn default() -> Self {
        Self::new()
    }
}

impl SseParser {
    /// Default cap, in bytes, for one line and for one event's joined data (16 MiB): far above any real usage
    /// chunk, low enough that a hostile upstream cannot exhaust memory.
    pub const DEFAULT_MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

    /// A parser with the default line cap.
    pub fn new() -> Self {
        Self::with_max_line_bytes(Self::DEFAULT_MAX_LINE_BYTES)
    }

    /// A parser whose lines and event data are capped at `max_line_bytes` bytes.
    pub fn with_max_line_bytes(max_line_bytes: usize) -> Self {
        Self {
            partial: Vec::new(),
            skipping_line: false,
            line_end: LineEnd::Clear,
            first_line: true,
            data: String::new(),
            has_data: false,
            event: String::new(),
            has_event: false,
            event_poisoned: false,
            max_line_bytes,
            discarded_events: 0,
        }
    }

    /// Events dropped so far because a line or their data went over the cap.
    pub fn discarded_events(&self) -> u64 {
        self.discarded_events
    }

    /// Feeds one chunk of the body, calling `on_item` for every item completed by it.
    pub fn push(&mut self, chunk: &[u8], on_item: &mut impl FnMut(SseItem<'_>)) {
        let mut rest = chunk;
        if self.line_end == LineEnd::AfterCr {
            if let [b'\n', tail @ ..] = rest {
                rest = tail;
            }
            if !chunk.is_empty() {
                self.line_end = LineEnd::Clear;
            }
        }
        while let Some(at) = memchr::memchr2(b'\n', b'\r', rest) {
            let line = &rest[..at];
            if self.partial.is_empty() && !self.skipping_line {
                self.line(line, on_item);
            } else {
                self.append_partial(line);
                let partial = std::mem::take(&mut self.partial);
                if self.skipping_line {
                    self.skipping_line = false;
                } else {
                    self.line(&partial, on_item);
                }
                self.partial = partial;
                self.partial.clear();
            }
            let after = at + 1;
            if rest[at] == b'\r' {
                match rest.get(after) {
                    Some(b'\n') => {
                        rest = &rest[after + 1..];
                        continue;
                    }
                    None => self.line_end = LineEnd::AfterCr,
                    Some(_) => {}
                }
            }
            rest = &rest[after..];
        }
        self.append_partial(rest);
    }

    /// Ends the stream: a last line without a line end is processed, and a pending event is delivered even
    /// without its terminating blank line (lenient for accounting, see the module documentation).
    pub fn finish(&mut self, on_item: &mut impl FnMut(SseItem<'_>)) {
        if !self.partial.is_empty() && !self.skipping_line {
            let partial = std::mem::take(&mut self.partial);
            self.line(&partial, on_item);
        }
        self.partial.clear();
        self.skipping_line = false;
        self.line_end = LineEnd::Clear;
        self.dispatch(on_item);
    }

    /// Buffers the start of a line that continues in a later chunk, enforcing the cap.
    fn append_partial(&mut self, bytes: &[u8]) {
        if self.skipping_line || bytes.is_empty() {
            return;
        }
        if self.partial.len() + bytes.len() > self.max_line_bytes {
            self.partial.clear();
            self.skipping_line = true;
            self.event_poisoned = true;
        } else {
            self.partial.extend_from_slice(bytes);
        }
    }

    fn line(&mut self, mut line: &[u8], on_item: &mut impl FnMut(SseItem<'_>)) {
        if self.first_line {
            self.first_line = false;
            if let [0xEF, 0xBB, 0xBF, tail @ ..] = line {
                line = tail;
            }
        }
        if line.len() > self.max_line_bytes {
            self.event_poisoned = true;
            return;
        }
        if line.is_empty() {
            self.dispatch(on_item);
            return;
        }
        if line[0] == b':' {
            return;
        }
        let (field, value) = match memchr::memchr(b':', line) {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &[][..]),
        };
        match field {
            b"data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.has_data = true;
                if self.data.len() + value.len() > self.max_line_bytes {
                    self.event_poisoned = true;
                } else {
                    self.data.push_str(&String::from_utf8_lossy(value));
                }
            }
            b"event" => {
                self.event.clear();
                self.event.push_str(&String::from_utf8_lossy(value));
                self.has_event = true;
            }
            b"id" | b"retry" => {}
            _ => on_item(SseItem::OtherLine(&String::from_utf8_lossy(line))),
        }
    }

    fn dispatch(&mut self, on_item: &mut impl FnMut(SseItem<'_>)) {
        if self.event_poisoned {
            self.discarded_events += 1;
        } else if self.has_data {
            let event = self.has_event.then_some(self.event.as_str());
            on_item(SseItem::Event(SseEvent { event, data: &self.data }));
        } else if self.has_event {
            on_item(SseItem::NamedOnly { event: &self.event });
        }
        self.event_poisoned = false;
        self.has_data = false;
        self.has_event = false;
        self.data.clear();
        self.event.clear();
    }
}

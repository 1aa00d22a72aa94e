//! A one-pass walk over the object keys of a JSON text, so hot events are inspected without a full parse.
//!
//! It relies on a property of JSON: a `"` that is not escaped always opens or closes a string, and a string
//! followed by `:` is an object key. Text inside strings (where a model may well write `"usage":`) is skipped
//! whole, so keys are only ever found where they are structure. Malformed input just ends the walk early.

/// Walks the keys of a JSON text in document order, at every nesting depth.
pub(crate) struct KeyWalk<'a> {
    text: &'a [u8],
    pos: usize,
}

impl<'a> KeyWalk<'a> {
    pub(crate) fn new(text: &'a [u8]) -> Self {
        Self { text, pos: 0 }
    }

    /// Continues the walk at `pos` (e.g. after a value the caller has consumed).
    pub(crate) fn resume_at(&mut self, pos: usize) {
        self.pos = self.pos.max(pos);
    }

    /// The next key (raw, without quotes) and the offset of the first byte of its value.
    pub(crate) fn next_key(&mut self) -> Option<(&'a [u8], usize)> {
        loop {
            let open = self.pos + memchr::memchr(b'"', self.text.get(self.pos..)?)?;
            let close = string_end(self.text, open + 1)?;
            let after = skip_whitespace(self.text, close + 1);
            if self.text.get(after) == Some(&b':') {
                let value = skip_whitespace(self.text, after + 1);
                self.pos = value;
                return Some((&self.text[open + 1..close], value));
            }
            self.pos = close + 1;
        }
    }
}

/// Index of the closing quote of the string whose content starts at `from`.
pub(crate) fn string_end(text: &[u8], mut from: usize) -> Option<usize> {
    loop {
        let at = from + memchr::memchr2(b'"', b'\\', text.get(from..)?)?;
        if text[at] == b'"' {
            return Some(at);
        }
        from = at + 2;
    }
}

fn skip_whitespace(text: &[u8], mut pos: usize) -> usize {
    while matches!(text.get(pos), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        pos += 1;
    }
    pos
}

/// The raw content (escapes undecoded) of the string value at `pos`, if the value there is a string.
pub(crate) fn string_at(text: &[u8], pos: usize) -> Option<&[u8]> {
    if text.get(pos) != Some(&b'"') {
        return None;
    }
    let end = string_end(text, pos + 1)?;
    Some(&text[pos + 1..end])
}

/// The string value at `pos`, decoded (escapes resolved), if the value there is a string.
pub(crate) fn decoded_string_at(text: &[u8], pos: usize) -> Option<String> {
    let raw = string_at(text, pos)?;
    if memchr::memchr(b'\\', raw).is_none() {
        return std::str::from_utf8(raw).ok().map(str::to_owned);
    }
    serde_json::from_slice(&text[pos..pos + raw.len() + 2]).ok()
}

/// Whether the value at `pos` is an object.
pub(crate) fn is_object_at(text: &[u8], pos: usize) -> bool {
    text.get(pos) == Some(&b'{')
}

/// Decoded size of a raw JSON string content: (UTF-8 bytes, characters), counting an escape as one character
/// (a surrogate pair as two: this feeds a rough estimate, not a bill).
pub(crate) fn text_size(raw: &[u8]) -> (u64, u64) {
    let mut bytes = 0u64;
    let mut chars = 0u64;
    let mut index = 0;
    while index < raw.len() {
        let byte = raw[index];
        if byte == b'\\' {
            if raw.get(index + 1) == Some(&b'u') {
                // \uXXXX is at most three UTF-8 bytes; use two as the typical non-ASCII width.
                bytes += 2;
                index += 6;
            } else {
                bytes += 1;
                index += 2;
            }
            chars += 1;
        } else {
            bytes += 1;
            if byte & 0xC0 != 0x80 {
                chars += 1;
            }
            index += 1;
        }
    }
    (bytes, chars)
}

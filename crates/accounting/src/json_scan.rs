//! A one-pass walk over the object keys of a JSON text, so hot events are inspected without a full parse.
//!
//! It relies on a property of JSON: a `"` that is not escaped always opens or closes a string, and a string
//! followed by `:` is an object key. Text inside strings (where a model may well write `"usage":`) is skipped
//! whole, so keys are only ever found where they are structure. Malformed input just ends the walk early.
//! The walk also tracks where each key sits (depth and enclosing keys), so a reader can accept a member only at
//! its documented position and never one nested inside model-written JSON.

/// Open containers whose label (the key they are the value of) the walk remembers; deeper ones are only counted.
const TRACKED_DEPTH: usize = 4;

/// Walks the keys of a JSON text in document order, at every nesting depth, and knows where each key sits: its
/// depth ([`KeyWalk::depth`], 1 for a member of the outermost object) and the keys its enclosing containers are
/// the values of ([`KeyWalk::label`]). The brackets between strings are counted as the walk passes them; the
/// strings themselves are skipped whole, so brackets written inside a string never count.
pub(crate) struct KeyWalk<'a> {
    text: &'a [u8],
    pos: usize,
    /// Containers open at `pos`.
    depth: usize,
    /// `labels[d - 1]`: the key whose value is the container open at depth `d` (`None` for an array element or
    /// the document itself).
    labels: [Option<&'a [u8]>; TRACKED_DEPTH],
    /// The last key returned and the offset of its value, to label a container that opens there.
    last: Option<(&'a [u8], usize)>,
}

impl<'a> KeyWalk<'a> {
    pub(crate) fn new(text: &'a [u8]) -> Self {
        Self { text, pos: 0, depth: 0, labels: [None; TRACKED_DEPTH], last: None }
    }

    /// Continues the walk at `pos`, just after a whole value the caller has consumed (so the brackets skipped
    /// balance out).
    pub(crate) fn resume_at(&mut self, pos: usize) {
        self.pos = self.pos.max(pos);
    }

    /// Depth of the object holding the last key returned: 1 for a member of the outermost object.
    pub(crate) fn depth(&self) -> usize {
        self.depth
    }

    /// The key whose value is the container open at `depth` (1-based), if it is an object member and `depth` is
    /// tracked.
    pub(crate) fn label(&self, depth: usize) -> Option<&'a [u8]> {
        depth.checked_sub(1).and_then(|index| self.labels.get(index).copied().flatten())
    }

    /// The next key (raw, without quotes) and the offset of the first byte of its value.
    pub(crate) fn next_key(&mut self) -> Option<(&'a [u8], usize)> {
        loop {
            let open = self.pos + memchr::memchr(b'"', self.text.get(self.pos..)?)?;
            self.count_brackets(self.pos, open);
            let close = string_end(self.text, open + 1)?;
            let after = skip_whitespace(self.text, close + 1);
            if self.text.get(after) == Some(&b':') {
                let value = skip_whitespace(self.text, after + 1);
                self.pos = value;
                let key = &self.text[open + 1..close];
                self.last = Some((key, value));
                return Some((key, value));
            }
            self.pos = close + 1;
        }
    }

    /// Counts the containers opened and closed in `text[from..to]` (no string starts in that range).
    fn count_brackets(&mut self, from: usize, to: usize) {
        for at in from..to {
            match self.text[at] {
                b'{' | b'[' => {
                    self.depth = self.depth.saturating_add(1);
                    let label = self.last.filter(|&(_, value)| value == at).map(|(key, _)| key);
                    if let Some(slot) = self.depth.checked_sub(1).and_then(|index| self.labels.get_mut(index)) {
                        *slot = label;
                    }
                }
                b'}' | b']' => self.depth = self.depth.saturating_sub(1),
                _ => {}
            }
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

/// Whether `text` is one JSON document exactly as a full parse into `serde_json::Value` would accept it
/// (valid UTF-8 and escapes in strings, numbers in range, the decoder's nesting limit), without building it:
/// strings are decoded one at a time and dropped, so the only buffer is the decoder's scratch space for the
/// longest string with escapes. (serde's `IgnoredAny` is lighter but skips string and number checks.)
pub(crate) fn is_valid_document(text: &[u8]) -> bool {
    use serde::de::DeserializeSeed;
    let mut deserializer = serde_json::Deserializer::from_slice(text);
    Validate.deserialize(&mut deserializer).and_then(|()| deserializer.end()).is_ok()
}

/// Visits any JSON value, checking it as `serde_json::Value` would, and keeps nothing.
struct Validate;

impl<'de> serde::de::DeserializeSeed<'de> for Validate {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Validate {
    type Value = ();

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut items: A) -> Result<(), A::Error> {
        while items.next_element_seed(Validate)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut members: A) -> Result<(), A::Error> {
        while members.next_key_seed(Validate)?.is_some() {
            members.next_value_seed(Validate)?;
        }
        Ok(())
    }
}

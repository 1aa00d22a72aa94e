//! A stored response: status, content type and the body as the frames the upstream sent, with a compact
//! binary encoding for backends that hold bytes (Redis).

use bytes::{Buf, BufMut, Bytes};

/// The encoding's first bytes; a new layout gets a new magic, and old entries read as misses.
const MAGIC: &[u8; 4] = b"TGC1";
/// The most frames an encoded entry may claim (a decoder never allocates for more).
const MAX_FRAMES: u32 = 1 << 20;
/// Longest content type kept.
const MAX_CONTENT_TYPE: usize = 256;

/// One cached response, compact: one allocation holds the body, where each frame ends, and the content type.
///
/// The frames an upstream connection hands over are slices of its read buffer; an entry that kept them would
/// keep whole buffers alive (measured: 6 KB resident for a 1 KB answer). [`Entry::new`] copies them into one
/// piece instead, so what an entry holds is what it weighs (`cargo run --release -p tollgate-cache --example
/// cache_memory`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub status: u16,
    /// `body`, then each frame's end offset in it (u32, little-endian), then the content type.
    buffer: Bytes,
    body_len: u32,
    frames: u32,
    /// Length of the content type; `u16::MAX` for none.
    content_type_len: u16,
}

/// An encoded entry that cannot be read back (truncated, another version, corrupt), or a response too large to
/// be one.
#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    #[error("not a cache entry of this version")]
    Magic,
    #[error("the entry is truncated")]
    Truncated,
    #[error("the entry claims {0} frames")]
    TooManyFrames(u32),
    #[error("the content type is not UTF-8")]
    ContentType(#[source] std::str::Utf8Error),
    #[error("the body is larger than an entry can hold (4 GiB)")]
    TooLarge,
}

/// What an entry costs in memory beyond its body, frame table and content type: the entry itself, its key
/// and the memory backend's bookkeeping, as the memory example measures it (rounded up).
pub const ENTRY_OVERHEAD: usize = 256;

impl Entry {
    /// An entry of these frames, copied into one buffer. A content type longer than 256 bytes is cut there.
    pub fn new(status: u16, content_type: Option<&str>, frames: &[Bytes]) -> Result<Self, EntryError> {
        let count = u32::try_from(frames.len()).ok().filter(|n| *n <= MAX_FRAMES);
        let count = count.ok_or(EntryError::TooManyFrames(u32::try_from(frames.len()).unwrap_or(u32::MAX)))?;
        let body_len = u32::try_from(frames.iter().map(Bytes::len).sum::<usize>()).map_err(|_| EntryError::TooLarge)?;
        let content_type = content_type.map(|ct| cut(ct, MAX_CONTENT_TYPE));
        let ct_len = content_type.map_or(0, str::len);
        let mut buffer = Vec::with_capacity(body_len as usize + 4 * frames.len() + ct_len);
        for frame in frames {
            buffer.extend_from_slice(frame);
        }
        let mut end = 0u32;
        for frame in frames {
            end += frame.len() as u32;
            buffer.extend_from_slice(&end.to_le_bytes());
        }
        buffer.extend_from_slice(content_type.unwrap_or_default().as_bytes());
        Ok(Self {
            status,
            buffer: Bytes::from(buffer),
            body_len,
            frames: count,
            content_type_len: content_type.map_or(u16::MAX, |_| ct_len as u16),
        })
    }

    /// The upstream's content type.
    pub fn content_type(&self) -> Option<&str> {
        if self.content_type_len == u16::MAX {
            return None;
        }
        let start = self.body_len as usize + 4 * self.frames as usize;
        let bytes = self.buffer.get(start..start + usize::from(self.content_type_len))?;
        std::str::from_utf8(bytes).ok()
    }

    /// Body bytes.
    pub fn body_len(&self) -> usize {
        self.body_len as usize
    }

    /// How many frames the upstream sent.
    pub fn frame_count(&self) -> usize {
        self.frames as usize
    }

    fn frame_end(&self, index: usize) -> Option<usize> {
        let at = self.body_len as usize + 4 * index;
        let bytes: [u8; 4] = self.buffer.get(at..at + 4)?.try_into().ok()?;
        Some(u32::from_le_bytes(bytes) as usize)
    }

    /// Frame `index`, sharing the entry's buffer.
    pub fn frame(&self, index: usize) -> Option<Bytes> {
        if index >= self.frame_count() {
            return None;
        }
        let end = self.frame_end(index)?;
        let start = match index.checked_sub(1) {
            Some(before) => self.frame_end(before)?,
            None => 0,
        };
        (start <= end && end <= self.body_len()).then(|| self.buffer.slice(start..end))
    }

    /// Every frame in order.
    pub fn frames(&self) -> impl Iterator<Item = Bytes> + '_ {
        (0..self.frame_count()).filter_map(|index| self.frame(index))
    }

    /// What the entry weighs in memory: its buffer and [`ENTRY_OVERHEAD`].
    pub fn weight(&self) -> usize {
        self.buffer.len() + ENTRY_OVERHEAD
    }

    /// The whole body in one piece (shared, not copied).
    pub fn body(&self) -> Bytes {
        self.buffer.slice(..self.body_len())
    }

    /// `TGC1`, status (u16), content type (u16 length + bytes, 0xFFFF for none), frame count (u32), then each
    /// frame as a u32 length and its bytes; integers big-endian.
    pub fn encode(&self) -> Vec<u8> {
        let ct = self.content_type().map(str::as_bytes);
        let mut out = Vec::with_capacity(12 + ct.map_or(0, <[u8]>::len) + self.body_len() + 4 * self.frame_count());
        out.put_slice(MAGIC);
        out.put_u16(self.status);
        match ct {
            Some(ct) => {
                out.put_u16(ct.len() as u16);
                out.put_slice(ct);
            }
            None => out.put_u16(u16::MAX),
        }
        out.put_u32(self.frames);
        for frame in self.frames() {
            out.put_u32(frame.len() as u32);
            out.put_slice(&frame);
        }
        out
    }

    /// Reads [`Entry::encode`]'s layout back; every length is checked against what is left.
    pub fn decode(bytes: Bytes) -> Result<Self, EntryError> {
        let mut buf = bytes;
        if buf.len() < 12 || &buf[..4] != MAGIC {
            return Err(EntryError::Magic);
        }
        buf.advance(4);
        let status = buf.get_u16();
        let ct_len = buf.get_u16();
        let content_type = if ct_len == u16::MAX { None } else { Some(take(&mut buf, usize::from(ct_len))?) };
        if buf.remaining() < 4 {
            return Err(EntryError::Truncated);
        }
        let count = buf.get_u32();
        if count > MAX_FRAMES {
            return Err(EntryError::TooManyFrames(count));
        }
        let mut frames = Vec::with_capacity((count as usize).min(buf.remaining() / 4));
        for _ in 0..count {
            if buf.remaining() < 4 {
                return Err(EntryError::Truncated);
            }
            let len = buf.get_u32() as usize;
            frames.push(take(&mut buf, len)?);
        }
        let content_type =
            content_type.as_deref().map(std::str::from_utf8).transpose().map_err(EntryError::ContentType)?;
        Entry::new(status, content_type, &frames)
    }
}

/// `text` cut to at most `max` bytes, on a character boundary.
fn cut(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn take(buf: &mut Bytes, len: usize) -> Result<Bytes, EntryError> {
    if buf.remaining() < len {
        return Err(EntryError::Truncated);
    }
    Ok(buf.split_to(len))
}

#[cfg(test)]
mod tests;

//! A stored response: status, content type and the body as the frames the upstream sent, with a compact
//! binary encoding for backends that hold bytes (Redis).

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// The encoding's first bytes; a new layout gets a new magic, and old entries read as misses.
const MAGIC: &[u8; 4] = b"TGC1";
/// The most frames an encoded entry may claim (a decoder never allocates for more).
const MAX_FRAMES: u32 = 1 << 20;
/// Longest content type kept.
const MAX_CONTENT_TYPE: usize = 256;

/// One cached response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub status: u16,
    pub content_type: Option<String>,
    /// The body, frame by frame, as the upstream delivered it: a streamed hit replays each as its own frame.
    pub frames: Vec<Bytes>,
}

/// An encoded entry that cannot be read back (truncated, another version, corrupt).
#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    #[error("not a cache entry of this version")]
    Magic,
    #[error("the entry is truncated")]
    Truncated,
    #[error("the entry claims {0} frames")]
    TooManyFrames(u32),
    #[error("the content type is not UTF-8")]
    ContentType(#[source] std::string::FromUtf8Error),
}

impl Entry {
    /// Body bytes.
    pub fn body_len(&self) -> usize {
        self.frames.iter().map(Bytes::len).sum()
    }

    /// What the entry weighs in memory: body, content type, and the frame list.
    pub fn weight(&self) -> usize {
        self.body_len()
            + self.content_type.as_ref().map_or(0, String::len)
            + self.frames.len() * std::mem::size_of::<Bytes>()
    }

    /// The whole body in one piece.
    pub fn body(&self) -> Bytes {
        if let [one] = self.frames.as_slice() {
            return one.clone();
        }
        let mut out = BytesMut::with_capacity(self.body_len());
        for frame in &self.frames {
            out.extend_from_slice(frame);
        }
        out.freeze()
    }

    /// `TGC1`, status (u16), content type (u16 length + bytes, 0xFFFF for none), frame count (u32), then each
    /// frame as a u32 length and its bytes; integers big-endian.
    pub fn encode(&self) -> Vec<u8> {
        let ct = self.content_type.as_deref().map(|ct| &ct.as_bytes()[..ct.len().min(MAX_CONTENT_TYPE)]);
        let mut out = Vec::with_capacity(12 + ct.map_or(0, <[u8]>::len) + self.body_len() + 4 * self.frames.len());
        out.put_slice(MAGIC);
        out.put_u16(self.status);
        match ct {
            Some(ct) => {
                out.put_u16(ct.len() as u16);
                out.put_slice(ct);
            }
            None => out.put_u16(u16::MAX),
        }
        out.put_u32(self.frames.len() as u32);
        for frame in &self.frames {
            out.put_u32(frame.len() as u32);
            out.put_slice(frame);
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
        let content_type = if ct_len == u16::MAX {
            None
        } else {
            let bytes = take(&mut buf, usize::from(ct_len))?;
            Some(String::from_utf8(bytes.to_vec()).map_err(EntryError::ContentType)?)
        };
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
        Ok(Entry { status, content_type, frames })
    }
}

fn take(buf: &mut Bytes, len: usize) -> Result<Bytes, EntryError> {
    if buf.remaining() < len {
        return Err(EntryError::Truncated);
    }
    Ok(buf.split_to(len))
}

#[cfg(test)]
mod tests;

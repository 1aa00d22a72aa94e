//! Request path normalisation: the one spelling of a path that routing, billing and the upstream all see.
//!
//! Servers in front of or inside the providers decode percent-escapes and resolve dot segments before they
//! route (uvicorn, Go's `net/http`, Cloudflare's URL normalisation), so `/chat/completion%73` and
//! `/v1/messages/` are served as the billable endpoints they spell. The gateway therefore classifies the path
//! in the same decoded form and sends that form upstream, and it refuses what it cannot spell unambiguously:
//!
//! 1. A path longer than [`MAX_PATH_BYTES`] is refused.
//! 2. Each `%XX` escape must be two hex digits. An escaped unreserved character (`A-Z a-z 0-9 - . _ ~`) or `:`
//!    is decoded; any other escape stays encoded, its hex digits upper-cased.
//! 3. An escaped `/` or `\`, a raw `\`, and any control byte (raw or escaped, NUL included) are refused: they
//!    would let one segment be read as two by some server on the way.
//! 4. A `.` or `..` segment, however it is spelled (`%2e`, `.%2E`), is refused rather than resolved: nothing
//!    legitimate needs one, and resolving it would let a client climb out of a provider's `base_url`.
//! 5. Empty segments (duplicate slashes, a trailing slash) are dropped.

use std::fmt;

/// The longest request path the gateway accepts, in bytes. Real API paths are under 200 bytes; the bound
/// keeps a client-chosen string out of logs and error messages at any size.
pub const MAX_PATH_BYTES: usize = 2048;

/// Why a path was refused; the message names what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathError {
    TooLong { bytes: usize },
    BadEscape,
    EncodedSeparator,
    ControlByte,
    DotSegment,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathError::TooLong { bytes } => {
                write!(f, "the path is {bytes} bytes long; the gateway accepts at most {MAX_PATH_BYTES}")
            }
            PathError::BadEscape => f.write_str("a percent-escape is not % followed by two hex digits"),
            PathError::EncodedSeparator => {
                f.write_str("an encoded slash (%2F) or a backslash (raw or %5C) is not accepted in a path")
            }
            PathError::ControlByte => f.write_str("a control character (NUL included) is not accepted in a path"),
            PathError::DotSegment => f.write_str("a \".\" or \"..\" segment (also written %2e) is not accepted"),
        }
    }
}

/// The normalised segments of `raw` (see the module steps), without empty ones.
pub fn segments(raw: &str) -> Result<Vec<String>, PathError> {
    if raw.len() > MAX_PATH_BYTES {
        return Err(PathError::TooLong { bytes: raw.len() });
    }
    raw.split('/').filter(|s| !s.is_empty()).map(segment).collect()
}

/// Normalises one segment (steps 2 to 4).
fn segment(raw: &str) -> Result<String, PathError> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        i += 1;
        if b == b'%' {
            let (Some(hi), Some(lo)) = (bytes.get(i).and_then(|&b| hex(b)), bytes.get(i + 1).and_then(|&b| hex(b)))
            else {
                return Err(PathError::BadEscape);
            };
            i += 2;
            let decoded = (hi << 4) | lo;
            match decoded {
                b'/' | b'\\' => return Err(PathError::EncodedSeparator),
                _ if decoded.is_ascii_control() => return Err(PathError::ControlByte),
                _ if is_unreserved(decoded) || decoded == b':' => out.push(decoded),
                _ => out.extend_from_slice(&[b'%', HEX_DIGITS[usize::from(hi)], HEX_DIGITS[usize::from(lo)]]),
            }
        } else if b == b'\\' {
            return Err(PathError::EncodedSeparator);
        } else if b.is_ascii_control() {
            return Err(PathError::ControlByte);
        } else {
            out.push(b);
        }
    }
    if out == b"." || out == b".." {
        return Err(PathError::DotSegment);
    }
    // Only ASCII bytes were added or removed around the input's own (valid UTF-8) sequences.
    String::from_utf8(out).map_err(|_| PathError::BadEscape)
}

const HEX_DIGITS: &[u8; 16] = b"0123456789ABCDEF";

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// RFC 3986 §2.3.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

#[cfg(test)]
mod tests;

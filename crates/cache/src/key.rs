//! Cache keys: SHA-256 over the tenant scope, provider, upstream path, model and the canonical body.

use sha2::{Digest, Sha256};

/// Who an entry belongs to. Two scopes never share an entry: the scope is the first part of every key. It
/// borrows what it names (built per request, it allocates nothing), and the provider key goes into the key's
/// own SHA-256 like every other part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope<'a> {
    /// The gateway token (or an open gateway): the gateway's name and the provider key the request uses, the
    /// stored one or the caller's own (so bring-your-own-key callers never share entries with each other or
    /// with the stored key).
    Gateway { name: &'a str, provider_key: &'a [u8], stored: bool },
    /// A virtual key, by id (filled in by the identity phase).
    VirtualKey(&'a str),
    /// A JWT identity, by subject (filled in by the identity phase).
    Jwt(&'a str),
}

impl<'a> Scope<'a> {
    /// The gateway scope for a provider key the caller sent (`provider_key` holds its credential headers).
    pub fn gateway(name: &'a str, provider_key: &'a [u8]) -> Self {
        Scope::Gateway { name, provider_key, stored: false }
    }

    /// The gateway scope for the provider key stored in the configuration (empty when none is).
    pub fn gateway_stored(name: &'a str, provider_key: &'a [u8]) -> Self {
        Scope::Gateway { name, provider_key, stored: true }
    }

    fn feed(&self, hasher: &mut Sha256) {
        match self {
            Scope::Gateway { name, provider_key, stored } => {
                part(hasher, if *stored { b"gateway-stored" } else { b"gateway-own" });
                part(hasher, name.as_bytes());
                part(hasher, provider_key);
            }
            Scope::VirtualKey(id) => {
                part(hasher, b"virtual_key");
                part(hasher, id.as_bytes());
            }
            Scope::Jwt(subject) => {
                part(hasher, b"jwt");
                part(hasher, subject.as_bytes());
            }
        }
    }
}

/// What stands for the request body in the key.
#[derive(Debug, Clone, Copy)]
pub enum BodyPart<'a> {
    /// The canonical body (see [`canonical_body`]).
    Canonical(&'a [u8]),
    /// A client's `cf-aig-cache-key`.
    Custom(&'a str),
}

/// A derived key: a SHA-256, held as its 32 bytes (no allocation) and shown as 64 lowercase hex digits (what
/// log rows, Redis keys and `DELETE /api/cache/{key}` carry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct CacheKey([u8; 32]);

/// A map hashes the digest's first 8 bytes, not all 32 with their length: they are as uniform as any hash's, and
/// the maps' seeded hashers (foldhash) mix them so they cannot be aimed at one bucket. Equality still compares all
/// 32.
impl std::hash::Hash for CacheKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let mut first = [0u8; 8];
        first.copy_from_slice(&self.0[..8]);
        state.write_u64(u64::from_le_bytes(first));
    }
}

/// A key string that is not one the gateway derives.
#[derive(Debug, thiserror::Error)]
#[error("a cache key is 64 lowercase hex digits")]
pub struct KeyError;

impl CacheKey {
    /// The key of a request (see the module doc); every part is length-prefixed, so no two different tuples
    /// hash the same bytes.
    pub fn derive(scope: &Scope<'_>, provider: &str, upstream_path: &str, model: &str, body: BodyPart<'_>) -> Self {
        let mut hasher = Sha256::new();
        part(&mut hasher, b"tollgate-cache-v2");
        scope.feed(&mut hasher);
        part(&mut hasher, provider.as_bytes());
        part(&mut hasher, upstream_path.as_bytes());
        part(&mut hasher, model.as_bytes());
        match body {
            BodyPart::Canonical(bytes) => {
                part(&mut hasher, b"body");
                part(&mut hasher, bytes);
            }
            BodyPart::Custom(key) => {
                part(&mut hasher, b"custom");
                part(&mut hasher, key.as_bytes());
            }
        }
        CacheKey(hasher.finalize().into())
    }

    /// Parses a key given back by a client (the admin API); only the gateway's own format is accepted.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let digit = |b: u8| match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            _ => None,
        };
        let mut bytes = [0u8; 32];
        if text.len() != 64 {
            return Err(KeyError);
        }
        for (byte, pair) in bytes.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
            let (Some(high), Some(low)) = (digit(pair[0]), digit(pair[1])) else { return Err(KeyError) };
            *byte = (high << 4) | low;
        }
        Ok(CacheKey(bytes))
    }

    /// The digest's bytes.
    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Display for CacheKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut hex = [0u8; 64];
        for (pair, byte) in hex.chunks_exact_mut(2).zip(self.0) {
            pair[0] = HEX[usize::from(byte >> 4)];
            pair[1] = HEX[usize::from(byte & 0xf)];
        }
        f.write_str(std::str::from_utf8(&hex).map_err(|_| std::fmt::Error)?)
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn part(hasher: &mut Sha256, bytes: &[u8]) {
    hasher.update((bytes.len() as u64).to_le_bytes());
    hasher.update(bytes);
}

/// The body as it counts for the key: JSON with every object's keys sorted and no whitespace between tokens
/// (so key order and whitespace do not matter), without the top level's `stream_options` (whether usage is
/// reported does not change the answer; a hit adds or drops the usage chunk as the client asked). `stream`
/// stays in: a stream and a JSON answer are different entries. A body that is not a JSON object is taken as it
/// is.
///
/// Strings and numbers are kept as the client wrote them (not decoded and re-encoded), so the work is a scan
/// and a copy per leaf: two spellings of one value (`"\u0041"` and `"A"`, `1.0` and `1`) are two keys, a miss
/// and never a wrong hit.
pub fn canonical_body(raw: &[u8]) -> Vec<u8> {
    let Ok(text) = std::str::from_utf8(raw) else { return raw.to_vec() };
    let mut out = Vec::with_capacity(raw.len());
    match write_object(text, &mut out, true) {
        Ok(true) => out,
        Ok(false) | Err(_) => raw.to_vec(),
    }
}

/// Writes the object `text` canonically; `false` when it is not an object.
fn write_object(text: &str, out: &mut Vec<u8>, top: bool) -> Result<bool, serde_json::Error> {
    if !text.trim_start().starts_with('{') {
        return Ok(false);
    }
    // Keys decoded (escapes resolved, so `"k\u0065y"` is `key`); a later duplicate wins, as in serde_json's own
    // maps. Values stay raw text.
    let map: std::collections::BTreeMap<std::borrow::Cow<'_, str>, &serde_json::value::RawValue> =
        serde_json::from_str(text)?;
    out.push(b'{');
    let mut first = true;
    for (key, value) in &map {
        if top && key == "stream_options" {
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        serde_json::to_writer(&mut *out, key)?;
        out.push(b':');
        write_value(value.get(), out)?;
    }
    out.push(b'}');
    Ok(true)
}

fn write_value(text: &str, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
    match text.as_bytes().first() {
        Some(b'{') => {
            write_object(text, out, false)?;
        }
        Some(b'[') => {
            let items: Vec<&serde_json::value::RawValue> = serde_json::from_str(text)?;
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item.get(), out)?;
            }
            out.push(b']');
        }
        // A string, number, `true`, `false` or `null`, exactly as written (a raw value has no outer whitespace).
        _ => out.extend_from_slice(text.as_bytes()),
    }
    Ok(())
}

#[cfg(test)]
mod tests;

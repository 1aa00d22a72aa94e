//! Cache keys: SHA-256 over the tenant scope, provider, upstream path, model and the canonical body.

use sha2::{Digest, Sha256};

/// Who an entry belongs to. Two scopes never share an entry: the scope is the first part of every key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// The gateway token (or an open gateway): the gateway's name and a SHA-256 of the provider key the
    /// request uses (the stored one, or the caller's own), so bring-your-own-key callers never share entries.
    Gateway { name: String, provider_key_sha256: [u8; 32] },
    /// A virtual key, by id (filled in by the identity phase).
    VirtualKey(String),
    /// A JWT identity, by subject (filled in by the identity phase).
    Jwt(String),
}

impl Scope {
    /// The gateway scope for `provider_key` (empty when the request carries none and none is stored).
    pub fn gateway(name: &str, provider_key: &[u8]) -> Self {
        Scope::Gateway { name: name.to_string(), provider_key_sha256: Sha256::digest(provider_key).into() }
    }

    fn feed(&self, hasher: &mut Sha256) {
        match self {
            Scope::Gateway { name, provider_key_sha256 } => {
                part(hasher, b"gateway");
                part(hasher, name.as_bytes());
                part(hasher, provider_key_sha256);
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

/// A derived key: 64 lowercase hex digits (what log rows and `DELETE /api/cache/{key}` carry).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheKey(String);

/// A key string that is not one the gateway derives.
#[derive(Debug, thiserror::Error)]
#[error("a cache key is 64 lowercase hex digits")]
pub struct KeyError;

impl CacheKey {
    /// The key of a request (see the module doc); every part is length-prefixed, so no two different tuples
    /// hash the same bytes.
    pub fn derive(scope: &Scope, provider: &str, upstream_path: &str, model: &str, body: BodyPart<'_>) -> Self {
        let mut hasher = Sha256::new();
        part(&mut hasher, b"tollgate-cache-v1");
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
        let digest = hasher.finalize();
        let mut hex = String::with_capacity(64);
        for byte in digest {
            hex.push(char::from(HEX[usize::from(byte >> 4)]));
            hex.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
        CacheKey(hex)
    }

    /// Parses a key given back by a client (the admin API); only the gateway's own format is accepted.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let ok = text.len() == 64 && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if ok { Ok(CacheKey(text.to_string())) } else { Err(KeyError) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for CacheKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn part(hasher: &mut Sha256, bytes: &[u8]) {
    hasher.update((bytes.len() as u64).to_le_bytes());
    hasher.update(bytes);
}

/// The body as it counts for the key: JSON re-serialized with sorted keys (so key order and whitespace do not
/// matter), without `stream_options` (whether usage is reported does not change the answer; a hit adds or
/// drops the usage chunk as the client asked). `stream` stays in: a stream and a JSON answer are different
/// entries. A body that is not a JSON object is taken as it is.
pub fn canonical_body(raw: &[u8]) -> Vec<u8> {
    match serde_json::from_slice::<serde_json::Value>(raw) {
        Ok(serde_json::Value::Object(mut map)) => {
            map.remove("stream_options");
            let mut value = serde_json::Value::Object(map);
            sort_keys(&mut value);
            serde_json::to_vec(&value).unwrap_or_else(|_| raw.to_vec())
        }
        _ => raw.to_vec(),
    }
}

/// Sorts every object's keys, at every depth (whether or not serde_json's `preserve_order` is on somewhere in
/// the build).
fn sort_keys(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            map.sort_keys();
            map.values_mut().for_each(sort_keys);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(sort_keys),
        _ => {}
    }
}

#[cfg(test)]
mod tests;

//! The `cf-aig-metadata` header: a flat JSON object whose entries become the `metadata.<key>` dimensions.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

#[cfg(test)]
mod tests;

/// Default for `gateway.metadata_max_entries`.
pub const DEFAULT_MAX_ENTRIES: usize = 20;
/// Longest key, in bytes: keys become dimension names and bucket keys, so they stay short.
pub const MAX_KEY_BYTES: usize = 64;
/// Longest string value (or number text), in bytes: long enough for ids, emails and URLs, short enough that a
/// bucket key of a few split dimensions stays small in memory and in the database.
pub const MAX_VALUE_BYTES: usize = 512;
/// Longest header value, in bytes, checked before parsing so a huge header costs nothing.
pub const MAX_HEADER_BYTES: usize = 4_096;

/// One metadata value. Numbers keep their JSON text (`42`, `1.5e3`), which is also their dimension value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataValue {
    /// A JSON string.
    String(String),
    /// A JSON number, as written.
    Number(String),
    /// A JSON boolean.
    Bool(bool),
}

impl MetadataValue {
    /// The value as a dimension value: strings as they are, numbers and booleans as their JSON text.
    pub fn as_dimension_value(&self) -> &str {
        match self {
            Self::String(s) | Self::Number(s) => s,
            Self::Bool(true) => "true",
            Self::Bool(false) => "false",
        }
    }
}

/// A parsed, validated `cf-aig-metadata` header, in the order the client wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Metadata {
    entries: Vec<(String, MetadataValue)>,
}

impl Metadata {
    /// No entries, usable in statics.
    pub const EMPTY: Self = Self { entries: Vec::new() };

    /// No metadata (the header was absent).
    pub fn empty() -> Self {
        Self::default()
    }

    /// Parses and validates a header value against the limits above and `max_entries`.
    pub fn parse(header: &str, max_entries: usize) -> Result<Self, MetadataError> {
        if header.len() > MAX_HEADER_BYTES {
            return Err(MetadataError::TooLarge { bytes: header.len() });
        }
        let raw: RawEntries =
            serde_json::from_str(header).map_err(|e| MetadataError::NotAnObject { reason: e.to_string() })?;
        validate(raw.0, max_entries)
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&MetadataValue> {
        // A linear scan beats hashing for the ≤ 20 entries a header may carry.
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The entries in header order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &MetadataValue)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl Serialize for Metadata {
    /// Back to a JSON object with the original value types (for the log row).
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.entries.len()))?;
        for (key, value) in &self.entries {
            match value {
                MetadataValue::String(s) => map.serialize_entry(key, s)?,
                MetadataValue::Number(text) => match text.parse::<serde_json::Number>() {
                    Ok(n) => map.serialize_entry(key, &n)?,
                    Err(_) => map.serialize_entry(key, text)?,
                },
                MetadataValue::Bool(b) => map.serialize_entry(key, b)?,
            }
        }
        map.end()
    }
}

/// Why a `cf-aig-metadata` value was refused. The message names the problem precisely; the proxy returns it in
/// a 400 `invalid_metadata`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    /// Over [`MAX_HEADER_BYTES`].
    #[error("cf-aig-metadata is {bytes} bytes, at most 4096")]
    TooLarge {
        /// Header length.
        bytes: usize,
    },
    /// Not JSON, or JSON but not an object.
    #[error("cf-aig-metadata must be a flat JSON object: {reason}")]
    NotAnObject {
        /// What the parser said.
        reason: String,
    },
    /// More entries than allowed.
    #[error("cf-aig-metadata has {count} entries, at most {max}")]
    TooManyEntries {
        /// Entries in the header.
        count: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The same key twice.
    #[error("cf-aig-metadata key {key:?} appears twice")]
    DuplicateKey {
        /// The key.
        key: String,
    },
    /// An empty key or one over [`MAX_KEY_BYTES`].
    #[error("cf-aig-metadata key {key:?} must be 1 to 64 bytes long")]
    BadKey {
        /// The key (truncated to 80 characters).
        key: String,
    },
    /// A null, object or array value.
    #[error("value of {key:?} is {kind}; only string, number or boolean are allowed")]
    BadValueType {
        /// The key.
        key: String,
        /// "null", "an object" or "an array".
        kind: &'static str,
    },
    /// A value over [`MAX_VALUE_BYTES`].
    #[error("value of {key:?} is {bytes} bytes, at most 512")]
    ValueTooLong {
        /// The key.
        key: String,
        /// Value length.
        bytes: usize,
    },
}

/// The object's entries as written, duplicates included: serde_json's own map would silently keep the last one.
/// Validation happens afterwards so every error is typed; the 4 KiB header cap bounds what is collected.
struct RawEntries(Vec<(String, serde_json::Value)>);

impl<'de> Deserialize<'de> for RawEntries {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RawVisitor;
        impl<'de> Visitor<'de> for RawVisitor {
            type Value = RawEntries;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawEntries, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<String, serde_json::Value>()? {
                    entries.push(entry);
                }
                Ok(RawEntries(entries))
            }
        }
        deserializer.deserialize_map(RawVisitor)
    }
}

fn validate(raw: Vec<(String, serde_json::Value)>, max_entries: usize) -> Result<Metadata, MetadataError> {
    if raw.len() > max_entries {
        return Err(MetadataError::TooManyEntries { count: raw.len(), max: max_entries });
    }
    let mut entries: Vec<(String, MetadataValue)> = Vec::with_capacity(raw.len());
    for (key, value) in raw {
        if key.is_empty() || key.len() > MAX_KEY_BYTES {
            return Err(MetadataError::BadKey { key: key.chars().take(80).collect() });
        }
        if entries.iter().any(|(k, _)| *k == key) {
            return Err(MetadataError::DuplicateKey { key });
        }
        let value = match value {
            serde_json::Value::String(s) => MetadataValue::String(s),
            serde_json::Value::Number(n) => MetadataValue::Number(n.to_string()),
            serde_json::Value::Bool(b) => MetadataValue::Bool(b),
            serde_json::Value::Null => return Err(MetadataError::BadValueType { key, kind: "null" }),
            serde_json::Value::Object(_) => return Err(MetadataError::BadValueType { key, kind: "an object" }),
            serde_json::Value::Array(_) => return Err(MetadataError::BadValueType { key, kind: "an array" }),
        };
        let bytes = value.as_dimension_value().len();
        if bytes > MAX_VALUE_BYTES {
            return Err(MetadataError::ValueTooLong { key, bytes });
        }
        entries.push((key, value));
    }
    Ok(Metadata { entries })
}

impl<'de> Deserialize<'de> for Metadata {
    /// Deserializes with the default entry limit (used when metadata is read back from storage).
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = RawEntries::deserialize(deserializer)?;
        validate(raw.0, DEFAULT_MAX_ENTRIES).map_err(de::Error::custom)
    }
}

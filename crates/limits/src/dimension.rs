//! Request dimensions (`provider`, `model`, `gateway`, `metadata.<key>`), rule filters and splits, and the bucket
//! key format.
//!
//! # Bucket key format (stable: it is persisted)
//!
//! A rule's bucket key lists its `split` dimensions in the order the rule declares them, as `name=value` joined by
//! `|`, e.g. `metadata.user_id=u1|provider=openai`. A request without the value gets the literal `(none)`. In names
//! and values, `\`, `|` and `=` are escaped with a backslash, and a value that is literally `(none)` is written
//! `\(none)`, so distinct requests never share a key by accident. A rule without split dimensions has the single key
//! `*`. Filter dimensions never appear in the key.

use crate::metadata::Metadata;

#[cfg(test)]
mod tests;

/// The bucket key of a rule without split dimensions.
pub const SINGLE_BUCKET_KEY: &str = "*";
/// The value written for a split dimension the request does not have.
pub const MISSING_VALUE: &str = "(none)";

/// A dimension a rule can filter or split on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DimensionKey {
    /// The provider name (`openai`).
    Provider,
    /// The model name without the provider prefix, canonical (`gpt-4o-mini`; see [`crate::canonical_model`]).
    Model,
    /// The gateway from the Cloudflare-style URL.
    Gateway,
    /// A `cf-aig-metadata` entry.
    Metadata(String),
}

impl DimensionKey {
    /// Parses `provider`, `model`, `gateway` or `metadata.<non-empty key>`.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "provider" => Ok(Self::Provider),
            "model" => Ok(Self::Model),
            "gateway" => Ok(Self::Gateway),
            _ => match text.strip_prefix("metadata.") {
                Some(key) if !key.is_empty() => Ok(Self::Metadata(key.to_owned())),
                Some(_) => Err("\"metadata.\" needs a key after the dot, e.g. \"metadata.user_id\"".to_owned()),
                None => Err(format!("unknown dimension {text:?}; expected provider, model, gateway or metadata.<key>")),
            },
        }
    }

    /// The name as written in configuration and bucket keys.
    pub fn name(&self) -> String {
        match self {
            Self::Provider => "provider".to_owned(),
            Self::Model => "model".to_owned(),
            Self::Gateway => "gateway".to_owned(),
            Self::Metadata(key) => format!("metadata.{key}"),
        }
    }
}

/// What the limits engine knows about one request. Built by the proxy for each request (and each route
/// candidate); borrowing keeps it allocation-free.
#[derive(Debug, Clone, Copy)]
pub struct RequestDims<'a> {
    provider: &'a str,
    model: &'a str,
    gateway: Option<&'a str>,
    metadata: &'a Metadata,
}

static NO_METADATA: Metadata = Metadata::EMPTY;

impl<'a> RequestDims<'a> {
    /// A request to `model` at `provider`, without gateway or metadata. `model` should be the canonical model
    /// name ([`crate::canonical_model`] of what the client sent): rule filters on `model` hold canonical names, and
    /// `model` splits then keep one bucket per model rather than one per alias or spelling.
    pub fn new(provider: &'a str, model: &'a str) -> Self {
        Self { provider, model, gateway: None, metadata: &NO_METADATA }
    }

    /// Sets the gateway dimension.
    #[must_use]
    pub fn with_gateway(mut self, gateway: Option<&'a str>) -> Self {
        self.gateway = gateway;
        self
    }

    /// Sets the metadata dimensions.
    #[must_use]
    pub fn with_metadata(mut self, metadata: &'a Metadata) -> Self {
        self.metadata = metadata;
        self
    }

    /// The same request aimed at another provider and model (a route candidate).
    #[must_use]
    pub fn with_target(mut self, provider: &'a str, model: &'a str) -> Self {
        self.provider = provider;
        self.model = model;
        self
    }

    /// The provider.
    pub fn provider(&self) -> &'a str {
        self.provider
    }

    /// The model.
    pub fn model(&self) -> &'a str {
        self.model
    }

    /// The value of one dimension, if the request has it.
    pub fn value(&self, key: &DimensionKey) -> Option<&'a str> {
        match key {
            DimensionKey::Provider => Some(self.provider),
            DimensionKey::Model => Some(self.model),
            DimensionKey::Gateway => self.gateway,
            DimensionKey::Metadata(k) => self.metadata.get(k).map(crate::metadata::MetadataValue::as_dimension_value),
        }
    }
}

/// How a rule uses one dimension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DimensionMode {
    /// One bucket per distinct value.
    Split,
    /// The rule applies only when the request's value is one of these.
    Filter(Vec<String>),
}

/// One validated dimension of a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dimension {
    /// Which dimension.
    pub key: DimensionKey,
    /// Split or filter.
    pub mode: DimensionMode,
}

/// A rule's dimensions, with the split names pre-escaped so building a key costs no allocation but the key itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Dimensions {
    dims: Vec<Dimension>,
    /// `escaped name + "="` for each split dimension, in rule order.
    split_prefixes: Vec<(usize, String)>,
    /// Whether any dimension is a filter (most rules only split: they apply to every request).
    has_filters: bool,
}

impl Dimensions {
    pub(crate) fn new(dims: Vec<Dimension>) -> Self {
        let split_prefixes = dims
            .iter()
            .enumerate()
            .filter(|(_, d)| d.mode == DimensionMode::Split)
            .map(|(i, d)| {
                let mut prefix = String::new();
                escape_into(&mut prefix, &d.key.name());
                prefix.push('=');
                (i, prefix)
            })
            .collect();
        let has_filters = dims.iter().any(|d| matches!(d.mode, DimensionMode::Filter(_)));
        Self { dims, split_prefixes, has_filters }
    }

    pub(crate) fn as_slice(&self) -> &[Dimension] {
        &self.dims
    }

    /// True when `self` and `other` write the same bucket key for every request: the same split dimensions in
    /// the same order (filters never appear in the key). Lets an admission build each distinct key once.
    pub(crate) fn same_key_as(&self, other: &Self) -> bool {
        self.split_prefixes.len() == other.split_prefixes.len()
            && self
                .split_prefixes
                .iter()
                .zip(&other.split_prefixes)
                .all(|((a, _), (b, _))| self.dims[*a].key == other.dims[*b].key)
    }

    /// True when every filter dimension's value is among its values (a request without the value does not match).
    pub(crate) fn applies_to(&self, request: &RequestDims<'_>) -> bool {
        !self.has_filters
            || self.dims.iter().all(|d| match &d.mode {
                DimensionMode::Split => true,
                DimensionMode::Filter(values) => {
                    request.value(&d.key).is_some_and(|v| values.iter().any(|allowed| allowed == v))
                }
            })
    }

    /// Writes the bucket key for `request` into `out` (cleared first). See the module docs for the format.
    pub(crate) fn write_bucket_key(&self, request: &RequestDims<'_>, out: &mut String) {
        out.clear();
        if self.split_prefixes.is_empty() {
            out.push_str(SINGLE_BUCKET_KEY);
            return;
        }
        for (n, (index, prefix)) in self.split_prefixes.iter().enumerate() {
            if n > 0 {
                out.push('|');
            }
            out.push_str(prefix);
            match request.value(&self.dims[*index].key) {
                None => out.push_str(MISSING_VALUE),
                Some(MISSING_VALUE) => {
                    out.push('\\');
                    out.push_str(MISSING_VALUE);
                }
                Some(value) => escape_into(out, value),
            }
        }
    }
}

/// The bucket key `request` falls into under `dims` (see the module docs for the format).
pub fn bucket_key(dims: &[Dimension], request: &RequestDims<'_>) -> String {
    let mut out = String::new();
    Dimensions::new(dims.to_vec()).write_bucket_key(request, &mut out);
    out
}

fn escape_into(out: &mut String, text: &str) {
    // Byte scan: the three specials are ASCII, and an ASCII byte in UTF-8 is always that character.
    if !text.bytes().any(|b| matches!(b, b'\\' | b'|' | b'=')) {
        out.push_str(text);
        return;
    }
    for c in text.chars() {
        if matches!(c, '\\' | '|' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
}

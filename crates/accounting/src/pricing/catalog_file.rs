//! The TOML shape of a price catalog file and its conversion into exact integer prices.

use jiff::civil::Date;
use serde::Deserialize;

use super::decimal::parse_scaled;
use super::{CatalogError, LongContext, PriceEntry, PriceSet};

/// Prices in the file are USD per 1M tokens; internally they are femto-dollars (1e-15 USD) per token, which is
/// the same number scaled by 10^9: exact for any price with up to 9 decimals (finer digits round up).
const PER_MILLION_TO_FEMTO_PER_TOKEN: u32 = 9;

/// The whole file: a version and `[[model]]` tables, each converted on its own so errors name the entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CatalogFile {
    pub(crate) version: Option<String>,
    #[serde(default)]
    pub(crate) model: Vec<toml::Table>,
}

/// A price in the file: a decimal string (exact), an integer, or a float (read through its shortest
/// round-trip decimal form, which is the literal as written for any price with ≤ 15 significant digits).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum PriceText {
    Text(String),
    Integer(u64),
    Float(f64),
}

impl PriceText {
    fn as_decimal(&self) -> String {
        match self {
            Self::Text(text) => text.clone(),
            Self::Integer(value) => value.to_string(),
            Self::Float(value) => value.to_string(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryFile {
    provider: String,
    model: String,
    /// A TOML local date (`2025-09-29`) or a string.
    effective_from: Option<toml::Value>,
    input: PriceText,
    output: PriceText,
    cache_read: Option<PriceText>,
    cache_write_5m: Option<PriceText>,
    cache_write_1h: Option<PriceText>,
    max_output_tokens: Option<u64>,
    context_window: Option<u64>,
    long_context: Option<TierFile>,
    priority: Option<TierFile>,
    flex: Option<TierFile>,
}

/// A price tier table; `threshold_tokens` belongs to `long_context` only.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TierFile {
    threshold_tokens: Option<u64>,
    input: PriceText,
    output: PriceText,
    cache_read: Option<PriceText>,
    cache_write_5m: Option<PriceText>,
    cache_write_1h: Option<PriceText>,
}

/// Converts the `index`-th `[[model]]` table.
pub(crate) fn entry(index: usize, table: toml::Table) -> Result<(String, String, PriceEntry), CatalogError> {
    let label = table.get("model").and_then(toml::Value::as_str).unwrap_or("?").to_owned();
    let file = EntryFile::deserialize(toml::Value::Table(table)).map_err(|error| CatalogError::Entry {
        index,
        model: label.clone(),
        reason: error.to_string(),
    })?;
    let at = Entry { index, label };
    let effective_from = at.effective_from(file.effective_from.as_ref())?;
    let standard =
        at.set("", &file.input, &file.output, [&file.cache_read, &file.cache_write_5m, &file.cache_write_1h])?;
    let long_context = file
        .long_context
        .as_ref()
        .map(|long| {
            let threshold_tokens =
                long.threshold_tokens.ok_or_else(|| at.error("long_context.threshold_tokens", "missing".to_owned()))?;
            Ok::<_, CatalogError>(LongContext { threshold_tokens, prices: at.tier("long_context.", long)? })
        })
        .transpose()?;
    let priority = at.service_tier("priority", file.priority.as_ref())?;
    let flex = at.service_tier("flex", file.flex.as_ref())?;
    let provider = file.provider.trim().to_ascii_lowercase();
    let model = file.model.trim().to_ascii_lowercase();
    if provider.is_empty() || model.is_empty() {
        return Err(at.error("provider/model", "must not be empty".to_owned()));
    }
    Ok((
        provider,
        model,
        PriceEntry {
            effective_from,
            standard,
            long_context,
            priority,
            flex,
            max_output_tokens: file.max_output_tokens,
            context_window: file.context_window,
        },
    ))
}

/// The entry being converted, for errors that name it and the field.
struct Entry {
    index: usize,
    label: String,
}

impl Entry {
    fn error(&self, field: &str, reason: String) -> CatalogError {
        CatalogError::Field { index: self.index, model: self.label.clone(), field: field.to_owned(), reason }
    }

    /// `effective_from`: a TOML local date or a date string; absent means since always.
    fn effective_from(&self, value: Option<&toml::Value>) -> Result<Date, CatalogError> {
        let parse = |text: &str| text.parse::<Date>().map_err(|error| self.error("effective_from", error.to_string()));
        match value {
            None => Ok(Date::MIN),
            Some(toml::Value::String(text)) => parse(text),
            Some(toml::Value::Datetime(datetime)) => parse(&datetime.to_string()),
            Some(other) => Err(self.error("effective_from", format!("expected a date, found {other}"))),
        }
    }

    fn price(&self, field: &str, text: &PriceText) -> Result<u128, CatalogError> {
        parse_scaled(&text.as_decimal(), PER_MILLION_TO_FEMTO_PER_TOKEN)
            .map_err(|error| self.error(field, error.to_string()))
    }

    /// One set of prices; `prefix` (`""`, `"long_context."`, …) goes in front of the field names in errors.
    fn set(
        &self,
        prefix: &str,
        input: &PriceText,
        output: &PriceText,
        cache: [&Option<PriceText>; 3],
    ) -> Result<PriceSet, CatalogError> {
        let optional = |field: &str, text: &Option<PriceText>| {
            text.as_ref().map(|text| self.price(&format!("{prefix}{field}"), text)).transpose()
        };
        Ok(PriceSet {
            input: self.price(&format!("{prefix}input"), input)?,
            output: self.price(&format!("{prefix}output"), output)?,
            cache_read: optional("cache_read", cache[0])?,
            cache_write_5m: optional("cache_write_5m", cache[1])?,
            cache_write_1h: optional("cache_write_1h", cache[2])?,
        })
    }

    fn tier(&self, prefix: &str, prices: &TierFile) -> Result<PriceSet, CatalogError> {
        self.set(
            prefix,
            &prices.input,
            &prices.output,
            [&prices.cache_read, &prices.cache_write_5m, &prices.cache_write_1h],
        )
    }

    /// `priority` or `flex`: a tier without a threshold.
    fn service_tier(&self, name: &str, prices: Option<&TierFile>) -> Result<Option<PriceSet>, CatalogError> {
        prices
            .map(|prices| {
                if prices.threshold_tokens.is_some() {
                    return Err(
                        self.error(&format!("{name}.threshold_tokens"), "only long_context has a threshold".to_owned())
                    );
                }
                self.tier(&format!("{name}."), prices)
            })
            .transpose()
    }
}

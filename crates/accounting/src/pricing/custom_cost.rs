//! The `cf-aig-custom-cost` request header: a per-request price that replaces the catalog.
//!
//! The header is `{"per_token_in":x,"per_token_out":y}` or `{"total_cost":z}`, amounts in USD. The numbers are
//! read from their JSON text (serde_json without `arbitrary_precision` would round them through `f64`):
//! serde_json validates the document and its shape, then the raw number text of each member is converted
//! exactly. Per-token prices are kept in atto-dollars (1e-18 USD, 18 decimals) and totals in nano-dollars;
//! finer digits round up. Numeric strings (`"0.000003"`) are accepted too; unknown members are refused so a
//! typo is not silently ignored.
//!
//! Bounds: the caller passes the per-request maximum (`gateway.max_custom_cost_usd`, in nano-dollars). A
//! `total_cost`, or a per-token price, above it is refused with an error naming the field; the cost of a
//! per-token price is clamped at the maximum, so no custom cost can ever charge more than it, and the worst
//! case used for admission ([`CustomCost::worst_case_nanos`]) is always known.

use thiserror::Error;

use super::decimal::{DecimalError, parse_scaled};
use super::estimate::PromptEstimate;
use super::{CostSource, Priced, nanos_from};
use crate::json_scan::{self, KeyWalk};
use crate::usage::Usage;

/// Atto-dollars (1e-18 USD) per USD: the resolution of per-token custom prices.
const ATTO_DECIMALS: u32 = 18;
/// Nano-dollars per USD: the resolution of costs.
const NANO_DECIMALS: u32 = 9;
/// Atto-dollars per nano-dollar.
const ATTO_PER_NANO: u128 = 1_000_000_000;
/// Nano-dollars per USD, for messages.
const NANOS_PER_USD: u64 = 1_000_000_000;

/// A per-request price from `cf-aig-custom-cost`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CustomCost {
    /// Prices per token; every prompt token (cached or not) counts as input.
    PerToken {
        /// Atto-dollars per input token.
        input_atto: u128,
        /// Atto-dollars per output token.
        output_atto: u128,
        /// The per-request maximum the cost is clamped at, in nano-dollars.
        max_nanos: u64,
    },
    /// A fixed total for the request, in nano-dollars (rounded up).
    Total {
        /// The cost in nano-dollars.
        nanos: u64,
    },
}

/// Why a `cf-aig-custom-cost` header was refused; the message names the field.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CustomCostError {
    /// The header is not a JSON object.
    #[error("cf-aig-custom-cost must be a JSON object: {0}")]
    NotAnObject(String),
    /// A member other than `per_token_in`, `per_token_out`, `total_cost`.
    #[error("cf-aig-custom-cost: unknown field `{0}` (expected per_token_in, per_token_out or total_cost)")]
    UnknownField(String),
    /// A member whose value is not a non-negative decimal amount.
    #[error("cf-aig-custom-cost: field `{field}`: {source}")]
    Amount {
        /// The offending member.
        field: &'static str,
        /// What was wrong with it.
        #[source]
        source: DecimalError,
    },
    /// Only one of `per_token_in` / `per_token_out`.
    #[error("cf-aig-custom-cost: `{0}` is missing (per_token_in and per_token_out go together)")]
    MissingField(&'static str),
    /// Both a total and per-token prices, or nothing at all.
    #[error("cf-aig-custom-cost: give either total_cost or per_token_in + per_token_out")]
    Ambiguous,
    /// An amount above the per-request maximum.
    #[error(
        "cf-aig-custom-cost: {field} {amount} is above the maximum of {max_usd} USD per request \
         (gateway.max_custom_cost_usd)"
    )]
    AboveMaximum {
        /// The offending member.
        field: &'static str,
        /// Its value as written.
        amount: String,
        /// The maximum, in USD, as a decimal.
        max_usd: String,
    },
}

impl CustomCost {
    /// Parses the header value; `max_nanos` is the most one request may cost (`gateway.max_custom_cost_usd`).
    pub fn parse(header: &str, max_nanos: u64) -> Result<Self, CustomCostError> {
        let members: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(header).map_err(|error| CustomCostError::NotAnObject(error.to_string()))?;
        let mut input = None;
        let mut output = None;
        let mut total = None;
        for key in members.keys() {
            if !matches!(key.as_str(), "per_token_in" | "per_token_out" | "total_cost") {
                return Err(CustomCostError::UnknownField(key.clone()));
            }
        }
        // A flat object: every key the walk meets is a member (values are numbers or strings).
        let text = header.as_bytes();
        let mut walk = KeyWalk::new(text);
        while let Some((key, value)) = walk.next_key() {
            let (field, scale, slot): (&'static str, u32, &mut Option<u128>) = match key {
                b"per_token_in" => ("per_token_in", ATTO_DECIMALS, &mut input),
                b"per_token_out" => ("per_token_out", ATTO_DECIMALS, &mut output),
                b"total_cost" => ("total_cost", NANO_DECIMALS, &mut total),
                _ => continue,
            };
            let written = amount_text(text, value)
                .ok_or(DecimalError::Syntax(String::from_utf8_lossy(&text[value..]).into_owned()))
                .map_err(|source| CustomCostError::Amount { field, source })?;
            let above =
                || CustomCostError::AboveMaximum { field, amount: written.to_owned(), max_usd: usd_text(max_nanos) };
            let amount = match parse_scaled(written, scale) {
                Ok(amount) => amount,
                // Too large for the exact representation is, a fortiori, above the maximum.
                Err(DecimalError::Overflow(_)) => return Err(above()),
                Err(source) => return Err(CustomCostError::Amount { field, source }),
            };
            // The limit in this field's unit: nano-dollars for the total, atto-dollars for a per-token price.
            let limit = if scale == NANO_DECIMALS {
                u128::from(max_nanos)
            } else {
                u128::from(max_nanos).saturating_mul(ATTO_PER_NANO)
            };
            if amount > limit {
                return Err(above());
            }
            *slot = Some(amount);
        }
        match (input, output, total) {
            (Some(input_atto), Some(output_atto), None) => Ok(Self::PerToken { input_atto, output_atto, max_nanos }),
            // At most `max_nanos`, checked above.
            (None, None, Some(nanos)) => Ok(Self::Total { nanos: u64::try_from(nanos).unwrap_or(max_nanos) }),
            (Some(_), None, None) => Err(CustomCostError::MissingField("per_token_out")),
            (None, Some(_), None) => Err(CustomCostError::MissingField("per_token_in")),
            _ => Err(CustomCostError::Ambiguous),
        }
    }

    /// The cost of `usage` at this price (source [`CostSource::Custom`]); a per-token cost is clamped at the
    /// maximum given to [`CustomCost::parse`].
    pub fn price(&self, usage: &Usage) -> Priced {
        let cost_nanos = match *self {
            Self::Total { nanos } => nanos,
            Self::PerToken { .. } => self.per_token_nanos(usage.prompt_total(), usage.output),
        };
        Priced { cost_nanos, source: CostSource::Custom }
    }

    /// The most this request can cost, for admission (never unknown, so a custom cost always reserves):
    /// - `total_cost`: that amount, with or without `max_tokens`;
    /// - per-token, with a known output bound (`max_output`): prompt estimate × input price + `max_output` ×
    ///   output price, clamped at the maximum;
    /// - per-token without an output bound, or when the prompt is partly held by the provider (so its size is
    ///   not in the body): the maximum itself.
    pub fn worst_case_nanos(&self, prompt: &PromptEstimate, max_output: Option<u64>) -> u64 {
        match *self {
            Self::Total { nanos } => nanos,
            Self::PerToken { max_nanos, .. } => match max_output {
                Some(output) if !prompt.held_by_provider => self.per_token_nanos(prompt.tokens, output),
                _ => max_nanos,
            },
        }
    }

    fn per_token_nanos(&self, prompt_tokens: u64, output_tokens: u64) -> u64 {
        match *self {
            Self::Total { nanos } => nanos,
            Self::PerToken { input_atto, output_atto, max_nanos } => {
                let atto = u128::from(prompt_tokens)
                    .saturating_mul(input_atto)
                    .saturating_add(u128::from(output_tokens).saturating_mul(output_atto));
                nanos_from(atto, ATTO_PER_NANO).min(max_nanos)
            }
        }
    }
}

/// Nano-dollars as a plain USD decimal for messages (`100`, `0.5`, `0.000000001`).
fn usd_text(nanos: u64) -> String {
    let whole = nanos / NANOS_PER_USD;
    let fraction = nanos % NANOS_PER_USD;
    if fraction == 0 {
        return whole.to_string();
    }
    let digits = format!("{fraction:09}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// The text of the number (or numeric string) at `pos`.
fn amount_text(text: &[u8], pos: usize) -> Option<&str> {
    let raw = if let Some(inner) = json_scan::string_at(text, pos) {
        inner
    } else {
        let len = text[pos..]
            .iter()
            .take_while(|byte| matches!(byte, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
            .count();
        &text[pos..pos + len]
    };
    std::str::from_utf8(raw).ok()
}

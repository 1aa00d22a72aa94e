//! Anthropic's `/organizations/usage_report/messages` and `/organizations/cost_report` pages.

use jiff::Timestamp;
use serde::Deserialize;

use super::{Page, cost_row, enveloped, token_row};
use crate::decimal::to_scaled_i64;

#[derive(Deserialize)]
struct Bucket<R> {
    starting_at: String,
    results: Vec<R>,
}

#[derive(Deserialize)]
struct UsageResult {
    #[serde(default)]
    uncached_input_tokens: u64,
    #[serde(default)]
    cache_creation: CacheCreation,
    #[serde(default)]
    cache_read_input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    model: Option<String>,
}

/// Cache writes live here, not in a `cache_creation_input_tokens` field (reading that one prices them at zero).
#[derive(Deserialize, Default)]
struct CacheCreation {
    #[serde(default)]
    ephemeral_5m_input_tokens: u64,
    #[serde(default)]
    ephemeral_1h_input_tokens: u64,
}

#[derive(Deserialize)]
struct CostResult {
    /// Cents, as a decimal string.
    amount: String,
    currency: String,
}

fn start(text: &str) -> Result<Timestamp, String> {
    text.parse().map_err(|_| format!("{text:?} is not an RFC 3339 time"))
}

pub(super) fn usage(body: &str) -> Result<Page, String> {
    enveloped(body, |bucket: Bucket<UsageResult>, rows| {
        let at = start(&bucket.starting_at)?;
        for r in bucket.results {
            // Tokens in as the gateway counts them: uncached + cache writes + cache reads.
            let tokens_in = r
                .uncached_input_tokens
                .saturating_add(r.cache_creation.ephemeral_5m_input_tokens)
                .saturating_add(r.cache_creation.ephemeral_1h_input_tokens)
                .saturating_add(r.cache_read_input_tokens);
            rows.push(token_row(at, r.model, [tokens_in, r.output_tokens, r.cache_read_input_tokens]));
        }
        Ok(())
    })
}

pub(super) fn costs(body: &str) -> Result<Page, String> {
    enveloped(body, |bucket: Bucket<CostResult>, rows| {
        let mut nanos: i64 = 0;
        for r in bucket.results {
            if !r.currency.eq_ignore_ascii_case("usd") {
                return Err(format!("currency {:?} is not USD", r.currency));
            }
            // Cents to nanos: 10^7.
            nanos = nanos.saturating_add(to_scaled_i64(&r.amount, 7).map_err(|e| e.to_string())?);
        }
        rows.push(cost_row(start(&bucket.starting_at)?, nanos));
        Ok(())
    })
}

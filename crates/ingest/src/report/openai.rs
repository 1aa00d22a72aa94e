//! OpenAI's `/organization/usage/completions` and `/organization/costs` pages.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{Page, cost_row, enveloped, timestamp_seconds, token_row};
use crate::decimal::to_scaled_i64;

#[derive(Deserialize)]
struct Bucket<R> {
    start_time: i64,
    results: Vec<R>,
}

#[derive(Deserialize)]
struct UsageResult {
    /// Includes cached and cache-write tokens.
    input_tokens: u64,
    output_tokens: u64,
    #[serde(default)]
    input_cached_tokens: Option<u64>,
    #[serde(default)]
    model: Option<String>,
}

#[derive(Deserialize)]
struct CostResult {
    amount: Amount,
}

#[derive(Deserialize)]
struct Amount {
    /// Dollars as a JSON number (a string is accepted too); read from its text, never through `f64`.
    value: Box<RawValue>,
    currency: String,
}

pub(super) fn usage(body: &str) -> Result<Page, String> {
    enveloped(body, |bucket: Bucket<UsageResult>, rows| {
        let start = timestamp_seconds(bucket.start_time)?;
        for result in bucket.results {
            let tokens = [result.input_tokens, result.output_tokens, result.input_cached_tokens.unwrap_or(0)];
            rows.push(token_row(start, result.model, tokens));
        }
        Ok(())
    })
}

/// One row per bucket, also for a bucket without results (the provider's word that the day cost nothing).
pub(super) fn costs(body: &str) -> Result<Page, String> {
    enveloped(body, |bucket: Bucket<CostResult>, rows| {
        let mut nanos: i64 = 0;
        for result in bucket.results {
            if !result.amount.currency.eq_ignore_ascii_case("usd") {
                return Err(format!("currency {:?} is not usd", result.amount.currency));
            }
            let amount = to_scaled_i64(result.amount.value.get(), 9).map_err(|e| e.to_string())?;
            nanos = nanos.saturating_add(amount);
        }
        rows.push(cost_row(timestamp_seconds(bucket.start_time)?, nanos));
        Ok(())
    })
}

//! Dollars at the edge, integer nano-dollars (1e-9 USD) inside: sums of integers never drift.

/// Nano-dollars in one US dollar.
pub const NANOS_PER_USD: u64 = 1_000_000_000;

/// The largest budget accepted, in USD: 1e9 USD keeps every sum of a budget and a reservation far from `u64::MAX`
/// (1.8e10 USD).
pub const MAX_BUDGET_USD: f64 = 1e9;

/// The most nano-dollars any counter of the engine holds, and any amount it hands to the store: `i64::MAX`
/// (about 9.2e9 USD), because spend is persisted as a signed 64-bit integer. Sums saturate here instead of
/// wrapping, so an absurd cost (a provider reporting billions of tokens) stays the largest storable amount and
/// can never poison a row. Budgets (at most [`MAX_BUDGET_USD`]) are far below it.
pub const MAX_NANOS: u64 = i64::MAX as u64;

/// `nanos` clamped to [`MAX_NANOS`].
pub fn clamp_nanos(nanos: u64) -> u64 {
    nanos.min(MAX_NANOS)
}

/// `nanos` as the `i64` the store persists, clamped to `i64::MAX`.
pub fn nanos_to_i64(nanos: u64) -> i64 {
    i64::try_from(nanos).unwrap_or(i64::MAX)
}

/// `a + b`, saturating at [`MAX_NANOS`].
pub(crate) fn add_nanos(a: u64, b: u64) -> u64 {
    clamp_nanos(a.saturating_add(b))
}

/// Converts a dollar amount from configuration to nano-dollars, rounding to the nearest nano-dollar (half away
/// from zero). `None` when the amount is negative, not finite or above [`MAX_BUDGET_USD`].
pub fn usd_to_nanos(usd: f64) -> Option<u64> {
    if !usd.is_finite() || !(0.0..=MAX_BUDGET_USD).contains(&usd) {
        return None;
    }
    // Exact for every amount up to 2^53 nano-dollars (~9e6 USD); above that f64 itself cannot hold a nano. The
    // range check above keeps the product at most 1e18, inside u64 (and the cast saturates anyway).
    Some(clamp_nanos((usd * 1e9).round() as u64))
}

/// Nano-dollars as a dollar amount for JSON output (never fed back into state).
pub fn nanos_to_usd(nanos: u64) -> f64 {
    nanos as f64 / 1e9
}

#[cfg(test)]
mod tests;

//! Dollars at the edge, integer nano-dollars (1e-9 USD) inside: sums of integers never drift.

/// Nano-dollars in one US dollar.
pub const NANOS_PER_USD: u64 = 1_000_000_000;

/// The largest budget accepted, in USD: 1e9 USD keeps every sum of a budget and a reservation far from `u64::MAX`
/// (1.8e10 USD).
pub const MAX_BUDGET_USD: f64 = 1e9;

/// Converts a dollar amount from configuration to nano-dollars, rounding to the nearest nano-dollar (half away
/// from zero). `None` when the amount is negative, not finite or above [`MAX_BUDGET_USD`].
pub fn usd_to_nanos(usd: f64) -> Option<u64> {
    if !usd.is_finite() || !(0.0..=MAX_BUDGET_USD).contains(&usd) {
        return None;
    }
    // Exact for every amount up to 2^53 nano-dollars (~9e6 USD); above that f64 itself cannot hold a nano.
    Some((usd * 1e9).round() as u64)
}

/// Nano-dollars as a dollar amount for JSON output (never fed back into state).
pub fn nanos_to_usd(nanos: u64) -> f64 {
    nanos as f64 / 1e9
}

#[cfg(test)]
mod tests;

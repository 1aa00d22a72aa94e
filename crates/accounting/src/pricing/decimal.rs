//! Exact decimal text → scaled integer conversion, so prices never pass through `f64`.

use thiserror::Error;

/// Why a decimal text was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecimalError {
    /// Not a JSON/TOML-style number (`123`, `0.40`, `3e-6`).
    #[error("not a decimal number: {0:?}")]
    Syntax(String),
    /// Prices and costs cannot be negative.
    #[error("negative amount: {0:?}")]
    Negative(String),
    /// Too large to represent.
    #[error("amount too large: {0:?}")]
    Overflow(String),
}

/// Parses a non-negative decimal (optionally with an exponent) and returns `value × 10^scale` as an integer,
/// rounded **up** when digits remain below the unit (so a price is never under-counted). At most 38
/// significant digits are accepted (more is refused as [`DecimalError::Overflow`]); `-0` reads as zero.
pub(crate) fn parse_scaled(text: &str, scale: u32) -> Result<u128, DecimalError> {
    let syntax = || DecimalError::Syntax(text.to_owned());
    let overflow = || DecimalError::Overflow(text.to_owned());
    let trimmed = text.trim();
    let (negative, unsigned) = match trimmed.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, trimmed),
    };
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => {
            let exponent: i64 = unsigned[at + 1..].parse().map_err(|_| syntax())?;
            (&unsigned[..at], exponent)
        }
        None => (unsigned, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let well_formed = !whole.is_empty()
        && whole.bytes().all(|byte| byte.is_ascii_digit())
        && fraction.bytes().all(|byte| byte.is_ascii_digit())
        && (!mantissa.contains('.') || !fraction.is_empty());
    if !well_formed {
        return Err(syntax());
    }
    let mut digits: u128 = 0;
    for byte in whole.bytes().chain(fraction.bytes()) {
        digits =
            digits.checked_mul(10).and_then(|value| value.checked_add(u128::from(byte - b'0'))).ok_or_else(overflow)?;
    }
    if negative && digits != 0 {
        return Err(DecimalError::Negative(text.to_owned()));
    }
    let shift = i64::from(scale) + exponent - fraction.len() as i64;
    if digits == 0 {
        Ok(0)
    } else if shift >= 0 {
        u32::try_from(shift)
            .ok()
            .and_then(|shift| 10u128.checked_pow(shift))
            .and_then(|factor| digits.checked_mul(factor))
            .ok_or_else(overflow)
    } else {
        // A divisor beyond u128 means the value is below one unit: it rounds up to 1.
        Ok(u32::try_from(-shift)
            .ok()
            .and_then(|shift| 10u128.checked_pow(shift))
            .map_or(1, |divisor| digits.div_ceil(divisor)))
    }
}

/// `numerator / divisor`, rounded up.
pub(crate) fn ceil_div(numerator: u128, divisor: u128) -> u128 {
    numerator.div_ceil(divisor)
}

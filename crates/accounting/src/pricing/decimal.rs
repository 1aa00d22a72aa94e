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
        Some(at) => (&unsigned[..at], parse_exponent(&unsigned[at + 1..]).ok_or_else(syntax)?),
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
    if digits == 0 {
        return Ok(0);
    }
    // Saturating: an exponent near i64::MAX must overflow (an error), never wrap round to a tiny value; one
    // near i64::MIN is simply far below one unit.
    let shift = i64::from(scale).saturating_add(exponent).saturating_sub(fraction.len() as i64);
    if shift >= 0 {
        u32::try_from(shift)
            .ok()
            .and_then(|shift| 10u128.checked_pow(shift))
            .and_then(|factor| digits.checked_mul(factor))
            .ok_or_else(overflow)
    } else {
        // A divisor beyond u128 means the value is below one unit: it rounds up to 1.
        Ok(u32::try_from(shift.unsigned_abs())
            .ok()
            .and_then(|shift| 10u128.checked_pow(shift))
            .map_or(1, |divisor| digits.div_ceil(divisor)))
    }
}

/// The exponent after `e`: an optional sign and at least one digit. Out-of-range exponents saturate to
/// `i64::MIN`/`i64::MAX` (they mean "far below one unit" / "too large" either way); `None` is a syntax error.
fn parse_exponent(text: &str) -> Option<i64> {
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    let magnitude =
        digits.bytes().fold(0i64, |value, byte| value.saturating_mul(10).saturating_add(i64::from(byte - b'0')));
    Some(if negative { -magnitude } else { magnitude })
}

/// `numerator / divisor`, rounded up.
pub(crate) fn ceil_div(numerator: u128, divisor: u128) -> u128 {
    numerator.div_ceil(divisor)
}

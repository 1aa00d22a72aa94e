//! Exact decimal text to nano-dollars: the providers' amounts are read from their JSON text, never through a
//! binary float, so `0.29` dollars is 290_000_000 nanos and not one nano short.

#[cfg(test)]
mod tests;

/// Why an amount could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a decimal amount")]
pub struct BadAmount(pub String);

/// The longest amount text accepted: enough for any real amount with an exponent, short enough to bound work.
const MAX_AMOUNT_CHARS: usize = 64;

/// `text` (a JSON number or a decimal string: `12`, `-0.5`, `1.25e-3`, `"123.45"`) times `10^scale`, as an
/// integer: `scale` 9 reads dollars as nanos, 7 reads cents as nanos. Digits past the integer are rounded half
/// away from zero; values past `i64` saturate (money saturates, it never wraps).
pub fn to_scaled_i64(text: &str, scale: i32) -> Result<i64, BadAmount> {
    let bad = || BadAmount(text.chars().take(MAX_AMOUNT_CHARS).collect());
    let trimmed = text.trim();
    let trimmed = trimmed.strip_prefix('"').and_then(|t| t.strip_suffix('"')).unwrap_or(trimmed).trim();
    if trimmed.is_empty() || trimmed.len() > MAX_AMOUNT_CHARS {
        return Err(bad());
    }
    let (negative, unsigned) = match trimmed.as_bytes().first() {
        Some(b'-') => (true, &trimmed[1..]),
        Some(b'+') => (false, &trimmed[1..]),
        _ => (false, trimmed),
    };
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(i) => (&unsigned[..i], unsigned[i + 1..].parse::<i32>().map_err(|_| bad())?),
        None => (unsigned, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if (whole.is_empty() && fraction.is_empty())
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    // The digits as one integer with the point `fraction.len()` places from the right, then shifted by the
    // exponent and the scale: `shift` places left of the point are kept.
    let digits: Vec<u8> = whole.bytes().chain(fraction.bytes()).map(|b| b - b'0').collect();
    let shift = i64::from(exponent) + i64::from(scale) - fraction.len() as i64;
    let magnitude = shifted(&digits, shift);
    Ok(match magnitude {
        Some(value) if negative => -(i64::try_from(value).unwrap_or(i64::MAX)),
        Some(value) => i64::try_from(value).unwrap_or(i64::MAX),
        None if negative => i64::MIN,
        None => i64::MAX,
    })
}

/// `digits × 10^shift`, rounded half up when `shift` is negative; `None` past `u128`.
fn shifted(digits: &[u8], shift: i64) -> Option<u128> {
    let keep = if shift >= 0 { digits.len() } else { digits.len().saturating_sub(shift.unsigned_abs() as usize) };
    let mut value: u128 = 0;
    for &digit in &digits[..keep] {
        value = value.checked_mul(10)?.checked_add(u128::from(digit))?;
    }
    if shift > 0 {
        for _ in 0..shift {
            if value == 0 {
                break;
            }
            value = value.checked_mul(10)?;
        }
    } else if let Some(&next) = digits.get(keep)
        && next >= 5
    {
        value = value.checked_add(1)?;
    }
    Some(value)
}

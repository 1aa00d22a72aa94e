//! Parsers for the units written in the config file: durations (`90s`, `15m`, `1h`, `1d`) and sizes (`25MiB`).

use std::time::Duration;

/// Parses `500ms`, `90s`, `15m`, `1h`, `1d`, `7d` (an integer and a unit, no spaces).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let amount: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a duration: write an integer and a unit, like 90s, 15m, 1h, 1d"))?;
    let seconds_per_unit = match unit {
        "ms" => return Ok(Duration::from_millis(amount)),
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(format!("{text:?} has unknown unit {unit:?}: use ms, s, m, h, d or w")),
    };
    amount.checked_mul(seconds_per_unit).map(Duration::from_secs).ok_or_else(|| format!("{text:?} is too long"))
}

/// Parses `1024`, `512KiB`, `25MiB`, `1GiB` (also `KB`/`MB`/`GB` as powers of ten) into bytes.
pub fn parse_byte_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let amount: u64 =
        digits.parse().map_err(|_| format!("{text:?} is not a size: write an integer and a unit, like 25MiB"))?;
    let multiplier: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        other => return Err(format!("{text:?} has unknown unit {other:?}: use B, KiB, MiB or GiB")),
    };
    amount.checked_mul(multiplier).ok_or_else(|| format!("{text:?} is too large"))
}

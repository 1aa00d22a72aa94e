//! Window lengths (`90s`, `15m`, `1d`, `1mo`…) and where a window starts and ends: calendar windows in the rule's
//! IANA time zone, everything else aligned to multiples of its length since the Unix epoch.

use std::fmt;
use std::num::{NonZeroU32, NonZeroU64};

use jiff::tz::TimeZone;
use jiff::{Span, Timestamp};
use serde::{Deserialize, Serialize};

use crate::clock::{nanos_timestamp, timestamp_nanos};

#[cfg(test)]
mod tests;

/// Sub-buckets per rolling window: rolling windows promise a resolution of 1/60 of the window or finer (docs/limits.md).
pub const ROLLING_SLOTS: i64 = 60;

const NANOS_PER_SEC: i64 = 1_000_000_000;
const SECS_PER_DAY: u64 = 86_400;
/// Longest accepted window: ten years (3,650 days or 120 months). Longer is almost surely a typo, and the bound keeps
/// every window length comfortably inside `i64` nanoseconds.
const MAX_WINDOW_DAYS: u64 = 3_650;
const MAX_WINDOW_MONTHS: u32 = 120;

/// How long a window is, as written in configuration.
///
/// `s`, `m`, `h` are [`WindowLength::Seconds`]; `d` and `w` (7 days) are [`WindowLength::Days`]; `mo` is
/// [`WindowLength::Months`]. The distinction matters for fixed windows: `1d`, `7d`/`1w` and `Nmo` follow the
/// calendar of the rule's time zone (midnight, Monday 00:00, the 1st 00:00; `Nmo` for N > 1 starts on months
/// whose index since January 1970 is a multiple of N, so `3mo` is calendar quarters), while `24h` or `2d` are
/// aligned to multiples of their length since the Unix epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WindowLength {
    /// A fixed number of seconds.
    Seconds(NonZeroU64),
    /// A number of (calendar, for fixed `1d` and `7d`) days.
    Days(NonZeroU32),
    /// A number of calendar months.
    Months(NonZeroU32),
}

/// Parses a window length: a positive integer followed by `s`, `m`, `h`, `d`, `w` or `mo` (`90s`, `15m`, `1h`,
/// `1d`, `7d`, `2w`, `1mo`). No spaces, no sign, no fractions; at most ten years.
pub fn parse_window(text: &str) -> Result<WindowLength, String> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    let usage = "expected a positive integer and a unit s, m, h, d, w or mo (e.g. \"90s\", \"15m\", \"1d\", \"1mo\")";
    if number.is_empty() {
        return Err(format!("invalid window {text:?}: {usage}"));
    }
    let Ok(n) = number.parse::<u64>() else {
        return Err(format!("invalid window {text:?}: number too large"));
    };
    if n == 0 {
        return Err(format!("invalid window {text:?}: the length must be positive"));
    }
    let too_long = || format!("invalid window {text:?}: at most ten years is allowed");
    let seconds = |per: u64| {
        n.checked_mul(per)
            .filter(|s| *s <= MAX_WINDOW_DAYS * SECS_PER_DAY)
            .and_then(NonZeroU64::new)
            .map(WindowLength::Seconds)
            .ok_or_else(too_long)
    };
    let days = |per: u64| {
        n.checked_mul(per)
            .filter(|d| *d <= MAX_WINDOW_DAYS)
            .and_then(|d| NonZeroU32::new(d as u32))
            .map(WindowLength::Days)
            .ok_or_else(too_long)
    };
    match unit {
        "s" => seconds(1),
        "m" => seconds(60),
        "h" => seconds(3_600),
        "d" => days(1),
        "w" => days(7),
        "mo" => u32::try_from(n)
            .ok()
            .filter(|m| *m <= MAX_WINDOW_MONTHS)
            .and_then(NonZeroU32::new)
            .map(WindowLength::Months)
            .ok_or_else(too_long),
        "" => Err(format!("invalid window {text:?}: missing unit; {usage}")),
        other => Err(format!("invalid window {text:?}: unknown unit {other:?}; {usage}")),
    }
}

impl WindowLength {
    /// The nominal length in nanoseconds (a day is 86,400 s, a month 30 days). Exact for everything but the
    /// calendar windows, whose real bounds come from [`Window::fixed_bounds`].
    pub fn nominal_nanos(self) -> i64 {
        let secs = match self {
            Self::Seconds(s) => s.get(),
            Self::Days(d) => u64::from(d.get()) * SECS_PER_DAY,
            Self::Months(m) => u64::from(m.get()) * 30 * SECS_PER_DAY,
        };
        secs as i64 * NANOS_PER_SEC
    }
}

impl fmt::Display for WindowLength {
    /// The canonical spelling, which [`parse_window`] reads back to the same value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Seconds(s) if s.get() % 3_600 == 0 => write!(f, "{}h", s.get() / 3_600),
            Self::Seconds(s) if s.get() % 60 == 0 => write!(f, "{}m", s.get() / 60),
            Self::Seconds(s) => write!(f, "{s}s"),
            Self::Days(d) => write!(f, "{d}d"),
            Self::Months(m) => write!(f, "{m}mo"),
        }
    }
}

/// `fixed` windows reset at boundaries; `rolling` windows count the last `window` of spend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowKind {
    /// Resets at each boundary.
    #[default]
    Fixed,
    /// Slides continuously, at a resolution of 1/60 of the window.
    Rolling,
}

/// A validated window: its length, kind and time zone.
#[derive(Debug, Clone)]
pub struct Window {
    length: WindowLength,
    kind: WindowKind,
    time_zone: TimeZone,
    time_zone_name: String,
    /// [`Window::slot_nanos`], computed once (it is needed on every admission to a rolling window).
    slot: i64,
}

impl PartialEq for Window {
    /// Same semantics: bucket state counted under one is valid under the other.
    fn eq(&self, other: &Self) -> bool {
        self.length == other.length && self.kind == other.kind && self.time_zone_name == other.time_zone_name
    }
}

impl Eq for Window {}

impl Window {
    /// Builds a window. Rolling windows must have a fixed length: a rolling month is ambiguous, so `Nmo` is
    /// refused there (write `30d`).
    pub fn new(length: WindowLength, kind: WindowKind, time_zone_name: &str) -> Result<Self, WindowError> {
        let time_zone =
            TimeZone::get(time_zone_name).map_err(|_| WindowError::UnknownTimeZone(time_zone_name.into()))?;
        if kind == WindowKind::Rolling && matches!(length, WindowLength::Months(_)) {
            return Err(WindowError::RollingMonths(length));
        }
        Ok(Self { length, kind, time_zone, time_zone_name: time_zone_name.to_owned(), slot: slot_of(length) })
    }

    /// A fixed window in UTC (what rate limits use).
    pub fn fixed_utc(length: WindowLength) -> Self {
        Self {
            length,
            kind: WindowKind::Fixed,
            time_zone: TimeZone::UTC,
            time_zone_name: "UTC".to_owned(),
            slot: slot_of(length),
        }
    }

    /// The configured length.
    pub fn length(&self) -> WindowLength {
        self.length
    }

    /// Fixed or rolling.
    pub fn kind(&self) -> WindowKind {
        self.kind
    }

    /// The IANA name of the time zone calendar windows follow.
    pub fn time_zone_name(&self) -> &str {
        &self.time_zone_name
    }

    /// For a fixed window, the `[start, end)` of the window containing `now`. For a rolling window, the span it
    /// currently covers: `[start of the oldest counted slot, end of the current slot)`.
    pub fn bounds(&self, now: Timestamp) -> (Timestamp, Timestamp) {
        let (start, end) = self.bounds_nanos(timestamp_nanos(now));
        (nanos_timestamp(start), nanos_timestamp(end))
    }

    /// [`Window::bounds`] in Unix nanoseconds.
    pub(crate) fn bounds_nanos(&self, now: i64) -> (i64, i64) {
        match self.kind {
            WindowKind::Fixed => self.fixed_bounds_nanos(now),
            WindowKind::Rolling => {
                let slot = self.slot_nanos();
                let current = now.div_euclid(slot);
                // Saturating: a clock at the edge of the i64 range (a saturated timestamp) must not overflow.
                (
                    current.saturating_sub(ROLLING_SLOTS - 1).saturating_mul(slot),
                    current.saturating_add(1).saturating_mul(slot),
                )
            }
        }
    }

    /// Rolling windows: length of one slot in nanoseconds, `window / 60` rounded down (so the resolution is at
    /// least 1/60; the window then covers 60 slots, at most 59 ns shorter than configured).
    pub(crate) fn slot_nanos(&self) -> i64 {
        self.slot
    }

    fn fixed_bounds_nanos(&self, now: i64) -> (i64, i64) {
        let calendar = match self.length {
            WindowLength::Days(d) if d.get() == 1 || d.get() == 7 => self.calendar_days(now, d.get()),
            WindowLength::Months(m) => self.calendar_months(now, m.get()),
            WindowLength::Seconds(_) | WindowLength::Days(_) => None,
        };
        calendar.unwrap_or_else(|| {
            // Epoch-aligned; also the fallback for instants outside jiff's calendar range (never in practice).
            let len = self.length.nominal_nanos();
            let start = now.div_euclid(len).saturating_mul(len);
            (start, start.saturating_add(len))
        })
    }

    /// `[midnight, next midnight)` (one day) or `[Monday 00:00, next Monday 00:00)` (seven days) in the window's
    /// time zone. jiff resolves DST: such a day lasts 23 or 25 hours, and a midnight that does not exist
    /// starts at the first instant after the gap.
    fn calendar_days(&self, now: i64, days: u32) -> Option<(i64, i64)> {
        let local = nanos_timestamp(now).to_zoned_datetime(self.time_zone.clone());
        let mut date = local.date();
        if days == 7 {
            date = date.checked_sub(Span::new().days(i64::from(date.weekday().to_monday_zero_offset()))).ok()?;
        }
        let start = date.to_zoned_datetime(self.time_zone.clone()).ok()?.start_of_day().ok()?;
        let end_date = date.checked_add(Span::new().days(i64::from(days))).ok()?;
        let end = end_date.to_zoned_datetime(self.time_zone.clone()).ok()?.start_of_day().ok()?;
        Some((timestamp_nanos(start.timestamp()), timestamp_nanos(end.timestamp())))
    }

    /// `[the 1st 00:00, the 1st of the month N months later 00:00)` in the window's time zone, for the N-month
    /// period (counted from January 1970) that contains `now`.
    fn calendar_months(&self, now: i64, months: u32) -> Option<(i64, i64)> {
        let local = nanos_timestamp(now).to_zoned_datetime(self.time_zone.clone());
        let date = local.date();
        let index = (i64::from(date.year()) - 1970) * 12 + i64::from(date.month()) - 1;
        let back = index.rem_euclid(i64::from(months));
        let first = date.first_of_month().checked_sub(Span::new().months(back)).ok()?;
        let start = first.to_zoned_datetime(self.time_zone.clone()).ok()?.start_of_day().ok()?;
        let next = first.checked_add(Span::new().months(i64::from(months))).ok()?;
        let end = next.to_zoned_datetime(self.time_zone.clone()).ok()?.start_of_day().ok()?;
        Some((timestamp_nanos(start.timestamp()), timestamp_nanos(end.timestamp())))
    }
}

/// Length of one rolling slot: `window / 60` rounded down, at least 1 ns.
fn slot_of(length: WindowLength) -> i64 {
    (length.nominal_nanos() / ROLLING_SLOTS).max(1)
}

/// Why a window could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    /// The time zone is not in the (bundled) IANA database.
    #[error("unknown time zone {0:?}; expected an IANA name such as \"UTC\" or \"Europe/Berlin\"")]
    UnknownTimeZone(String),
    /// A rolling window of calendar months.
    #[error("a rolling window needs a fixed length; \"{0}\" is calendar months (write e.g. \"30d\")")]
    RollingMonths(WindowLength),
}

/// Whole seconds from `now` until `until`, rounded up, at least 1: the value of a `Retry-After` header.
pub(crate) fn retry_after_secs(now: i64, until: i64) -> u64 {
    let wait = until.saturating_sub(now).max(0);
    let secs = wait.saturating_add(NANOS_PER_SEC - 1) / NANOS_PER_SEC;
    (secs as u64).max(1)
}

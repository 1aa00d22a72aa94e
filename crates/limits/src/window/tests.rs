//! Tests for window parsing and alignment: epoch multiples, calendar days, weeks and months, DST, leap years.

use super::*;

fn ts(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn fixed(window: &str, zone: &str) -> Window {
    Window::new(parse_window(window).unwrap(), WindowKind::Fixed, zone).unwrap()
}

fn bounds(window: &Window, now: &str) -> (String, String) {
    let (start, end) = window.bounds(ts(now));
    (start.to_string(), end.to_string())
}

fn pair(a: &str, b: &str) -> (String, String) {
    (a.to_owned(), b.to_owned())
}

#[test]
fn parses_every_unit() {
    let secs = |n| WindowLength::Seconds(NonZeroU64::new(n).unwrap());
    assert_eq!(parse_window("90s"), Ok(secs(90)));
    assert_eq!(parse_window("15m"), Ok(secs(900)));
    assert_eq!(parse_window("1h"), Ok(secs(3_600)));
    assert_eq!(parse_window("1d"), Ok(WindowLength::Days(NonZeroU32::new(1).unwrap())));
    assert_eq!(parse_window("7d"), Ok(WindowLength::Days(NonZeroU32::new(7).unwrap())));
    assert_eq!(parse_window("2w"), Ok(WindowLength::Days(NonZeroU32::new(14).unwrap())));
    assert_eq!(parse_window("1mo"), Ok(WindowLength::Months(NonZeroU32::new(1).unwrap())));
    assert_eq!(parse_window("3mo"), Ok(WindowLength::Months(NonZeroU32::new(3).unwrap())));
    for text in ["90s", "15m", "1h", "1d", "7d", "1mo", "12mo"] {
        assert_eq!(parse_window(text).unwrap().to_string(), text);
    }
}

#[test]
fn rejects_bad_windows_with_a_reason() {
    for (text, reason) in [
        ("", "expected a positive integer"),
        ("d", "expected a positive integer"),
        ("0s", "must be positive"),
        ("10", "missing unit"),
        ("5y", "unknown unit \"y\""),
        ("1 d", "unknown unit \" d\""),
        ("-1d", "expected a positive integer"),
        ("1.5h", "unknown unit"),
        ("3651d", "at most ten years"),
        ("121mo", "at most ten years"),
        ("99999999999999999999s", "number too large"),
    ] {
        let err = parse_window(text).unwrap_err();
        assert!(err.contains(reason), "{text:?}: {err}");
    }
}

#[test]
fn short_windows_align_to_epoch_multiples() {
    let w = fixed("15m", "Europe/Berlin");
    assert_eq!(bounds(&w, "2026-05-01T10:07:13Z"), pair("2026-05-01T10:00:00Z", "2026-05-01T10:15:00Z"));
    let w = fixed("90s", "UTC");
    // 1970-01-01T00:00:00Z + k·90s: 2026-05-01T10:07:13Z is 1,777,630,033 s; ⌊/90⌋·90 = 1,777,629,960.
    assert_eq!(bounds(&w, "2026-05-01T10:07:13Z"), pair("2026-05-01T10:06:00Z", "2026-05-01T10:07:30Z"));
    // A boundary instant belongs to the window it starts.
    assert_eq!(bounds(&w, "2026-05-01T10:07:30Z"), pair("2026-05-01T10:07:30Z", "2026-05-01T10:09:00Z"));
    // 2d is not a calendar length: epoch multiples of 48 h.
    let w = fixed("2d", "America/New_York");
    let (start, _) = w.bounds(ts("2026-05-01T10:00:00Z"));
    assert_eq!(start.as_second() % (2 * 86_400), 0);
}

#[test]
fn days_follow_local_midnight() {
    let w = fixed("1d", "UTC");
    assert_eq!(bounds(&w, "2026-05-01T23:59:59.999Z"), pair("2026-05-01T00:00:00Z", "2026-05-02T00:00:00Z"));
    assert_eq!(bounds(&w, "2026-05-02T00:00:00Z"), pair("2026-05-02T00:00:00Z", "2026-05-03T00:00:00Z"));
    let w = fixed("1d", "Europe/Berlin");
    // 23:30 UTC on 1 May is 01:30 on 2 May in Berlin (CEST, +2).
    assert_eq!(bounds(&w, "2026-05-01T23:30:00Z"), pair("2026-05-01T22:00:00Z", "2026-05-02T22:00:00Z"));
}

#[test]
fn dst_days_last_23_and_25_hours() {
    let w = fixed("1d", "America/New_York");
    // 2026-03-08: clocks jump 02:00 → 03:00 EST → EDT; the day is 23 h long.
    assert_eq!(bounds(&w, "2026-03-08T12:00:00Z"), pair("2026-03-08T05:00:00Z", "2026-03-09T04:00:00Z"));
    // 2026-11-01: clocks fall back 02:00 → 01:00 EDT → EST; the day is 25 h long.
    assert_eq!(bounds(&w, "2026-11-01T12:00:00Z"), pair("2026-11-01T04:00:00Z", "2026-11-02T05:00:00Z"));
    // Crossing the boundary right after the short day.
    assert_eq!(bounds(&w, "2026-03-09T04:00:00Z"), pair("2026-03-09T04:00:00Z", "2026-03-10T04:00:00Z"));
    let w = fixed("1d", "Europe/Berlin");
    // 2026-03-29 (CET → CEST, 23 h) and 2026-10-25 (CEST → CET, 25 h).
    assert_eq!(bounds(&w, "2026-03-29T12:00:00Z"), pair("2026-03-28T23:00:00Z", "2026-03-29T22:00:00Z"));
    assert_eq!(bounds(&w, "2026-10-25T12:00:00Z"), pair("2026-10-24T22:00:00Z", "2026-10-25T23:00:00Z"));
}

#[test]
fn weeks_start_monday_midnight() {
    let w = fixed("7d", "UTC");
    // 2026-05-06 is a Wednesday.
    assert_eq!(bounds(&w, "2026-05-06T15:00:00Z"), pair("2026-05-04T00:00:00Z", "2026-05-11T00:00:00Z"));
    // Sunday 23:59 is still the same week; Monday 00:00 starts the next.
    assert_eq!(bounds(&w, "2026-05-10T23:59:59Z").0, "2026-05-04T00:00:00Z");
    assert_eq!(bounds(&w, "2026-05-11T00:00:00Z").0, "2026-05-11T00:00:00Z");
    // `1w` is the same calendar week; across the US spring-forward the week lasts 167 h.
    let w = fixed("1w", "America/New_York");
    assert_eq!(bounds(&w, "2026-03-08T12:00:00Z"), pair("2026-03-02T05:00:00Z", "2026-03-09T04:00:00Z"));
}

#[test]
fn months_follow_the_calendar() {
    let w = fixed("1mo", "UTC");
    assert_eq!(bounds(&w, "2026-01-31T23:59:59Z"), pair("2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z"));
    assert_eq!(bounds(&w, "2026-02-01T00:00:00Z"), pair("2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z"));
    // Leap year: February 2028 has 29 days.
    assert_eq!(bounds(&w, "2028-02-29T12:00:00Z"), pair("2028-02-01T00:00:00Z", "2028-03-01T00:00:00Z"));
    let w = fixed("1mo", "America/New_York");
    assert_eq!(bounds(&w, "2026-03-15T12:00:00Z"), pair("2026-03-01T05:00:00Z", "2026-04-01T04:00:00Z"));
    // 3mo = calendar quarters.
    let w = fixed("3mo", "UTC");
    assert_eq!(bounds(&w, "2026-05-20T00:00:00Z"), pair("2026-04-01T00:00:00Z", "2026-07-01T00:00:00Z"));
}

#[test]
fn rolling_windows_use_sixty_slots() {
    let w = Window::new(parse_window("1h").unwrap(), WindowKind::Rolling, "UTC").unwrap();
    assert_eq!(w.slot_nanos(), 60 * NANOS_PER_SEC);
    assert_eq!(bounds(&w, "2026-05-01T10:30:30Z"), pair("2026-05-01T09:31:00Z", "2026-05-01T10:31:00Z"));
    assert_eq!(
        Window::new(parse_window("1mo").unwrap(), WindowKind::Rolling, "UTC").unwrap_err(),
        WindowError::RollingMonths(parse_window("1mo").unwrap())
    );
}

#[test]
fn unknown_time_zone_is_refused() {
    assert!(matches!(
        Window::new(parse_window("1d").unwrap(), WindowKind::Fixed, "Mars/Olympus"),
        Err(WindowError::UnknownTimeZone(_))
    ));
}

#[test]
fn retry_after_rounds_up_to_whole_seconds() {
    assert_eq!(retry_after_secs(0, 1), 1);
    assert_eq!(retry_after_secs(0, NANOS_PER_SEC), 1);
    assert_eq!(retry_after_secs(0, NANOS_PER_SEC + 1), 2);
    assert_eq!(retry_after_secs(5, 0), 1);
}

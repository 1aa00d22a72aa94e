//! Tests for the manual clock and the nanosecond conversions.

use super::*;

#[test]
fn manual_clock_moves_only_when_told() {
    let start: Timestamp = "2026-03-08T06:59:59Z".parse().unwrap();
    let clock = ManualClock::new(start);
    assert_eq!(clock.now(), start);
    clock.advance(SignedDuration::from_secs(1));
    assert_eq!(clock.now().to_string(), "2026-03-08T07:00:00Z");
    clock.set(start);
    assert_eq!(clock.now(), start);
}

#[test]
fn nanos_round_trip() {
    let at: Timestamp = "2028-02-29T12:34:56.789Z".parse().unwrap();
    assert_eq!(nanos_timestamp(timestamp_nanos(at)), at);
}

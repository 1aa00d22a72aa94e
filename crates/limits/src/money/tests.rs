//! Tests for the dollar / nano-dollar conversion.

use super::*;

#[test]
fn rounds_to_nearest_nano() {
    assert_eq!(usd_to_nanos(5.0), Some(5_000_000_000));
    assert_eq!(usd_to_nanos(0.000_000_000_4), Some(0));
    assert_eq!(usd_to_nanos(0.000_000_000_6), Some(1));
    assert_eq!(usd_to_nanos(0.1), Some(100_000_000));
    assert_eq!(usd_to_nanos(-1.0), None);
    assert_eq!(usd_to_nanos(f64::NAN), None);
    assert_eq!(usd_to_nanos(f64::INFINITY), None);
    assert_eq!(usd_to_nanos(2e9), None);
    assert!((nanos_to_usd(1_500_000_000) - 1.5).abs() < f64::EPSILON);
}

#[test]
fn s23_amounts_clamp_to_what_the_store_holds() {
    assert_eq!(clamp_nanos(u64::MAX), MAX_NANOS);
    assert_eq!(clamp_nanos(5), 5);
    assert_eq!(nanos_to_i64(u64::MAX), i64::MAX);
    assert_eq!(nanos_to_i64(MAX_NANOS), i64::MAX);
    assert_eq!(nanos_to_i64(7), 7);
    assert_eq!(add_nanos(MAX_NANOS, 1), MAX_NANOS);
    assert_eq!(add_nanos(u64::MAX, u64::MAX), MAX_NANOS);
    assert_eq!(usd_to_nanos(MAX_BUDGET_USD), Some(1_000_000_000_000_000_000));
    assert_eq!(usd_to_nanos(f64::MAX), None);
}

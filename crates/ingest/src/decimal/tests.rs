//! Amounts read exactly, to the nano, where an `f64` would be off.

use super::*;

#[test]
fn dollars_read_exactly_to_the_nano() {
    for (text, nanos) in [
        ("0.06", 60_000_000),
        ("0.29", 290_000_000),
        ("4.35", 4_350_000_000),
        ("19.999999999", 19_999_999_999),
        ("123456.789012345", 123_456_789_012_345),
        ("1.5e-3", 1_500_000),
        ("2E2", 200_000_000_000),
        ("\"1.50\"", 1_500_000_000),
        ("-0.25", -250_000_000),
        ("0", 0),
        ("0.0000000004", 0),
        ("0.0000000005", 1),
        (".5", 500_000_000),
        ("7.", 7_000_000_000),
    ] {
        assert_eq!(to_scaled_i64(text, 9), Ok(nanos), "{text}");
    }
}

#[test]
fn cents_strings_read_exactly() {
    assert_eq!(to_scaled_i64("123.45", 7), Ok(1_234_500_000));
    assert_eq!(to_scaled_i64("0.0000001", 7), Ok(1));
    assert_eq!(to_scaled_i64("1", 7), Ok(10_000_000));
}

#[test]
fn float_conversion_would_be_wrong_here() {
    // The bug this module exists for: 8.2 × 1e9 in binary floating point truncates to 8_199_999_999.
    assert_eq!(("8.2".parse::<f64>().unwrap() * 1e9) as i64, 8_199_999_999);
    assert_eq!(to_scaled_i64("8.2", 9), Ok(8_200_000_000));
    assert_eq!(to_scaled_i64("1.005", 9), Ok(1_005_000_000));
}

#[test]
fn huge_values_saturate_and_junk_is_refused() {
    assert_eq!(to_scaled_i64("1e30", 9), Ok(i64::MAX));
    assert_eq!(to_scaled_i64("-1e30", 9), Ok(i64::MIN));
    assert_eq!(to_scaled_i64("1e-400000", 9), Ok(0));
    for junk in ["", "abc", "1.2.3", "--1", "1e", "0x10", "NaN", "1,5", &"9".repeat(100)] {
        assert!(to_scaled_i64(junk, 9).is_err(), "{junk:?}");
    }
}

//! Fuzz target: the `cf-aig-custom-cost` parser never panics, and whatever it accepts respects the per-request
//! maximum: a total is at most the maximum, and no price or worst case of a per-token cost exceeds it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_accounting::{CustomCost, PromptEstimate, Usage};

/// Maxima to try, in nano-dollars: $0, 1 nano-dollar, $0.5, $100 (the default), and the largest possible.
const MAXIMA: [u64; 5] = [0, 1, 500_000_000, 100_000_000_000, u64::MAX];

fuzz_target!(|input: &[u8]| {
    let Some((&control, header)) = input.split_first() else {
        return;
    };
    let Ok(header) = std::str::from_utf8(header) else {
        return;
    };
    let max_nanos = MAXIMA[usize::from(control) % MAXIMA.len()];
    let Ok(cost) = CustomCost::parse(header, max_nanos) else {
        return;
    };
    let tokens = u64::from(control).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let usage = Usage { input: tokens, cache_read: tokens / 3, output: tokens.rotate_left(17), ..Usage::default() };
    assert!(cost.price(&usage).cost_nanos <= max_nanos);
    let prompt = PromptEstimate { tokens, held_by_provider: control & 1 == 1 };
    for output in [None, Some(0), Some(tokens), Some(u64::MAX)] {
        assert!(cost.worst_case_nanos(&prompt, output) <= max_nanos);
    }
    if let CustomCost::Total { nanos } = cost {
        assert!(nanos <= max_nanos);
    }
});

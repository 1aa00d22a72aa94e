//! Fuzz target: the request-body scans (prompt estimate, provider-held prompt detection, include_usage rewrite)
//! never panic on any bytes; the estimate never exceeds the body's own size in tokens, and a rewritten body is
//! valid JSON that asks for usage whenever the input was valid JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_accounting::{IncludeUsage, ensure_include_usage, estimate_prompt, estimate_prompt_tokens};

fuzz_target!(|body: &[u8]| {
    let estimate = estimate_prompt(body);
    // Decoded string bytes never exceed the raw bytes, so the estimate is at most the whole-body one.
    assert!(estimate.tokens <= (body.len() as u64).div_ceil(4));
    assert_eq!(estimate.tokens, estimate_prompt_tokens(body));

    let valid = serde_json::from_slice::<serde_json::Value>(body).is_ok();
    match ensure_include_usage(body) {
        Some(IncludeUsage::Injected(rewritten)) => {
            assert!(valid, "only valid JSON is rewritten");
            let value: serde_json::Value = serde_json::from_slice(&rewritten).expect("rewritten body is valid JSON");
            assert_eq!(value["stream_options"]["include_usage"], serde_json::Value::Bool(true));
        }
        Some(IncludeUsage::ClientAsked) => assert!(valid),
        None => {}
    }
});

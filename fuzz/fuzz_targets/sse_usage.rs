//! Fuzz target: the SSE parser, the usage tap and the injected-usage filter never panic on any bytes, and the
//! tap reports the same observation however the bytes are split.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_accounting::{ApiFormat, InjectedUsageFilter, UsageTap};

const FORMATS: [ApiFormat; 6] = [
    ApiFormat::OpenAiChat,
    ApiFormat::OpenAiCompletions,
    ApiFormat::OpenAiEmbeddings,
    ApiFormat::OpenAiResponses,
    ApiFormat::AnthropicMessages,
    ApiFormat::GeminiGenerate,
];

fuzz_target!(|input: &[u8]| {
    let Some((&control, body)) = input.split_first() else {
        return;
    };
    let format = FORMATS[usize::from(control) % FORMATS.len()];
    let streaming = control & 0x80 == 0;
    // Split points derived from the control byte, so the corpus explores splits too.
    let step = usize::from(control % 7) + 1;

    let mut whole = UsageTap::new(format, streaming);
    whole.observe(body);
    let whole = whole.finish();

    let mut split = UsageTap::new(format, streaming);
    for chunk in body.chunks(step) {
        split.observe(chunk);
    }
    assert_eq!(whole, split.finish(), "observation depends on the split");

    let bytes = bytes::Bytes::copy_from_slice(body);
    let mut filter = InjectedUsageFilter::new();
    let mut out = Vec::new();
    let mut start = 0;
    while start < bytes.len() {
        let end = (start + step).min(bytes.len());
        filter.push(&bytes.slice(start..end), &mut |piece| out.extend_from_slice(&piece));
        start = end;
    }
    filter.finish(&mut |piece| out.extend_from_slice(&piece));
    assert!(out.len() <= body.len());
});

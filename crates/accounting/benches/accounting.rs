//! Criterion benches of the accounting hot paths: SSE framing, the usage tap and the usage filter per streamed
//! chunk, pricing, and the request-body scans (prompt estimate, include_usage rewrite) at 1 KiB, 1 MiB and 24 MiB.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use jiff::civil::date;
use tollgate_accounting::{
    ApiFormat, InjectedUsageFilter, PriceCatalog, SseItem, SseParser, Usage, UsageTap, ensure_include_usage,
    estimate_prompt,
};

/// Content events per synthetic stream: a medium-length answer.
const CONTENT_EVENTS: usize = 400;

/// An OpenAI chat stream with `include_usage`, one event per chunk, as a proxy sees it.
fn openai_chat_chunks() -> Vec<Bytes> {
    let mut chunks = Vec::with_capacity(CONTENT_EVENTS + 2);
    for index in 0..CONTENT_EVENTS {
        chunks.push(Bytes::from(format!(
            "data: {{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1767225600,\"model\":\"gpt-4o-mini-2024-07-18\",\"system_fingerprint\":\"fp_bench\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\" token{index}\"}},\"logprobs\":null,\"finish_reason\":null}}],\"usage\":null,\"obfuscation\":\"a1b2c3\"}}\n\n"
        )));
    }
    chunks.push(Bytes::from_static(b"data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1767225600,\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[],\"usage\":{\"prompt_tokens\":1200,\"completion_tokens\":400,\"total_tokens\":1600,\"prompt_tokens_details\":{\"cached_tokens\":1024,\"audio_tokens\":0},\"completion_tokens_details\":{\"reasoning_tokens\":0,\"audio_tokens\":0,\"accepted_prediction_tokens\":0,\"rejected_prediction_tokens\":0}}}\n\n"));
    chunks.push(Bytes::from_static(b"data: [DONE]\n\n"));
    chunks
}

/// An Anthropic messages stream, one event per chunk.
fn anthropic_chunks() -> Vec<Bytes> {
    let mut chunks = vec![Bytes::from_static(
        b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_bench\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-haiku-4-5-20251001\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":25,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,\"cache_creation\":{\"ephemeral_5m_input_tokens\":0,\"ephemeral_1h_input_tokens\":0},\"output_tokens\":1,\"service_tier\":\"standard\"}}}\n\n",
    )];
    chunks.push(Bytes::from_static(b"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n"));
    for index in 0..CONTENT_EVENTS {
        chunks.push(Bytes::from(format!(
            "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\" token{index}\"}}}}\n\n"
        )));
    }
    chunks.push(Bytes::from_static(
        b"event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
    ));
    chunks.push(Bytes::from_static(b"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":400}}\n\n"));
    chunks.push(Bytes::from_static(b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"));
    chunks
}

fn total_bytes(chunks: &[Bytes]) -> u64 {
    chunks.iter().map(|chunk| chunk.len() as u64).sum()
}

fn streams() -> [(&'static str, ApiFormat, Vec<Bytes>); 2] {
    [
        ("openai_chat", ApiFormat::OpenAiChat, openai_chat_chunks()),
        ("anthropic", ApiFormat::AnthropicMessages, anthropic_chunks()),
    ]
}

fn sse_parser(c: &mut Criterion) {
    let mut group = c.benchmark_group("sse_parser");
    for (name, _, chunks) in streams() {
        group.throughput(Throughput::Bytes(total_bytes(&chunks)));
        group.bench_with_input(BenchmarkId::new("bytes", name), &chunks, |b, chunks| {
            b.iter(|| {
                let mut parser = SseParser::new();
                let mut events = 0usize;
                let mut count = |item: SseItem<'_>| {
                    if let SseItem::Event(event) = item {
                        events += event.data.len();
                    }
                };
                for chunk in chunks {
                    parser.push(chunk, &mut count);
                }
                parser.finish(&mut count);
                black_box(events)
            });
        });
        group.throughput(Throughput::Elements(chunks.len() as u64));
        group.bench_with_input(BenchmarkId::new("chunks", name), &chunks, |b, chunks| {
            b.iter(|| {
                let mut parser = SseParser::new();
                let mut events = 0usize;
                for chunk in chunks {
                    parser.push(chunk, &mut |_| events += 1);
                }
                black_box(events)
            });
        });
    }
    group.finish();
}

fn usage_tap(c: &mut Criterion) {
    let mut group = c.benchmark_group("usage_tap");
    for (name, format, chunks) in streams() {
        group.throughput(Throughput::Elements(chunks.len() as u64));
        group.bench_with_input(BenchmarkId::new("chunks", name), &chunks, |b, chunks| {
            b.iter(|| {
                let mut tap = UsageTap::new(format, true);
                for chunk in chunks {
                    tap.observe(chunk);
                }
                black_box(tap.finish())
            });
        });
    }
    group.finish();
}

fn injected_usage_filter(c: &mut Criterion) {
    let chunks = openai_chat_chunks();
    let mut group = c.benchmark_group("injected_usage_filter");
    group.throughput(Throughput::Elements(chunks.len() as u64));
    group.bench_function("chunks/openai_chat", |b| {
        b.iter(|| {
            let mut filter = InjectedUsageFilter::new();
            let mut forwarded = 0usize;
            for chunk in &chunks {
                filter.push(chunk, &mut |piece| forwarded += piece.len());
            }
            filter.finish(&mut |piece| forwarded += piece.len());
            black_box(forwarded)
        });
    });
    group.finish();
}

#[expect(clippy::expect_used, reason = "the bundled catalog is verified by the unit tests")]
fn pricing(c: &mut Criterion) {
    let catalog = PriceCatalog::bundled().expect("bundled catalog");
    let day = date(2026, 11, 25);
    let usage = Usage { input: 226, cache_read: 1024, output: 42, ..Usage::default() };
    let mut group = c.benchmark_group("pricing");
    group.bench_function("price/exact_name", |b| {
        b.iter(|| black_box(catalog.price("openai", black_box("gpt-4.1-mini"), &usage, day)));
    });
    group.bench_function("price/dated_snapshot", |b| {
        b.iter(|| black_box(catalog.price("openai", black_box("gpt-4.1-mini-2025-04-14"), &usage, day)));
    });
    group.bench_function("price/openrouter_name", |b| {
        b.iter(|| black_box(catalog.price("openrouter", black_box("anthropic/claude-sonnet-4.5"), &usage, day)));
    });
    group.bench_function("bundled_catalog_load", |b| {
        b.iter(|| black_box(PriceCatalog::bundled().is_ok()));
    });
    group.finish();
}

/// A chat request body of about `size` bytes: a few text messages, then a long array of numbers (the shape that
/// used to cost 15× its size as a document tree).
fn request_body(size: usize) -> Vec<u8> {
    let mut body = Vec::with_capacity(size + 64);
    body.extend_from_slice(
        br#"{"model":"gpt-4o","stream":true,"messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Summarise the numbers below, please."}],"a":[0"#,
    );
    while body.len() < size {
        body.extend_from_slice(b",0");
    }
    body.extend_from_slice(b"]}");
    body
}

fn request_scan(c: &mut Criterion) {
    let mut group = c.benchmark_group("request_scan");
    group.sample_size(10);
    for (label, size) in [("1KiB", 1024), ("1MiB", 1024 * 1024), ("24MiB", 24 * 1024 * 1024)] {
        let body = request_body(size);
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_with_input(BenchmarkId::new("estimate_prompt", label), &body, |b, body| {
            b.iter(|| black_box(estimate_prompt(black_box(body))));
        });
        group.bench_with_input(BenchmarkId::new("ensure_include_usage", label), &body, |b, body| {
            b.iter(|| black_box(ensure_include_usage(black_box(body))));
        });
    }
    group.finish();
}

criterion_group!(benches, sse_parser, usage_tap, injected_usage_filter, pricing, request_scan);
criterion_main!(benches);

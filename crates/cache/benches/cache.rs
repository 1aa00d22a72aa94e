//! Criterion benches of the cache's hot paths: key derivation and a memory-backend hit lookup.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "bench setup")]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use tollgate_cache::{Backend, BodyPart, CacheKey, Entry, MemoryBackend, Scope, canonical_body};

fn chat_body() -> Vec<u8> {
    serde_json::json!({
        "model": "gpt-4o-mini",
        "stream": true,
        "temperature": 0.2,
        "messages": [
            {"role": "system", "content": "You are a helpful assistant. ".repeat(8)},
            {"role": "user", "content": "Summarise the plot of a long novel in three sentences, please."}
        ],
    })
    .to_string()
    .into_bytes()
}

fn key_derivation(c: &mut Criterion) {
    let body = chat_body();
    let scope = Scope::gateway_stored("default", b"sk-stored-provider-key");
    c.bench_function("key/canonical_body+derive (1 KiB chat body)", |b| {
        b.iter(|| {
            let canonical = canonical_body(black_box(&body));
            CacheKey::derive(&scope, "openai", "/chat/completions", "gpt-4o-mini", BodyPart::Canonical(&canonical))
        });
    });
    c.bench_function("key/derive (custom key)", |b| {
        b.iter(|| CacheKey::derive(&scope, "openai", "/chat/completions", "gpt-4o-mini", BodyPart::Custom("k")));
    });
}

fn memory_hit(c: &mut Criterion) {
    let backend = MemoryBackend::new(256 << 20, 8 << 20);
    let scope = Scope::gateway_stored("default", b"");
    let keys: Vec<CacheKey> = (0..10_000)
        .map(|n| CacheKey::derive(&scope, "openai", "/chat/completions", "m", BodyPart::Custom(&n.to_string())))
        .collect();
    let frames: Vec<Bytes> = (0..40).map(|n| Bytes::from(format!("data: {{\"chunk\":{n}}}\n\n"))).collect();
    let entry = Arc::new(Entry::new(200, Some("text/event-stream"), &frames).unwrap());
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    for key in &keys {
        runtime.block_on(backend.put(key, entry.clone(), Duration::from_hours(1))).unwrap();
    }
    let mut n = 0usize;
    c.bench_function("memory/hit lookup (10k entries)", |b| {
        b.iter(|| {
            n = (n + 1) % keys.len();
            black_box(backend.lookup(&keys[n]))
        });
    });
    c.bench_function("memory/miss lookup", |b| {
        let missing = CacheKey::derive(&scope, "x", "/y", "z", BodyPart::Custom("absent"));
        b.iter(|| black_box(backend.lookup(&missing)));
    });
}

criterion_group!(benches, key_derivation, memory_hit);
criterion_main!(benches);

//! Memory per cached entry: 100,000 streamed answers put in the memory backend, measured as resident set size
//! before and after (`/proc/self/statm`, Linux), against the bytes an entry stores (its encoded size).
//!
//! Run: `cargo run --release -p tollgate-cache --example cache_memory` (and `-- empty` for the bookkeeping alone).
//!
//! The frames are made the way the upstream connection hands them over: slices of one larger read buffer per
//! response (hyper splits each frame off its connection's read buffer), so an entry that kept those slices
//! would keep the whole buffer alive.

#![expect(clippy::unwrap_used, clippy::print_stdout, reason = "a measurement program: a failure should abort loudly")]

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tollgate_cache::{Backend, BodyPart, CacheKey, Entry, MemoryBackend, Scope};

const ENTRIES: usize = 100_000;
/// Frames per answer and the read buffer they are cut from.
const FRAMES: usize = 12;
const READ_BUFFER: usize = 8 * 1024;

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * 4_096
}

/// One streamed answer's frames, each split off a fresh read buffer as the connection delivers them.
fn upstream_frames(n: usize) -> Vec<Bytes> {
    let mut buffer = BytesMut::with_capacity(READ_BUFFER);
    (0..FRAMES)
        .map(|i| {
            let event = format!(
                "data: {{\"id\":\"chatcmpl-{n}\",\"choices\":[{{\"delta\":{{\"content\":\"token {i}\"}}}}]}}\n\n"
            );
            buffer.extend_from_slice(event.as_bytes());
            buffer.split().freeze()
        })
        .collect()
}

/// Resident bytes per entry of `ENTRIES` entries made by `make`, and their mean encoded size.
fn measure(make: impl Fn(usize) -> Entry) -> (f64, f64, f64) {
    let backend = MemoryBackend::new(1 << 40, 8 << 20);
    let scope = Scope::gateway_stored("default", b"sk-provider-key");
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let keys: Vec<CacheKey> = (0..ENTRIES)
        .map(|n| {
            CacheKey::derive(&scope, "openai", "/chat/completions", "gpt-4o-mini", BodyPart::Custom(&n.to_string()))
        })
        .collect();
    let before = rss_bytes();
    let mut stored = 0u64;
    for (n, key) in keys.iter().enumerate() {
        let entry = make(n);
        stored += entry.encode().len() as u64;
        runtime.block_on(backend.put(key, Arc::new(entry), Duration::from_hours(1))).unwrap();
    }
    let after = rss_bytes();
    let per_entry = (after - before) as f64 / ENTRIES as f64;
    (per_entry, stored as f64 / ENTRIES as f64, backend.bytes() as f64 / ENTRIES as f64)
}

fn main() {
    // Each measurement in its own process: memory a first one freed would be reused by a second unseen.
    if std::env::args().nth(1).as_deref() == Some("empty") {
        let (empty, stored, _) = measure(|_| Entry::new(200, None, &[]).unwrap());
        println!(
            "resident bytes per empty entry (the key and the cache's bookkeeping): {empty:.0}, stored {stored:.0}"
        );
        return;
    }
    let (per_entry, stored, weight) =
        measure(|n| Entry::new(200, Some("text/event-stream"), &upstream_frames(n)).unwrap());
    println!(
        "entries: {ENTRIES}, frames each: {FRAMES}\n\
         stored (encoded) bytes per entry: {stored:.0}\n\
         resident bytes per entry (key, entry and the cache's bookkeeping): {per_entry:.0}\n\
         overhead over stored bytes: {:.0}\n\
         the backend's weight per entry: {weight:.0}",
        per_entry - stored
    );
}

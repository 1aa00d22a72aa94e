//! The memory backend: bounded by bytes, least recently used out first, TTL per entry.

use bytes::Bytes;

use super::*;
use crate::{BodyPart, Scope};

fn key(n: u32) -> CacheKey {
    CacheKey::derive(&Scope::gateway("g", b""), "p", "/x", "m", BodyPart::Custom(&n.to_string()))
}

fn entry(bytes: usize) -> Arc<Entry> {
    Arc::new(Entry { status: 200, content_type: None, frames: vec![Bytes::from(vec![b'x'; bytes])] })
}

#[tokio::test]
async fn entries_are_bounded_by_bytes_and_the_least_recently_used_goes_first() {
    let backend = MemoryBackend::new(10_000);
    let ttl = Duration::from_mins(1);
    for n in 0..4 {
        backend.put(&key(n), entry(2_000), ttl).await.unwrap();
    }
    backend.sync();
    // Touch 0 so 1 is the least recently used.
    assert!(backend.lookup(&key(0)).is_some());
    backend.sync();
    for n in 4..6 {
        backend.put(&key(n), entry(2_000), ttl).await.unwrap();
        backend.sync();
    }
    assert!(backend.bytes() <= 10_000, "{} bytes", backend.bytes());
    assert!(backend.lookup(&key(1)).is_none(), "the least recently used entry was evicted");
    assert!(backend.lookup(&key(0)).is_some(), "a recently used entry stays");
    assert!(backend.lookup(&key(5)).is_some());
}

#[tokio::test]
async fn an_entry_expires_after_its_ttl() {
    let backend = MemoryBackend::new(1 << 20);
    backend.put(&key(1), entry(10), Duration::from_millis(50)).await.unwrap();
    backend.put(&key(2), entry(10), Duration::from_mins(1)).await.unwrap();
    assert!(backend.lookup(&key(1)).is_some());
    // moka reads its own clock: waiting out a TTL is the only way to see one pass.
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert!(backend.lookup(&key(1)).is_none());
    assert!(backend.lookup(&key(2)).is_some());
}

#[tokio::test]
async fn delete_and_clear() {
    let backend = MemoryBackend::new(1 << 20);
    let ttl = Duration::from_mins(1);
    for n in 0..3 {
        backend.put(&key(n), entry(10), ttl).await.unwrap();
    }
    assert!(backend.delete(&key(0)).await.unwrap());
    assert!(!backend.delete(&key(0)).await.unwrap());
    assert_eq!(backend.clear().await.unwrap(), 2);
    assert!(backend.lookup(&key(1)).is_none());
    backend.sync();
    assert_eq!(backend.bytes(), 0);
}

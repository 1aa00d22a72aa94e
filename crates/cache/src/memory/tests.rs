//! The memory backend: bounded by bytes, least recently used out first, TTL per entry, sharded.

use bytes::Bytes;

use super::*;
use crate::{BodyPart, Scope};

fn key(n: u32) -> CacheKey {
    CacheKey::derive(&Scope::gateway("g", b""), "p", "/x", "m", BodyPart::Custom(&n.to_string()))
}

fn entry(bytes: usize) -> Arc<Entry> {
    Arc::new(Entry::new(200, None, &[Bytes::from(vec![b'x'; bytes])]).unwrap())
}

fn weight(bytes: usize) -> u64 {
    entry(bytes).weight() as u64
}

#[tokio::test]
async fn entries_are_bounded_by_bytes_and_the_least_recently_used_goes_first() {
    // One shard (an entry may be as large as the whole cache): LRU order is exact.
    let backend = MemoryBackend::new(10_000, 10_000);
    let ttl = Duration::from_mins(1);
    for n in 0..4 {
        backend.put(&key(n), entry(2_000), ttl).await.unwrap();
    }
    assert_eq!(backend.bytes(), 4 * weight(2_000));
    // Touch 0 so 1 is the least recently used.
    assert!(backend.lookup(&key(0)).is_some());
    for n in 4..6 {
        backend.put(&key(n), entry(2_000), ttl).await.unwrap();
    }
    assert!(backend.bytes() <= 10_000, "{} bytes", backend.bytes());
    assert_eq!(backend.len(), 4, "two of six entries of {} bytes went", weight(2_000));
    assert!(backend.lookup(&key(1)).is_none(), "the least recently used entry was evicted");
    assert!(backend.lookup(&key(2)).is_none(), "then the next least recently used");
    assert!(backend.lookup(&key(0)).is_some(), "a recently used entry stays");
    assert!(backend.lookup(&key(5)).is_some());
}

#[tokio::test]
async fn an_entry_too_large_for_the_cache_is_not_stored_and_evicts_nothing() {
    let backend = MemoryBackend::new(10_000, 10_000);
    backend.put(&key(1), entry(100), Duration::from_mins(1)).await.unwrap();
    backend.put(&key(2), entry(10_000), Duration::from_mins(1)).await.unwrap();
    assert!(backend.lookup(&key(2)).is_none());
    assert!(backend.lookup(&key(1)).is_some());
}

#[tokio::test]
async fn replacing_an_entry_counts_its_bytes_once() {
    let backend = MemoryBackend::new(1 << 20, 1 << 16);
    for _ in 0..3 {
        backend.put(&key(1), entry(500), Duration::from_mins(1)).await.unwrap();
    }
    assert_eq!((backend.len(), backend.bytes()), (1, weight(500)));
}

#[test]
fn an_entry_expires_after_its_ttl() {
    let backend = MemoryBackend::new(1 << 20, 1 << 16);
    let now = Instant::now();
    backend.store_at(&key(1), entry(10), Duration::from_mins(1), now);
    backend.store_at(&key(2), entry(10), Duration::from_mins(10), now);
    assert!(backend.lookup_at(&key(1), now + Duration::from_secs(59)).is_some());
    assert!(backend.lookup_at(&key(1), now + Duration::from_mins(1)).is_none(), "expired at its TTL");
    assert!(backend.lookup_at(&key(2), now + Duration::from_mins(1)).is_some());
    assert_eq!(backend.bytes(), weight(10), "the expired entry's bytes were given back");
}

#[test]
fn shards_never_refuse_an_entry_of_max_entry_bytes_and_share_the_budget() {
    let backend = MemoryBackend::new(256 << 20, 8 << 20);
    assert_eq!(backend.shards.len(), 16);
    assert_eq!(backend.shard_bytes, 16 << 20);
    let backend = MemoryBackend::new(10 << 20, 4 << 20);
    assert_eq!(backend.shards.len(), 2, "two 4 MiB entries (and overhead) fit 10 MiB, three do not");
    let now = Instant::now();
    backend.store_at(&key(1), entry(4 << 20), Duration::from_mins(1), now);
    assert!(backend.lookup(&key(1)).is_some());
    // Keys spread over the shards.
    let backend = MemoryBackend::new(1 << 30, 1 << 20);
    for n in 0..1_000 {
        backend.store_at(&key(n), entry(1), Duration::from_mins(1), now);
    }
    for shard in &backend.shards {
        let len = lock(shard).entries.len();
        assert!((30..100).contains(&len), "{len} of 1,000 entries in one of 16 shards");
    }
}

#[tokio::test]
async fn delete_and_clear() {
    let backend = MemoryBackend::new(1 << 20, 1 << 16);
    let ttl = Duration::from_mins(1);
    for n in 0..3 {
        backend.put(&key(n), entry(10), ttl).await.unwrap();
    }
    assert!(backend.delete(&key(0)).await.unwrap());
    assert!(!backend.delete(&key(0)).await.unwrap());
    assert_eq!(backend.clear().await.unwrap(), 2);
    assert!(backend.lookup(&key(1)).is_none());
    assert_eq!(backend.bytes(), 0);
}

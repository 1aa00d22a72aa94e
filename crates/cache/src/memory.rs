//! The memory backend: entries in this process, bounded by bytes, least recently used out first, a TTL per
//! entry.
//!
//! Entries are spread over up to 16 shards by key (the key is a SHA-256, so they spread evenly), each a
//! `hashlink` LRU list behind its own mutex: a lookup locks one shard for a hash-map probe and a list relink,
//! never the whole cache. Each shard holds `max_bytes / shards`; there are never so many shards that an entry
//! of `max_entry_bytes` would not fit one. Eviction is least recently used within the shard.
//!
//! Why not moka: its bookkeeping is about 380 bytes per entry before the key and the entry (measured with
//! `cargo run --release -p tollgate-cache --example cache_memory -- empty`, both ways); an entry here costs its
//! bytes and less than [`ENTRY_OVERHEAD`](crate::ENTRY_OVERHEAD) besides.
//!
//! An expired entry is dropped when it is next looked up, or when least-recently-used eviction reaches it;
//! until then it counts against `max_bytes` like any other.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures_util::future::{BoxFuture, FutureExt, ready};
use hashlink::LruCache;

use crate::{Backend, BackendError, CacheKey, Entry, lock};

/// The most shards.
const MAX_SHARDS: u64 = 16;

/// An entry with when it stops being served and what it weighs.
struct Stored {
    entry: Arc<Entry>,
    expires: Instant,
    weight: u64,
}

/// foldhash rather than SipHash: the key is 32 bytes of digest, and SipHash over them was most of a probe.
/// Its seeds are random per map, so keys an attacker searches for cannot be aimed at one bucket.
type Lru = LruCache<CacheKey, Stored, foldhash::fast::RandomState>;

struct Shard {
    entries: Lru,
    bytes: u64,
}

/// Entries in this process. Lookups are synchronous (no task switch on a hit).
pub struct MemoryBackend {
    shards: Box<[Mutex<Shard>]>,
    shard_bytes: u64,
}

impl MemoryBackend {
    /// Holds at most `max_bytes` of entries (by [`Entry::weight`], which counts the key); any entry up to
    /// `max_entry_bytes` can be stored.
    pub fn new(max_bytes: u64, max_entry_bytes: u64) -> Self {
        let fit = max_bytes / max_entry_bytes.saturating_add(crate::ENTRY_OVERHEAD as u64).max(1);
        let count = fit.clamp(1, MAX_SHARDS);
        let shards = (0..count)
            .map(|_| {
                Mutex::new(Shard {
                    entries: LruCache::with_hasher(usize::MAX, foldhash::fast::RandomState::default()),
                    bytes: 0,
                })
            })
            .collect();
        Self { shards, shard_bytes: max_bytes / count }
    }

    fn shard(&self, key: &CacheKey) -> MutexGuard<'_, Shard> {
        // The key is a SHA-256: its first bytes are as good as any hash.
        let [a, b, ..] = *key.bytes();
        lock(&self.shards[usize::from(u16::from_be_bytes([a, b])) % self.shards.len()])
    }

    /// The lookup itself, without the boxed future.
    pub fn lookup(&self, key: &CacheKey) -> Option<Arc<Entry>> {
        self.lookup_at(key, Instant::now())
    }

    fn lookup_at(&self, key: &CacheKey, now: Instant) -> Option<Arc<Entry>> {
        let mut shard = self.shard(key);
        let stored = shard.entries.get(key)?;
        if stored.expires > now {
            return Some(stored.entry.clone());
        }
        shard.remove(key);
        None
    }

    fn store_at(&self, key: &CacheKey, entry: Arc<Entry>, ttl: Duration, now: Instant) {
        let weight = entry.weight() as u64;
        let mut shard = self.shard(key);
        shard.remove(key);
        if weight > self.shard_bytes {
            return;
        }
        while shard.bytes + weight > self.shard_bytes {
            let Some((_, evicted)) = shard.entries.remove_lru() else { break };
            shard.bytes -= evicted.weight;
        }
        let expires = now.checked_add(ttl).unwrap_or(now + Duration::from_hours(24 * 365));
        shard.bytes += weight;
        shard.entries.insert(*key, Stored { entry, expires, weight });
    }

    /// Entries held now, expired or not.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|shard| lock(shard).entries.len()).sum()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Shard {
    fn remove(&mut self, key: &CacheKey) -> bool {
        let Some(old) = self.entries.remove(key) else { return false };
        self.bytes -= old.weight;
        true
    }
}

impl Backend for MemoryBackend {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn get<'a>(&'a self, key: &'a CacheKey) -> BoxFuture<'a, Result<Option<Arc<Entry>>, BackendError>> {
        ready(Ok(self.lookup(key))).boxed()
    }

    fn put<'a>(
        &'a self,
        key: &'a CacheKey,
        entry: Arc<Entry>,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        self.store_at(key, entry, ttl, Instant::now());
        ready(Ok(())).boxed()
    }

    fn get_now(&self, key: &CacheKey) -> Option<Result<Option<Arc<Entry>>, BackendError>> {
        Some(Ok(self.lookup(key)))
    }

    fn put_now(&self, key: &CacheKey, entry: Arc<Entry>, ttl: Duration) -> Result<(), Arc<Entry>> {
        self.store_at(key, entry, ttl, Instant::now());
        Ok(())
    }

    fn delete<'a>(&'a self, key: &'a CacheKey) -> BoxFuture<'a, Result<bool, BackendError>> {
        ready(Ok(self.shard(key).remove(key))).boxed()
    }

    fn clear(&self) -> BoxFuture<'_, Result<u64, BackendError>> {
        let mut count = 0;
        for shard in &self.shards {
            let mut shard = lock(shard);
            count += shard.entries.len() as u64;
            shard.entries.clear();
            shard.bytes = 0;
        }
        ready(Ok(count)).boxed()
    }

    fn bytes(&self) -> u64 {
        self.shards.iter().map(|shard| lock(shard).bytes).sum()
    }
}

#[cfg(test)]
mod tests;

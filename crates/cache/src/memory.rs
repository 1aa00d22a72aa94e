//! The memory backend: a moka cache bounded by bytes, least recently used first out, a TTL per entry.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::{BoxFuture, FutureExt, ready};
use moka::policy::EvictionPolicy;

use crate::{Backend, BackendError, CacheKey, Entry};

/// An entry with the TTL it was stored for.
#[derive(Clone)]
struct Stored {
    entry: Arc<Entry>,
    ttl: Duration,
}

struct PerEntryTtl;

impl moka::Expiry<CacheKey, Stored> for PerEntryTtl {
    fn expire_after_create(&self, _key: &CacheKey, value: &Stored, _created_at: Instant) -> Option<Duration> {
        Some(value.ttl)
    }

    fn expire_after_update(
        &self,
        _key: &CacheKey,
        value: &Stored,
        _updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// Entries in this process. Lookups are synchronous (no task switch on a hit).
pub struct MemoryBackend {
    entries: moka::sync::Cache<CacheKey, Stored>,
}

impl MemoryBackend {
    /// Holds at most `max_bytes` of entries (keys and bodies), weighed by [`Entry::weight`].
    pub fn new(max_bytes: u64) -> Self {
        let entries = moka::sync::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|key: &CacheKey, value: &Stored| {
                u32::try_from(key.as_str().len() + value.entry.weight()).unwrap_or(u32::MAX)
            })
            .expire_after(PerEntryTtl)
            .eviction_policy(EvictionPolicy::lru())
            .build();
        Self { entries }
    }

    /// The lookup itself, without the boxed future.
    pub fn lookup(&self, key: &CacheKey) -> Option<Arc<Entry>> {
        self.entries.get(key).map(|stored| stored.entry)
    }

    /// Runs moka's pending housekeeping (evictions, size accounting), so [`Backend::bytes`] is exact now.
    pub fn sync(&self) {
        self.entries.run_pending_tasks();
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
        self.entries.insert(key.clone(), Stored { entry, ttl });
        ready(Ok(())).boxed()
    }

    fn delete<'a>(&'a self, key: &'a CacheKey) -> BoxFuture<'a, Result<bool, BackendError>> {
        ready(Ok(self.entries.remove(key).is_some())).boxed()
    }

    fn clear(&self) -> BoxFuture<'_, Result<u64, BackendError>> {
        self.entries.run_pending_tasks();
        let count = self.entries.entry_count();
        self.entries.invalidate_all();
        self.entries.run_pending_tasks();
        ready(Ok(count)).boxed()
    }

    fn bytes(&self) -> u64 {
        self.entries.weighted_size()
    }
}

#[cfg(test)]
mod tests;

//! The response cache: tenant-scoped keys, stored responses frame by frame, backends, and coalescing.
//!
//! The proxy calls it in three places: it derives a [`CacheKey`] for an eligible request (tenant scope,
//! provider, upstream path, model and the canonical body), looks it up in the [`Cache`] (a hit is an
//! [`Entry`]: status, content type and the frames as the upstream sent them), and on a miss either joins a
//! request already in flight for the same key ([`Flights`]) or leads one, whose frames are published to the
//! followers as they arrive and stored once the response ended normally.
//!
//! A backend that fails (Redis down) never fails a request: the cache reports the error and the caller
//! bypasses it.
//!
//! The same Redis link carries the shared rate limits ([`SharedRates`]).

mod backend;
mod coalesce;
mod entry;
mod key;
mod memory;
mod redis_backend;
mod shared_rate;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

pub use backend::{Backend, BackendError};
pub use coalesce::{Flights, Follower, FollowerFrame, Head, Join, Leader};
pub use entry::{ENTRY_OVERHEAD, Entry, EntryError};
pub use key::{BodyPart, CacheKey, KeyError, Scope, canonical_body};
pub use memory::MemoryBackend;
pub use redis_backend::{RedisBackend, RedisLink};
pub use shared_rate::{Cell, REPLICA_TTL, SharedRateStats, SharedRates, Verdict};

/// What one lookup found.
#[derive(Debug)]
pub enum Lookup {
    Hit(Arc<Entry>),
    Miss,
    /// The backend could not answer (reported in [`CacheStats`]): serve the request as if there were no cache.
    Bypass,
}

/// Counters `/metrics` and `/status` show. Every cell is an atomic: the request path never locks to count.
#[derive(Debug, Default)]
pub struct CacheStats {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub skips: AtomicU64,
    pub bypasses: AtomicU64,
    pub coalesced: AtomicU64,
    pub saved_nanos: AtomicU64,
    /// Whether the last backend call succeeded (`/status` shows a degraded cache).
    pub backend_ok: AtomicBool,
    last_error: std::sync::Mutex<Option<String>>,
}

impl CacheStats {
    fn note_backend(&self, error: Option<&BackendError>) {
        match error {
            None => self.backend_ok.store(true, Ordering::Relaxed),
            Some(error) => {
                let was_ok = self.backend_ok.swap(false, Ordering::Relaxed);
                if was_ok {
                    tracing::warn!(%error, "cache backend unavailable: requests bypass the cache");
                }
                if let Ok(mut last) = self.last_error.lock() {
                    *last = Some(error.to_string());
                }
            }
        }
    }

    /// The last backend error, while the backend is failing.
    pub fn last_error(&self) -> Option<String> {
        if self.backend_ok.load(Ordering::Relaxed) {
            return None;
        }
        self.last_error.lock().ok().and_then(|last| last.clone())
    }

    /// Adds to the money hits saved, saturating.
    pub fn add_saved(&self, nanos: u64) {
        let _ =
            self.saved_nanos.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |now| Some(now.saturating_add(nanos)));
    }
}

/// The cache a gateway runs with: a backend, the requests in flight, and the counters.
pub struct Cache {
    backend: Arc<dyn Backend>,
    flights: Flights,
    stats: CacheStats,
}

impl Cache {
    /// `max_followers`: how many requests may wait on one in-flight request (0 turns coalescing off).
    pub fn new(backend: Arc<dyn Backend>, max_followers: usize, max_entry_bytes: usize) -> Self {
        let stats = CacheStats { backend_ok: AtomicBool::new(true), ..CacheStats::default() };
        Self { backend, flights: Flights::new(max_followers, max_entry_bytes), stats }
    }

    pub fn stats(&self) -> &CacheStats {
        &self.stats
    }

    pub fn flights(&self) -> &Flights {
        &self.flights
    }

    /// `memory` or `redis`.
    pub fn backend_name(&self) -> &'static str {
        self.backend.name()
    }

    /// Bytes held by the backend, as far as this process knows (the memory backend's weighted size; 0 for Redis,
    /// whose memory is Redis's own).
    pub fn bytes(&self) -> u64 {
        self.backend.bytes()
    }

    /// Looks `key` up; a backend error is a [`Lookup::Bypass`], never an error.
    pub async fn get(&self, key: &CacheKey) -> Lookup {
        let found = match self.backend.get_now(key) {
            Some(found) => found,
            None => self.backend.get(key).await,
        };
        match found {
            Ok(found) => {
                self.stats.note_backend(None);
                found.map_or(Lookup::Miss, Lookup::Hit)
            }
            Err(error) => {
                self.stats.note_backend(Some(&error));
                Lookup::Bypass
            }
        }
    }

    /// Stores `entry` under `key` for `ttl`; a failure is reported in the stats and otherwise ignored.
    pub async fn put(&self, key: &CacheKey, entry: Arc<Entry>, ttl: Duration) {
        let result = self.backend.put(key, entry, ttl).await;
        self.stats.note_backend(result.as_ref().err());
    }

    /// Stores at once when the backend can (memory: no future, no task); the entry back when it must be awaited
    /// through [`Cache::put`].
    pub fn put_now(&self, key: &CacheKey, entry: Arc<Entry>, ttl: Duration) -> Result<(), Arc<Entry>> {
        let result = self.backend.put_now(key, entry, ttl);
        if result.is_ok() {
            self.stats.note_backend(None);
        }
        result
    }

    /// Drops one entry; whether it was there.
    pub async fn delete(&self, key: &CacheKey) -> Result<bool, BackendError> {
        let result = self.backend.delete(key).await;
        self.stats.note_backend(result.as_ref().err());
        result
    }

    /// Drops every entry; how many there were (as far as the backend can tell).
    pub async fn clear(&self) -> Result<u64, BackendError> {
        let result = self.backend.clear().await;
        self.stats.note_backend(result.as_ref().err());
        result
    }
}

/// Locks `mutex`. A panic elsewhere while holding one of this crate's locks leaves consistent data behind
/// (every change under a lock is complete before the next statement that could panic); keep serving it.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

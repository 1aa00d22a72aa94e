//! The runtime shapes of `[cache]` and `[redis]`.

use std::time::Duration;

use crate::Secret;

/// The shortest TTL a request may ask for with `cf-aig-cache-ttl` (Cloudflare's floor).
pub const MIN_CACHE_TTL: Duration = Duration::from_mins(1);

/// Where cache entries live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheBackend {
    /// This process's memory, bounded by `max_bytes`.
    Memory,
    /// Redis, through `[redis]`: shared by every replica.
    Redis,
}

/// `[cache]`, validated.
#[derive(Debug, Clone)]
pub struct Cache {
    pub enabled: bool,
    pub backend: CacheBackend,
    pub default_ttl: Duration,
    pub max_ttl: Duration,
    pub max_bytes: u64,
    pub max_entry_bytes: u64,
    /// Followers per in-flight request; 0 when `coalesce = false`.
    pub max_followers: usize,
}

/// `[redis]`, validated.
#[derive(Debug, Clone)]
pub struct Redis {
    pub url: Secret,
    pub key_prefix: String,
    pub timeout: Duration,
}

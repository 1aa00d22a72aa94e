//! `[cache]` and `[redis]`.

use std::time::Duration;

use super::Issues;
use super::issues::Sources;
use crate::file::{CacheFile, RedisFile};
use crate::units::parse_byte_size;
use crate::{Cache, CacheBackend, MIN_CACHE_TTL, Redis};

/// The longest TTL anyone may configure: a year.
const MAX_TTL_BOUND: Duration = Duration::from_hours(365 * 24);
/// Most followers per in-flight request one may configure.
const MAX_FOLLOWERS: u64 = 10_000;
/// Longest Redis timeout: a request must never wait long on a Redis that is away.
const MAX_REDIS_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) fn cache(file: &CacheFile, has_redis: bool, issues: &mut Issues) -> Option<Cache> {
    let backend = match file.backend.as_str() {
        "memory" => Some(CacheBackend::Memory),
        "redis" if has_redis => Some(CacheBackend::Redis),
        "redis" => {
            issues.push("cache.backend", "\"redis\" needs a [redis] section");
            None
        }
        other => {
            issues.push("cache.backend", format!("{other:?} is not one of \"memory\", \"redis\""));
            None
        }
    };
    let max_ttl = issues
        .duration("cache.max_ttl", &file.max_ttl)
        .and_then(|ttl| within(issues, "cache.max_ttl", ttl, MIN_CACHE_TTL, MAX_TTL_BOUND, "between 60s and 365d"));
    let default_ttl = issues.duration("cache.default_ttl", &file.default_ttl).and_then(|ttl| {
        let max = max_ttl.unwrap_or(MAX_TTL_BOUND);
        within(issues, "cache.default_ttl", ttl, Duration::from_secs(1), max, "between 1s and cache.max_ttl")
    });
    let max_bytes = positive_bytes(issues, "cache.max_bytes", &file.max_bytes);
    let max_entry_bytes = positive_bytes(issues, "cache.max_entry_bytes", &file.max_entry_bytes);
    if let (Some(entry), Some(all)) = (max_entry_bytes, max_bytes)
        && entry > all
    {
        issues.push("cache.max_entry_bytes", "must be at most cache.max_bytes");
    }
    if file.max_followers > MAX_FOLLOWERS {
        issues.push("cache.max_followers", format!("must be at most {MAX_FOLLOWERS}"));
        return None;
    }
    let max_followers = if file.coalesce { file.max_followers as usize } else { 0 };
    Some(Cache {
        enabled: file.enabled,
        backend: backend?,
        default_ttl: default_ttl?,
        max_ttl: max_ttl?,
        max_bytes: max_bytes?,
        max_entry_bytes: max_entry_bytes?,
        max_followers,
    })
}

pub(super) fn redis(file: &RedisFile, sources: &Sources, issues: &mut Issues) -> Option<Redis> {
    let url = issues.secret("redis.url", Some(&file.url), sources);
    if url.is_some() && !(file.url.starts_with("redis://") || file.url.starts_with("rediss://")) {
        issues.push("redis.url", "must start with redis:// or rediss://");
    }
    if file.key_prefix.len() > 64 {
        issues.push("redis.key_prefix", "must be at most 64 bytes");
    }
    let timeout = issues.duration("redis.timeout", &file.timeout).and_then(|t| {
        within(issues, "redis.timeout", t, Duration::from_millis(1), MAX_REDIS_TIMEOUT, "between 1ms and 10s")
    });
    Some(Redis { url: url?, key_prefix: file.key_prefix.clone(), timeout: timeout? })
}

fn within(
    issues: &mut Issues,
    path: &str,
    value: Duration,
    min: Duration,
    max: Duration,
    says: &str,
) -> Option<Duration> {
    if value < min || value > max {
        issues.push(path, format!("must be {says}"));
        return None;
    }
    Some(value)
}

fn positive_bytes(issues: &mut Issues, path: &str, text: &str) -> Option<u64> {
    match issues.check(path, parse_byte_size(text)) {
        Some(0) => {
            issues.push(path, "must be more than 0 bytes");
            None
        }
        other => other,
    }
}

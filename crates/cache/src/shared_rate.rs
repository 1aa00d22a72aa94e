//! Shared rate limits: GCRA cells in Redis, one atomic script per request over every shared bucket the request
//! falls in (one round trip), and a heartbeat that counts the replicas sharing them.
//!
//! GCRA keeps one number per bucket, the theoretical arrival time (TAT): a request at `now` is admitted when
//! `max(TAT, now) + period - burst × period ≤ now`, and then moves the TAT on by one `period`. That is the same
//! algorithm the per-replica limits run (governor), so a limit means the same whether shared or not: `burst`
//! requests at once, then one per `period`. The script reads Redis's own clock (`TIME`), so replicas whose
//! clocks disagree still share one timeline; it checks every bucket before it counts any, so a request refused by
//! one shared limit uses no cell of another.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::{BackendError, RedisLink};

/// After Redis failed a check, checks go to the per-replica share for this long without asking Redis again, so
/// a Redis that hangs costs one request its timeout, not every request.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);
/// A replica that has not beaten for this long is no longer counted.
pub const REPLICA_TTL: Duration = Duration::from_secs(15);

/// KEYS: the buckets; ARGV: `period_us, burst` per bucket. Returns `{0, 0}` (admitted, every bucket counted) or
/// `{i, wait_us}` (refused by the i-th bucket, 1-based, which admits again in `wait_us`; nothing counted).
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tats = {}
for i, key in ipairs(KEYS) do
  local period = tonumber(ARGV[2 * i - 1])
  local burst = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', key) or now) or now
  if tat < now then tat = now end
  local allow_at = tat + period - burst * period
  if allow_at > now then
    return {i, allow_at - now}
  end
  tats[i] = tat + period
end
for i, key in ipairs(KEYS) do
  local ttl_ms = math.floor((tats[i] - now) / 1000) + 1
  redis.call('SET', key, string.format('%.0f', tats[i]), 'PX', ttl_ms)
end
return {0, 0}
";

/// KEYS: the replica set; ARGV: this replica's id, the TTL in ms. Returns the replicas alive (this one included).
const HEARTBEAT: &str = r"
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now_ms, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms - ttl)
redis.call('PEXPIRE', KEYS[1], ttl * 2)
return redis.call('ZCARD', KEYS[1])
";

/// One bucket to count: its key (without the prefix), GCRA period in µs and burst.
#[derive(Debug, Clone, Copy)]
pub struct Cell<'a> {
    pub key: &'a str,
    pub period_us: u64,
    pub burst: u64,
}

/// What Redis decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Admitted,
    /// Refused by the cell at `index`, which admits again in `retry_after_us`.
    Refused {
        index: usize,
        retry_after_us: u64,
    },
}

/// Counters and health for `/metrics` and `/status`.
#[derive(Debug, Default)]
pub struct SharedRateStats {
    /// Checks Redis answered.
    pub checked: AtomicU64,
    /// Checks that fell back to the per-replica share.
    pub fallbacks: AtomicU64,
    ok: AtomicBool,
    last_error: Mutex<Option<String>>,
}

impl SharedRateStats {
    /// Whether the last call to Redis succeeded (false: shared limits run on per-replica shares).
    pub fn ok(&self) -> bool {
        self.ok.load(Ordering::Relaxed)
    }

    /// The last error, while Redis is failing.
    pub fn last_error(&self) -> Option<String> {
        if self.ok() {
            return None;
        }
        self.last_error.lock().ok().and_then(|last| last.clone())
    }

    fn note(&self, error: Option<&BackendError>) {
        let Some(error) = error else {
            if !self.ok.swap(true, Ordering::Relaxed) {
                tracing::info!("redis answers again: shared rate limits are counted across replicas");
            }
            return;
        };
        if self.ok.swap(false, Ordering::Relaxed) {
            tracing::warn!(%error, "redis unavailable: shared rate limits fall back to per-replica shares");
        }
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(error.to_string());
        }
    }
}

/// Shared rate limits over a [`RedisLink`]: keys `<prefix>rl:<cell key>` and the replica set `<prefix>replicas`.
pub struct SharedRates {
    link: Arc<RedisLink>,
    gcra: redis::Script,
    heartbeat: redis::Script,
    replica_id: String,
    stats: SharedRateStats,
    /// Milliseconds since `epoch` before which checks do not ask Redis (see [`RETRY_AFTER_FAILURE`]).
    skip_until_ms: AtomicU64,
    epoch: Instant,
}

impl SharedRates {
    /// `replica_id` names this process in the replica set (unique per process).
    pub fn new(link: Arc<RedisLink>, replica_id: String) -> Self {
        Self {
            link,
            gcra: redis::Script::new(GCRA),
            heartbeat: redis::Script::new(HEARTBEAT),
            replica_id,
            stats: SharedRateStats { ok: AtomicBool::new(true), ..SharedRateStats::default() },
            skip_until_ms: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    pub fn stats(&self) -> &SharedRateStats {
        &self.stats
    }

    pub fn replica_id(&self) -> &str {
        &self.replica_id
    }

    /// Counts one request in every cell, atomically: admitted in all, or refused by the first that is full (and
    /// counted in none). An error means Redis could not decide: the caller falls back to its per-replica share.
    pub async fn check(&self, cells: &[Cell<'_>]) -> Result<Verdict, BackendError> {
        if cells.is_empty() {
            return Ok(Verdict::Admitted);
        }
        let now_ms = self.epoch.elapsed().as_millis() as u64;
        if now_ms < self.skip_until_ms.load(Ordering::Relaxed) {
            self.stats.fallbacks.fetch_add(1, Ordering::Relaxed);
            return Err(BackendError::NotConnected("redis failed a moment ago".into()));
        }
        let result = self.run_gcra(cells).await;
        if result.is_ok() {
            self.stats.checked.fetch_add(1, Ordering::Relaxed);
        } else {
            self.stats.fallbacks.fetch_add(1, Ordering::Relaxed);
            let until = self.epoch.elapsed() + RETRY_AFTER_FAILURE;
            self.skip_until_ms.store(until.as_millis() as u64, Ordering::Relaxed);
        }
        self.stats.note(result.as_ref().err());
        result
    }

    async fn run_gcra(&self, cells: &[Cell<'_>]) -> Result<Verdict, BackendError> {
        let mut invocation = self.gcra.prepare_invoke();
        for cell in cells {
            invocation.key(format!("{}rl:{}", self.link.prefix(), cell.key));
            invocation.arg(cell.period_us).arg(cell.burst);
        }
        let mut conn = self.link.connection().await?;
        let timeout = self.link.timeout();
        let (index, wait): (u64, u64) = match tokio::time::timeout(timeout, invocation.invoke_async(&mut conn)).await {
            Ok(result) => result.map_err(BackendError::Redis)?,
            Err(_) => return Err(BackendError::Timeout(timeout)),
        };
        Ok(match usize::try_from(index).unwrap_or(usize::MAX) {
            0 => Verdict::Admitted,
            i => Verdict::Refused { index: (i - 1).min(cells.len() - 1), retry_after_us: wait },
        })
    }

    /// Marks this replica alive; the replicas alive within [`REPLICA_TTL`] (at least 1).
    pub async fn beat(&self) -> Result<u64, BackendError> {
        let mut invocation = self.heartbeat.prepare_invoke();
        invocation.key(format!("{}replicas", self.link.prefix()));
        invocation.arg(&self.replica_id).arg(REPLICA_TTL.as_millis() as u64);
        let mut conn = self.link.connection().await?;
        let timeout = self.link.timeout();
        let result = match tokio::time::timeout(timeout, invocation.invoke_async::<u64>(&mut conn)).await {
            Ok(result) => result.map_err(BackendError::Redis),
            Err(_) => Err(BackendError::Timeout(timeout)),
        };
        self.stats.note(result.as_ref().err());
        result.map(|n| n.max(1))
    }

    /// Leaves the replica set (at shutdown), so the others' shares grow at once instead of after the TTL.
    pub async fn leave(&self) -> Result<(), BackendError> {
        let key = format!("{}replicas", self.link.prefix());
        self.link.query::<u64>(redis::cmd("ZREM").arg(key).arg(&self.replica_id)).await.map(|_| ())
    }
}

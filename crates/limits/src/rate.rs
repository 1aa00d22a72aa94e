//! Rate limits: `per = "requests"` on governor's GCRA (checked and counted at admission), `per = "tokens"` counted
//! after completion in fixed UTC windows (admission refuses once a window's count reaches the limit).
//!
//! Rate limits are per replica unless `shared = true`: a shared `requests` limit is counted in Redis by the
//! caller (one atomic GCRA script per request over every shared bucket the request falls in; see
//! [`RateLimiter::shared_buckets`]), so R replicas behind a balancer admit N together instead of R × N. When
//! Redis cannot be reached, [`RateLimiter::check_shared_locally`] counts each shared limit here at a share of
//! `limit / replicas seen` (at least 1), the count of replicas the caller last read from Redis.

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use dashmap::DashMap;
use governor::Quota;
use governor::state::keyed::DefaultKeyedStateStore;

use crate::clock::{Clock, timestamp_nanos};
use crate::dimension::RequestDims;
use crate::spec::{RatePer, RateRule};
use crate::window::{Window, retry_after_secs};

#[cfg(test)]
mod tests;

/// Adapts our [`Clock`] to governor's: instants are durations since the Unix epoch, so a manual clock drives
/// governor too and tests never sleep.
#[derive(Debug, Clone)]
struct GovernorClock(Arc<dyn Clock>);

impl governor::clock::Clock for GovernorClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        Duration::from_nanos(timestamp_nanos(self.0.now()).max(0) as u64)
    }
}

type KeyedLimiter = governor::RateLimiter<
    Arc<str>,
    DefaultKeyedStateStore<Arc<str>>,
    GovernorClock,
    governor::middleware::NoOpMiddleware<Duration>,
>;

/// A rate limit refused the request: the 429 `rate_limited`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rate limit {rule_id:?} reached for bucket {bucket_key:?}; retry in {retry_after_secs}s")]
pub struct RateLimited {
    /// The rule id.
    pub rule_id: Arc<str>,
    /// The bucket key.
    pub bucket_key: String,
    /// Whole seconds until the request would pass, rounded up, at least 1 (`Retry-After`).
    pub retry_after_secs: u64,
}

#[derive(Debug, Default)]
struct TokenCount {
    start: i64,
    end: i64,
    count: u64,
}

#[derive(Debug)]
struct TokenTable {
    window: Window,
    buckets: DashMap<Arc<str>, Mutex<TokenCount>, foldhash::fast::RandomState>,
}

impl TokenTable {
    /// Runs `f` on the count of the window current at `now`.
    fn with_count<R>(&self, key: &str, now: i64, f: impl FnOnce(&mut TokenCount) -> R) -> R {
        let apply = |cell: &Mutex<TokenCount>| {
            let mut count = cell.lock().unwrap_or_else(PoisonError::into_inner);
            if now >= count.end || now < count.start {
                let (start, end) = self.window.bounds_nanos(now);
                *count = TokenCount { start, end, count: 0 };
            }
            f(&mut count)
        };
        if let Some(cell) = self.buckets.get(key) {
            return apply(cell.value());
        }
        let entry = self.buckets.entry(Arc::from(key)).or_default();
        apply(entry.value())
    }
}

/// A shared limit: counted in Redis; `fallback` counts this replica's share while Redis is away.
#[derive(Debug)]
struct SharedCounter {
    /// GCRA emission interval in µs (window / limit), the cell the Redis script counts in.
    period_us: u64,
    /// `(share, limiter)`: the per-replica limiter for `limit / replicas`, rebuilt when the share changes.
    fallback: ArcSwap<(u64, KeyedLimiter)>,
}

#[derive(Debug)]
enum Counter {
    Requests(Arc<KeyedLimiter>),
    Tokens(Arc<TokenTable>),
    Shared(Arc<SharedCounter>),
}

/// One shared bucket a request falls in, for the caller to count in Redis: GCRA with `burst` requests at once
/// and one more every `period_us`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedBucket {
    pub rule_id: Arc<str>,
    /// The bucket key (as in [`RateLimited::bucket_key`]).
    pub bucket_key: String,
    /// A key naming the rule's id, limit and window and the bucket: a changed limit or window starts afresh,
    /// as a per-replica limit does.
    pub redis_key: String,
    pub burst: u64,
    pub period_us: u64,
}

#[derive(Debug)]
struct RateState {
    rule: RateRule,
    counter: Counter,
}

/// The rate limiter: a swappable set of rate rules. Cheap to clone.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    rules: ArcSwap<Vec<RateState>>,
    swap_lock: Mutex<()>,
    clock: Arc<dyn Clock>,
    /// Replicas last seen sharing the limits (at least 1): the divisor of a shared limit's fallback share.
    replicas: std::sync::atomic::AtomicU64,
}

impl RateLimiter {
    /// A limiter with `rules`, reading time from `clock`.
    pub fn new(rules: Vec<RateRule>, clock: Arc<dyn Clock>) -> Self {
        let states = rules.into_iter().map(|rule| new_state(rule, &clock, 1)).collect();
        let inner = Inner {
            rules: ArcSwap::from_pointee(states),
            swap_lock: Mutex::new(()),
            clock,
            replicas: std::sync::atomic::AtomicU64::new(1),
        };
        Self { inner: Arc::new(inner) }
    }

    /// Replaces the rules while serving. A rule keeps its counts when its id, `per` and window are unchanged
    /// (and, for `requests`, its limit: governor's quota is fixed at construction, so a new limit starts fresh).
    pub fn replace_rules(&self, rules: Vec<RateRule>) {
        let _swap = self.inner.swap_lock.lock().unwrap_or_else(PoisonError::into_inner);
        let old = self.inner.rules.load_full();
        let states = rules
            .into_iter()
            .map(|rule| {
                let same = old.iter().find(|s| {
                    s.rule.id == rule.id
                        && s.rule.per == rule.per
                        && s.rule.window == rule.window
                        && s.rule.shared == rule.shared
                        && (rule.per == RatePer::Tokens || s.rule.limit == rule.limit)
                });
                match same {
                    Some(s) => RateState {
                        counter: match &s.counter {
                            Counter::Requests(l) => Counter::Requests(Arc::clone(l)),
                            Counter::Tokens(t) => Counter::Tokens(Arc::clone(t)),
                            Counter::Shared(c) => Counter::Shared(Arc::clone(c)),
                        },
                        rule,
                    },
                    None => new_state(rule, &self.inner.clock, self.replicas()),
                }
            })
            .collect();
        self.inner.rules.store(Arc::new(states));
    }

    /// Checks every applicable per-replica rule (shared rules are counted by the caller: see
    /// [`Self::shared_buckets`]). Token rules only look; each applicable requests rule counts this request
    /// (governor cannot refund, so a request refused by a later rule still used a cell of the earlier ones:
    /// token rules are checked first to keep that rare).
    pub fn check(&self, request: &RequestDims<'_>) -> Result<(), RateLimited> {
        let now_ts = self.inner.clock.now();
        let now = timestamp_nanos(now_ts);
        let rules = self.inner.rules.load();
        let mut key = String::new();
        for state in rules.iter() {
            let Counter::Tokens(table) = &state.counter else { continue };
            if !state.rule.dimensions.applies_to(request) {
                continue;
            }
            state.rule.dimensions.write_bucket_key(request, &mut key);
            let limit = state.rule.limit;
            if let Some(end) = table.with_count(&key, now, |c| (c.count >= limit).then_some(c.end)) {
                return Err(RateLimited {
                    rule_id: Arc::clone(&state.rule.id),
                    bucket_key: key,
                    retry_after_secs: retry_after_secs(now, end),
                });
            }
        }
        for state in rules.iter() {
            let Counter::Requests(limiter) = &state.counter else { continue };
            if !state.rule.dimensions.applies_to(request) {
                continue;
            }
            state.rule.dimensions.write_bucket_key(request, &mut key);
            self.count(&state.rule.id, limiter, &key, now)?;
        }
        Ok(())
    }

    /// Counts a finished request's tokens (input + output, as the caller defines) in every applicable token rule.
    pub fn record_tokens(&self, request: &RequestDims<'_>, tokens: u64) {
        let now = timestamp_nanos(self.inner.clock.now());
        let mut key = String::new();
        for state in self.inner.rules.load().iter() {
            let Counter::Tokens(table) = &state.counter else { continue };
            if !state.rule.dimensions.applies_to(request) {
                continue;
            }
            state.rule.dimensions.write_bucket_key(request, &mut key);
            table.with_count(&key, now, |c| c.count = c.count.saturating_add(tokens));
        }
    }

    /// Forgets idle buckets: request keys whose state equals a fresh one (fully replenished: governor's
    /// `retain_recent`) and token counts whose window has ended. Dropping them changes no decision, since a key
    /// seen again starts exactly where a forgotten one would be. Returns the number of buckets left.
    ///
    /// Cost: one pass over every key, under each shard's lock in turn (admissions on other shards go on); maps
    /// are shrunk only when the sweep removed more than half of their keys. Every distinct split value (a
    /// client-chosen metadata value or model name) makes a key, so call it periodically: every 60 s (e.g. after
    /// each spend sync) bounds the memory to the keys seen in about one window plus a minute.
    pub fn sweep(&self) -> usize {
        let now = timestamp_nanos(self.inner.clock.now());
        let mut left = 0;
        for state in self.inner.rules.load().iter() {
            match &state.counter {
                Counter::Requests(limiter) => left += sweep_limiter(limiter),
                Counter::Shared(shared) => left += sweep_limiter(&shared.fallback.load().1),
                Counter::Tokens(table) => {
                    let before = table.buckets.len();
                    table.buckets.retain(|_, cell| cell.get_mut().unwrap_or_else(PoisonError::into_inner).end > now);
                    let after = table.buckets.len();
                    if after.saturating_mul(2) < before {
                        table.buckets.shrink_to_fit();
                    }
                    left += after;
                }
            }
        }
        left
    }

    /// Buckets currently held over all rules (request keys plus token counts), e.g. for a gauge.
    pub fn tracked_buckets(&self) -> usize {
        self.inner
            .rules
            .load()
            .iter()
            .map(|state| match &state.counter {
                Counter::Requests(limiter) => limiter.len(),
                Counter::Tokens(table) => table.buckets.len(),
                Counter::Shared(shared) => shared.fallback.load().1.len(),
            })
            .sum()
    }

    /// Whether any rule is shared (the caller then needs a Redis round trip per request).
    pub fn has_shared(&self) -> bool {
        self.inner.rules.load().iter().any(|state| matches!(state.counter, Counter::Shared(_)))
    }

    /// Every shared bucket `request` falls in, in rule order, into `out` (cleared first).
    pub fn shared_buckets(&self, request: &RequestDims<'_>, out: &mut Vec<SharedBucket>) {
        out.clear();
        for state in self.inner.rules.load().iter() {
            let Counter::Shared(shared) = &state.counter else { continue };
            if !state.rule.dimensions.applies_to(request) {
                continue;
            }
            let mut bucket_key = String::new();
            state.rule.dimensions.write_bucket_key(request, &mut bucket_key);
            let redis_key = format!("{}:{}:{}:{bucket_key}", state.rule.id, state.rule.limit, shared.period_us);
            out.push(SharedBucket {
                rule_id: Arc::clone(&state.rule.id),
                bucket_key,
                redis_key,
                burst: state.rule.limit,
                period_us: shared.period_us,
            });
        }
    }

    /// The refusal for a shared bucket Redis refused, `retry_after_us` from now.
    pub fn shared_refusal(&self, bucket: &SharedBucket, retry_after_us: u64) -> RateLimited {
        let now = timestamp_nanos(self.inner.clock.now());
        let wait_ns = i64::try_from(retry_after_us.saturating_mul(1000)).unwrap_or(i64::MAX);
        RateLimited {
            rule_id: Arc::clone(&bucket.rule_id),
            bucket_key: bucket.bucket_key.clone(),
            retry_after_secs: retry_after_secs(now, now.saturating_add(wait_ns)),
        }
    }

    /// While Redis is away: counts `request` against this replica's share of every shared limit it falls in.
    pub fn check_shared_locally(&self, request: &RequestDims<'_>) -> Result<(), RateLimited> {
        let now = timestamp_nanos(self.inner.clock.now());
        let mut key = String::new();
        for state in self.inner.rules.load().iter() {
            let Counter::Shared(shared) = &state.counter else { continue };
            if !state.rule.dimensions.applies_to(request) {
                continue;
            }
            state.rule.dimensions.write_bucket_key(request, &mut key);
            let fallback = shared.fallback.load();
            self.count(&state.rule.id, &fallback.1, &key, now)?;
        }
        Ok(())
    }

    /// Replicas sharing the limits, as last read from Redis (at least 1).
    pub fn replicas(&self) -> u64 {
        self.inner.replicas.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Records how many replicas share the limits; each shared limit's fallback becomes `limit / replicas`
    /// (at least 1). A share that changes starts its fallback counts afresh.
    pub fn set_replicas(&self, replicas: u64) {
        let replicas = replicas.max(1);
        self.inner.replicas.store(replicas, std::sync::atomic::Ordering::Relaxed);
        for state in self.inner.rules.load().iter() {
            let Counter::Shared(shared) = &state.counter else { continue };
            let share = share_of(state.rule.limit, replicas);
            if shared.fallback.load().0 != share {
                shared.fallback.store(Arc::new((share, requests_limiter(share, &state.rule, &self.inner.clock))));
            }
        }
    }

    /// Counts one request in a GCRA limiter, or the refusal.
    fn count(&self, rule_id: &Arc<str>, limiter: &KeyedLimiter, key: &str, now: i64) -> Result<(), RateLimited> {
        let Err(not_until) = limiter.check_key(&Arc::from(key)) else { return Ok(()) };
        let wait = not_until.wait_time_from(governor::clock::Clock::now(&GovernorClock(Arc::clone(&self.inner.clock))));
        let wait_ns = i64::try_from(wait.as_nanos()).unwrap_or(i64::MAX);
        Err(RateLimited {
            rule_id: Arc::clone(rule_id),
            bucket_key: key.to_string(),
            retry_after_secs: retry_after_secs(now, now.saturating_add(wait_ns)),
        })
    }
}

/// `limit / replicas`, at least 1.
fn share_of(limit: u64, replicas: u64) -> u64 {
    (limit / replicas.max(1)).max(1)
}

/// Forgets a GCRA limiter's idle keys (see [`RateLimiter::sweep`]); the keys left.
fn sweep_limiter(limiter: &KeyedLimiter) -> usize {
    let before = limiter.len();
    limiter.retain_recent();
    let after = limiter.len();
    if after.saturating_mul(2) < before {
        limiter.shrink_to_fit();
    }
    after
}

/// A GCRA limiter admitting `limit` at once, then one request per window / `limit`.
fn requests_limiter(limit: u64, rule: &RateRule, clock: &Arc<dyn Clock>) -> KeyedLimiter {
    let burst = NonZeroU32::new(u32::try_from(limit).unwrap_or(u32::MAX)).unwrap_or(NonZeroU32::MIN);
    let period_ns = (rule.window.nominal_nanos() as u64 / u64::from(burst.get())).max(1);
    let quota = Quota::with_period(Duration::from_nanos(period_ns))
        .unwrap_or_else(|| Quota::per_second(burst))
        .allow_burst(burst);
    KeyedLimiter::new(quota, DefaultKeyedStateStore::default(), GovernorClock(Arc::clone(clock)))
}

fn new_state(rule: RateRule, clock: &Arc<dyn Clock>, replicas: u64) -> RateState {
    let counter = match rule.per {
        RatePer::Requests if rule.shared => {
            let period_us = (rule.window.nominal_nanos() as u64 / 1000 / rule.limit.max(1)).max(1);
            let share = share_of(rule.limit, replicas);
            let fallback = ArcSwap::from_pointee((share, requests_limiter(share, &rule, clock)));
            Counter::Shared(Arc::new(SharedCounter { period_us, fallback }))
        }
        // GCRA: the full limit may be used at once, then one request per window/limit.
        RatePer::Requests => Counter::Requests(Arc::new(requests_limiter(rule.limit, &rule, clock))),
        RatePer::Tokens => Counter::Tokens(Arc::new(TokenTable {
            window: Window::fixed_utc(rule.window),
            buckets: DashMap::with_hasher(foldhash::fast::RandomState::default()),
        })),
    };
    RateState { rule, counter }
}

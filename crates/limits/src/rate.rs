//! Rate limits: `per = "requests"` on governor's GCRA (checked and counted at admission), `per = "tokens"` counted
//! after completion in fixed UTC windows (admission refuses once a window's count reaches the limit).
//!
//! Rate limits are per replica: unlike spend, they are not persisted or shared (a request rate of N across R
//! replicas behind a balancer admits up to R × N).

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

#[derive(Debug)]
enum Counter {
    Requests(Arc<KeyedLimiter>),
    Tokens(Arc<TokenTable>),
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
}

impl RateLimiter {
    /// A limiter with `rules`, reading time from `clock`.
    pub fn new(rules: Vec<RateRule>, clock: Arc<dyn Clock>) -> Self {
        let states = rules.into_iter().map(|rule| new_state(rule, &clock)).collect();
        Self { inner: Arc::new(Inner { rules: ArcSwap::from_pointee(states), swap_lock: Mutex::new(()), clock }) }
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
                        && (rule.per == RatePer::Tokens || s.rule.limit == rule.limit)
                });
                match same {
                    Some(s) => RateState {
                        counter: match &s.counter {
                            Counter::Requests(l) => Counter::Requests(Arc::clone(l)),
                            Counter::Tokens(t) => Counter::Tokens(Arc::clone(t)),
                        },
                        rule,
                    },
                    None => new_state(rule, &self.inner.clock),
                }
            })
            .collect();
        self.inner.rules.store(Arc::new(states));
    }

    /// Checks every applicable rule. Token rules only look; each applicable requests rule counts this request
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
            if let Err(not_until) = limiter.check_key(&Arc::from(key.as_str())) {
                let wait = not_until
                    .wait_time_from(governor::clock::Clock::now(&GovernorClock(Arc::clone(&self.inner.clock))));
                let wait_ns = i64::try_from(wait.as_nanos()).unwrap_or(i64::MAX);
                return Err(RateLimited {
                    rule_id: Arc::clone(&state.rule.id),
                    bucket_key: key,
                    retry_after_secs: retry_after_secs(now, now.saturating_add(wait_ns)),
                });
            }
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
                Counter::Requests(limiter) => {
                    let before = limiter.len();
                    limiter.retain_recent();
                    let after = limiter.len();
                    if after.saturating_mul(2) < before {
                        limiter.shrink_to_fit();
                    }
                    left += after;
                }
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
            })
            .sum()
    }
}

fn new_state(rule: RateRule, clock: &Arc<dyn Clock>) -> RateState {
    let counter = match rule.per {
        RatePer::Requests => {
            let burst = NonZeroU32::new(u32::try_from(rule.limit).unwrap_or(u32::MAX)).unwrap_or(NonZeroU32::MIN);
            // GCRA: the full limit may be used at once, then one request per window/limit.
            let period_ns = (rule.window.nominal_nanos() as u64 / u64::from(burst.get())).max(1);
            let quota = Quota::with_period(Duration::from_nanos(period_ns))
                .unwrap_or_else(|| Quota::per_second(burst))
                .allow_burst(burst);
            let limiter = KeyedLimiter::new(quota, DefaultKeyedStateStore::default(), GovernorClock(Arc::clone(clock)));
            Counter::Requests(Arc::new(limiter))
        }
        RatePer::Tokens => Counter::Tokens(Arc::new(TokenTable {
            window: Window::fixed_utc(rule.window),
            buckets: DashMap::with_hasher(foldhash::fast::RandomState::default()),
        })),
    };
    RateState { rule, counter }
}

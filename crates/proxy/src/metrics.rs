//! Counters and histograms for `/metrics`, updated once per finished request from its record's typed fields
//! (error code, decision counts, cost source), never from message text.
//!
//! Label values are bounded by construction: providers are the configured ones (anything else counts as
//! `other`), statuses are classes, token kinds and decisions are fixed lists. Every cell is an atomic, so the
//! request path never takes a lock to count.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use tollgate_accounting::CostSource;

use crate::error::ErrorCode;
use crate::record::{RecordSink, UsageRecord};

#[cfg(test)]
mod tests;

/// Histogram bucket upper bounds in seconds (request duration, time to first byte, gateway overhead).
pub const SECONDS_BUCKETS: [f64; 14] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0];

/// Status classes counted per provider.
pub const STATUS_CLASSES: [&str; 4] = ["2xx", "4xx", "5xx", "other"];
/// Token kinds counted per provider.
pub const TOKEN_KINDS: [&str; 5] = ["input", "cache_read", "cache_write", "output", "reasoning"];
/// Cost sources counted per provider.
pub const COST_SOURCES: [CostSource; 5] =
    [CostSource::Catalog, CostSource::Custom, CostSource::Estimated, CostSource::Unpriced, CostSource::Cache];

/// A fixed-bucket histogram of seconds.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; SECONDS_BUCKETS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, value: Duration) {
        let seconds = value.as_secs_f64();
        if let Some(i) = SECONDS_BUCKETS.iter().position(|bound| seconds <= *bound) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(value.as_nanos() as u64, Ordering::Relaxed);
    }

    /// Cumulative bucket counts (Prometheus `le` semantics), the count and the sum in seconds.
    pub fn snapshot(&self) -> (Vec<u64>, u64, f64) {
        let mut running = 0;
        let cumulative = self
            .buckets
            .iter()
            .map(|b| {
                running += b.load(Ordering::Relaxed);
                running
            })
            .collect();
        (cumulative, self.count.load(Ordering::Relaxed), self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9)
    }
}

/// Per-provider counters.
#[derive(Debug, Default)]
pub struct ProviderCounters {
    pub requests: [AtomicU64; STATUS_CLASSES.len()],
    pub tokens: [AtomicU64; TOKEN_KINDS.len()],
    pub cost_nanos: AtomicU64,
    pub by_cost_source: [AtomicU64; COST_SOURCES.len()],
}

/// Everything `/metrics` reports that the request path counts.
#[derive(Debug)]
pub struct Metrics {
    providers: HashMap<String, usize>,
    names: Vec<String>,
    per_provider: Vec<ProviderCounters>,
    pub duration: Histogram,
    pub ttfb: Histogram,
    pub overhead: Histogram,
    pub spend_blocked: AtomicU64,
    pub spend_would_block: AtomicU64,
    pub spend_allowed: AtomicU64,
    pub rate_limited: AtomicU64,
    pub client_disconnects: AtomicU64,
    /// Unix milliseconds of the last finished request (0: none yet).
    pub last_ingest_ms: AtomicI64,
}

impl Metrics {
    pub fn new<'a>(providers: impl IntoIterator<Item = &'a str>) -> Self {
        let mut names: Vec<String> = providers.into_iter().map(str::to_string).collect();
        names.push("other".into());
        let providers = names.iter().enumerate().map(|(i, n)| (n.clone(), i)).collect();
        let per_provider = names.iter().map(|_| ProviderCounters::default()).collect();
        Self {
            providers,
            names,
            per_provider,
            duration: Histogram::default(),
            ttfb: Histogram::default(),
            overhead: Histogram::default(),
            spend_blocked: AtomicU64::new(0),
            spend_would_block: AtomicU64::new(0),
            spend_allowed: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
            client_disconnects: AtomicU64::new(0),
            last_ingest_ms: AtomicI64::new(0),
        }
    }

    /// `(provider name, its counters)` for every provider label value.
    pub fn providers(&self) -> impl Iterator<Item = (&str, &ProviderCounters)> {
        self.names.iter().map(String::as_str).zip(self.per_provider.iter())
    }

    fn provider(&self, name: &str) -> &ProviderCounters {
        let index = self.providers.get(name).copied().unwrap_or(self.names.len() - 1);
        &self.per_provider[index]
    }

    /// Counts one finished request.
    pub fn observe(&self, r: &UsageRecord) {
        let p = self.provider(&r.provider);
        let class = match r.status {
            200..=299 => 0,
            400..=499 => 1,
            500..=599 => 2,
            _ => 3,
        };
        p.requests[class].fetch_add(1, Ordering::Relaxed);
        let u = &r.usage;
        for (cell, value) in
            p.tokens.iter().zip([u.input, u.cache_read, u.cache_write_5m + u.cache_write_1h, u.output, u.reasoning])
        {
            if value > 0 {
                cell.fetch_add(value, Ordering::Relaxed);
            }
        }
        p.cost_nanos.fetch_add(r.cost_nanos, Ordering::Relaxed);
        if let Some(i) = COST_SOURCES.iter().position(|s| *s == r.cost_source) {
            p.by_cost_source[i].fetch_add(1, Ordering::Relaxed);
        }
        self.duration.observe(r.duration);
        if let Some(ttfb) = r.ttfb {
            self.ttfb.observe(ttfb);
        }
        if let Some(overhead) = r.overhead {
            self.overhead.observe(overhead);
        }
        match r.error_code {
            Some(ErrorCode::SpendLimitExceeded) => {
                self.spend_blocked.fetch_add(1, Ordering::Relaxed);
            }
            Some(ErrorCode::RateLimited) => {
                self.rate_limited.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
        self.spend_would_block.fetch_add(u64::from(r.decisions.would_block), Ordering::Relaxed);
        self.spend_allowed.fetch_add(u64::from(r.decisions.allowed), Ordering::Relaxed);
        self.last_ingest_ms.store(jiff::Timestamp::now().as_millisecond(), Ordering::Relaxed);
        if matches!(r.end, Some(crate::StreamEnd::ClientGone { .. })) {
            self.client_disconnects.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Counts every record, then hands it on.
pub struct MeteredSink<S> {
    pub metrics: std::sync::Arc<Metrics>,
    pub inner: S,
}

impl<S: RecordSink> RecordSink for MeteredSink<S> {
    fn record(&self, record: UsageRecord) {
        self.metrics.observe(&record);
        self.inner.record(record);
    }
}

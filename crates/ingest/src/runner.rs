//! The `Ingest` handle: one run per provider (lease, fetch every page, write in one transaction, release), the
//! last run of each for `/status`, the counters and drift ratios for `/metrics`, and the reconciliation.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use tollgate_config::Ingest as IngestConfig;
use tollgate_store::{NewRawPage, Store, StoreError};

use crate::client::{AnthropicClient, Client, Fetch, GoogleClient, OpenAiClient};
use crate::error::IngestError;
use crate::fetch::RetryPolicy;
use crate::reconcile::{DayRow, Settings, Side, days_between, reconcile};
use crate::report::{PACIFIC, Report};

#[cfg(test)]
mod tests;

/// The providers that can be ingested, in the order runs and reports list them.
pub const PROVIDERS: [&str; 3] = ["openai", "anthropic", "google"];

/// Most days one reconciliation answers per provider.
pub const MAX_RECONCILIATION_DAYS: usize = 400;

/// Tunables; `Default` gives the production values.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    pub retry: RetryPolicy,
    /// How long a run holds its provider's lease: longer than any run takes (all retries included), short
    /// enough that a replica that died mid-run does not hold the provider up for long.
    pub lease: Duration,
    /// Per request, connect to last byte.
    pub request_timeout: Duration,
}

impl Default for IngestOptions {
    fn default() -> Self {
        Self { retry: RetryPolicy::default(), lease: Duration::from_mins(30), request_timeout: Duration::from_mins(2) }
    }
}

/// A run's outcome: `/status` `last_ingest.<provider>` and the answer of `POST /api/ingest/run`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LastRun {
    pub provider: String,
    /// When the run started (RFC 3339).
    pub at: String,
    pub ok: bool,
    /// Why it failed (`None` when ok).
    pub error: Option<String>,
    /// Raw pages fetched and stored.
    pub pages: u64,
    /// Normalised rows written.
    pub rows: u64,
    /// Another replica (or run) held the provider's lease: nothing was fetched.
    pub skipped: bool,
    /// The `result` label counted in `tollgate_ingest_runs_total`.
    pub result: String,
}

/// Cheap-to-clone handle on every configured provider's ingest.
#[derive(Clone)]
pub struct Ingest {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    config: IngestConfig,
    clients: Vec<(Client, Side)>,
    http: reqwest::Client,
    options: IngestOptions,
    last: Mutex<BTreeMap<&'static str, LastRun>>,
    runs: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    drift: Mutex<BTreeMap<&'static str, f64>>,
}

impl Ingest {
    /// A client per configured provider. Fails only on a Google service-account key that cannot sign.
    pub fn new(config: &IngestConfig, store: Store, options: IngestOptions) -> Result<Self, IngestError> {
        let mut clients = Vec::new();
        let side = |provider: &str, gateway: &[String], tz: TimeZone| Side {
            provider: provider.into(),
            gateway_providers: gateway.to_vec(),
            time_zone: tz,
        };
        if let Some(openai) = &config.openai {
            let s = side("openai", &openai.gateway_providers, TimeZone::UTC);
            clients.push((Client::OpenAi(OpenAiClient::new(openai.clone())), s));
        }
        if let Some(anthropic) = &config.anthropic {
            let s = side("anthropic", &anthropic.gateway_providers, TimeZone::UTC);
            clients.push((Client::Anthropic(AnthropicClient::new(anthropic.clone())), s));
        }
        if let Some(google) = &config.google {
            let tz = TimeZone::get(PACIFIC).map_err(|e| IngestError::TooLarge(e.to_string()))?;
            let s = side("google", &google.gateway_providers, tz);
            clients.push((Client::Google(Box::new(GoogleClient::new(google.clone())?)), s));
        }
        let http = reqwest::Client::builder()
            .timeout(options.request_timeout)
            .user_agent(concat!("tollgate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|source| IngestError::Transport { endpoint: "client".into(), attempts: 0, source })?;
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                config: config.clone(),
                clients,
                http,
                options,
                last: Mutex::new(BTreeMap::new()),
                runs: Mutex::new(BTreeMap::new()),
                drift: Mutex::new(BTreeMap::new()),
            }),
        })
    }

    /// The configured providers.
    pub fn providers(&self) -> Vec<&'static str> {
        self.inner.clients.iter().map(|(c, _)| c.name()).collect()
    }

    pub fn config(&self) -> &IngestConfig {
        &self.inner.config
    }

    /// Runs every configured provider at once; one failing never stops the others.
    pub async fn run_all(&self) -> Vec<LastRun> {
        let runs = self.inner.clients.iter().map(|(client, _)| self.run_client(client));
        futures_util::future::join_all(runs).await
    }

    /// Runs one provider now; `None` when it is not configured.
    pub async fn run(&self, provider: &str) -> Option<LastRun> {
        let (client, _) = self.inner.clients.iter().find(|(c, _)| c.name() == provider)?;
        Some(self.run_client(client).await)
    }

    /// The steps of one run:
    ///
    /// 1. take the provider's lease under a fresh run id (another holder: the run is `skipped`);
    /// 2. fetch every page of every report for `[now − lookback, now)` (retried as [`RetryPolicy`] says);
    /// 3. read the rows from the pages and write pages and rows in one transaction, checked against the lease;
    /// 4. give the lease up, record the outcome, and refresh the drift ratio of the last complete day.
    async fn run_client(&self, client: &Client) -> LastRun {
        let provider = client.name();
        let run_id = uuid::Uuid::now_v7().to_string();
        let now = Timestamp::now();
        let lease_until = now
            .checked_add(jiff::SignedDuration::try_from(self.inner.options.lease).unwrap_or_default())
            .unwrap_or(now);
        let outcome = match self.inner.store.acquire_ingest_lease(provider, &run_id, now, lease_until).await {
            Ok(false) => None,
            Ok(true) => {
                let outcome = self.fetch_and_write(client, &run_id, now).await;
                if let Err(error) = self.inner.store.release_ingest_lease(provider, &run_id).await {
                    tracing::warn!(
                        provider,
                        error = &error as &dyn std::error::Error,
                        "ingest lease not released; it expires"
                    );
                }
                Some(outcome)
            }
            Err(error) => Some(Err(IngestError::Store(error))),
        };
        let run = match outcome {
            None => LastRun::skipped(provider, now),
            Some(Ok((pages, rows))) => LastRun::done(provider, now, pages, rows),
            Some(Err(error)) => {
                tracing::warn!(provider, error = &error as &dyn std::error::Error, "ingest failed");
                LastRun::failed(provider, now, &error)
            }
        };
        self.record(provider, &run);
        if run.ok && !run.skipped {
            self.refresh_drift(provider).await;
        }
        run
    }

    async fn fetch_and_write(&self, client: &Client, run_id: &str, now: Timestamp) -> Result<(u64, u64), IngestError> {
        let lookback = jiff::SignedDuration::try_from(self.inner.config.lookback).unwrap_or_default();
        let start = now.checked_sub(lookback).unwrap_or(now);
        let fetch = Fetch { http: &self.inner.http, policy: &self.inner.options.retry, start, now };
        let pages = client.fetch(&fetch).await?;
        let rows = rows_of(&pages)?;
        let row_count = tollgate_store::merge_usage_rows(rows.clone()).len() as u64;
        let written = self
            .inner
            .store
            .commit_ingest(client.name(), run_id, Timestamp::now(), &pages, rows)
            .await
            .map_err(IngestError::Store)?;
        if !written {
            return Err(IngestError::LeaseLost);
        }
        Ok((pages.len() as u64, row_count))
    }

    fn record(&self, provider: &'static str, run: &LastRun) {
        let result = crate::error::RESULTS.iter().find(|r| **r == run.result).copied().unwrap_or("ok");
        if let Ok(mut runs) = self.inner.runs.lock() {
            *runs.entry((provider, result)).or_insert(0) += 1;
        }
        if !run.skipped
            && let Ok(mut last) = self.inner.last.lock()
        {
            last.insert(provider, run.clone());
        }
    }

    /// The drift ratio of the provider's last complete day, for the gauge.
    async fn refresh_drift(&self, provider: &'static str) {
        let now = Timestamp::now();
        let lookback = jiff::SignedDuration::try_from(self.inner.config.lookback).unwrap_or_default();
        let settled = now.checked_sub(lookback).unwrap_or(now);
        let from = settled.checked_sub(jiff::SignedDuration::from_hours(48)).unwrap_or(settled);
        match self.reconciliation(from, now, Some(provider), now).await {
            Ok(rows) => {
                let last = rows.iter().rev().find(|r| r.status != crate::reconcile::Status::Pending);
                if let (Some(ratio), Ok(mut drift)) = (last.and_then(|r| r.diff_ratio), self.inner.drift.lock()) {
                    drift.insert(provider, ratio);
                }
            }
            Err(error) => tracing::warn!(provider, error = &error as &dyn std::error::Error, "drift not refreshed"),
        }
    }

    /// One row per configured provider (or `only` that one) and billing day touching `[from, to)`, as of `now`.
    pub async fn reconciliation(
        &self,
        from: Timestamp,
        to: Timestamp,
        only: Option<&str>,
        now: Timestamp,
    ) -> Result<Vec<DayRow>, StoreError> {
        let sides: Vec<&Side> =
            self.inner.clients.iter().map(|(_, side)| side).filter(|s| only.is_none_or(|p| s.provider == p)).collect();
        if sides.is_empty() || from >= to {
            return Ok(Vec::new());
        }
        // Read a day wider on both ends: a Pacific day starts 7–8 hours after the UTC one.
        let day = jiff::SignedDuration::from_hours(24);
        let (wide_from, wide_to) = (from.checked_sub(day).unwrap_or(from), to.checked_add(day).unwrap_or(to));
        let gateway_providers: Vec<String> = sides.iter().flat_map(|s| s.gateway_providers.clone()).collect();
        let gateway = self.inner.store.gateway_hours(&gateway_providers, wide_from, wide_to).await?;
        let provider = self.inner.store.provider_usage(wide_from, wide_to).await?;
        let settings =
            Settings { now, lookback: self.inner.config.lookback, drift_threshold: self.inner.config.drift_threshold };
        Ok(sides
            .into_iter()
            .flat_map(|side| {
                let days = days_between(from, to, &side.time_zone, MAX_RECONCILIATION_DAYS);
                reconcile(side, &days, &gateway, &provider, settings)
            })
            .collect())
    }

    /// Deletes raw pages older than `raw_retention`.
    pub async fn delete_expired_pages(&self) -> Result<u64, StoreError> {
        let retention = jiff::SignedDuration::try_from(self.inner.config.raw_retention).unwrap_or_default();
        let cutoff = Timestamp::now().checked_sub(retention).unwrap_or(Timestamp::MIN);
        self.inner.store.delete_raw_pages_before(cutoff).await
    }

    /// The last run of each provider this process ran (skips excluded).
    pub fn last_runs(&self) -> BTreeMap<String, LastRun> {
        self.inner
            .last
            .lock()
            .map(|m| m.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect())
            .unwrap_or_default()
    }

    /// `tollgate_ingest_runs_total`: (provider, result, count), every configured provider × result.
    pub fn runs_total(&self) -> Vec<(&'static str, &'static str, u64)> {
        let runs = self.inner.runs.lock().map(|m| m.clone()).unwrap_or_default();
        self.providers()
            .into_iter()
            .flat_map(|p| crate::error::RESULTS.iter().map(move |r| (p, *r)))
            .map(|(p, r)| (p, r, runs.get(&(p, r)).copied().unwrap_or(0)))
            .collect()
    }

    /// `tollgate_reconciliation_drift_ratio`: the last complete day's ratio per provider that has one.
    pub fn drift_ratios(&self) -> Vec<(&'static str, f64)> {
        self.inner.drift.lock().map(|m| m.iter().map(|(k, v)| (*k, *v)).collect()).unwrap_or_default()
    }
}

/// Every page's rows (the pages parsed when fetched; a failure here is a bug, reported as malformed).
fn rows_of(pages: &[NewRawPage]) -> Result<Vec<tollgate_store::ProviderUsageRow>, IngestError> {
    let mut rows = Vec::new();
    for page in pages {
        let report = Report::from_endpoint(&page.endpoint)
            .ok_or_else(|| IngestError::TooLarge(format!("no parser for endpoint {}", page.endpoint)))?;
        let parsed = report.parse(&page.body).map_err(|source| IngestError::Malformed { attempts: 1, source })?;
        rows.extend(parsed.rows);
    }
    Ok(rows)
}

impl LastRun {
    fn skipped(provider: &str, at: Timestamp) -> Self {
        Self {
            provider: provider.into(),
            at: at.to_string(),
            ok: true,
            error: None,
            pages: 0,
            rows: 0,
            skipped: true,
            result: "skipped".into(),
        }
    }

    fn done(provider: &str, at: Timestamp, pages: u64, rows: u64) -> Self {
        Self { pages, rows, skipped: false, result: "ok".into(), ..Self::skipped(provider, at) }
    }

    fn failed(provider: &str, at: Timestamp, error: &IngestError) -> Self {
        let mut message = error.to_string();
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        Self {
            ok: false,
            error: Some(message),
            skipped: false,
            result: error.label().into(),
            ..Self::skipped(provider, at)
        }
    }
}

//! The price catalog: model prices by provider and date, and the cost of a [`Usage`] in nano-dollars.
//!
//! Prices come from a versioned TOML table (the bundled `config/prices.toml`, optionally layered with a user
//! file), never from code. Money is exact integer arithmetic throughout:
//! - a price in the file (USD per 1M tokens, decimal text) is held as femto-dollars (1e-15 USD) per token;
//! - a cost is summed in femto-dollars (`u128`), then converted to nano-dollars **rounded up**, so a request
//!   that costs a fraction of a nano-dollar is never recorded as free.
//!
//! Cost of a request (the providers' published price formulas, on the normalised [`Usage`]):
//! `input·in + cache_read·read + cache_write_5m·write_5m + cache_write_1h·write_1h + output·out`, where a
//! missing cache-read or 5-minute write price falls back to the input price and a missing 1-hour write price
//! to the 5-minute one (charging the full rate rather than inventing a discount).
//!
//! Which prices apply, in order:
//! 1. The entry: the one with the latest `effective_from` on or before the request's date (a date before every
//!    entry gets the earliest entry, so clock skew never leaves a known model unpriced).
//! 2. A service tier the provider reported (`priority`, `flex`) with its own prices in the entry replaces the
//!    standard prices entirely (tiers are not combined with long-context prices: no provider publishes both).
//! 3. Otherwise, when the prompt ([`Usage::prompt_total`]: input + cache reads + cache writes) is strictly
//!    greater than the entry's `long_context.threshold_tokens`, the long-context prices apply to **all**
//!    tokens of the request, output included; a price missing from the tier falls back to the standard one.

mod catalog_file;
mod custom_cost;
mod decimal;
mod estimate;
mod model_name;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};

use jiff::civil::Date;
use thiserror::Error;

pub use custom_cost::{CustomCost, CustomCostError};
pub use decimal::DecimalError;
pub use estimate::{
    PromptEstimate, estimate_output_tokens, estimate_prompt, estimate_prompt_tokens, prompt_held_by_provider,
};
pub use model_name::canonical_model;

use crate::usage::Usage;

/// The catalog shipped with the gateway.
const BUNDLED_CATALOG: &str = include_str!("../../../config/prices.toml");

/// Femto-dollars per nano-dollar.
const FEMTO_PER_NANO: u128 = 1_000_000;

/// Where a recorded cost came from (the log row's `cost_source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CostSource {
    /// Reported usage priced from the catalog.
    Catalog,
    /// Priced from the request's `cf-aig-custom-cost` header.
    Custom,
    /// Estimated usage (no usage was reported) priced from the catalog.
    Estimated,
    /// No price is known for the model; the cost is 0.
    Unpriced,
    /// Answered from the response cache: the cost is 0 (what it would have cost is the record's saving).
    Cache,
}

impl CostSource {
    /// The log row value: `catalog`, `custom`, `estimated`, `unpriced` or `cache`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Catalog => "catalog",
            Self::Custom => "custom",
            Self::Estimated => "estimated",
            Self::Unpriced => "unpriced",
            Self::Cache => "cache",
        }
    }
}

/// A cost and where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Priced {
    /// Cost in nano-dollars (1e-9 USD), rounded up.
    pub cost_nanos: u64,
    /// Where the cost came from.
    pub source: CostSource,
}

impl Priced {
    /// Zero cost for a model without a price.
    pub const UNPRICED: Self = Self { cost_nanos: 0, source: CostSource::Unpriced };
}

/// Why a catalog file was refused; every variant names the `[[model]]` entry (0-based index and model).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CatalogError {
    /// The file is not valid TOML or has unknown top-level keys.
    #[error("price catalog: {0}")]
    Toml(String),
    /// An entry has a missing, unknown or mistyped key.
    #[error("price catalog: model[{index}] ({model}): {reason}")]
    Entry {
        /// Index of the entry in the file.
        index: usize,
        /// The entry's `model`, or `?`.
        model: String,
        /// What is wrong.
        reason: String,
    },
    /// An entry's field has a bad value.
    #[error("price catalog: model[{index}] ({model}).{field}: {reason}")]
    Field {
        /// Index of the entry in the file.
        index: usize,
        /// The entry's `model`.
        model: String,
        /// The dotted field name, e.g. `long_context.input`.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// Two entries for the same provider, model and `effective_from`.
    #[error("price catalog: model[{index}] ({model}): duplicate of an earlier entry with the same effective_from")]
    Duplicate {
        /// Index of the later entry.
        index: usize,
        /// The entry's `model`.
        model: String,
    },
}

/// Prices of one entry for one tier, femto-dollars per token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PriceSet {
    input: u128,
    output: u128,
    cache_read: Option<u128>,
    cache_write_5m: Option<u128>,
    cache_write_1h: Option<u128>,
}

impl PriceSet {
    /// Cost of `usage` in femto-dollars.
    fn cost_femto(&self, usage: &Usage) -> u128 {
        let cache_read = self.cache_read.unwrap_or(self.input);
        let write_5m = self.cache_write_5m.unwrap_or(self.input);
        let write_1h = self.cache_write_1h.unwrap_or(write_5m);
        [
            (usage.input, self.input),
            (usage.cache_read, cache_read),
            (usage.cache_write_5m, write_5m),
            (usage.cache_write_1h, write_1h),
            (usage.output, self.output),
        ]
        .into_iter()
        .fold(0u128, |total, (tokens, price)| total.saturating_add(u128::from(tokens).saturating_mul(price)))
    }

    /// `self` with the fields `tier` lacks taken from the standard prices.
    fn or_standard(self, standard: &Self) -> Self {
        Self {
            cache_read: self.cache_read.or(standard.cache_read),
            cache_write_5m: self.cache_write_5m.or(standard.cache_write_5m),
            cache_write_1h: self.cache_write_1h.or(standard.cache_write_1h),
            ..self
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LongContext {
    threshold_tokens: u64,
    prices: PriceSet,
}

/// One dated price entry of a model.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PriceEntry {
    effective_from: Date,
    standard: PriceSet,
    long_context: Option<LongContext>,
    priority: Option<PriceSet>,
    flex: Option<PriceSet>,
    max_output_tokens: Option<u64>,
    /// The model's context window (prompt + output), for reservations when the prompt is not in the body.
    context_window: Option<u64>,
}

impl PriceEntry {
    /// The prices that apply to `usage` (see the module documentation).
    fn prices_for(&self, usage: &Usage) -> PriceSet {
        let tier = match usage.service_tier.as_deref() {
            Some("priority") => self.priority,
            Some("flex") => self.flex,
            _ => None,
        };
        if let Some(tier) = tier {
            return tier.or_standard(&self.standard);
        }
        match self.long_context {
            Some(long) if usage.prompt_total() > long.threshold_tokens => long.prices.or_standard(&self.standard),
            _ => self.standard,
        }
    }

    /// Every price set that could apply to a request with `prompt_tokens` of prompt.
    fn possible_prices(&self, prompt_tokens: u64) -> impl Iterator<Item = PriceSet> + '_ {
        let long = self
            .long_context
            .filter(|long| prompt_tokens > long.threshold_tokens)
            .map(|long| long.prices.or_standard(&self.standard));
        [Some(self.standard), long, self.priority, self.flex].into_iter().flatten()
    }
}

/// Converts femto- or atto-dollars to nano-dollars, rounding up and saturating.
pub(crate) fn nanos_from(amount: u128, per_nano: u128) -> u64 {
    u64::try_from(decimal::ceil_div(amount, per_nano)).unwrap_or(u64::MAX)
}

/// Model prices by provider, model and date; cheap to share behind an `Arc`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PriceCatalog {
    version: String,
    /// provider → model → entries sorted by `effective_from`.
    providers: HashMap<String, HashMap<String, Vec<PriceEntry>>>,
}

impl PriceCatalog {
    /// The catalog bundled with the gateway (`config/prices.toml`).
    pub fn bundled() -> Result<Self, CatalogError> {
        Self::from_toml(BUNDLED_CATALOG)
    }

    /// A catalog from TOML text in the `prices.toml` format.
    pub fn from_toml(text: &str) -> Result<Self, CatalogError> {
        let file: catalog_file::CatalogFile =
            toml::from_str(text).map_err(|error| CatalogError::Toml(error.to_string()))?;
        let mut providers: HashMap<String, HashMap<String, Vec<PriceEntry>>> = HashMap::new();
        for (index, table) in file.model.into_iter().enumerate() {
            let (provider, model, entry) = catalog_file::entry(index, table)?;
            let entries = providers.entry(provider).or_default().entry(model.clone()).or_default();
            if entries.iter().any(|known| known.effective_from == entry.effective_from) {
                return Err(CatalogError::Duplicate { index, model });
            }
            entries.push(entry);
            entries.sort_by_key(|entry| entry.effective_from);
        }
        Ok(Self { version: file.version.unwrap_or_default(), providers })
    }

    /// This catalog with a user file (same format) layered over it: every (provider, model) the user file
    /// prices replaces all of this catalog's entries for that pair; other models are kept. The version stays
    /// this catalog's, suffixed with `+<user version>` when the user file has one.
    pub fn with_overrides(mut self, toml_text: &str) -> Result<Self, CatalogError> {
        let overrides = Self::from_toml(toml_text)?;
        for (provider, models) in overrides.providers {
            let known = self.providers.entry(provider).or_default();
            for (model, entries) in models {
                known.insert(model, entries);
            }
        }
        if !overrides.version.is_empty() {
            self.version = format!("{}+{}", self.version, overrides.version);
        }
        Ok(self)
    }

    /// The catalog's `version` (the date its prices were last reviewed).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The entry for a (provider, model) on `date`, trying the names of [`model_name::candidates`] in order.
    fn entry(&self, provider: &str, model: &str, date: Date) -> Option<&PriceEntry> {
        let exact = self.providers.get(provider).and_then(|models| models.get(model));
        let entries = match exact {
            Some(entries) => entries,
            None => model_name::candidates(provider, model)
                .iter()
                .find_map(|(provider, model)| self.providers.get(provider)?.get(model))?,
        };
        entries.iter().rev().find(|entry| entry.effective_from <= date).or_else(|| entries.first())
    }

    /// Whether the catalog has a price for the model.
    pub fn knows(&self, provider: &str, model: &str, date: Date) -> bool {
        self.entry(provider, model, date).is_some()
    }

    /// The cost of reported usage; [`CostSource::Unpriced`] with cost 0 when the model has no price.
    pub fn price(&self, provider: &str, model: &str, usage: &Usage, date: Date) -> Priced {
        self.price_as(provider, model, usage, date, CostSource::Catalog)
    }

    /// The cost of estimated usage (source [`CostSource::Estimated`], or `Unpriced`).
    pub fn price_estimate(&self, provider: &str, model: &str, usage: &Usage, date: Date) -> Priced {
        self.price_as(provider, model, usage, date, CostSource::Estimated)
    }

    fn price_as(&self, provider: &str, model: &str, usage: &Usage, date: Date, source: CostSource) -> Priced {
        match self.entry(provider, model, date) {
            Some(entry) => {
                Priced { cost_nanos: nanos_from(entry.prices_for(usage).cost_femto(usage), FEMTO_PER_NANO), source }
            }
            None => Priced::UNPRICED,
        }
    }

    /// The model's output cap (`max_output_tokens` in the catalog), if known.
    pub fn max_output_tokens(&self, provider: &str, model: &str, date: Date) -> Option<u64> {
        self.entry(provider, model, date)?.max_output_tokens
    }

    /// The model's context window in tokens (`context_window` in the catalog), if known.
    pub fn context_window(&self, provider: &str, model: &str, date: Date) -> Option<u64> {
        self.entry(provider, model, date)?.context_window
    }

    /// The model name to price a response with, given the model the request asked for and the one the response
    /// reports (the tap's [`Observation::model`](crate::Observation::model)):
    /// 1. no (or an empty) response model: the request's;
    /// 2. the response's model is a variant of the request's (the same [`canonical_model`], e.g. a dated
    ///    snapshot `gpt-4o-2024-08-06` of `gpt-4o`): the response's, the most specific name;
    /// 3. the catalog cannot price the request's model (an alias such as `openrouter/auto`) but knows the
    ///    response's: the response's, so the request is priced rather than free;
    /// 4. otherwise the request's: a response naming an unrelated model (cheaper or not) never moves the price.
    pub fn billing_model<'a>(
        &self,
        provider: &str,
        request_model: &'a str,
        response_model: Option<&'a str>,
        date: Date,
    ) -> &'a str {
        let Some(response) = response_model.filter(|model| !model.trim().is_empty()) else {
            return request_model;
        };
        if canonical_model(response) == canonical_model(request_model)
            || (!self.knows(provider, request_model, date) && self.knows(provider, response, date))
        {
            response
        } else {
            request_model
        }
    }

    /// The most a request can cost, in nano-dollars, for budget reservation: `prompt_estimate` uncached input
    /// tokens plus `max_tokens` output tokens (or the model's `max_output_tokens` when the request sets none),
    /// at the dearest price set that could apply (standard, long-context when the prompt is over the
    /// threshold, priority, flex). `None` when the model is unpriced or no output bound is known.
    pub fn worst_case_cost(
        &self,
        provider: &str,
        model: &str,
        prompt_estimate: u64,
        max_tokens: Option<u64>,
        date: Date,
    ) -> Option<u64> {
        let prompt = PromptEstimate { tokens: prompt_estimate, held_by_provider: false };
        self.worst_case_cost_for(provider, model, &prompt, max_tokens, date)
    }

    /// [`PriceCatalog::worst_case_cost`] for a [`PromptEstimate`]: when part of the prompt is held by the provider
    /// or given as files or media ([`PromptEstimate::held_by_provider`]), the input reserved is the model's whole
    /// context window (or the text estimate if larger, or alone when the catalog has no window for the model).
    /// `max_tokens` above the model's output cap is reserved at the cap (the provider refuses more).
    pub fn worst_case_cost_for(
        &self,
        provider: &str,
        model: &str,
        prompt: &PromptEstimate,
        max_tokens: Option<u64>,
        date: Date,
    ) -> Option<u64> {
        let entry = self.entry(provider, model, date)?;
        let output = match (max_tokens, entry.max_output_tokens) {
            (Some(asked), Some(cap)) => asked.min(cap),
            (asked, cap) => asked.or(cap)?,
        };
        let input = match (prompt.held_by_provider, entry.context_window) {
            (true, Some(window)) => prompt.tokens.max(window),
            _ => prompt.tokens,
        };
        let usage = Usage { input, output, ..Usage::default() };
        entry.possible_prices(input).map(|prices| nanos_from(prices.cost_femto(&usage), FEMTO_PER_NANO)).max()
    }
}

/// Remembers which unpriced (provider, model) pairs were already reported, so the caller logs each once.
///
/// The caller owns it (e.g. behind a mutex in its state) and still counts a metric every time. It holds at
/// most [`UnpricedSet::MAX_PAIRS`] pairs, since model names come from clients; past that nothing new is
/// reported.
#[derive(Debug, Clone, Default)]
pub struct UnpricedSet {
    seen: HashSet<(String, String)>,
}

impl UnpricedSet {
    /// Most pairs remembered (bounds memory against clients inventing model names).
    pub const MAX_PAIRS: usize = 1024;

    /// `true` the first time a pair is seen (while under the cap): the caller should log it now.
    pub fn first_report(&mut self, provider: &str, model: &str) -> bool {
        if self.seen.len() >= Self::MAX_PAIRS {
            return false;
        }
        self.seen.insert((provider.to_owned(), model.to_owned()))
    }
}

//! Rule specs in the file/API shape (docs/configuration.md) (`[[spend_limits]]`, `[[rate_limits]]`, `[[routes]]`) and their
//! validation into runtime rules, collecting every error with its field path.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::dimension::{Dimension, DimensionKey, DimensionMode, Dimensions, RequestDims};
use crate::money::{MAX_BUDGET_USD, usd_to_nanos};
use crate::window::{Window, WindowKind, WindowLength, parse_window};

#[cfg(test)]
mod tests;

/// Longest rule id: ids appear in URLs (`/api/spend-limits/{id}`), bucket rows and log rows.
pub const MAX_ID_BYTES: usize = 64;

/// One invalid field. `path` is relative to the rule (`window`, `dimensions[1].values`); the caller prefixes its
/// own location (`spend_limits[3].`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// Dotted path of the field inside the rule.
    pub path: String,
    /// What is wrong with it.
    pub message: String,
}

impl FieldError {
    fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self { path: path.into(), message: message.into() }
    }

    /// The same error with `prefix` in front of its path (`prefix.path`, or `prefix[i].path` style when the
    /// prefix ends with `]`).
    #[must_use]
    pub fn prefixed(mut self, prefix: &str) -> Self {
        self.path = if self.path.is_empty() { prefix.to_owned() } else { format!("{prefix}.{}", self.path) };
        self
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// What a spend rule does when a bucket would go over budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Refuse the request with 429 `spend_limit_exceeded`.
    #[default]
    Block,
    /// Let it through; record that it would have been blocked.
    Monitor,
}

/// When a spend rule counts a request's cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reserve {
    /// Reserve the worst-case cost at admission, replace it by the actual cost at settlement. Never overshoots
    /// when the actual cost stays within the worst case.
    #[default]
    WorstCase,
    /// Check settled spend only and count the cost after completion. Concurrent requests admitted while the bucket
    /// was under budget can each overshoot it by their own cost.
    None,
}

/// `split` or `filter`, as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DimensionModeSpec {
    /// One bucket per value.
    Split,
    /// Applies only to the listed values.
    Filter,
}

/// One entry of a rule's `dimensions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DimensionSpec {
    /// `provider`, `model`, `gateway` or `metadata.<key>`.
    pub key: String,
    /// `split` or `filter`.
    pub mode: DimensionModeSpec,
    /// The allowed values of a `filter` (required there, refused on `split`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<String>>,
}

fn default_time_zone() -> String {
    "UTC".to_owned()
}

/// `[[spend_limits]]` as written in the file or sent to the admin API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpendRuleSpec {
    /// Unique id (`[A-Za-z0-9_.:-]`, 1 to 64 bytes).
    pub id: String,
    /// Budget per window in USD.
    pub budget_usd: f64,
    /// Window length (`1d`, `15m`, `1mo`…).
    pub window: String,
    /// `fixed` (default) or `rolling`.
    #[serde(default)]
    pub window_kind: WindowKind,
    /// IANA time zone that calendar windows follow (default `UTC`).
    #[serde(default = "default_time_zone")]
    pub timezone: String,
    /// Filters and splits.
    #[serde(default)]
    pub dimensions: Vec<DimensionSpec>,
    /// `block` (default) or `monitor`.
    #[serde(default)]
    pub action: Action,
    /// `worst_case` (default) or `none`.
    #[serde(default)]
    pub reserve: Reserve,
}

/// The metadata keys `rules` split or filter on (`metadata.<key>` dimensions), without the `metadata.` prefix:
/// the keys the store's rollups must count for `/spend` to group by them.
pub fn rule_metadata_keys(rules: &[SpendRule]) -> BTreeSet<String> {
    rules
        .iter()
        .flat_map(SpendRule::dimensions)
        .filter_map(|dimension| match &dimension.key {
            DimensionKey::Metadata(key) => Some(key.clone()),
            _ => None,
        })
        .collect()
}

/// A validated spend rule.
#[derive(Debug, Clone)]
pub struct SpendRule {
    pub(crate) id: Arc<str>,
    pub(crate) budget_nanos: u64,
    pub(crate) window: Window,
    pub(crate) dimensions: Dimensions,
    pub(crate) action: Action,
    pub(crate) reserve: Reserve,
    spec: SpendRuleSpec,
}

impl SpendRule {
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Budget per window in nano-dollars (the spec's USD rounded to the nearest nano-dollar).
    pub fn budget_nanos(&self) -> u64 {
        self.budget_nanos
    }

    pub fn window(&self) -> &Window {
        &self.window
    }

    /// The dimensions in declaration order.
    pub fn dimensions(&self) -> &[Dimension] {
        self.dimensions.as_slice()
    }

    /// Whether the rule counts `request`: every filter dimension matches (split dimensions match anything).
    pub fn applies_to(&self, request: &RequestDims<'_>) -> bool {
        self.dimensions.applies_to(request)
    }

    /// Block or monitor.
    pub fn action(&self) -> Action {
        self.action
    }

    /// Worst-case reservation or none.
    pub fn reserve(&self) -> Reserve {
        self.reserve
    }

    /// The spec it was built from (for the admin API).
    pub fn spec(&self) -> &SpendRuleSpec {
        &self.spec
    }
}

impl SpendRuleSpec {
    /// Checks every field and builds the runtime rule, or returns every problem found.
    pub fn validate(&self) -> Result<SpendRule, Vec<FieldError>> {
        let mut errors = Vec::new();
        validate_id(&self.id, &mut errors);
        let budget_nanos = if !self.budget_usd.is_finite() || self.budget_usd <= 0.0 {
            errors.push(FieldError::new("budget_usd", "must be a positive, finite number of dollars"));
            None
        } else if self.budget_usd > MAX_BUDGET_USD {
            errors.push(FieldError::new("budget_usd", "must be at most 1e9 dollars"));
            None
        } else {
            match usd_to_nanos(self.budget_usd) {
                Some(0) | None => {
                    errors.push(FieldError::new("budget_usd", "rounds to 0 nano-dollars; use at least 1e-9"));
                    None
                }
                Some(n) => Some(n),
            }
        };
        let window = build_window(&self.window, self.window_kind, &self.timezone, &mut errors);
        let dimensions = validate_dimensions(&self.dimensions, &mut errors);
        match (budget_nanos, window, errors.is_empty()) {
            (Some(budget_nanos), Some(window), true) => Ok(SpendRule {
                id: Arc::from(self.id.as_str()),
                budget_nanos,
                window,
                dimensions: Dimensions::new(dimensions),
                action: self.action,
                reserve: self.reserve,
                spec: self.clone(),
            }),
            _ => Err(errors),
        }
    }
}

fn build_window(text: &str, kind: WindowKind, time_zone: &str, errors: &mut Vec<FieldError>) -> Option<Window> {
    let length = parse_window(text).map_err(|e| errors.push(FieldError::new("window", e))).ok();
    let zone_ok = jiff::tz::TimeZone::get(time_zone).is_ok();
    if !zone_ok {
        errors.push(FieldError::new(
            "timezone",
            format!("unknown time zone {time_zone:?}; expected an IANA name such as \"UTC\" or \"Europe/Berlin\""),
        ));
    }
    let length = length?;
    if kind == WindowKind::Rolling && matches!(length, WindowLength::Months(_)) {
        errors.push(FieldError::new(
            "window",
            format!("a rolling window needs a fixed length; {text:?} is calendar months (write e.g. \"30d\")"),
        ));
        return None;
    }
    if !zone_ok {
        return None;
    }
    Window::new(length, kind, time_zone).map_err(|e| errors.push(FieldError::new("window", e.to_string()))).ok()
}

fn validate_id(id: &str, errors: &mut Vec<FieldError>) {
    if id.is_empty() || id.len() > MAX_ID_BYTES {
        errors.push(FieldError::new("id", "must be 1 to 64 bytes long"));
    } else if !id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':')) {
        errors.push(FieldError::new("id", "may contain only ASCII letters, digits, '_', '-', '.' and ':'"));
    }
}

fn validate_dimensions(specs: &[DimensionSpec], errors: &mut Vec<FieldError>) -> Vec<Dimension> {
    let mut seen = HashSet::new();
    let mut dims = Vec::with_capacity(specs.len());
    for (i, spec) in specs.iter().enumerate() {
        let key = match DimensionKey::parse(&spec.key) {
            Ok(key) => Some(key),
            Err(message) => {
                errors.push(FieldError::new(format!("dimensions[{i}].key"), message));
                None
            }
        };
        if !seen.insert(spec.key.as_str()) {
            errors.push(FieldError::new(
                format!("dimensions[{i}].key"),
                format!("dimension {:?} is listed twice", spec.key),
            ));
        }
        let mode = match (spec.mode, &spec.values) {
            (DimensionModeSpec::Split, None) => Some(DimensionMode::Split),
            (DimensionModeSpec::Split, Some(_)) => {
                errors.push(FieldError::new(
                    format!("dimensions[{i}].values"),
                    "a split dimension takes no values (use mode = \"filter\" to restrict)",
                ));
                None
            }
            (DimensionModeSpec::Filter, Some(values)) if !values.is_empty() => {
                Some(DimensionMode::Filter(filter_values(key.as_ref(), values)))
            }
            (DimensionModeSpec::Filter, _) => {
                errors.push(FieldError::new(
                    format!("dimensions[{i}].values"),
                    "a filter dimension needs a non-empty list of values",
                ));
                None
            }
        };
        if let (Some(key), Some(mode)) = (key, mode) {
            dims.push(Dimension { key, mode });
        }
    }
    dims
}

/// The runtime values of a filter: as written, except that `model` values are canonical model names
/// ([`tollgate_accounting::canonical_model`], the catalog's normalisation), so a filter on `gpt-4o-mini` matches the
/// request models `GPT-4o-mini` and `gpt-4o-mini-2024-07-18` once the proxy has normalised them the same way.
fn filter_values(key: Option<&DimensionKey>, values: &[String]) -> Vec<String> {
    if key != Some(&DimensionKey::Model) {
        return values.to_vec();
    }
    let mut canonical: Vec<String> = Vec::with_capacity(values.len());
    for value in values {
        let name = crate::canonical_model(value);
        if !canonical.contains(&name) {
            canonical.push(name);
        }
    }
    canonical
}

/// `per` of a rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RatePer {
    /// Count requests (checked and counted at admission).
    Requests,
    /// Count tokens (counted after completion; admission blocks once the window's count reaches the limit).
    Tokens,
}

/// `[[rate_limits]]` as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateRuleSpec {
    /// Unique id.
    pub id: String,
    /// Requests or tokens per window.
    pub limit: u64,
    /// `requests` or `tokens`.
    pub per: RatePer,
    /// Window length.
    pub window: String,
    /// Filters and splits, as for spend limits.
    #[serde(default)]
    pub dimensions: Vec<DimensionSpec>,
    /// Counted in Redis across every replica (`requests` limits; needs `[redis]`) instead of per replica.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shared: bool,
}

/// A validated rate rule.
#[derive(Debug, Clone)]
pub struct RateRule {
    pub(crate) id: Arc<str>,
    pub(crate) limit: u64,
    pub(crate) per: RatePer,
    pub(crate) window: WindowLength,
    pub(crate) dimensions: Dimensions,
    pub(crate) shared: bool,
    spec: RateRuleSpec,
}

impl RateRule {
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The limit per window.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Requests or tokens.
    pub fn per(&self) -> RatePer {
        self.per
    }

    pub fn window(&self) -> WindowLength {
        self.window
    }

    /// Counted across replicas in Redis.
    pub fn shared(&self) -> bool {
        self.shared
    }

    /// The spec it was built from.
    pub fn spec(&self) -> &RateRuleSpec {
        &self.spec
    }
}

impl RateRuleSpec {
    /// Checks every field and builds the runtime rule, or returns every problem found.
    pub fn validate(&self) -> Result<RateRule, Vec<FieldError>> {
        let mut errors = Vec::new();
        validate_id(&self.id, &mut errors);
        if self.limit == 0 {
            errors.push(FieldError::new("limit", "must be at least 1"));
        }
        if self.per == RatePer::Requests && self.limit > u64::from(u32::MAX) {
            errors.push(FieldError::new("limit", "a requests limit must be at most 4294967295"));
        }
        let window = match parse_window(&self.window) {
            Ok(WindowLength::Months(_)) if self.per == RatePer::Requests => {
                errors.push(FieldError::new(
                    "window",
                    "a requests rate limit needs a fixed length (s, m, h, d, w), not calendar months",
                ));
                None
            }
            Ok(length) => Some(length),
            Err(message) => {
                errors.push(FieldError::new("window", message));
                None
            }
        };
        if self.shared && self.per == RatePer::Tokens {
            errors.push(FieldError::new(
                "shared",
                "only a requests rate limit can be shared; a tokens limit is counted per replica",
            ));
        }
        let dimensions = validate_dimensions(&self.dimensions, &mut errors);
        match window {
            Some(window) if errors.is_empty() => Ok(RateRule {
                id: Arc::from(self.id.as_str()),
                limit: self.limit,
                per: self.per,
                window,
                dimensions: Dimensions::new(dimensions),
                shared: self.shared,
                spec: self.clone(),
            }),
            _ => Err(errors),
        }
    }
}

/// `[[routes]]` as written: a named list of `provider/model` candidates, tried in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    /// Used as `model = "dynamic/<name>"`.
    pub name: String,
    /// `provider/model` strings, most preferred first.
    pub candidates: Vec<String>,
}

/// One validated route candidate.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RouteCandidate {
    /// Provider name (before the first `/`).
    pub provider: String,
    /// Model name (everything after the first `/`, which may itself contain `/`).
    pub model: String,
}

/// A validated route: at least one candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    name: String,
    candidates: Vec<RouteCandidate>,
}

impl Route {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The candidates, most preferred first (never empty).
    pub fn candidates(&self) -> &[RouteCandidate] {
        &self.candidates
    }
}

impl RouteSpec {
    /// Checks every field and builds the runtime route, or returns every problem found.
    pub fn validate(&self) -> Result<Route, Vec<FieldError>> {
        let mut errors = Vec::new();
        if self.name.is_empty() || self.name.len() > MAX_ID_BYTES || self.name.contains('/') {
            errors.push(FieldError::new("name", "must be 1 to 64 bytes long and contain no '/'"));
        }
        if self.candidates.is_empty() {
            errors.push(FieldError::new("candidates", "needs at least one \"provider/model\" candidate"));
        }
        let mut candidates = Vec::with_capacity(self.candidates.len());
        for (i, text) in self.candidates.iter().enumerate() {
            match text.split_once('/') {
                Some((provider, model)) if !provider.is_empty() && !model.is_empty() => {
                    candidates.push(RouteCandidate { provider: provider.to_owned(), model: model.to_owned() });
                }
                _ => errors
                    .push(FieldError::new(format!("candidates[{i}]"), format!("{text:?} is not \"provider/model\""))),
            }
        }
        if errors.is_empty() { Ok(Route { name: self.name.clone(), candidates }) } else { Err(errors) }
    }
}

/// Validates a list of spend rules: each rule's errors get the prefix `[i]`, and a repeated id is an error at
/// `[i].id`. The caller prefixes the list name (`spend_limits`).
pub fn validate_spend_rules(specs: &[SpendRuleSpec]) -> Result<Vec<SpendRule>, Vec<FieldError>> {
    validate_list(specs, "id", |s| &s.id, SpendRuleSpec::validate)
}

/// Validates a list of rate rules like [`validate_spend_rules`].
pub fn validate_rate_rules(specs: &[RateRuleSpec]) -> Result<Vec<RateRule>, Vec<FieldError>> {
    validate_list(specs, "id", |s| &s.id, RateRuleSpec::validate)
}

/// Validates a list of routes like [`validate_spend_rules`] (names must be unique).
pub fn validate_routes(specs: &[RouteSpec]) -> Result<Vec<Route>, Vec<FieldError>> {
    validate_list(specs, "name", |s| &s.name, RouteSpec::validate)
}

fn validate_list<S, R>(
    specs: &[S],
    id_field: &str,
    id: impl Fn(&S) -> &String,
    validate: impl Fn(&S) -> Result<R, Vec<FieldError>>,
) -> Result<Vec<R>, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut out = Vec::with_capacity(specs.len());
    let mut seen = HashSet::new();
    for (i, spec) in specs.iter().enumerate() {
        let prefix = format!("[{i}]");
        if !seen.insert(id(spec).as_str()) {
            errors.push(FieldError::new(
                format!("{prefix}.{id_field}"),
                format!("{:?} is used by an earlier entry", id(spec)),
            ));
        }
        match validate(spec) {
            Ok(rule) => out.push(rule),
            Err(errs) => errors.extend(errs.into_iter().map(|e| e.prefixed(&prefix))),
        }
    }
    if errors.is_empty() { Ok(out) } else { Err(errors) }
}

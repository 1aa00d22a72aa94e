//! Tollgate configuration: load (defaults → TOML → `TOLLGATE_` env), validate, and hand out runtime types.
//!
//! Two shapes, as the house style asks: [`file::FileConfig`] mirrors the TOML file exactly (unknown keys are
//! errors), and [`Config`] is what the rest of the program uses, with every value parsed and checked. Loading
//! collects every error with its dotted key path so an operator fixes them all in one go.

mod cache;
mod file;
mod ingest;
mod provider;
mod redact;
mod secret;
mod units;
mod validate;
mod warnings;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Format, Serialized, Toml};

pub use cache::{Cache, CacheBackend, MIN_CACHE_TTL, Redis};
pub use file::FileConfig;
pub use ingest::{
    AnthropicIngest, AnthropicIngestFile, GoogleIngest, GoogleIngestFile, Ingest, IngestFile, OpenAiIngest,
    OpenAiIngestFile,
};
pub use provider::{AuthStyle, BUILTIN_PROVIDERS, Provider, ProviderFamily};
pub use secret::Secret;
pub use units::{parse_byte_size, parse_duration};
pub use validate::{MAX_ATTEMPTS, MAX_MODEL_CHARS, MAX_RETRY_DELAY};

/// The validated configuration the gateway runs with. `Debug` leaves out the effective file shape (it repeats
/// the runtime values).
#[derive(Clone)]
pub struct Config {
    pub server: Server,
    pub admin: Admin,
    pub database: Database,
    pub logging: Logging,
    pub gateway: Gateway,
    /// Every provider the gateway can reach, by name: the built-ins that reach a remote API, the loopback
    /// built-ins (`ollama`, `vllm`) only when configured, merged with `[providers.*]`.
    pub providers: std::collections::BTreeMap<String, Provider>,
    pub pricing: Pricing,
    pub spend_rules: Vec<tollgate_limits::SpendRule>,
    pub rate_rules: Vec<tollgate_limits::RateRule>,
    pub routes: Vec<tollgate_limits::Route>,
    pub stats: Stats,
    /// `[ingest]`: the providers' usage reports and the reconciliation.
    pub ingest: Ingest,
    pub cache: Cache,
    /// `[redis]`, when configured.
    pub redis: Option<Redis>,
    /// The file shape after `${NAME}` interpolation with every secret hidden: what [`Config::redacted`] prints.
    effective: FileConfig,
}

#[derive(Debug, Clone)]
pub struct Server {
    pub listen: SocketAddr,
    /// Request bodies above this many bytes get 413 `request_too_large`.
    pub max_request_body: u64,
    pub default_provider: String,
    /// How long SIGTERM waits for in-flight requests and streams before the process exits anyway.
    pub shutdown_grace: Duration,
    /// A request body that has not fully arrived this long after the request head is cut (slow senders).
    pub body_timeout: Duration,
    /// Concurrent proxy connections, at least 1; more wait to be accepted.
    pub max_connections: usize,
}

#[derive(Debug, Clone)]
pub struct Admin {
    pub listen: SocketAddr,
    pub token: Option<Secret>,
    pub public_metrics: bool,
}

#[derive(Debug, Clone)]
pub struct Database {
    pub url: Secret,
    pub flush_interval: Duration,
    pub retention: Duration,
    pub spill_path: PathBuf,
    pub spill_max_bytes: u64,
    // Store hardening.
    /// `database.spend_scan_max_rows`, at least 1.
    pub spend_scan_max_rows: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
}

#[derive(Debug, Clone)]
pub struct Logging {
    /// `None`: pretty on a terminal, JSON otherwise.
    pub format: Option<LogFormat>,
    pub payloads: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backoff {
    Constant,
    Linear,
    Exponential,
}

impl std::str::FromStr for Backoff {
    type Err = UnknownBackoff;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "constant" => Ok(Backoff::Constant),
            "linear" => Ok(Backoff::Linear),
            "exponential" => Ok(Backoff::Exponential),
            other => Err(UnknownBackoff(other.to_string())),
        }
    }
}

/// A backoff name that is none of `constant`, `linear`, `exponential`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not one of constant, linear, exponential")]
pub struct UnknownBackoff(pub String);

#[derive(Debug, Clone)]
pub struct Gateway {
    pub auth_token: Option<Secret>,
    pub metadata_max_entries: usize,
    /// Default time to the first byte of the upstream response (`cf-aig-request-timeout` overrides).
    pub request_timeout: Duration,
    /// Default attempts per request, 1..=5 (`cf-aig-max-attempts` overrides).
    pub max_attempts: u32,
    pub retry_delay: Duration,
    pub backoff: Backoff,
    /// After a client disconnects mid-stream, how long and how many bytes the gateway keeps reading the
    /// upstream to learn the real usage.
    pub disconnect_drain_timeout: Duration,
    pub disconnect_drain_max_bytes: u64,
    /// Whether usage is read from responses (always, but for measuring what reading it costs).
    pub accounting: bool,
    /// The largest `cf-aig-custom-cost` a request may carry, in USD as written (positive, at most 1e9)...
    pub max_custom_cost_usd: f64,
    /// ...and in nano-dollars, what the proxy compares with (at least 1).
    pub max_custom_cost_nanos: u64,
    /// Which credentials may send `cf-aig-custom-cost`, without duplicates; empty = nobody.
    pub custom_cost_from: Vec<CredentialKind>,
    /// The longest `model` name accepted, in characters (1..=[`MAX_MODEL_CHARS`]).
    pub max_model_chars: usize,
}

impl Gateway {
    /// Whether a request authenticated with `kind` may set its own price with `cf-aig-custom-cost`.
    pub fn custom_cost_allowed(&self, kind: CredentialKind) -> bool {
        self.custom_cost_from.contains(&kind)
    }
}

/// The kind of credential a proxy request authenticated with (`gateway.custom_cost_from` lists these).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CredentialKind {
    /// `gateway.auth_token`.
    GatewayToken,
    /// A virtual key (`tg_<id>_<secret>`).
    VirtualKey,
    /// A validated JWT identity.
    Jwt,
}

impl CredentialKind {
    /// The name written in the configuration: `gateway_token`, `virtual_key`, `jwt`.
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::GatewayToken => "gateway_token",
            CredentialKind::VirtualKey => "virtual_key",
            CredentialKind::Jwt => "jwt",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "gateway_token" => Some(CredentialKind::GatewayToken),
            "virtual_key" => Some(CredentialKind::VirtualKey),
            "jwt" => Some(CredentialKind::Jwt),
            _ => None,
        }
    }
}

/// What happens to a model with no known price while a spend rule, key budget or credit account applies to it
/// (`pricing.unpriced`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnpricedPolicy {
    /// 403 `unpriced_model`: a model nobody can price cannot be held to a budget.
    Block,
    /// Passes and is logged with `cost_source = "unpriced"` (costs $0 against every budget).
    Allow,
}

#[derive(Debug, Clone)]
pub struct Pricing {
    pub file: Option<PathBuf>,
    pub unpriced: UnpricedPolicy,
}

/// What `/api/stats` reports against (`[stats]`).
#[derive(Debug, Clone)]
pub struct Stats {
    /// The budget the headline shows, in USD (non-negative).
    pub cap_usd: f64,
    /// The fixed UTC window spend is counted in; `None` for `lifetime` (all time).
    pub window: Option<tollgate_limits::Window>,
}

/// One problem in the configuration, with the dotted key path it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() { f.write_str(&self.message) } else { write!(f, "{}: {}", self.path, self.message) }
    }
}

/// Every problem found while loading; `Display` prints one per line.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub issues: Vec<ConfigIssue>,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "invalid configuration ({} problem(s)):", self.issues.len())?;
        for issue in &self.issues {
            writeln!(f, "  {issue}")?;
        }
        Ok(())
    }
}

impl ConfigError {
    fn one(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self { issues: vec![ConfigIssue { path: path.into(), message: message.into() }] }
    }
}

/// Where the configuration comes from.
#[derive(Debug, Clone, Default)]
pub struct Source {
    /// `--config FILE`; when `None`, `tollgate.toml` in the working directory is read if present.
    pub file: Option<PathBuf>,
    /// The environment to read `TOLLGATE_*` overrides and `${NAME}` values from; `None` = the process's.
    pub env: Option<Vec<(String, String)>>,
}

impl Config {
    /// Loads defaults, then the TOML file, then `TOLLGATE_` environment overrides, and validates the result.
    pub fn load(source: &Source) -> Result<Self, ConfigError> {
        let file = source.file.clone().or_else(|| {
            let default = Path::new("tollgate.toml");
            default.exists().then(|| default.to_path_buf())
        });
        let mut figment = Figment::from(Serialized::defaults(FileConfig::default()));
        if let Some(path) = &file {
            if !path.exists() {
                return Err(ConfigError::one("", format!("config file {} does not exist", path.display())));
            }
            figment = figment.merge(Toml::file(path));
        }
        let env: Vec<(String, String)> = source.env.clone().unwrap_or_else(|| std::env::vars().collect());
        // Only `TOLLGATE_SECTION__KEY` names are overrides: every key lives in a section, and names without
        // `__` belong to others (Kubernetes sets TOLLGATE_PORT, TOLLGATE_SERVICE_HOST for a Service named
        // tollgate).
        let overrides: Vec<(String, String)> =
            env.iter().filter(|(k, _)| k.starts_with("TOLLGATE_") && k.contains("__")).cloned().collect();
        for (key, value) in &overrides {
            let path = key["TOLLGATE_".len()..].to_ascii_lowercase().replace("__", ".");
            if path.is_empty() {
                continue;
            }
            figment = figment.merge(Serialized::global(&path, value.as_str()));
        }
        Self::from_figment(&figment, &env)
    }

    /// Validates an in-memory TOML document (tests, `check-config` of a string).
    pub fn from_toml(text: &str, env: &[(String, String)]) -> Result<Self, ConfigError> {
        let figment = Figment::from(Serialized::defaults(FileConfig::default())).merge(Toml::string(text));
        Self::from_figment(&figment, env)
    }

    fn from_figment(figment: &Figment, env: &[(String, String)]) -> Result<Self, ConfigError> {
        let mut value: figment::value::Value = figment.extract().map_err(figment_error)?;
        let mut issues = Vec::new();
        let mut sources = validate::Sources::new();
        interpolate(&mut value, "", env, &mut Interpolation { issues: &mut issues, sources: &mut sources });
        // serde stops at the first shape error (unknown key, wrong type). To report every problem in one run,
        // each offending key is noted and taken out, so its default applies, and the rest is checked again.
        let file = loop {
            // Lossy: environment values arrive as strings and become the number or boolean a field expects.
            match Figment::from(Serialized::defaults(&value)).extract_lossy::<FileConfig>() {
                Ok(file) => break Some(file),
                Err(errors) => {
                    let mut removed = false;
                    for error in errors {
                        let path = error.path.clone();
                        issues.push(ConfigIssue { path: path.join("."), message: error.kind.to_string() });
                        removed |= remove_path(&mut value, &path);
                    }
                    if !removed || issues.len() > 100 {
                        break None;
                    }
                }
            }
        };
        match file.map(|file| validate::validate(file, &sources)) {
            Some(Ok(config)) if issues.is_empty() => Ok(config),
            Some(Err(more)) => {
                let fresh: Vec<ConfigIssue> =
                    more.issues.into_iter().filter(|i| !issues.iter().any(|seen| seen.path == i.path)).collect();
                issues.extend(fresh);
                Err(ConfigError { issues })
            }
            _ => Err(ConfigError { issues }),
        }
    }

    pub fn listen(&self) -> SocketAddr {
        self.server.listen
    }
}

/// Removes the value at `path` (e.g. `["server", "bogus"]`); `true` if something was removed.
fn remove_path(value: &mut figment::value::Value, path: &[String]) -> bool {
    use figment::value::Value;
    let Some((last, parents)) = path.split_last() else { return false };
    let mut current = value;
    for key in parents {
        match current {
            Value::Dict(_, dict) => match dict.get_mut(key) {
                Some(child) => current = child,
                None => return false,
            },
            Value::Array(_, items) => match key.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                Some(child) => current = child,
                None => return false,
            },
            _ => return false,
        }
    }
    match current {
        Value::Dict(_, dict) => dict.remove(last).is_some(),
        _ => false,
    }
}

fn figment_error(err: figment::Error) -> ConfigError {
    let issues = err
        .into_iter()
        .map(|e| {
            let path = e.path.join(".");
            ConfigIssue { path, message: e.kind.to_string() }
        })
        .collect();
    ConfigError { issues }
}

/// What interpolation reports: unset variables, and which variable each key was read from.
struct Interpolation<'a> {
    issues: &'a mut Vec<ConfigIssue>,
    sources: &'a mut validate::Sources,
}

/// Whether an interpolated value stays or the key is taken out (as if it were not written).
#[derive(PartialEq, Eq)]
enum Interpolated {
    Keep,
    Drop,
}

/// Replaces every string written exactly `${NAME}` with the environment variable NAME; an unset one is an
/// error. `${NAME:-fallback}` takes `fallback` when NAME is unset or empty, and when the result is empty the key
/// is left out, as if not written: the explicit way to say "this secret is optional" (an empty plain `${NAME}`
/// secret is an error).
fn interpolate(
    value: &mut figment::value::Value,
    path: &str,
    env: &[(String, String)],
    out: &mut Interpolation<'_>,
) -> Interpolated {
    use figment::value::Value;
    match value {
        Value::String(_, s) => {
            let Some(inner) = s.strip_prefix("${").and_then(|rest| rest.strip_suffix('}')) else {
                return Interpolated::Keep;
            };
            let optional = inner.contains(":-");
            let (name, fallback) = match inner.split_once(":-") {
                Some((name, fallback)) => (name.to_string(), Some(fallback.to_string())),
                None => (inner.to_string(), None),
            };
            let found = env.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone());
            match (found, fallback) {
                (Some(v), Some(fallback)) if v.is_empty() => *s = fallback,
                (Some(v), _) => *s = v,
                (None, Some(fallback)) => *s = fallback,
                (None, None) => {
                    out.issues.push(ConfigIssue {
                        path: path.to_string(),
                        message: format!("environment variable {name} is not set (the value is written ${{{name}}})"),
                    });
                    return Interpolated::Keep;
                }
            }
            out.sources.insert(path.to_string(), name);
            if s.is_empty() && optional { Interpolated::Drop } else { Interpolated::Keep }
        }
        Value::Dict(_, dict) => {
            let mut dropped = Vec::new();
            for (key, child) in dict.iter_mut() {
                let child_path = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                if interpolate(child, &child_path, env, out) == Interpolated::Drop {
                    dropped.push(key.clone());
                }
            }
            for key in dropped {
                dict.remove(&key);
            }
            Interpolated::Keep
        }
        Value::Array(_, items) => {
            for (i, child) in items.iter_mut().enumerate() {
                interpolate(child, &format!("{path}[{i}]"), env, out);
            }
            Interpolated::Keep
        }
        _ => Interpolated::Keep,
    }
}

#[cfg(test)]
mod tests;

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("server", &self.server)
            .field("admin", &self.admin)
            .field("database", &self.database)
            .field("logging", &self.logging)
            .field("gateway", &self.gateway)
            .field("providers", &self.providers)
            .field("pricing", &self.pricing)
            .field("spend_rules", &self.spend_rules)
            .field("rate_rules", &self.rate_rules)
            .field("routes", &self.routes)
            .field("stats", &self.stats)
            .field("ingest", &self.ingest)
            .finish_non_exhaustive()
    }
}

//! The configuration file's shape, key for key; every section has defaults so an empty file is valid.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tollgate_limits::{RateRuleSpec, RouteSpec, SpendRuleSpec};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileConfig {
    pub server: ServerFile,
    pub admin: AdminFile,
    pub database: DatabaseFile,
    pub logging: LoggingFile,
    pub gateway: GatewayFile,
    pub providers: BTreeMap<String, ProviderFile>,
    pub pricing: PricingFile,
    /// The rule and route shapes belong to the limits engine (the admin API takes the same JSON).
    pub spend_limits: Vec<SpendRuleSpec>,
    pub rate_limits: Vec<RateRuleSpec>,
    pub routes: Vec<RouteSpec>,
    pub stats: StatsFile,
    pub ingest: crate::ingest::IngestFile,
    pub cache: CacheFile,
    /// Absent unless configured: the cache's `redis` backend and shared rate limits need it.
    pub redis: Option<RedisFile>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerFile {
    pub listen: String,
    pub max_request_body: String,
    pub default_provider: String,
    pub shutdown_grace: String,
    // Slow clients and connection floods.
    /// A request body that has not fully arrived this long after the request head is cut.
    pub body_timeout: String,
    /// Concurrent proxy connections; more wait to be accepted.
    pub max_connections: u64,
}

impl Default for ServerFile {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:8080".into(),
            max_request_body: "25MiB".into(),
            default_provider: "openai".into(),
            shutdown_grace: "30s".into(),
            body_timeout: "60s".into(),
            max_connections: 10_000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminFile {
    pub listen: String,
    pub token: Option<String>,
    pub public_metrics: bool,
}

impl Default for AdminFile {
    fn default() -> Self {
        Self { listen: "127.0.0.1:8081".into(), token: None, public_metrics: true }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseFile {
    pub url: String,
    pub flush_interval: String,
    pub retention: String,
    /// Where records go while the database cannot take them (append-only JSON lines, replayed once it can).
    pub spill_path: String,
    pub spill_max_bytes: String,
    // Store hardening.
    /// Most log rows `/spend` reads when grouped by a metadata key the rollups do not count (oldest first); the
    /// answer says `truncated` when more rows had the key.
    pub spend_scan_max_rows: u64,
}

impl Default for DatabaseFile {
    fn default() -> Self {
        Self {
            url: "sqlite://tollgate.db".into(),
            flush_interval: "1s".into(),
            retention: "90d".into(),
            spill_path: "tollgate-spill.jsonl".into(),
            spill_max_bytes: "1GiB".into(),
            spend_scan_max_rows: 100_000,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoggingFile {
    /// `json` or `pretty`; unset = pretty on a terminal, JSON otherwise.
    pub format: Option<String>,
    pub payloads: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayFile {
    pub auth_token: Option<String>,
    pub metadata_max_entries: u64,
    pub request_timeout: String,
    pub max_attempts: u64,
    pub retry_delay: String,
    pub backoff: String,
    pub disconnect_drain_timeout: String,
    pub disconnect_drain_max_bytes: String,
    /// `false` turns off reading usage from responses (for measuring its cost only: nothing is priced then).
    pub accounting: bool,
    // Money and input from the client.
    /// The largest `cf-aig-custom-cost` a request may carry, in USD.
    pub max_custom_cost_usd: f64,
    /// Which credentials may send `cf-aig-custom-cost`: `gateway_token`, `virtual_key`, `jwt`. A list, or (from
    /// the environment) one comma-separated string; empty = nobody.
    #[serde(deserialize_with = "list_or_comma_separated")]
    pub custom_cost_from: Vec<String>,
    /// The longest `model` name accepted, in characters.
    pub max_model_chars: u64,
}

impl Default for GatewayFile {
    fn default() -> Self {
        Self {
            auth_token: None,
            metadata_max_entries: 20,
            request_timeout: "600s".into(),
            max_attempts: 1,
            retry_delay: "500ms".into(),
            backoff: "exponential".into(),
            disconnect_drain_timeout: "60s".into(),
            disconnect_drain_max_bytes: "32MiB".into(),
            accounting: true,
            max_custom_cost_usd: 100.0,
            custom_cost_from: vec!["gateway_token".into()],
            max_model_chars: 256,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProviderFile {
    /// Only for names that are not built in: `openai-compatible`.
    pub kind: Option<String>,
    pub base_url: Option<String>,
    pub api_key: Option<String>,
    pub zdr_base_url: Option<String>,
    pub hosted: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PricingFile {
    pub file: Option<String>,
    /// `block` or `allow`: what happens to a model with no known price while a budget applies to it.
    pub unpriced: String,
}

impl Default for PricingFile {
    fn default() -> Self {
        Self { file: None, unpriced: "block".into() }
    }
}

/// A list of strings, written as a TOML array or as one comma-separated string (what an environment variable
/// can carry: `TOLLGATE_GATEWAY__CUSTOM_COST_FROM=gateway_token,jwt`; an empty string is the empty list).
fn list_or_comma_separated<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrString {
        List(Vec<String>),
        String(String),
    }
    Ok(match ListOrString::deserialize(deserializer)? {
        ListOrString::List(items) => items,
        ListOrString::String(text) => {
            text.split(',').map(str::trim).filter(|item| !item.is_empty()).map(str::to_owned).collect()
        }
    })
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatsFile {
    pub cap_usd: f64,
    pub window: String,
}

impl Default for StatsFile {
    fn default() -> Self {
        Self { cap_usd: 0.0, window: "lifetime".into() }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheFile {
    /// Cache every eligible request; when false a request opts in with `cf-aig-cache-ttl` or `cf-aig-cache-key`.
    pub enabled: bool,
    pub backend: String,
    pub default_ttl: String,
    pub max_ttl: String,
    pub max_bytes: String,
    pub max_entry_bytes: String,
    pub coalesce: bool,
    /// Most requests that may wait on one in-flight request; more go upstream themselves.
    pub max_followers: u64,
}

impl Default for CacheFile {
    fn default() -> Self {
        Self {
            enabled: false,
            backend: "memory".into(),
            default_ttl: "5m".into(),
            max_ttl: "30d".into(),
            max_bytes: "256MiB".into(),
            max_entry_bytes: "8MiB".into(),
            coalesce: true,
            max_followers: 64,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisFile {
    pub url: String,
    pub key_prefix: String,
    /// Longest wait for one Redis call; past it the call counts as Redis being away.
    pub timeout: String,
}

impl Default for RedisFile {
    fn default() -> Self {
        Self { url: "redis://127.0.0.1:6379/0".into(), key_prefix: "tollgate:".into(), timeout: "250ms".into() }
    }
}

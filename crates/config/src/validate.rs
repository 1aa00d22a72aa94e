//! Turns the file shape into the runtime [`Config`], collecting every problem with its key path.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use url::Url;

use crate::file::FileConfig;
use crate::provider::{BUILTIN_PROVIDERS, Provider, ProviderFamily};
use crate::units::{parse_byte_size, parse_duration};
use crate::{
    Admin, Backoff, Config, ConfigError, ConfigIssue, Database, Gateway, LogFormat, Logging, Pricing, Secret, Server,
};

/// Attempts and retry delay are capped as Cloudflare caps its `cf-aig-max-attempts` / `cf-aig-retry-delay`.
pub const MAX_ATTEMPTS: u32 = 5;
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);

#[derive(Default)]
struct Issues(Vec<ConfigIssue>);

impl Issues {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigIssue { path: path.into(), message: message.into() });
    }

    fn check<T>(&mut self, path: &str, result: Result<T, String>) -> Option<T> {
        result.map_err(|message| self.push(path, message)).ok()
    }

    fn addr(&mut self, path: &str, text: &str) -> Option<SocketAddr> {
        self.check(path, text.parse().map_err(|_| format!("{text:?} is not an address like 0.0.0.0:8080")))
    }

    /// Takes a limits-engine validation result, prefixing its errors with the list's key.
    fn rules<T>(&mut self, list: &str, result: Result<Vec<T>, Vec<tollgate_limits::FieldError>>) -> Vec<T> {
        result.unwrap_or_else(|errors| {
            for error in errors {
                let sep = if error.path.starts_with('[') || error.path.is_empty() { "" } else { "." };
                self.push(format!("{list}{sep}{}", error.path), error.message);
            }
            Vec::new()
        })
    }

    fn duration(&mut self, path: &str, text: &str) -> Option<Duration> {
        self.check(path, parse_duration(text))
    }

    fn url(&mut self, path: &str, text: &str) -> Option<Url> {
        let url = self.check(path, Url::parse(text).map_err(|e| format!("{text:?} is not a URL: {e}")))?;
        if url.scheme() != "http" && url.scheme() != "https" {
            self.push(path, format!("{text:?} must be an http or https URL"));
            return None;
        }
        Some(url)
    }
}

/// A secret written as an empty string is treated as unset.
fn secret(value: Option<&String>) -> Option<Secret> {
    value.filter(|v| !v.is_empty()).map(Secret::new)
}

pub(crate) fn validate(file: FileConfig) -> Result<Config, ConfigError> {
    let mut issues = Issues::default();

    let listen = issues.addr("server.listen", &file.server.listen);
    let max_request_body = issues.check("server.max_request_body", parse_byte_size(&file.server.max_request_body));
    let shutdown_grace = issues.duration("server.shutdown_grace", &file.server.shutdown_grace);

    let admin_listen = issues.addr("admin.listen", &file.admin.listen);
    let admin_token = secret(file.admin.token.as_ref());
    if let Some(addr) = admin_listen
        && !addr.ip().is_loopback()
        && admin_token.is_none()
    {
        issues.push("admin.token", format!("is required when admin.listen ({addr}) is beyond loopback"));
    }

    let flush_interval = issues.duration("database.flush_interval", &file.database.flush_interval);
    let retention = issues.duration("database.retention", &file.database.retention);
    let spill_max_bytes = issues.check("database.spill_max_bytes", parse_byte_size(&file.database.spill_max_bytes));
    let spend_scan_max_rows = file.database.spend_scan_max_rows;
    if spend_scan_max_rows == 0 {
        issues.push("database.spend_scan_max_rows", "must be at least 1");
    }
    if file.database.spill_path.is_empty() {
        issues.push("database.spill_path", "must name a file");
    }
    let db_url = &file.database.url;
    if !(db_url.starts_with("sqlite:") || db_url.starts_with("postgres://") || db_url.starts_with("postgresql://")) {
        issues.push("database.url", "must start with sqlite:, postgres:// or postgresql://");
    }

    let format = match file.logging.format.as_deref() {
        None => None,
        Some("json") => Some(LogFormat::Json),
        Some("pretty") => Some(LogFormat::Pretty),
        Some(other) => {
            issues.push("logging.format", format!("{other:?} is not one of \"json\", \"pretty\""));
            None
        }
    };

    let gw = &file.gateway;
    let metadata_max_entries = if gw.metadata_max_entries == 0 || gw.metadata_max_entries > 1_000 {
        issues.push("gateway.metadata_max_entries", "must be between 1 and 1000");
        None
    } else {
        Some(gw.metadata_max_entries as usize)
    };
    let request_timeout = issues.duration("gateway.request_timeout", &gw.request_timeout);
    let max_attempts = if (1..=u64::from(MAX_ATTEMPTS)).contains(&gw.max_attempts) {
        Some(gw.max_attempts as u32)
    } else {
        issues.push("gateway.max_attempts", format!("must be between 1 and {MAX_ATTEMPTS}"));
        None
    };
    let retry_delay = issues.duration("gateway.retry_delay", &gw.retry_delay).and_then(|d| {
        if d > MAX_RETRY_DELAY {
            issues.push("gateway.retry_delay", "must be at most 5000ms");
            None
        } else {
            Some(d)
        }
    });
    let backoff = match gw.backoff.as_str() {
        "constant" => Some(Backoff::Constant),
        "linear" => Some(Backoff::Linear),
        "exponential" => Some(Backoff::Exponential),
        other => {
            issues.push("gateway.backoff", format!("{other:?} is not one of constant, linear, exponential"));
            None
        }
    };
    let drain_timeout = issues.duration("gateway.disconnect_drain_timeout", &gw.disconnect_drain_timeout);
    let drain_bytes =
        issues.check("gateway.disconnect_drain_max_bytes", parse_byte_size(&gw.disconnect_drain_max_bytes));

    let providers = providers(&file, &mut issues);
    if !providers.contains_key(&file.server.default_provider) {
        issues.push(
            "server.default_provider",
            format!("{:?} is not a configured or built-in provider", file.server.default_provider),
        );
    }

    let routes = routes(&file, &providers, &mut issues);
    let spend_rules = issues.rules("spend_limits", tollgate_limits::validate_spend_rules(&file.spend_limits));
    let rate_rules = issues.rules("rate_limits", tollgate_limits::validate_rate_rules(&file.rate_limits));

    if file.stats.cap_usd < 0.0 || !file.stats.cap_usd.is_finite() {
        issues.push("stats.cap_usd", "must be a non-negative number");
    }

    let pricing = Pricing { file: file.pricing.file.as_ref().map(Into::into) };

    if !issues.0.is_empty() {
        return Err(ConfigError { issues: issues.0 });
    }
    // Every Option below is Some: a None pushed an issue and returned above.
    let (
        Some(listen),
        Some(max_request_body),
        Some(shutdown_grace),
        Some(admin_listen),
        Some(flush_interval),
        Some(retention),
        Some(metadata_max_entries),
        Some(request_timeout),
        Some(max_attempts),
        Some(retry_delay),
        Some(backoff),
        Some(disconnect_drain_timeout),
        Some(disconnect_drain_max_bytes),
        Some(spill_max_bytes),
    ) = (
        listen,
        max_request_body,
        shutdown_grace,
        admin_listen,
        flush_interval,
        retention,
        metadata_max_entries,
        request_timeout,
        max_attempts,
        retry_delay,
        backoff,
        drain_timeout,
        drain_bytes,
        spill_max_bytes,
    )
    else {
        return Err(ConfigError::one("", "internal: a value failed to validate without an issue"));
    };
    Ok(Config {
        server: Server {
            listen,
            max_request_body,
            default_provider: file.server.default_provider.clone(),
            shutdown_grace,
        },
        admin: Admin { listen: admin_listen, token: admin_token, public_metrics: file.admin.public_metrics },
        database: Database {
            url: Secret::new(file.database.url.clone()),
            flush_interval,
            retention,
            spill_path: file.database.spill_path.clone().into(),
            spill_max_bytes,
            spend_scan_max_rows,
        },
        logging: Logging { format, payloads: file.logging.payloads },
        gateway: Gateway {
            auth_token: secret(gw.auth_token.as_ref()),
            metadata_max_entries,
            request_timeout,
            max_attempts,
            retry_delay,
            backoff,
            disconnect_drain_timeout,
            disconnect_drain_max_bytes,
            accounting: gw.accounting,
        },
        providers,
        pricing,
        spend_rules,
        rate_rules,
        routes,
        file,
    })
}

fn providers(file: &FileConfig, issues: &mut Issues) -> BTreeMap<String, Provider> {
    let mut out = BTreeMap::new();
    for &(name, family, base, hosted) in BUILTIN_PROVIDERS {
        let base_url = base.and_then(|b| Url::parse(b).ok());
        out.insert(
            name.to_string(),
            Provider { name: name.to_string(), family, base_url, api_key: None, zdr_base_url: None, hosted },
        );
    }
    for (name, entry) in &file.providers {
        let path = format!("providers.{name}");
        if matches!(name.as_str(), "v1" | "compat" | "dynamic") || name.is_empty() || name.contains('/') {
            issues.push(&path, format!("{name:?} is reserved or not a valid provider name"));
            continue;
        }
        let builtin = out.get(name).cloned();
        let family = match (entry.kind.as_deref(), &builtin) {
            (None, Some(b)) => b.family,
            (Some("openai-compatible"), None) => ProviderFamily::OpenAi,
            (Some(kind), Some(_)) => {
                issues.push(format!("{path}.kind"), format!("{name} is built in; remove kind ({kind:?})"));
                continue;
            }
            (Some(kind), None) => {
                issues.push(format!("{path}.kind"), format!("{kind:?} is not a known kind; use \"openai-compatible\""));
                continue;
            }
            (None, None) => {
                issues.push(
                    format!("{path}.kind"),
                    "is required for a provider that is not built in (\"openai-compatible\")",
                );
                continue;
            }
        };
        let base_url = match &entry.base_url {
            Some(text) => issues.url(&format!("{path}.base_url"), text),
            None => builtin.as_ref().and_then(|b| b.base_url.clone()),
        };
        if base_url.is_none() && builtin.is_none() {
            issues.push(format!("{path}.base_url"), "is required for an openai-compatible provider");
        }
        let zdr_base_url = entry.zdr_base_url.as_ref().and_then(|t| issues.url(&format!("{path}.zdr_base_url"), t));
        let hosted = entry.hosted.or(builtin.as_ref().map(|b| b.hosted)).unwrap_or(false);
        out.insert(
            name.clone(),
            Provider {
                name: name.clone(),
                family,
                base_url,
                api_key: secret(entry.api_key.as_ref()),
                zdr_base_url,
                hosted,
            },
        );
    }
    out
}

fn routes(
    file: &FileConfig,
    providers: &BTreeMap<String, Provider>,
    issues: &mut Issues,
) -> Vec<tollgate_limits::Route> {
    let routes = issues.rules("routes", tollgate_limits::validate_routes(&file.routes));
    for (i, route) in routes.iter().enumerate() {
        for (j, candidate) in route.candidates().iter().enumerate() {
            if !providers.contains_key(&candidate.provider) {
                issues.push(
                    format!("routes[{i}].candidates[{j}]"),
                    format!("{:?} is not a configured or built-in provider", candidate.provider),
                );
            }
        }
    }
    routes
}

//! Turns the file shape into the runtime [`Config`], collecting every problem with its key path.

mod cache;
mod ingest;
mod issues;
mod providers;

use std::time::Duration;

use tollgate_limits::{Window, parse_window, usd_to_nanos};

use crate::file::{AdminFile, DatabaseFile, FileConfig, GatewayFile, LoggingFile, PricingFile, ServerFile, StatsFile};
use crate::units::parse_byte_size;
use crate::{
    Admin, Backoff, Config, ConfigError, CredentialKind, Database, Gateway, LogFormat, Logging, Pricing, Server, Stats,
    UnpricedPolicy, redact,
};
use issues::Issues;
pub(crate) use issues::Sources;
use providers::{providers, routes, unknown_provider};

/// Bounds of `gateway.max_model_chars`: a name longer than 4096 characters is no model name anywhere.
pub const MAX_MODEL_CHARS: u64 = 4_096;

/// The most attempts per request, in `gateway.max_attempts` and `cf-aig-max-attempts`: Cloudflare's cap, so
/// requests written for it behave the same here.
pub const MAX_ATTEMPTS: u32 = 5;
/// The longest wait between attempts, in `gateway.retry_delay` and `cf-aig-retry-delay` (Cloudflare's cap too).
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);

/// Every section in turn, each adding its problems to one list (as Vector's `compile` runs its checks); the
/// runtime [`Config`] only when the list stays empty. Issues come in the order of the sections.
pub(crate) fn validate(file: FileConfig, sources: &Sources) -> Result<Config, ConfigError> {
    let mut issues = Issues::default();
    let server = server(&file.server, &mut issues);
    let admin = admin(&file.admin, sources, &mut issues);
    let database = database(&file.database, sources, &mut issues);
    let logging = logging(&file.logging, &mut issues);
    let gateway = gateway(&file.gateway, sources, &mut issues);
    let providers = providers(&file, sources, &mut issues);
    if !providers.contains_key(&file.server.default_provider) {
        issues.push("server.default_provider", unknown_provider(&file.server.default_provider));
    }
    let routes = routes(&file, &providers, &mut issues);
    let spend_rules = issues.rules("spend_limits", tollgate_limits::validate_spend_rules(&file.spend_limits));
    let rate_rules = issues.rules("rate_limits", tollgate_limits::validate_rate_rules(&file.rate_limits));
    if file.redis.is_none() {
        for (i, _) in file.rate_limits.iter().enumerate().filter(|(_, rule)| rule.shared) {
            issues.push(format!("rate_limits[{i}].shared"), "a shared rate limit is counted in Redis: add [redis]");
        }
    }
    let stats = stats(&file.stats, &mut issues);
    let pricing = pricing(&file.pricing, &mut issues);
    let ingest = ingest::ingest(&file.ingest, sources, &mut issues);
    let redis = file.redis.as_ref().and_then(|redis| cache::redis(redis, sources, &mut issues));
    let cache = cache::cache(&file.cache, file.redis.is_some(), &mut issues);
    if !issues.0.is_empty() {
        return Err(ConfigError { issues: issues.0 });
    }
    // A section is None only after pushing an issue, so with none pushed every section is Some.
    let (
        Some(server),
        Some(admin),
        Some(database),
        Some(gateway),
        Some(stats),
        Some(pricing),
        Some(ingest),
        Some(cache),
    ) = (server, admin, database, gateway, stats, pricing, ingest, cache)
    else {
        return Err(ConfigError::one("", "internal: a value failed to validate without an issue"));
    };
    Ok(Config {
        server,
        admin,
        database,
        logging,
        gateway,
        providers,
        pricing,
        spend_rules,
        rate_rules,
        routes,
        stats,
        ingest,
        cache,
        redis,
        effective: redact::file(file),
    })
}

// Each section below checks every key before it returns, so one bad key never hides another: the values are
// computed (pushing an issue for each bad one) and only then unwrapped with `?` into the runtime type.

fn server(file: &ServerFile, issues: &mut Issues) -> Option<Server> {
    let listen = issues.addr("server.listen", &file.listen);
    let max_request_body = issues.check("server.max_request_body", parse_byte_size(&file.max_request_body));
    let shutdown_grace = issues.duration("server.shutdown_grace", &file.shutdown_grace);
    let body_timeout = issues.duration("server.body_timeout", &file.body_timeout).and_then(|d| {
        if d.is_zero() {
            issues.push("server.body_timeout", "must be longer than 0s");
            None
        } else {
            Some(d)
        }
    });
    let max_connections = match usize::try_from(file.max_connections) {
        Ok(n) if n >= 1 => Some(n),
        _ => {
            issues.push("server.max_connections", "must be at least 1");
            None
        }
    };
    Some(Server {
        listen: listen?,
        max_request_body: max_request_body?,
        default_provider: file.default_provider.clone(),
        shutdown_grace: shutdown_grace?,
        body_timeout: body_timeout?,
        max_connections: max_connections?,
    })
}

fn admin(file: &AdminFile, sources: &Sources, issues: &mut Issues) -> Option<Admin> {
    let listen = issues.addr("admin.listen", &file.listen);
    let token = issues.secret("admin.token", file.token.as_ref(), sources);
    if let Some(addr) = listen
        && !addr.ip().is_loopback()
        && file.token.is_none()
    {
        issues.push("admin.token", format!("is required when admin.listen ({addr}) is beyond loopback"));
    }
    Some(Admin { listen: listen?, token, public_metrics: file.public_metrics })
}

fn database(file: &DatabaseFile, sources: &Sources, issues: &mut Issues) -> Option<Database> {
    let flush_interval = issues.duration("database.flush_interval", &file.flush_interval);
    let retention = issues.duration("database.retention", &file.retention);
    let spill_max_bytes = issues.check("database.spill_max_bytes", parse_byte_size(&file.spill_max_bytes));
    if file.spend_scan_max_rows == 0 {
        issues.push("database.spend_scan_max_rows", "must be at least 1");
    }
    if file.spill_path.is_empty() {
        issues.push("database.spill_path", "must name a file");
    }
    let url = issues.secret("database.url", Some(&file.url), sources);
    if url.is_some()
        && !(file.url.starts_with("sqlite:")
            || file.url.starts_with("postgres://")
            || file.url.starts_with("postgresql://"))
    {
        issues.push("database.url", "must start with sqlite:, postgres:// or postgresql://");
    }
    Some(Database {
        url: url?,
        flush_interval: flush_interval?,
        retention: retention?,
        spill_path: file.spill_path.clone().into(),
        spill_max_bytes: spill_max_bytes?,
        spend_scan_max_rows: file.spend_scan_max_rows,
    })
}

fn logging(file: &LoggingFile, issues: &mut Issues) -> Logging {
    let format = match file.format.as_deref() {
        None => None,
        Some("json") => Some(LogFormat::Json),
        Some("pretty") => Some(LogFormat::Pretty),
        Some(other) => {
            issues.push("logging.format", format!("{other:?} is not one of \"json\", \"pretty\""));
            None
        }
    };
    Logging { format, payloads: file.payloads }
}

fn gateway(file: &GatewayFile, sources: &Sources, issues: &mut Issues) -> Option<Gateway> {
    let metadata_max_entries = if file.metadata_max_entries == 0 || file.metadata_max_entries > 1_000 {
        issues.push("gateway.metadata_max_entries", "must be between 1 and 1000");
        None
    } else {
        usize::try_from(file.metadata_max_entries).ok()
    };
    let request_timeout = issues.duration("gateway.request_timeout", &file.request_timeout);
    let (max_attempts, retry_delay, backoff) = retries(file, issues);
    let drain_timeout = issues.duration("gateway.disconnect_drain_timeout", &file.disconnect_drain_timeout);
    let drain_bytes =
        issues.check("gateway.disconnect_drain_max_bytes", parse_byte_size(&file.disconnect_drain_max_bytes));
    let auth_token = issues.secret("gateway.auth_token", file.auth_token.as_ref(), sources);
    let max_custom_cost_nanos = max_custom_cost_nanos(file.max_custom_cost_usd, issues);
    let custom_cost_from = custom_cost_from(&file.custom_cost_from, issues);
    let max_model_chars = if (1..=MAX_MODEL_CHARS).contains(&file.max_model_chars) {
        usize::try_from(file.max_model_chars).ok()
    } else {
        issues.push("gateway.max_model_chars", format!("must be between 1 and {MAX_MODEL_CHARS}"));
        None
    };
    Some(Gateway {
        auth_token,
        metadata_max_entries: metadata_max_entries?,
        request_timeout: request_timeout?,
        max_attempts: max_attempts?,
        retry_delay: retry_delay?,
        backoff: backoff?,
        disconnect_drain_timeout: drain_timeout?,
        disconnect_drain_max_bytes: drain_bytes?,
        accounting: file.accounting,
        max_custom_cost_usd: file.max_custom_cost_usd,
        max_custom_cost_nanos: max_custom_cost_nanos?,
        custom_cost_from,
        max_model_chars: max_model_chars?,
    })
}

/// `gateway.max_attempts`, `gateway.retry_delay` and `gateway.backoff`, within the caps the `cf-aig-*` headers
/// have too.
fn retries(file: &GatewayFile, issues: &mut Issues) -> (Option<u32>, Option<Duration>, Option<Backoff>) {
    let max_attempts = match u32::try_from(file.max_attempts) {
        Ok(n) if (1..=MAX_ATTEMPTS).contains(&n) => Some(n),
        _ => {
            issues.push("gateway.max_attempts", format!("must be between 1 and {MAX_ATTEMPTS}"));
            None
        }
    };
    let retry_delay = issues.duration("gateway.retry_delay", &file.retry_delay).and_then(|d| {
        if d > MAX_RETRY_DELAY {
            issues.push("gateway.retry_delay", "must be at most 5000ms");
            None
        } else {
            Some(d)
        }
    });
    let backoff = file.backoff.parse::<Backoff>().map_err(|e| issues.push("gateway.backoff", e.to_string())).ok();
    (max_attempts, retry_delay, backoff)
}

/// `gateway.max_custom_cost_usd` in nano-dollars: positive, finite, at most 1e9 dollars, and not rounding to 0.
fn max_custom_cost_nanos(usd: f64, issues: &mut Issues) -> Option<u64> {
    let path = "gateway.max_custom_cost_usd";
    if !usd.is_finite() || usd <= 0.0 {
        issues.push(path, "must be a positive, finite number of dollars");
        return None;
    }
    match usd_to_nanos(usd) {
        Some(0) => {
            issues.push(path, "rounds to 0 nano-dollars; use at least 1e-9");
            None
        }
        Some(nanos) => Some(nanos),
        None => {
            issues.push(path, "must be at most 1e9 dollars");
            None
        }
    }
}

/// `gateway.custom_cost_from`, duplicates dropped; an unknown name is an issue at its index.
fn custom_cost_from(names: &[String], issues: &mut Issues) -> Vec<CredentialKind> {
    let mut kinds = Vec::new();
    for (i, text) in names.iter().enumerate() {
        match CredentialKind::parse(text) {
            Some(kind) if !kinds.contains(&kind) => kinds.push(kind),
            Some(_) => {}
            None => issues.push(
                format!("gateway.custom_cost_from[{i}]"),
                format!("{text:?} is not one of \"gateway_token\", \"virtual_key\", \"jwt\""),
            ),
        }
    }
    kinds
}

fn stats(file: &StatsFile, issues: &mut Issues) -> Option<Stats> {
    if file.cap_usd < 0.0 || !file.cap_usd.is_finite() {
        issues.push("stats.cap_usd", "must be a non-negative number");
    }
    let window = match file.window.as_str() {
        "lifetime" => Some(None),
        text => issues.check("stats.window", parse_window(text)).map(|length| Some(Window::fixed_utc(length))),
    };
    Some(Stats { cap_usd: file.cap_usd, window: window? })
}

fn pricing(file: &PricingFile, issues: &mut Issues) -> Option<Pricing> {
    let unpriced = match file.unpriced.as_str() {
        "block" => Some(UnpricedPolicy::Block),
        "allow" => Some(UnpricedPolicy::Allow),
        other => {
            issues.push("pricing.unpriced", format!("{other:?} is not one of \"block\", \"allow\""));
            None
        }
    };
    Some(Pricing { file: file.file.as_ref().map(Into::into), unpriced: unpriced? })
}

//! `[providers.*]` merged with the built-ins, and `[[routes]]`, whose candidates must name one of them.

use std::collections::BTreeMap;

use url::Url;

use super::{Issues, Sources};
use crate::file::FileConfig;
use crate::provider::{BUILTIN_PROVIDERS, Provider, ProviderFamily};

/// The providers the gateway routes to: every built-in that reaches a remote API, the loopback built-ins
/// (`ollama`, `vllm`) only when they appear under `[providers.*]` (otherwise any client could reach those local
/// ports through the gateway), and every configured entry.
pub(super) fn providers(file: &FileConfig, sources: &Sources, issues: &mut Issues) -> BTreeMap<String, Provider> {
    let builtins: BTreeMap<&str, Provider> = BUILTIN_PROVIDERS
        .iter()
        .map(|&(name, family, base, hosted)| {
            let base_url = base.and_then(|b| Url::parse(b).ok());
            (name, Provider { name: name.to_string(), family, base_url, api_key: None, zdr_base_url: None, hosted })
        })
        .collect();
    let mut out: BTreeMap<String, Provider> = builtins
        .iter()
        .filter(|(_, provider)| !provider.base_url.as_ref().is_some_and(points_at_loopback))
        .map(|(name, provider)| ((*name).to_string(), provider.clone()))
        .collect();
    for (name, entry) in &file.providers {
        let path = format!("providers.{name}");
        if matches!(name.as_str(), "v1" | "compat" | "dynamic") || name.is_empty() || name.contains('/') {
            issues.push(&path, format!("{name:?} is reserved or not a valid provider name"));
            continue;
        }
        let builtin = builtins.get(name.as_str());
        let family = match (entry.kind.as_deref(), builtin) {
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
            Some(text) => issues.base_url(&format!("{path}.base_url"), text),
            None => builtin.and_then(|b| b.base_url.clone()),
        };
        if entry.base_url.is_none() && builtin.is_none() {
            issues.push(format!("{path}.base_url"), "is required for an openai-compatible provider");
        }
        let api_key = issues.secret(&format!("{path}.api_key"), entry.api_key.as_ref(), sources);
        // Without a base_url, Azure's host comes from the client's path (`/azure-openai/{resource}/...`): the
        // client would choose which host receives the stored key.
        if family == ProviderFamily::Azure && entry.api_key.is_some() && entry.base_url.is_none() {
            issues.push(
                format!("{path}.base_url"),
                "is required when api_key is set: without it the client's path names the Azure resource that \
                 receives the stored key (e.g. base_url = \"https://my-resource.openai.azure.com/openai/v1\")",
            );
        }
        let zdr_base_url =
            entry.zdr_base_url.as_ref().and_then(|t| issues.base_url(&format!("{path}.zdr_base_url"), t));
        let hosted = entry.hosted.or(builtin.map(|b| b.hosted)).unwrap_or(false);
        out.insert(name.clone(), Provider { name: name.clone(), family, base_url, api_key, zdr_base_url, hosted });
    }
    out
}

/// Whether a URL's host is this machine: `localhost`, `127.0.0.0/8` or `::1`.
pub(crate) fn points_at_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.');
            name.eq_ignore_ascii_case("localhost") || name.to_ascii_lowercase().ends_with(".localhost")
        }
        None => false,
    }
}

/// The message for a provider name that is not registered; names the built-ins that need a section.
pub(super) fn unknown_provider(name: &str) -> String {
    let loopback_builtin = BUILTIN_PROVIDERS.iter().any(|&(builtin, _, base, _)| {
        builtin == name && base.and_then(|b| Url::parse(b).ok()).is_some_and(|u| points_at_loopback(&u))
    });
    if loopback_builtin {
        format!(
            "{name:?} is built in but reaches this machine, so it exists only when configured: add [providers.{name}]"
        )
    } else {
        format!("{name:?} is not a configured or built-in provider")
    }
}

pub(super) fn routes(
    file: &FileConfig,
    providers: &BTreeMap<String, Provider>,
    issues: &mut Issues,
) -> Vec<tollgate_limits::Route> {
    let routes = issues.rules("routes", tollgate_limits::validate_routes(&file.routes));
    for (i, route) in routes.iter().enumerate() {
        for (j, candidate) in route.candidates().iter().enumerate() {
            if !providers.contains_key(&candidate.provider) {
                issues.push(format!("routes[{i}].candidates[{j}]"), unknown_provider(&candidate.provider));
            }
        }
    }
    routes
}

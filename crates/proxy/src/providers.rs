//! The provider registry the request path reads: configured providers with their base URLs ready to join.

use std::collections::HashMap;
use std::sync::Arc;

use tollgate_config::{Config, Provider, ProviderFamily};

use crate::error::GatewayError;

/// One provider, with its base URLs pre-rendered so joining a path is one string concatenation.
#[derive(Debug)]
pub struct ProviderEntry {
    pub config: Provider,
    /// Native base URL without a trailing slash; `None` for Azure without `base_url`.
    base: Option<String>,
    zdr_base: Option<String>,
}

impl ProviderEntry {
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The full upstream URL for `path` (which starts with `/`), through the ZDR base when `zdr`.
    pub fn upstream_url(&self, path: &str, zdr: bool) -> Result<String, GatewayError> {
        let base = if zdr {
            self.zdr_base.as_deref().ok_or_else(|| {
                GatewayError::InvalidHeader(format!(
                    "cf-aig-zdr: true, but provider {} has no zdr_base_url configured; the request is refused \
                     rather than sent without zero data retention",
                    self.config.name
                ))
            })?
        } else if let Some(base) = &self.base {
            base
        } else {
            return azure_resource_url(&self.config.name, path);
        };
        Ok(format!("{base}{path}"))
    }
}

/// Azure without a configured base URL, as Cloudflare does it: `/{resource}/{deployment}/{rest}` becomes
/// `https://{resource}.openai.azure.com/openai/deployments/{deployment}/{rest}`.
fn azure_resource_url(provider: &str, path: &str) -> Result<String, GatewayError> {
    let mut parts = path.trim_start_matches('/').splitn(3, '/');
    let (Some(resource), Some(deployment), Some(rest)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(GatewayError::UnknownRoute(format!(
            "provider {provider} has no base_url: use /{provider}/{{resource}}/{{deployment}}/... or configure one"
        )));
    };
    let valid = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid(resource) || !valid(deployment) {
        return Err(GatewayError::UnknownRoute(format!(
            "{resource:?}/{deployment:?} is not an Azure resource/deployment"
        )));
    }
    Ok(format!("https://{resource}.openai.azure.com/openai/deployments/{deployment}/{rest}"))
}

/// Providers by name, the default provider and the dynamic routes.
#[derive(Debug)]
pub struct Providers {
    by_name: HashMap<String, Arc<ProviderEntry>>,
    default: Arc<ProviderEntry>,
    routes: HashMap<String, tollgate_limits::Route>,
}

impl Providers {
    pub fn from_config(config: &Config) -> Self {
        let trim = |u: &url::Url| u.as_str().trim_end_matches('/').to_string();
        let by_name: HashMap<String, Arc<ProviderEntry>> = config
            .providers
            .iter()
            .map(|(name, p)| {
                let entry = ProviderEntry {
                    base: p.base_url.as_ref().map(trim),
                    zdr_base: p.zdr_base_url.as_ref().map(trim),
                    config: p.clone(),
                };
                (name.clone(), Arc::new(entry))
            })
            .collect();
        // Validation guarantees the default provider exists; fall back to an OpenAI entry regardless.
        let default = by_name.get(&config.server.default_provider).cloned().unwrap_or_else(|| {
            Arc::new(ProviderEntry {
                base: Some("https://api.openai.com/v1".into()),
                zdr_base: None,
                config: Provider {
                    name: "openai".into(),
                    family: ProviderFamily::OpenAi,
                    base_url: None,
                    api_key: None,
                    zdr_base_url: None,
                    hosted: false,
                },
            })
        });
        let routes = config.routes.iter().map(|r| (r.name().to_string(), r.clone())).collect();
        Self { by_name, default, routes }
    }

    pub fn get(&self, name: &str) -> Option<Arc<ProviderEntry>> {
        self.by_name.get(name).cloned()
    }

    pub fn default_provider(&self) -> Arc<ProviderEntry> {
        self.default.clone()
    }

    pub fn route(&self, name: &str) -> Option<&tollgate_limits::Route> {
        self.routes.get(name)
    }
}

//! Providers: the built-in table and the runtime description the proxy routes with.

use url::Url;

use crate::Secret;

/// Which wire family a provider speaks natively; decides its auth header and its OpenAI-compatible endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderFamily {
    /// OpenAI itself and every OpenAI-compatible API (groq, mistral, deepseek, xai, openrouter, ollama, vllm).
    OpenAi,
    Anthropic,
    Google,
    Azure,
}

/// How a provider wants its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthStyle {
    /// `Authorization: Bearer <key>`
    Bearer,
    /// `x-api-key: <key>` (+ `anthropic-version`)
    XApiKey,
    /// `x-goog-api-key: <key>`
    XGoogApiKey,
    /// Azure's `api-key: <key>`
    ApiKey,
}

impl AuthStyle {
    pub const ALL: [AuthStyle; 4] = [AuthStyle::Bearer, AuthStyle::XApiKey, AuthStyle::XGoogApiKey, AuthStyle::ApiKey];

    pub const fn header_name(self) -> &'static str {
        match self {
            AuthStyle::Bearer => "authorization",
            AuthStyle::XApiKey => "x-api-key",
            AuthStyle::XGoogApiKey => "x-goog-api-key",
            AuthStyle::ApiKey => "api-key",
        }
    }
}

/// `(name, family, default base_url, hosted by default)`. `hosted` marks providers that run on the operator's
/// own machines (what `/api/stats` `hosted_only_ok` reports on). A built-in whose default base URL is on
/// loopback (`ollama`, `vllm`) is registered only when it appears under `[providers.*]`.
pub const BUILTIN_PROVIDERS: &[(&str, ProviderFamily, Option<&str>, bool)] = &[
    ("openai", ProviderFamily::OpenAi, Some("https://api.openai.com/v1"), false),
    ("anthropic", ProviderFamily::Anthropic, Some("https://api.anthropic.com"), false),
    ("google-ai-studio", ProviderFamily::Google, Some("https://generativelanguage.googleapis.com"), false),
    ("groq", ProviderFamily::OpenAi, Some("https://api.groq.com/openai/v1"), false),
    ("mistral", ProviderFamily::OpenAi, Some("https://api.mistral.ai/v1"), false),
    ("deepseek", ProviderFamily::OpenAi, Some("https://api.deepseek.com"), false),
    ("xai", ProviderFamily::OpenAi, Some("https://api.x.ai/v1"), false),
    ("openrouter", ProviderFamily::OpenAi, Some("https://openrouter.ai/api/v1"), false),
    // Azure's host names the customer's resource; without a base_url the passthrough path carries it
    // (`/azure-openai/{resource}/{deployment}/...`, as Cloudflare does).
    ("azure-openai", ProviderFamily::Azure, None, false),
    ("ollama", ProviderFamily::OpenAi, Some("http://127.0.0.1:11434/v1"), true),
    ("vllm", ProviderFamily::OpenAi, Some("http://127.0.0.1:8000/v1"), true),
];

/// One provider as the proxy sees it. `Debug` shows the URLs redacted: they may carry a password.
#[derive(Clone)]
pub struct Provider {
    pub name: String,
    pub family: ProviderFamily,
    /// Native base URL: the passthrough path `/{provider}/{rest}` appends `{rest}` to it.
    pub base_url: Option<Url>,
    /// Stored key, injected when the client sends none.
    pub api_key: Option<Secret>,
    /// Where `cf-aig-zdr: true` requests go; `None` refuses them.
    pub zdr_base_url: Option<Url>,
    pub hosted: bool,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = |u: &Option<Url>| u.as_ref().map(|u| crate::redact::url(u.as_str()));
        f.debug_struct("Provider")
            .field("name", &self.name)
            .field("family", &self.family)
            .field("base_url", &shown(&self.base_url))
            .field("api_key", &self.api_key)
            .field("zdr_base_url", &shown(&self.zdr_base_url))
            .field("hosted", &self.hosted)
            .finish()
    }
}

impl Provider {
    /// The header the provider's native API takes its key in.
    pub fn native_auth(&self) -> AuthStyle {
        match self.family {
            ProviderFamily::OpenAi => AuthStyle::Bearer,
            ProviderFamily::Anthropic => AuthStyle::XApiKey,
            ProviderFamily::Google => AuthStyle::XGoogApiKey,
            ProviderFamily::Azure => AuthStyle::ApiKey,
        }
    }

    /// The header the provider's OpenAI-compatible endpoint takes its key in.
    pub fn compat_auth(&self) -> AuthStyle {
        match self.family {
            ProviderFamily::Azure => AuthStyle::ApiKey,
            _ => AuthStyle::Bearer,
        }
    }

    /// The path under the native base URL where the OpenAI-compatible API lives (`chat/completions` etc. are
    /// appended to it).
    pub fn compat_prefix(&self) -> &'static str {
        match self.family {
            ProviderFamily::OpenAi | ProviderFamily::Azure => "",
            ProviderFamily::Anthropic => "/v1",
            ProviderFamily::Google => "/v1beta/openai",
        }
    }
}

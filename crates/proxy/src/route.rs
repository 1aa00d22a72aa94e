//! Path shapes (CONTRACT §3): which provider a request goes to, at which upstream path, in which format.
//!
//! Routing happens in two steps. [`classify`] looks at the path alone (no body yet) and says what kind of
//! request this is; [`resolve`] adds what the body says (`model`, `stream`) and yields the [`Target`].

use std::sync::Arc;

use serde::Deserialize;
use serde_json::value::RawValue;
use tollgate_config::{AuthStyle, ProviderFamily};

use crate::error::{ErrorFormat, GatewayError};
use crate::providers::Providers;

/// The gateway id used for requests that do not come through the Cloudflare URL shape.
pub const DEFAULT_GATEWAY: &str = "default";

/// The API a request speaks; tells the accounting layer how to read the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    OpenAiChat,
    OpenAiCompletions,
    OpenAiEmbeddings,
    OpenAiResponses,
    OpenAiModels,
    AnthropicMessages,
    GeminiGenerate,
    GeminiStream,
    /// Anything else a passthrough carries (files, batches, count_tokens...): forwarded, not billed.
    Other,
}

impl Api {
    fn from_openai_suffix(suffix: &str) -> Api {
        let suffix = suffix.trim_end_matches('/');
        if suffix.ends_with("chat/completions") {
            Api::OpenAiChat
        } else if suffix.ends_with("completions") {
            Api::OpenAiCompletions
        } else if suffix.ends_with("embeddings") {
            Api::OpenAiEmbeddings
        } else if suffix.ends_with("responses") {
            Api::OpenAiResponses
        } else if suffix.ends_with("models") {
            Api::OpenAiModels
        } else {
            Api::Other
        }
    }
}

/// What the path alone says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    /// `/v1/{chat/completions|completions|embeddings|responses|models}`: model picks the provider.
    DropIn { suffix: &'static str },
    /// `/v1/messages...`: Anthropic native.
    Messages { rest: String },
    /// `/compat/chat/completions` (also under the Cloudflare shape): model is `provider/name`.
    Compat { gateway: String },
    /// `/{provider}/{rest}` (also under the Cloudflare shape).
    Passthrough { gateway: String, provider: String, rest: String },
}

impl Shape {
    /// The error format of the client, before the provider is known.
    pub fn error_format(&self, providers: &Providers) -> ErrorFormat {
        match self {
            Shape::Messages { .. } => ErrorFormat::Anthropic,
            Shape::Passthrough { provider, .. } => match providers.get(provider).map(|p| p.config.family) {
                Some(ProviderFamily::Anthropic) => ErrorFormat::Anthropic,
                Some(ProviderFamily::Google) => ErrorFormat::Gemini,
                _ => ErrorFormat::OpenAi,
            },
            Shape::DropIn { .. } | Shape::Compat { .. } => ErrorFormat::OpenAi,
        }
    }

    pub fn gateway(&self) -> &str {
        match self {
            Shape::Compat { gateway } | Shape::Passthrough { gateway, .. } => gateway,
            _ => DEFAULT_GATEWAY,
        }
    }
}

const DROP_INS: [&str; 5] = ["chat/completions", "completions", "embeddings", "responses", "models"];

/// Classifies a request path.
pub fn classify(path: &str) -> Result<Shape, GatewayError> {
    let trimmed = path.trim_start_matches('/');
    if let Some(suffix) = trimmed.strip_prefix("v1/") {
        if let Some(known) = DROP_INS.iter().find(|d| **d == suffix) {
            return Ok(Shape::DropIn { suffix: known });
        }
        if suffix == "messages" || suffix.starts_with("messages/") {
            return Ok(Shape::Messages { rest: format!("v1/{suffix}") });
        }
        // Cloudflare shape: /v1/{account}/{gateway}/{provider}/{rest...}
        let mut parts = suffix.splitn(4, '/');
        let (Some(_account), Some(gateway), Some(provider), Some(rest)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(GatewayError::UnknownRoute(format!("no route for path {path}")));
        };
        if gateway.is_empty() || provider.is_empty() {
            return Err(GatewayError::UnknownRoute(format!("no route for path {path}")));
        }
        if provider == "compat" {
            return compat(rest, path, gateway);
        }
        return Ok(Shape::Passthrough { gateway: gateway.into(), provider: provider.into(), rest: rest.into() });
    }
    if let Some(rest) = trimmed.strip_prefix("compat/") {
        return compat(rest, path, DEFAULT_GATEWAY);
    }
    match trimmed.split_once('/') {
        Some((provider, rest)) if !provider.is_empty() => {
            Ok(Shape::Passthrough { gateway: DEFAULT_GATEWAY.into(), provider: provider.into(), rest: rest.into() })
        }
        _ => Err(GatewayError::UnknownRoute(format!("no route for path {path}"))),
    }
}

fn compat(rest: &str, path: &str, gateway: &str) -> Result<Shape, GatewayError> {
    if rest == "chat/completions" {
        Ok(Shape::Compat { gateway: gateway.into() })
    } else {
        Err(GatewayError::UnknownRoute(format!(
            "no route for path {path}: the compat endpoint is /compat/chat/completions"
        )))
    }
}

/// The fields of a request body the gateway reads; everything else is skipped unparsed.
#[derive(Debug, Default, Deserialize)]
pub struct BodyPeek<'a> {
    #[serde(borrow, default)]
    pub model: Option<&'a RawValue>,
    #[serde(default)]
    pub stream: Option<bool>,
    /// OpenAI chat/completions and Anthropic.
    #[serde(default)]
    pub max_tokens: Option<u64>,
    /// OpenAI chat (newer name).
    #[serde(default)]
    pub max_completion_tokens: Option<u64>,
    /// OpenAI Responses.
    #[serde(default)]
    pub max_output_tokens: Option<u64>,
    /// Gemini: `generationConfig.maxOutputTokens`.
    #[serde(default, rename = "generationConfig")]
    pub generation_config: Option<GenerationConfig>,
}

/// The part of Gemini's `generationConfig` the gateway reads.
#[derive(Debug, Default, Deserialize)]
pub struct GenerationConfig {
    #[serde(default, rename = "maxOutputTokens")]
    pub max_output_tokens: Option<u64>,
}

impl<'a> BodyPeek<'a> {
    /// Reads `model` and `stream` from a JSON body; `Ok(None)` for an empty body.
    pub fn parse(body: &'a [u8]) -> Result<Option<Self>, GatewayError> {
        match body.iter().find(|b| !b.is_ascii_whitespace()) {
            None => return Ok(None),
            Some(b'{') => {}
            Some(_) => return Err(GatewayError::InvalidJson("request body must be a JSON object".into())),
        }
        serde_json::from_slice(body)
            .map(Some)
            .map_err(|e| GatewayError::InvalidJson(format!("request body is not valid JSON: {e}")))
    }

    /// The most output the client allows, in whichever field its API names it.
    pub fn max_output(&self) -> Option<u64> {
        self.max_completion_tokens
            .or(self.max_tokens)
            .or(self.max_output_tokens)
            .or(self.generation_config.as_ref().and_then(|g| g.max_output_tokens))
    }

    /// The model as a string, if the body has a string `model`.
    pub fn model_str(&self) -> Option<String> {
        self.model.and_then(|raw| serde_json::from_str::<String>(raw.get()).ok())
    }
}

/// Where and how a request goes upstream.
#[derive(Debug, Clone)]
pub struct Target {
    pub provider: Arc<crate::providers::ProviderEntry>,
    pub gateway: String,
    pub format: ErrorFormat,
    /// The header the stored key goes in.
    pub auth: AuthStyle,
    /// Path (and query) appended to the provider's base URL, starting with `/`.
    pub upstream_path: String,
    pub api: Api,
    /// The bare model name the provider sees (for accounting and logs).
    pub model: Option<String>,
    /// Set when the body's `model` must be rewritten to this bare name before going upstream.
    pub rewrite_model: Option<String>,
    pub stream: bool,
    /// For `dynamic/<route>`: the route's name and the index of the candidate that was used.
    pub route: Option<String>,
    pub step: Option<usize>,
}

/// Resolves a classified request against the providers and the body.
/// For a `dynamic/<route>` model, `candidate` picks which of the route's candidates to resolve to.
pub fn resolve(
    shape: Shape,
    query: Option<&str>,
    peek: Option<&BodyPeek<'_>>,
    providers: &Providers,
    candidate: usize,
) -> Result<Target, GatewayError> {
    let format = shape.error_format(providers);
    let gateway = shape.gateway().to_string();
    let body_model = peek.and_then(BodyPeek::model_str);
    let stream = peek.and_then(|p| p.stream).unwrap_or(false);
    let with_query = |path: String| match query {
        Some(q) if !q.is_empty() => format!("{path}?{q}"),
        _ => path,
    };
    match shape {
        Shape::DropIn { suffix } => {
            let api = Api::from_openai_suffix(suffix);
            let (provider, model, step, prefixed) = match body_model {
                Some(model) => pick_for_model(&model, providers, false, candidate)?,
                None if api == Api::OpenAiModels => (providers.default_provider(), String::new(), None, false),
                None => return Err(GatewayError::InvalidJson("request body has no string field \"model\"".into())),
            };
            Ok(compat_target(provider, gateway, format, suffix, with_query, api, model, prefixed, stream, step))
        }
        Shape::Compat { .. } => {
            let model = body_model.ok_or_else(|| {
                GatewayError::InvalidJson("request body has no string field \"model\" (provider/name)".into())
            })?;
            let (provider, model, step, prefixed) = pick_for_model(&model, providers, true, candidate)?;
            Ok(compat_target(
                provider,
                gateway,
                format,
                "chat/completions",
                with_query,
                Api::OpenAiChat,
                model,
                prefixed,
                stream,
                step,
            ))
        }
        Shape::Messages { rest } => {
            let provider =
                providers.get("anthropic").ok_or_else(|| GatewayError::UnknownProvider("anthropic".into()))?;
            let api = if rest == "v1/messages" { Api::AnthropicMessages } else { Api::Other };
            let (model, rewrite) = match body_model {
                Some(m) => match m.strip_prefix("anthropic/") {
                    Some(bare) => (Some(bare.to_string()), Some(bare.to_string())),
                    None => (Some(m), None),
                },
                None => (None, None),
            };
            Ok(Target {
                auth: provider.config.native_auth(),
                provider,
                gateway,
                format,
                upstream_path: with_query(format!("/{rest}")),
                api,
                model,
                rewrite_model: rewrite,
                stream,
                route: None,
                step: None,
            })
        }
        Shape::Passthrough { provider: name, rest, .. } => {
            let provider = providers.get(&name).ok_or(GatewayError::UnknownProvider(name))?;
            let (api, model, stream) = match provider.config.family {
                ProviderFamily::Anthropic => {
                    (if rest == "v1/messages" { Api::AnthropicMessages } else { Api::Other }, body_model, stream)
                }
                ProviderFamily::Google => gemini_api(&rest, body_model, stream),
                ProviderFamily::OpenAi | ProviderFamily::Azure => (Api::from_openai_suffix(&rest), body_model, stream),
            };
            Ok(Target {
                auth: provider.config.native_auth(),
                provider,
                gateway,
                format,
                upstream_path: with_query(format!("/{rest}")),
                api,
                model,
                rewrite_model: None,
                stream,
                route: None,
                step: None,
            })
        }
    }
}

/// `models/{model}:generateContent` / `:streamGenerateContent`
fn gemini_api(rest: &str, body_model: Option<String>, stream: bool) -> (Api, Option<String>, bool) {
    let Some((head, method)) = rest.rsplit_once(':') else {
        return (Api::Other, body_model, stream);
    };
    let model = head.rsplit_once("models/").map(|(_, m)| m.to_string()).or(body_model);
    match method {
        "generateContent" => (Api::GeminiGenerate, model, false),
        "streamGenerateContent" => (Api::GeminiStream, model, true),
        _ => (Api::Other, model, stream),
    }
}

#[expect(clippy::too_many_arguments, reason = "one constructor for the two OpenAI-format shapes")]
fn compat_target(
    provider: Arc<crate::providers::ProviderEntry>,
    gateway: String,
    format: ErrorFormat,
    suffix: &str,
    with_query: impl Fn(String) -> String,
    api: Api,
    model: String,
    prefixed: bool,
    stream: bool,
    step: Option<(String, usize)>,
) -> Target {
    let upstream_path = with_query(format!("{}/{suffix}", provider.config.compat_prefix()));
    let (route, step) = step.map_or((None, None), |(route, index)| (Some(route), Some(index)));
    Target {
        auth: provider.config.compat_auth(),
        provider,
        gateway,
        format,
        upstream_path,
        api,
        rewrite_model: prefixed.then(|| model.clone()),
        model: (!model.is_empty()).then_some(model),
        stream,
        route,
        step,
    }
}

/// Picks the provider for a `model` value: `dynamic/<route>`, `provider/name`, or a bare name for the default
/// provider. Returns `(provider, bare model, route step, whether the body's model must be rewritten)`.
#[expect(clippy::type_complexity, reason = "a private tuple read right at its two call sites")]
fn pick_for_model(
    model: &str,
    providers: &Providers,
    require_prefix: bool,
    candidate: usize,
) -> Result<(Arc<crate::providers::ProviderEntry>, String, Option<(String, usize)>, bool), GatewayError> {
    if let Some(route) = model.strip_prefix("dynamic/") {
        let route = providers
            .route(route)
            .ok_or_else(|| GatewayError::UnknownRoute(format!("no route named {route:?} (model {model:?})")))?;
        // The limits engine picks the candidate; without budgets in play it is the first.
        let chosen = route.candidates().get(candidate).ok_or_else(|| {
            GatewayError::UnknownRoute(format!("route {:?} has no candidate {candidate}", route.name()))
        })?;
        let entry =
            providers.get(&chosen.provider).ok_or_else(|| GatewayError::UnknownProvider(chosen.provider.clone()))?;
        return Ok((entry, chosen.model.clone(), Some((route.name().to_string(), candidate)), true));
    }
    if let Some((prefix, bare)) = model.split_once('/')
        && let Some(entry) = providers.get(prefix)
        && !bare.is_empty()
    {
        return Ok((entry, bare.to_string(), None, true));
    }
    if require_prefix {
        let message = match model.split_once('/') {
            Some((prefix, _)) => format!("model {model:?}: {prefix:?} is not a configured provider"),
            None => format!("model {model:?} must be written provider/name, e.g. openai/gpt-4o-mini"),
        };
        return Err(GatewayError::UnknownModelPrefix(message));
    }
    // A bare name, or a name whose prefix is not a provider (e.g. "meta-llama/Llama-3.1-8B" on vLLM).
    Ok((providers.default_provider(), model.to_string(), None, false))
}

#[cfg(test)]
mod tests;

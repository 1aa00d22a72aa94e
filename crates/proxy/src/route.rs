//! Path shapes (docs/proxy.md): which provider a request goes to, at which upstream path, in which format.
//!
//! Routing happens in two steps. [`classify`] looks at the method and the normalised path alone (no body yet)
//! and says what kind of request this is; [`resolve`] adds what the body says (`model`, `stream`) and yields
//! the [`Target`]. What a passthrough path costs is decided by [`Endpoint::of`], whose doc has the table.

use std::sync::Arc;

use http::Method;
use serde::Deserialize;
use serde_json::value::RawValue;
use tollgate_config::{AuthStyle, ProviderFamily};

use crate::error::{ErrorFormat, GatewayError};
use crate::path;
use crate::providers::Providers;

/// The gateway id used for requests that do not come through the Cloudflare URL shape.
pub const DEFAULT_GATEWAY: &str = "default";

/// The longest `{provider}`, `{account}` or `{gateway}` segment accepted, in characters.
pub const MAX_SEGMENT_CHARS: usize = 64;

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
    /// Billed by the provider, but in a form the gateway cannot measure from the response (images, audio,
    /// batches, fine-tuning, Gemini embeddings and cached contents...): forwarded, and priced by policy.
    Unmetered,
    /// Not billed by the provider (model lists, files, token counting, reading a stored object...).
    Other,
}

/// What the path alone says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    /// `/v1/{chat/completions|completions|embeddings|responses|models}`: model picks the provider.
    DropIn { suffix: &'static str },
    /// `/v1/messages...`: Anthropic native. `post`: the request is a POST (only a POST generates).
    Messages { rest: String, post: bool },
    /// `/compat/chat/completions` (also under the Cloudflare shape): model is `provider/name`.
    Compat { gateway: String },
    /// `/{provider}/{rest}` (also under the Cloudflare shape); `rest` is normalised (see [`crate::path`]).
    Passthrough { gateway: String, provider: String, rest: String, post: bool },
}

impl Shape {
    /// The error format of the client, before the provider is known.
    pub fn error_format(&self, providers: &Providers) -> ErrorFormat {
        match self {
            Shape::Messages { .. } => ErrorFormat::Anthropic,
            Shape::Passthrough { provider, rest, .. } => match providers.get(provider) {
                Some(entry) => passthrough_error_format(entry.config.family, rest),
                None => ErrorFormat::OpenAi,
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

/// A passthrough client speaks its provider's native format, unless it called the provider's
/// OpenAI-compatible endpoint (then it is an OpenAI SDK).
fn passthrough_error_format(family: ProviderFamily, rest: &str) -> ErrorFormat {
    let endpoint = Endpoint::of(family, true, rest);
    match family {
        _ if endpoint.openai_compatible => ErrorFormat::OpenAi,
        ProviderFamily::Anthropic => ErrorFormat::Anthropic,
        ProviderFamily::Google => ErrorFormat::Gemini,
        ProviderFamily::OpenAi | ProviderFamily::Azure => ErrorFormat::OpenAi,
    }
}

/// The error format for a path that could not be classified (see [`classify`]): the provider is guessed from
/// the raw path, the way [`classify`] would have found it.
pub fn error_format_for_path(raw: &str, providers: &Providers) -> ErrorFormat {
    let segments: Vec<&str> = raw.split('/').filter(|s| !s.is_empty()).collect();
    let (provider, rest) = match segments.as_slice() {
        ["v1", "messages", ..] => return ErrorFormat::Anthropic,
        ["v1", _, _, provider, rest @ ..] | [provider, rest @ ..] => (*provider, rest),
        [] => return ErrorFormat::OpenAi,
    };
    match providers.get(provider) {
        Some(entry) => passthrough_error_format(entry.config.family, &rest.join("/")),
        None => ErrorFormat::OpenAi,
    }
}

const DROP_INS: [&str; 5] = ["chat/completions", "completions", "embeddings", "responses", "models"];

/// Classifies a request by its method and path.
///
/// The path is normalised first (percent-escapes of unreserved characters and `:` decoded, empty segments
/// dropped; dot segments, encoded slashes, control bytes and bad escapes refused: see [`crate::path`]), so
/// every spelling a decoding server would serve as a billable endpoint is classified as that endpoint. The
/// client-chosen segments are bounded: `{account}` and `{gateway}` of the Cloudflare shape are 1 to 64
/// characters of `A-Z a-z 0-9 _ -`, `{provider}` at most 64 characters. Those failures are 400
/// `invalid_path`; a path that names no route is 404 `unknown_route`.
pub fn classify(method: &Method, path: &str) -> Result<Shape, GatewayError> {
    let segments = path::segments(path).map_err(|e| invalid_path(path, &e.to_string()))?;
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let post = method == Method::POST;
    let no_route = || GatewayError::UnknownRoute(format!("no route for path {}", shown(path)));
    match segments.as_slice() {
        ["v1", rest @ ..] => {
            let suffix = rest.join("/");
            if let Some(known) = DROP_INS.iter().find(|d| **d == suffix) {
                return Ok(Shape::DropIn { suffix: known });
            }
            if rest.first() == Some(&"messages") {
                return Ok(Shape::Messages { rest: format!("v1/{suffix}"), post });
            }
            // Cloudflare shape: /v1/{account}/{gateway}/{provider}/{rest...}
            let [account, gateway, provider, rest @ ..] = rest else { return Err(no_route()) };
            if rest.is_empty() {
                return Err(no_route());
            }
            check_label(path, "account", account)?;
            check_label(path, "gateway", gateway)?;
            if *provider == "compat" {
                return compat(rest, path, gateway);
            }
            check_provider(path, provider)?;
            Ok(Shape::Passthrough {
                gateway: (*gateway).into(),
                provider: (*provider).into(),
                rest: rest.join("/"),
                post,
            })
        }
        ["compat", rest @ ..] if !rest.is_empty() => compat(rest, path, DEFAULT_GATEWAY),
        [provider, rest @ ..] if !rest.is_empty() => {
            check_provider(path, provider)?;
            Ok(Shape::Passthrough {
                gateway: DEFAULT_GATEWAY.into(),
                provider: (*provider).into(),
                rest: rest.join("/"),
                post,
            })
        }
        _ => Err(no_route()),
    }
}

fn compat(rest: &[&str], path: &str, gateway: &str) -> Result<Shape, GatewayError> {
    if rest == ["chat", "completions"] {
        Ok(Shape::Compat { gateway: gateway.into() })
    } else {
        Err(GatewayError::UnknownRoute(format!(
            "no route for path {}: the compat endpoint is /compat/chat/completions",
            shown(path)
        )))
    }
}

/// `{account}` and `{gateway}`: 1 to [`MAX_SEGMENT_CHARS`] characters of `A-Z a-z 0-9 _ -`.
fn check_label(path: &str, name: &str, value: &str) -> Result<(), GatewayError> {
    let valid = (1..=MAX_SEGMENT_CHARS).contains(&value.len())
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(invalid_path(
            path,
            &format!("the {name} segment must be 1 to {MAX_SEGMENT_CHARS} characters of A-Z a-z 0-9 _ -"),
        ))
    }
}

/// `{provider}`: at most [`MAX_SEGMENT_CHARS`] characters (an unknown one is 404 later, as any).
fn check_provider(path: &str, value: &str) -> Result<(), GatewayError> {
    if value.chars().count() <= MAX_SEGMENT_CHARS {
        Ok(())
    } else {
        Err(invalid_path(path, &format!("the provider segment is longer than {MAX_SEGMENT_CHARS} characters")))
    }
}

fn invalid_path(path: &str, why: &str) -> GatewayError {
    GatewayError::InvalidPath(format!("invalid path {}: {why}", shown(path)))
}

/// The path as an error message shows it: quoted, and cut after 128 characters (the path is client-chosen).
fn shown(path: &str) -> String {
    const SHOWN_CHARS: usize = 128;
    match path.char_indices().nth(SHOWN_CHARS) {
        Some((cut, _)) => format!("{:?}... ({} bytes)", &path[..cut], path.len()),
        _ => format!("{path:?}"),
    }
}

/// What a passthrough path is, for one provider family: the classifier's billing table.
///
/// `rest` is the normalised path after `/{provider}/`; an endpoint is recognised by how the path ends, so a
/// version prefix (`v1/`, `openai/v1/`, `v1beta/openai/`) and Azure's `openai/deployments/{deployment}/`
/// do not matter. Only a POST generates: any other method is [`Api::Other`] (a `GET /chat/completions` lists
/// stored completions), except `GET .../models`, which is [`Api::OpenAiModels`] on the OpenAI family.
///
/// | family | POST path ends with | `Api` |
/// |---|---|---|
/// | OpenAI, Azure (openai, groq, mistral, deepseek, xai, openrouter, ollama, vllm, custom) | `chat/completions` | `OpenAiChat` |
/// | | `completions` | `OpenAiCompletions` |
/// | | `embeddings` | `OpenAiEmbeddings` |
/// | | `responses` | `OpenAiResponses` |
/// | | a segment `images`, `audio`, `batches`, `fine_tuning`, `fine-tunes`, `runs`, `realtime`, `videos`, `containers` (not ending in `cancel`) | `Unmetered` |
/// | Anthropic | `messages` | `AnthropicMessages` |
/// | | `chat/completions` (Anthropic's OpenAI-compatible endpoint) | `OpenAiChat`, Bearer key |
/// | | `messages/batches`, `complete` | `Unmetered` |
/// | | `messages/count_tokens`, anything else | `Other` |
/// | Google | `{model}:generateContent` | `GeminiGenerate` (not streamed) |
/// | | `{model}:streamGenerateContent` | `GeminiStream` (streamed) |
/// | | `{x}:countTokens`, `:countMessageTokens`, `:countTextTokens`, `:cancel` | `Other` |
/// | | `{x}:` any other method (`embedContent`, `batchEmbedContents`, `batchGenerateContent`, `predict`...) | `Unmetered` |
/// | | a `cachedContents` segment | `Unmetered` |
/// | | otherwise the OpenAI table (`v1beta/openai/chat/completions`, `v1beta/openai/embeddings`, `.../images/...`); an OpenAI format there takes a Bearer key | as above |
///
/// Everything else is `Other`: forwarded with the stored key and not billed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub api: Api,
    /// The model the path names: Gemini's `models/{model}:...`, Azure's `deployments/{deployment}/...`.
    pub path_model: Option<String>,
    /// The provider's OpenAI-compatible endpoint (Anthropic's and Google's): OpenAI format, OpenAI errors,
    /// the key as `Authorization: Bearer`.
    pub openai_compatible: bool,
}

/// OpenAI endpoints that the provider bills but whose responses carry no token usage the gateway can price.
const OPENAI_UNMETERED: [&str; 9] =
    ["images", "audio", "batches", "fine_tuning", "fine-tunes", "runs", "realtime", "videos", "containers"];

/// Gemini methods (`...:{method}`) that cost nothing.
const GEMINI_FREE: [&str; 4] = ["countTokens", "countMessageTokens", "countTextTokens", "cancel"];

impl Endpoint {
    /// Classifies `rest` for `family` (see the table above).
    pub fn of(family: ProviderFamily, post: bool, rest: &str) -> Endpoint {
        let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
        match family {
            ProviderFamily::OpenAi | ProviderFamily::Azure => {
                let path_model = match segments.as_slice() {
                    [.., "deployments", deployment, _] | [.., "deployments", deployment, _, _] => {
                        Some((*deployment).to_string())
                    }
                    _ => None,
                };
                Endpoint { api: openai_api(&segments, post), path_model, openai_compatible: false }
            }
            ProviderFamily::Anthropic => match segments.as_slice() {
                _ if !post => Endpoint::plain(Api::Other),
                [.., "chat", "completions"] => {
                    Endpoint { api: Api::OpenAiChat, path_model: None, openai_compatible: true }
                }
                [.., "messages"] => Endpoint::plain(Api::AnthropicMessages),
                [.., "messages", "batches"] | [.., "complete"] => Endpoint::plain(Api::Unmetered),
                _ => Endpoint::plain(Api::Other),
            },
            ProviderFamily::Google => google_endpoint(&segments, post),
        }
    }

    fn plain(api: Api) -> Endpoint {
        Endpoint { api, path_model: None, openai_compatible: false }
    }
}

/// The OpenAI family's table (also Google's OpenAI-compatible endpoint).
fn openai_api(segments: &[&str], post: bool) -> Api {
    if !post {
        return match segments {
            [.., "models"] => Api::OpenAiModels,
            _ => Api::Other,
        };
    }
    match segments {
        [.., "chat", "completions"] => Api::OpenAiChat,
        [.., "completions"] => Api::OpenAiCompletions,
        [.., "embeddings"] => Api::OpenAiEmbeddings,
        [.., "responses"] => Api::OpenAiResponses,
        [.., last] if *last != "cancel" && segments.iter().any(|s| OPENAI_UNMETERED.contains(s)) => Api::Unmetered,
        _ => Api::Other,
    }
}

/// Google's table: `models/{model}:{method}`, cached contents, then its OpenAI-compatible endpoint.
fn google_endpoint(segments: &[&str], post: bool) -> Endpoint {
    if !post {
        return Endpoint::plain(Api::Other);
    }
    if let Some((model, method)) = segments.last().and_then(|last| last.rsplit_once(':')) {
        let api = match method {
            "generateContent" => Api::GeminiGenerate,
            "streamGenerateContent" => Api::GeminiStream,
            _ if GEMINI_FREE.contains(&method) => Api::Other,
            _ => Api::Unmetered,
        };
        let path_model = (!model.is_empty()).then(|| model.to_string());
        return Endpoint { api, path_model, openai_compatible: false };
    }
    if segments.contains(&"cachedContents") {
        return Endpoint::plain(Api::Unmetered);
    }
    let api = openai_api(segments, post);
    let openai_compatible =
        matches!(api, Api::OpenAiChat | Api::OpenAiCompletions | Api::OpenAiEmbeddings | Api::OpenAiResponses);
    Endpoint { api, path_model: None, openai_compatible }
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
    let request = Common {
        format: shape.error_format(providers),
        gateway: shape.gateway().to_string(),
        body_model: peek.and_then(BodyPeek::model_str),
        stream: peek.and_then(|p| p.stream).unwrap_or(false),
        query,
    };
    match shape {
        Shape::DropIn { suffix } => {
            let api = drop_in_api(suffix);
            let pick = match &request.body_model {
                Some(model) => pick_for_model(model, providers, false, candidate)?,
                None if api == Api::OpenAiModels => Pick::bare(providers.default_provider(), String::new()),
                None => return Err(GatewayError::InvalidJson("request body has no string field \"model\"".into())),
            };
            Ok(request.compat_target(pick, suffix, api))
        }
        Shape::Compat { .. } => {
            let model = request.body_model.as_deref().ok_or_else(|| {
                GatewayError::InvalidJson("request body has no string field \"model\" (provider/name)".into())
            })?;
            let pick = pick_for_model(model, providers, true, candidate)?;
            Ok(request.compat_target(pick, "chat/completions", Api::OpenAiChat))
        }
        Shape::Messages { rest, post } => resolve_messages(request, providers, &rest, post),
        Shape::Passthrough { provider, rest, post, .. } => {
            resolve_passthrough(request, providers, provider, &rest, post)
        }
    }
}

/// What every shape resolves from: the client's error format and gateway, the body's `model` and `stream`, and
/// the query string to carry over.
struct Common<'q> {
    format: ErrorFormat,
    gateway: String,
    body_model: Option<String>,
    stream: bool,
    query: Option<&'q str>,
}

impl Common<'_> {
    fn with_query(&self, path: String) -> String {
        match self.query {
            Some(q) if !q.is_empty() => format!("{path}?{q}"),
            _ => path,
        }
    }

    /// A target on the provider's OpenAI-compatible surface (drop-in and compat paths).
    fn compat_target(self, pick: Pick, suffix: &str, api: Api) -> Target {
        let upstream_path = self.with_query(format!("{}/{suffix}", pick.provider.config.compat_prefix()));
        let (route, step) = pick.step.map_or((None, None), |(route, index)| (Some(route), Some(index)));
        let model = pick.model;
        Target {
            auth: pick.provider.config.compat_auth(),
            provider: pick.provider,
            gateway: self.gateway,
            format: self.format,
            upstream_path,
            api,
            rewrite_model: pick.rewrite.then(|| model.clone()),
            model: (!model.is_empty()).then_some(model),
            stream: self.stream,
            route,
            step,
        }
    }
}

/// `/v1/messages...`: Anthropic native; an `anthropic/` prefix on the model is taken off.
fn resolve_messages(
    request: Common<'_>,
    providers: &Providers,
    rest: &str,
    post: bool,
) -> Result<Target, GatewayError> {
    let provider = providers.get("anthropic").ok_or_else(|| GatewayError::UnknownProvider("anthropic".into()))?;
    let api = Endpoint::of(ProviderFamily::Anthropic, post, rest).api;
    let upstream_path = request.with_query(format!("/{rest}"));
    let (model, rewrite_model) = match request.body_model {
        Some(m) => match m.strip_prefix("anthropic/") {
            Some(bare) => (Some(bare.to_string()), Some(bare.to_string())),
            None => (Some(m), None),
        },
        None => (None, None),
    };
    Ok(Target {
        auth: provider.config.native_auth(),
        provider,
        gateway: request.gateway,
        format: request.format,
        upstream_path,
        api,
        model,
        rewrite_model,
        stream: request.stream,
        route: None,
        step: None,
    })
}

/// `/{provider}/{rest}`: the provider's own API, the path passed on as it is.
fn resolve_passthrough(
    request: Common<'_>,
    providers: &Providers,
    name: String,
    rest: &str,
    post: bool,
) -> Result<Target, GatewayError> {
    let provider = providers.get(&name).ok_or(GatewayError::UnknownProvider(name))?;
    let Endpoint { api, path_model, openai_compatible } = Endpoint::of(provider.config.family, post, rest);
    let upstream_path = request.with_query(format!("/{rest}"));
    let (model, stream) = match api {
        // Gemini names the model and the streaming in the path; its body has neither.
        Api::GeminiGenerate => (path_model.or(request.body_model), false),
        Api::GeminiStream => (path_model.or(request.body_model), true),
        _ => (request.body_model.or(path_model), request.stream),
    };
    let auth = if openai_compatible { provider.config.compat_auth() } else { provider.config.native_auth() };
    Ok(Target {
        auth,
        provider,
        gateway: request.gateway,
        format: request.format,
        upstream_path,
        api,
        model,
        rewrite_model: None,
        stream,
        route: None,
        step: None,
    })
}

/// The drop-in paths' APIs (the path is one of [`DROP_INS`]).
fn drop_in_api(suffix: &str) -> Api {
    match suffix {
        "chat/completions" => Api::OpenAiChat,
        "completions" => Api::OpenAiCompletions,
        "embeddings" => Api::OpenAiEmbeddings,
        "responses" => Api::OpenAiResponses,
        "models" => Api::OpenAiModels,
        _ => Api::Other,
    }
}

/// The provider a `model` value picked, the bare model it sees, the route step for `dynamic/<route>`, and
/// whether the body's model must be rewritten to the bare name.
struct Pick {
    provider: Arc<crate::providers::ProviderEntry>,
    model: String,
    step: Option<(String, usize)>,
    rewrite: bool,
}

impl Pick {
    fn bare(provider: Arc<crate::providers::ProviderEntry>, model: String) -> Self {
        Self { provider, model, step: None, rewrite: false }
    }
}

/// Picks the provider for a `model` value: `dynamic/<route>`, `provider/name`, or a bare name for the default
/// provider.
fn pick_for_model(
    model: &str,
    providers: &Providers,
    require_prefix: bool,
    candidate: usize,
) -> Result<Pick, GatewayError> {
    if let Some(route) = model.strip_prefix("dynamic/") {
        let route = providers
            .route(route)
            .ok_or_else(|| GatewayError::UnknownRoute(format!("no route named {route:?} (model {model:?})")))?;
        // The limits engine picks the candidate; without budgets in play it is the first.
        let chosen = route.candidates().get(candidate).ok_or_else(|| {
            GatewayError::UnknownRoute(format!("route {:?} has no candidate {candidate}", route.name()))
        })?;
        let provider =
            providers.get(&chosen.provider).ok_or_else(|| GatewayError::UnknownProvider(chosen.provider.clone()))?;
        let step = Some((route.name().to_string(), candidate));
        return Ok(Pick { provider, model: chosen.model.clone(), step, rewrite: true });
    }
    if let Some((prefix, bare)) = model.split_once('/')
        && let Some(provider) = providers.get(prefix)
        && !bare.is_empty()
    {
        return Ok(Pick { provider, model: bare.to_string(), step: None, rewrite: true });
    }
    if require_prefix {
        let message = match model.split_once('/') {
            Some((prefix, _)) => format!("model {model:?}: {prefix:?} is not a configured provider"),
            None => format!("model {model:?} must be written provider/name, e.g. openai/gpt-4o-mini"),
        };
        return Err(GatewayError::UnknownModelPrefix(message));
    }
    // A bare name, or a name whose prefix is not a provider (e.g. "meta-llama/Llama-3.1-8B" on vLLM).
    Ok(Pick::bare(providers.default_provider(), model.to_string()))
}

#[cfg(test)]
mod tests;

//! The names under which a (provider, model) pair is looked up in the catalog, most specific first.
//!
//! 1. The pair exactly as given (lowercased), so a user override for e.g. `openrouter`/`anthropic/claude-x`
//!    wins over any mapping below.
//! 2. The provider mapped onto the catalog's provider: `azure-openai`/`azure` → `openai` (the caller maps the
//!    Azure deployment name onto the model), `google`/`gemini` → `google-ai-studio`, `x-ai`/`grok` → `xai`,
//!    `mistralai` → `mistral`; for `openrouter` the model's vendor prefix picks the provider
//!    (`anthropic/claude-sonnet-4.5` → `anthropic`, `google/…` → `google-ai-studio`, `x-ai/…` → `xai`, …), so
//!    OpenRouter traffic is priced at the base provider's list price.
//! 3. The model through every step of [`canonical_model`] (the one normalisation shared with rule filters):
//!    a `models/` or provider/vendor prefix removed; Claude dotted versions as dashes (`claude-sonnet-4.5` →
//!    `claude-sonnet-4-5`); a date snapshot removed (`-2025-04-14`, `-20250929`, `@20250929`); `-latest`
//!    removed; a 3–4 digit version suffix removed (`-001`, `-2411`); and then the canonical name tried with
//!    `-latest` (`mistral-large-2411` → `mistral-large-latest`).

/// The canonical name of a model: the one name under which the catalog finds it after every alias step, and the
/// value of the `model` dimension of spend and rate rules (both sides of a rule filter are normalised with it,
/// so a rule listing `gpt-4o-mini` matches `GPT-4o-mini` and `gpt-4o-mini-2024-07-18`).
///
/// Steps, cumulatively: trim and lowercase; remove a `models/` prefix, then any vendor prefix up to the last `/`
/// (`openai/gpt-4o` → `gpt-4o`); for Claude models, dotted versions as dashes (`claude-sonnet-4.5` →
/// `claude-sonnet-4-5`); remove a date snapshot (`-2025-04-14`, `-20250929`, `@20250929`); remove `-latest`;
/// remove a 3–4 digit version suffix (`-001`, `-2411`). Examples: `gpt-4o-mini-2024-07-18` → `gpt-4o-mini`,
/// `mistral-large-latest` and `mistral-large-2411` → `mistral-large`, `models/gemini-2.0-flash-001` →
/// `gemini-2.0-flash`. Provider names are not part of it (rules have their own `provider` dimension).
pub fn canonical_model(model: &str) -> String {
    alias_steps(model).pop().unwrap_or_default()
}

/// The names a model goes through on its way to [`canonical_model`], first the lowercased name itself, last the
/// canonical name (consecutive duplicates removed).
fn alias_steps(model: &str) -> Vec<String> {
    let mut name = model.trim().to_ascii_lowercase();
    let mut steps: Vec<String> = Vec::with_capacity(6);
    let push = |steps: &mut Vec<String>, name: &str| {
        if steps.last().is_none_or(|last| last != name) {
            steps.push(name.to_owned());
        }
    };
    push(&mut steps, &name);
    if let Some(rest) = name.strip_prefix("models/") {
        name = rest.to_owned();
        push(&mut steps, &name);
    }
    if let Some((_, rest)) = name.rsplit_once('/') {
        name = rest.to_owned();
        push(&mut steps, &name);
    }
    if name.starts_with("claude") && name.contains('.') {
        name = name.replace('.', "-");
        push(&mut steps, &name);
    }
    if let Some(base) = strip_date(&name) {
        name = base.to_owned();
        push(&mut steps, &name);
    }
    if let Some(base) = name.strip_suffix("-latest") {
        name = base.to_owned();
        push(&mut steps, &name);
    }
    if let Some(base) = strip_version_number(&name) {
        name = base.to_owned();
        push(&mut steps, &name);
    }
    steps
}

/// Lookup candidates `(provider, model)`, most specific first, without duplicates: the pair as given
/// (lowercased), then under the catalog's provider every step of [`canonical_model`], then the canonical name
/// with `-latest`.
pub(crate) fn candidates(provider: &str, model: &str) -> Vec<(String, String)> {
    let provider = provider.trim().to_ascii_lowercase();
    let steps = alias_steps(model);
    let mut out: Vec<(String, String)> = Vec::with_capacity(steps.len() + 3);
    let mut push = |provider: &str, model: &str| {
        if !model.is_empty() && !out.iter().any(|(p, m)| p == provider && m == model) {
            out.push((provider.to_owned(), model.to_owned()));
        }
    };
    let lowered = steps.first().map_or("", String::as_str);
    push(&provider, lowered);
    let canonical = match provider.as_str() {
        "openrouter" => lowered.split_once('/').and_then(|(vendor, _)| vendor_provider(vendor)).unwrap_or("openrouter"),
        other => canonical_provider(other),
    };
    for step in &steps {
        push(canonical, step);
    }
    if let Some(last) = steps.last() {
        push(canonical, &format!("{last}-latest"));
    }
    out
}

/// The catalog provider for a provider name used by the gateway.
fn canonical_provider(provider: &str) -> &str {
    match provider {
        "azure-openai" | "azure" => "openai",
        "google" | "gemini" | "google-ai-studio" => "google-ai-studio",
        "x-ai" | "grok" => "xai",
        "mistralai" => "mistral",
        other => other,
    }
}

/// The provider behind an OpenRouter vendor prefix.
fn vendor_provider(vendor: &str) -> Option<&'static str> {
    Some(match vendor {
        "openai" => "openai",
        "anthropic" => "anthropic",
        "google" => "google-ai-studio",
        "x-ai" => "xai",
        "deepseek" => "deepseek",
        "mistralai" => "mistral",
        _ => return None,
    })
}

/// `name` without a trailing date snapshot (`-YYYY-MM-DD`, `-YYYYMMDD`, `@YYYYMMDD`).
fn strip_date(name: &str) -> Option<&str> {
    let bytes = name.as_bytes();
    let is_digits = |range: std::ops::Range<usize>| bytes[range].iter().all(u8::is_ascii_digit);
    let len = bytes.len();
    if len > 11
        && bytes[len - 11] == b'-'
        && is_digits(len - 10..len - 6)
        && bytes[len - 6] == b'-'
        && is_digits(len - 5..len - 3)
        && bytes[len - 3] == b'-'
        && is_digits(len - 2..len)
    {
        return Some(&name[..len - 11]);
    }
    if len > 9 && matches!(bytes[len - 9], b'-' | b'@') && is_digits(len - 8..len) && bytes[len - 8] == b'2' {
        return Some(&name[..len - 9]);
    }
    None
}

/// `name` without a trailing `-NNN` or `-NNNN` version number (`gemini-2.0-flash-001`, `mistral-large-2411`).
fn strip_version_number(name: &str) -> Option<&str> {
    let (base, suffix) = name.rsplit_once('-')?;
    (matches!(suffix.len(), 3 | 4) && suffix.bytes().all(|byte| byte.is_ascii_digit()) && !base.is_empty())
        .then_some(base)
}

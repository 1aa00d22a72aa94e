//! The effective configuration with every secret hidden, for `check-config` and the admin `/config` endpoint.

use crate::{Config, FileConfig, Secret};

impl Config {
    /// The effective configuration in file shape with every secret replaced by `[redacted]`: tokens and API
    /// keys whole, and in every URL (`database.url`, each provider's `base_url` and `zdr_base_url`) the
    /// password of the userinfo and the value of each query parameter.
    pub fn redacted(&self) -> FileConfig {
        self.effective.clone()
    }
}

/// `file` as [`Config::redacted`] shows it; made once at load, so the runtime config never holds the secrets
/// of the file shape in clear.
pub(crate) fn file(mut file: FileConfig) -> FileConfig {
    let redact = |s: &mut Option<String>| {
        if s.is_some() {
            *s = Some(Secret::REDACTED.to_string());
        }
    };
    redact(&mut file.admin.token);
    redact(&mut file.gateway.auth_token);
    for provider in file.providers.values_mut() {
        redact(&mut provider.api_key);
        for text in [&mut provider.base_url, &mut provider.zdr_base_url].into_iter().flatten() {
            *text = url(text);
        }
    }
    file.database.url = url(&file.database.url);
    if let Some(openai) = &mut file.ingest.openai {
        redact(&mut openai.admin_key);
        openai.base_url = url(&openai.base_url);
    }
    if let Some(anthropic) = &mut file.ingest.anthropic {
        redact(&mut anthropic.admin_key);
        anthropic.base_url = url(&anthropic.base_url);
    }
    if let Some(google) = &mut file.ingest.google {
        redact(&mut google.service_account_json);
        google.token_url = url(&google.token_url);
        google.bigquery_url = url(&google.bigquery_url);
    }
    if let Some(redis) = file.redis.as_mut() {
        redis.url = url(&redis.url);
    }
    file
}

/// A URL as it may be shown: the userinfo password and every query value replaced by `[redacted]` (the user
/// name, host, path and query names stay, so an operator still sees where it points). Text that does not parse
/// as a URL but could hold a secret (`@` or `?`) is hidden whole.
pub(crate) fn url(text: &str) -> String {
    // `[redacted]` would be percent-encoded inside the URL: a plain mark goes in and is swapped at the end.
    const MARK: &str = "REDACTEDxMARK";
    let Ok(mut url) = url::Url::parse(text) else {
        return if text.contains('@') || text.contains('?') { Secret::REDACTED.to_string() } else { text.to_string() };
    };
    if url.password().is_some() && url.set_password(Some(MARK)).is_err() {
        return Secret::REDACTED.to_string();
    }
    if let Some(query) = url.query() {
        let hidden: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) => format!("{name}={MARK}"),
                None if pair.is_empty() => String::new(),
                None => format!("{pair}={MARK}"),
            })
            .collect();
        url.set_query(Some(&hidden.join("&")));
    }
    if url.fragment().is_some() {
        url.set_fragment(Some(MARK));
    }
    url.to_string().replace(MARK, Secret::REDACTED)
}

//! Credentials (docs/proxy.md): accept the gateway token wherever an SDK puts its key, swap it for the
//! provider's stored key, let a client's own provider key through, inject the stored key when none is sent.

use http::HeaderValue;
use http::header::HeaderMap;
use tollgate_config::{AuthStyle, CredentialKind, Provider, ProviderFamily, Secret};

use crate::error::GatewayError;

/// The version Anthropic requires on every request; sent only when the client sent none.
const ANTHROPIC_VERSION: &str = "2023-06-01";

/// How a request got in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// The gateway has no `auth_token`: nobody is authenticated, everyone gets in.
    Open,
    /// The request carried the gateway token.
    GatewayToken,
}

impl Credential {
    /// The kind `gateway.custom_cost_from` names; `None` for an open gateway, which vouches for nobody.
    pub fn kind(self) -> Option<CredentialKind> {
        match self {
            Credential::Open => None,
            Credential::GatewayToken => Some(CredentialKind::GatewayToken),
        }
    }
}

/// The key carried by one auth header, without a `Bearer ` prefix.
fn key_in(headers: &HeaderMap, style: AuthStyle) -> Option<&[u8]> {
    let value = headers.get(style.header_name())?.as_bytes();
    Some(match style {
        AuthStyle::Bearer => strip_bearer(value)?,
        _ => value,
    })
}

fn strip_bearer(value: &[u8]) -> Option<&[u8]> {
    let prefix = b"bearer ";
    (value.len() > prefix.len() && value[..prefix.len()].eq_ignore_ascii_case(prefix))
        .then(|| value[prefix.len()..].trim_ascii())
}

/// Checks the gateway credential and takes it out of the headers (steps 1–3 below). Runs before anything
/// else looks at the request, so an unauthenticated request costs no budget and never reaches a provider.
///
/// 1. `cf-aig-authorization` is taken out (it never goes upstream).
/// 2. With a gateway token: the request is authenticated by `cf-aig-authorization` or by a provider auth header
///    carrying the token; otherwise 401 (`gateway_auth_required` when nothing was sent, `gateway_auth_invalid`
///    when something wrong was). Auth headers carrying the token are removed.
/// 3. A provider key of the client's own (any auth header left) passes through untouched; when the gateway
///    has a token, only if the request was authenticated by `cf-aig-authorization`.
pub fn authenticate(headers: &mut HeaderMap, gateway_token: Option<&Secret>) -> Result<Credential, GatewayError> {
    let cf = headers.remove("cf-aig-authorization");
    let Some(token) = gateway_token else { return Ok(Credential::Open) };
    let cf_valid = match &cf {
        Some(value) => {
            let key = strip_bearer(value.as_bytes()).unwrap_or(value.as_bytes());
            if !token.matches(key) {
                return Err(GatewayError::GatewayAuthInvalid);
            }
            true
        }
        None => false,
    };
    let mut token_in_provider_header = false;
    let mut foreign_key = false;
    for style in AuthStyle::ALL {
        match key_in(headers, style) {
            Some(key) if token.matches(key) => {
                token_in_provider_header = true;
                headers.remove(style.header_name());
            }
            Some(_) => foreign_key = true,
            // An Authorization header that is not "Bearer ..." is still a credential of some kind.
            None => foreign_key |= headers.contains_key(style.header_name()),
        }
    }
    if !cf_valid && !token_in_provider_header {
        return Err(if foreign_key { GatewayError::GatewayAuthInvalid } else { GatewayError::GatewayAuthRequired });
    }
    if foreign_key && !cf_valid {
        // Authenticated through a provider header, yet another provider header holds a different key: that
        // key was not vouched for by cf-aig-authorization, so it does not pass.
        for style in AuthStyle::ALL {
            headers.remove(style.header_name());
        }
    }
    Ok(Credential::GatewayToken)
}

/// After a successful [`authenticate`], takes the gateway token out of everything that goes upstream, in
/// whatever form the client sent it: any header whose value contains it (`Authorization: Basic <token>`,
/// `Authorization: <token>`, `Bearer<TAB><token>`...) and any query parameter whose decoded name or value
/// contains it (Gemini's `?key=<token>`). Returns the query string to send.
///
/// The search is not constant-time, which is fine here: it runs only for requests that already proved they
/// hold the token.
pub fn scrub_token(headers: &mut HeaderMap, query: Option<&str>, token: &Secret) -> Option<String> {
    let needle = token.expose().as_bytes();
    if needle.is_empty() {
        return query.map(str::to_string);
    }
    let carriers: Vec<http::HeaderName> = headers
        .iter()
        .filter(|(_, value)| memchr::memmem::find(value.as_bytes(), needle).is_some())
        .map(|(name, _)| name.clone())
        .collect();
    for name in carriers {
        headers.remove(name);
    }
    let query = query?;
    if !query.contains('=') && memchr::memmem::find(query.as_bytes(), needle).is_none() {
        return Some(query.to_string());
    }
    let carries = |part: &str| {
        let decoded: Vec<u8> = url::form_urlencoded::parse(part.as_bytes())
            .flat_map(|(k, v)| k.into_owned().into_bytes().into_iter().chain(v.into_owned().into_bytes()))
            .collect();
        memchr::memmem::find(&decoded, needle).is_some() || memchr::memmem::find(part.as_bytes(), needle).is_some()
    };
    let kept: Vec<&str> = query.split('&').filter(|part| !carries(part)).collect();
    Some(kept.join("&"))
}

/// 4. With no provider key left after [`authenticate`], injects the provider's stored key in `style`'s header
///    (and Anthropic's required version header when the client sent none).
pub fn inject_stored_key(headers: &mut HeaderMap, provider: &Provider, style: AuthStyle) {
    let client_key = AuthStyle::ALL.iter().any(|s| headers.contains_key(s.header_name()));
    if !client_key && let Some(stored) = &provider.api_key {
        let value = match style {
            AuthStyle::Bearer => HeaderValue::try_from(format!("Bearer {}", stored.expose())),
            _ => HeaderValue::try_from(stored.expose()),
        };
        if let Ok(mut value) = value {
            value.set_sensitive(true);
            headers.insert(style.header_name(), value);
        }
    }
    if provider.family == ProviderFamily::Anthropic && !headers.contains_key("anthropic-version") {
        headers.insert("anthropic-version", HeaderValue::from_static(ANTHROPIC_VERSION));
    }
}

/// Both steps, for callers that have the provider at hand.
#[cfg(test)]
fn apply(
    headers: &mut HeaderMap,
    gateway_token: Option<&Secret>,
    provider: &Provider,
    style: AuthStyle,
) -> Result<(), GatewayError> {
    authenticate(headers, gateway_token)?;
    inject_stored_key(headers, provider, style);
    Ok(())
}

#[cfg(test)]
mod tests;

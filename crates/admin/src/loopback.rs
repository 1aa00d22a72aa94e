//! An admin server without a token answers only requests addressed to this machine by name, and never one a
//! browser sent from another site: that stops DNS rebinding (a page whose host name resolves to 127.0.0.1) and
//! cross-site form posts from reading the logs or changing the rules.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::header::{HOST, ORIGIN};

use crate::auth::PUBLIC;
use crate::{AdminError, AdminState};

/// Refuses (403) a request whose `Host` is not a loopback name (`localhost`, `127.0.0.1`, `[::1]`, any port,
/// or the listen address), whose `Origin` is not a loopback origin, or that a browser marks
/// `Sec-Fetch-Site: cross-site`. The public paths stay open when `admin.public_metrics` is set, as they are
/// with a token. A request with no `Host` at all did not come from a browser and passes.
pub async fn loopback_only(State(state): State<AdminState>, request: Request, next: Next) -> Response {
    if state.config.admin.public_metrics && PUBLIC.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    match refusal(&request, state.config.admin.listen) {
        Some(message) => AdminError::Forbidden(message).into_response(),
        None => next.run(request).await,
    }
}

fn refusal(request: &Request, listen: SocketAddr) -> Option<String> {
    let headers = request.headers();
    let host = headers
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| request.uri().authority().map(http::uri::Authority::as_str));
    if let Some(host) = host
        && !authority_is_local(host, listen)
    {
        return Some(format!(
            "Host {host:?} is not a loopback name: without admin.token this server answers only requests to \
             localhost, 127.0.0.1 or [::1] (set admin.token to reach it under other names)"
        ));
    }
    if headers.get("sec-fetch-site").is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site")) {
        return Some("cross-site browser requests are refused without admin.token".to_string());
    }
    if let Some(origin) = headers.get(ORIGIN) {
        let local = origin.to_str().ok().is_some_and(|o| origin_is_local(o, listen));
        if !local {
            return Some(format!(
                "Origin {:?} is not a loopback origin: without admin.token only pages on this machine may call \
                 this server",
                String::from_utf8_lossy(origin.as_bytes())
            ));
        }
    }
    None
}

/// `host[:port]` (`[v6]:port` too) names this machine: `localhost`, a loopback address, or the listen address.
fn authority_is_local(authority: &str, listen: SocketAddr) -> bool {
    let Ok(authority) = authority.parse::<http::uri::Authority>() else { return false };
    if authority.as_str().contains('@') {
        return false;
    }
    let host = authority.host();
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    if host.eq_ignore_ascii_case("localhost") || host.eq_ignore_ascii_case("localhost.") {
        return true;
    }
    host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback() || ip == listen.ip())
}

/// `http://host[:port]` or `https://...` with a local host. `null` (sandboxed frames, files) is not local.
fn origin_is_local(origin: &str, listen: SocketAddr) -> bool {
    let rest = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://"));
    rest.is_some_and(|authority| !authority.contains('/') && authority_is_local(authority, listen))
}

#[cfg(test)]
mod tests;

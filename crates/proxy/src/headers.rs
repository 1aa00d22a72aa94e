//! Request headers: the `cf-aig-*` controls the gateway reads, and what must not travel to the next hop.

use std::time::Duration;

use http::header::{self, HeaderMap, HeaderName};
use tollgate_config::{Backoff, Gateway, MAX_ATTEMPTS, MAX_RETRY_DELAY};

use crate::error::GatewayError;

/// `cf-aig-event-id` is stored on the log row; longer ids are refused rather than truncated.
const MAX_EVENT_ID_LEN: usize = 256;

/// The per-request controls read from `cf-aig-*` headers, with the gateway's defaults filled in.
#[derive(Debug, Clone)]
pub struct Controls {
    /// Time allowed until the first byte of the upstream response.
    pub timeout: Duration,
    pub max_attempts: u32,
    pub retry_delay: Duration,
    pub backoff: Backoff,
    pub zdr: bool,
    pub collect_log: bool,
    pub collect_log_payload: bool,
    pub event_id: Option<String>,
    /// Raw `cf-aig-metadata`, parsed by the limits layer.
    pub metadata: Option<String>,
    /// Raw `cf-aig-custom-cost`, parsed by the accounting layer.
    pub custom_cost: Option<String>,
    pub cache: CacheControls,
}

/// The cache headers (docs/cache.md). The TTL's upper bound is `cache.max_ttl`, checked by the cache phase.
#[derive(Debug, Clone, Default)]
pub struct CacheControls {
    /// `cf-aig-cache-ttl` (or the deprecated `cf-cache-ttl`) in seconds.
    pub ttl_secs: Option<u64>,
    /// `cf-aig-skip-cache: true` (or the deprecated `cf-skip-cache`): neither read nor write.
    pub skip: bool,
    /// `cf-aig-cache-key`: replaces the body part of the key (1 to 256 characters).
    pub key: Option<String>,
}

/// Longest `cf-aig-cache-key`.
const MAX_CACHE_KEY_CHARS: usize = 256;

impl CacheControls {
    fn read(headers: &HeaderMap) -> Result<Self, GatewayError> {
        let mut controls = CacheControls::default();
        for name in ["cf-aig-cache-ttl", "cf-cache-ttl"] {
            if let Some(v) = text(headers, name)? {
                let secs = v.parse().map_err(|_| invalid(name, v, "a whole number of seconds"))?;
                controls.ttl_secs.get_or_insert(secs);
            }
        }
        for name in ["cf-aig-skip-cache", "cf-skip-cache"] {
            if let Some(v) = text(headers, name)? {
                controls.skip |= boolean(name, v)?;
            }
        }
        if let Some(v) = text(headers, "cf-aig-cache-key")? {
            let chars = v.chars().count();
            if chars == 0 || chars > MAX_CACHE_KEY_CHARS {
                return Err(invalid("cf-aig-cache-key", "…", "1 to 256 characters"));
            }
            controls.key = Some(v.to_string());
        }
        Ok(controls)
    }
}

impl Controls {
    /// Reads the controls; a malformed header is a 400 `invalid_header` that names it.
    pub fn read(headers: &HeaderMap, defaults: &Gateway) -> Result<Self, GatewayError> {
        let mut controls = Controls {
            timeout: defaults.request_timeout,
            max_attempts: defaults.max_attempts,
            retry_delay: defaults.retry_delay,
            backoff: defaults.backoff,
            zdr: false,
            collect_log: true,
            collect_log_payload: true,
            event_id: None,
            metadata: None,
            custom_cost: None,
            cache: CacheControls::read(headers)?,
        };
        if let Some(v) = text(headers, "cf-aig-request-timeout")? {
            let ms: u64 =
                v.parse().map_err(|_| invalid("cf-aig-request-timeout", v, "a whole number of milliseconds"))?;
            if ms == 0 {
                return Err(invalid("cf-aig-request-timeout", v, "a positive number of milliseconds"));
            }
            controls.timeout = Duration::from_millis(ms);
        }
        if let Some(v) = text(headers, "cf-aig-max-attempts")? {
            controls.max_attempts = v
                .parse()
                .ok()
                .filter(|n| (1..=MAX_ATTEMPTS).contains(n))
                .ok_or_else(|| invalid("cf-aig-max-attempts", v, "a whole number from 1 to 5"))?;
        }
        if let Some(v) = text(headers, "cf-aig-retry-delay")? {
            controls.retry_delay = v
                .parse()
                .ok()
                .map(Duration::from_millis)
                .filter(|delay| *delay <= MAX_RETRY_DELAY)
                .ok_or_else(|| invalid("cf-aig-retry-delay", v, "milliseconds from 0 to 5000"))?;
        }
        if let Some(v) = text(headers, "cf-aig-backoff")? {
            controls.backoff =
                v.parse().map_err(|_| invalid("cf-aig-backoff", v, "one of constant, linear, exponential"))?;
        }
        if let Some(v) = text(headers, "cf-aig-zdr")? {
            controls.zdr = boolean("cf-aig-zdr", v)?;
        }
        if let Some(v) = text(headers, "cf-aig-collect-log")? {
            controls.collect_log = boolean("cf-aig-collect-log", v)?;
        }
        if let Some(v) = text(headers, "cf-aig-collect-log-payload")? {
            controls.collect_log_payload = boolean("cf-aig-collect-log-payload", v)?;
        }
        if let Some(v) = text(headers, "cf-aig-event-id")? {
            if v.len() > MAX_EVENT_ID_LEN {
                return Err(invalid("cf-aig-event-id", "…", "at most 256 characters"));
            }
            controls.event_id = Some(v.to_string());
        }
        controls.metadata = text(headers, "cf-aig-metadata")?.map(str::to_string);
        controls.custom_cost = text(headers, "cf-aig-custom-cost")?.map(str::to_string);
        Ok(controls)
    }

    /// The wait before attempt `next` (2, 3, ...).
    pub fn delay_before(&self, next: u32) -> Duration {
        let retries_so_far = next.saturating_sub(1).max(1);
        match self.backoff {
            Backoff::Constant => self.retry_delay,
            Backoff::Linear => self.retry_delay * retries_so_far,
            Backoff::Exponential => self.retry_delay * 2u32.saturating_pow(retries_so_far - 1),
        }
    }
}

fn text<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<Option<&'a str>, GatewayError> {
    match headers.get(name) {
        None => Ok(None),
        Some(value) => value
            .to_str()
            .map(|s| Some(s.trim()))
            .map_err(|_| GatewayError::InvalidHeader(format!("{name} must be visible ASCII text"))),
    }
}

fn boolean(name: &str, value: &str) -> Result<bool, GatewayError> {
    match value {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(invalid(name, value, "true or false")),
    }
}

fn invalid(name: &str, value: &str, expected: &str) -> GatewayError {
    GatewayError::InvalidHeader(format!("{name}: {value:?} is not valid; expected {expected}"))
}

/// Removes the headers that end at this hop (RFC 9110 §7.6.1), the `cf-aig-*` controls, and the ones the
/// gateway sets itself. Used in both directions.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Headers named in Connection are hop-by-hop too.
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
    ] {
        headers.remove(name);
    }
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
}

/// Prepares client request headers for the upstream: hop-by-hop and gateway headers out, and the ones the
/// gateway's own request defines (host, length, encoding) left to the client library.
pub fn prepare_upstream(headers: &mut HeaderMap) {
    strip_hop_by_hop(headers);
    let gateway_headers: Vec<HeaderName> =
        headers.keys().filter(|k| k.as_str().starts_with("cf-aig-")).cloned().collect();
    for name in gateway_headers {
        headers.remove(name);
    }
    headers.remove(header::HOST);
    headers.remove(header::CONTENT_LENGTH);
    headers.remove(header::EXPECT);
    // The accounting layer reads the response bytes as they pass, so they must arrive uncompressed.
    headers.remove(header::ACCEPT_ENCODING);
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn controls(backoff: Backoff) -> Controls {
        let config = tollgate_config::Config::from_toml("", &[]).unwrap();
        let mut c = Controls::read(&HeaderMap::new(), &config.gateway).unwrap();
        c.backoff = backoff;
        c.retry_delay = Duration::from_millis(100);
        c
    }

    #[test]
    fn backoff_schedules() {
        let ms = |c: &Controls, n| c.delay_before(n).as_millis();
        let constant = controls(Backoff::Constant);
        assert_eq!([ms(&constant, 2), ms(&constant, 3), ms(&constant, 4)], [100, 100, 100]);
        let linear = controls(Backoff::Linear);
        assert_eq!([ms(&linear, 2), ms(&linear, 3), ms(&linear, 4)], [100, 200, 300]);
        let exponential = controls(Backoff::Exponential);
        assert_eq!([ms(&exponential, 2), ms(&exponential, 3), ms(&exponential, 4)], [100, 200, 400]);
    }

    #[test]
    fn connection_named_headers_are_hop_by_hop() {
        let mut h = HeaderMap::new();
        h.insert("connection", "keep-alive, x-a".parse().unwrap());
        h.insert("x-a", "1".parse().unwrap());
        h.insert("keep-alive", "timeout=5".parse().unwrap());
        h.insert("x-b", "2".parse().unwrap());
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-b"));
    }
}

//! The upstream client (rustls, pooled, HTTP/2 where the provider offers it, TCP_NODELAY) and the attempt
//! loop: retries on connect errors, 429 and 5xx while nothing has reached the client yet, within the
//! time-to-first-byte deadline.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::time::Instant;

use crate::error::GatewayError;
use crate::headers::Controls;

/// Connections to providers are set up once and reused; a provider that does not accept a TCP connection
/// within this time is unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle pooled connections are closed after this long (providers close theirs after about two minutes).
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// The shared client; cheap to clone.
#[derive(Clone)]
pub struct UpstreamClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl UpstreamClient {
    pub fn new() -> Self {
        // One crypto provider is compiled in; installing it makes the choice explicit. A second call (tests
        // build several gateways in one process) finds it installed already, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        http.set_keepalive(Some(Duration::from_mins(1)));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_all_versions()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(https);
        Self { client }
    }

    /// Sends the request, retrying as `controls` say. Returns the response and the attempt that produced it.
    ///
    /// 1. The deadline for the first byte covers all attempts and the waits between them.
    /// 2. A connect failure, a 429 or a 5xx is retried while attempts remain; the failed response's body is
    ///    dropped unread (nothing of it reached the client).
    /// 3. The last attempt's response is returned whatever its status: a provider's error passes through.
    pub async fn send(
        &self,
        provider: &str,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &Bytes,
        controls: &Controls,
    ) -> Result<(Response<Incoming>, u32), GatewayError> {
        let deadline = Instant::now() + controls.timeout;
        let timeout_error = || GatewayError::UpstreamTimeout {
            provider: provider.to_string(),
            timeout_ms: controls.timeout.as_millis() as u64,
        };
        let mut attempt = 1;
        loop {
            let mut request = Request::new(Full::new(body.clone()));
            *request.method_mut() = method.clone();
            *request.uri_mut() = uri.clone();
            *request.headers_mut() = headers.clone();
            let last = attempt >= controls.max_attempts;
            match tokio::time::timeout_at(deadline, self.client.request(request)).await {
                Err(_) => return Err(timeout_error()),
                Ok(Ok(response)) => {
                    let status = response.status();
                    let retryable = status.as_u16() == 429 || status.is_server_error();
                    if !retryable || last {
                        return Ok((response, attempt));
                    }
                    tracing::debug!(provider, attempt, status = status.as_u16(), "retrying after upstream status");
                }
                Ok(Err(error)) => {
                    if !error.is_connect() || last {
                        let reason = error_chain(&error);
                        return Err(GatewayError::UpstreamUnreachable { provider: provider.to_string(), reason });
                    }
                    tracing::debug!(provider, attempt, "retrying after connect error");
                }
            }
            attempt += 1;
            let wake = Instant::now() + controls.delay_before(attempt);
            if wake >= deadline {
                tokio::time::sleep_until(deadline).await;
                return Err(timeout_error());
            }
            tokio::time::sleep_until(wake).await;
        }
    }
}

impl Default for UpstreamClient {
    fn default() -> Self {
        Self::new()
    }
}

/// The error and its causes in one line, e.g. "client error (Connect): tcp connect error: Connection refused".
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

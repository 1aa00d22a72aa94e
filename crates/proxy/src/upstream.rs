//! The upstream client (rustls, pooled, HTTP/2 where the provider offers it, TCP_NODELAY) and the attempt
//! loop: retries on connect errors, 429 and 5xx while nothing has reached the client yet, within the
//! time-to-first-byte deadline.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::{Client, ResponseFuture};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::time::Instant;

use crate::error::GatewayError;
use crate::headers::Controls;

/// Connections to providers are set up once and reused; a provider that does not accept a TCP connection
/// within this time is unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle pooled connections are closed after this long (providers close theirs after about two minutes).
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

#[cfg(test)]
mod tests;

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
    /// The future owns everything it needs, so a request path that is abandoned mid-send can hand it to a
    /// background task and still learn what the provider answered.
    ///
    /// 1. The deadline for the first byte covers all attempts and the waits between them.
    /// 2. A connect failure, a 429 or a 5xx is retried while attempts remain; the failed response's body is
    ///    dropped unread (nothing of it reached the client).
    /// 3. The last attempt's response is returned whatever its status: a provider's error passes through.
    /// 4. When the deadline passes while a request is out, that request is returned in the error, still in
    ///    flight: the provider has it and may bill it.
    pub fn send(
        &self,
        call: UpstreamCall,
    ) -> impl Future<Output = Result<(Response<Incoming>, u32), SendError>> + Send + 'static {
        let client = self.client.clone();
        async move {
            let UpstreamCall { provider, method, uri, headers, body, controls } = call;
            let deadline = Instant::now() + controls.timeout;
            let timeout_error = |in_flight| SendError::TimedOut {
                error: GatewayError::UpstreamTimeout {
                    provider: provider.clone(),
                    timeout_ms: controls.timeout.as_millis() as u64,
                },
                in_flight,
            };
            let mut attempt = 1;
            loop {
                let mut request = Request::new(Full::new(body.clone()));
                *request.method_mut() = method.clone();
                *request.uri_mut() = uri.clone();
                *request.headers_mut() = headers.clone();
                let last = attempt >= controls.max_attempts;
                let mut pending = client.request(request);
                match tokio::time::timeout_at(deadline, &mut pending).await {
                    Err(_) => return Err(timeout_error(Some(pending))),
                    Ok(Ok(response)) => {
                        let status = response.status();
                        let retryable = status.as_u16() == 429 || status.is_server_error();
                        if !retryable || last {
                            return Ok((response, attempt));
                        }
                        tracing::debug!(provider, attempt, status = status.as_u16(), "retrying after upstream status");
                    }
                    Ok(Err(error)) => {
                        let connect = error.is_connect();
                        if !connect || last {
                            let reason = error_chain(&error);
                            let error =
                                GatewayError::UpstreamUnreachable { provider: provider.clone(), reason, source: error };
                            return Err(SendError::Failed { error, reached_provider: !connect });
                        }
                        tracing::debug!(provider, attempt, "retrying after connect error");
                    }
                }
                attempt += 1;
                let wake = Instant::now() + controls.delay_before(attempt);
                if wake >= deadline {
                    tokio::time::sleep_until(deadline).await;
                    return Err(timeout_error(None));
                }
                tokio::time::sleep_until(wake).await;
            }
        }
    }
}

/// One request to send upstream, owned.
pub struct UpstreamCall {
    pub provider: String,
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub controls: Controls,
}

/// A request in flight to the provider, past the gateway's first-byte deadline.
pub type InFlight = ResponseFuture;

/// Why [`UpstreamClient::send`] gave no response.
pub enum SendError {
    /// The request failed; `reached_provider` is false when no connection was made (nothing to bill), true
    /// when it broke after the request may have been delivered.
    Failed { error: GatewayError, reached_provider: bool },
    /// The first-byte deadline passed. `in_flight` is the request still out (`None` when the deadline passed
    /// between attempts, after error answers the provider does not bill).
    TimedOut { error: GatewayError, in_flight: Option<InFlight> },
}

impl SendError {
    pub fn error(&self) -> &GatewayError {
        match self {
            SendError::Failed { error, .. } | SendError::TimedOut { error, .. } => error,
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

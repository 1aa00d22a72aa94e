//! One HTTP exchange with a report API, retried: 429 waits as long as `retry-after` says, 5xx, transport
//! failures and pages that do not parse back off exponentially; 401/403 and other 4xx end the run at once.

use std::time::Duration;

use reqwest::{RequestBuilder, Response, StatusCode};

use crate::error::IngestError;
use crate::report::ParseError;

/// How hard a fetch tries.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts per request, at least 1.
    pub attempts: u32,
    /// The first backoff; doubled on each retry up to `max_delay`.
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// The longest `retry-after` honoured; a longer one is cut to this (a run must end within its lease).
    pub max_retry_after: Duration,
    /// A page body larger than this is refused.
    pub max_body_bytes: usize,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 5,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
            max_retry_after: Duration::from_mins(2),
            max_body_bytes: 32 << 20,
        }
    }
}

/// What one attempt came to.
enum Attempt<T> {
    Done(T),
    /// Try again after this long, remembering why.
    Retry(Duration, IngestError),
}

impl RetryPolicy {
    fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.saturating_sub(1)).unwrap_or(u32::MAX);
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }

    /// Sends `request()` until an answer parses with `parse`, or the failure is final.
    pub async fn fetch<T>(
        &self,
        endpoint: &str,
        request: impl Fn() -> RequestBuilder,
        parse: impl Fn(&str) -> Result<T, ParseError>,
    ) -> Result<(String, T), IngestError> {
        let attempts = self.attempts.max(1);
        let mut attempt = 1;
        loop {
            let outcome = match request().send().await {
                Ok(response) => self.answer(endpoint, response, attempt, &parse).await?,
                Err(source) => Attempt::Retry(
                    self.backoff(attempt),
                    IngestError::Transport { endpoint: endpoint.into(), attempts: attempt, source },
                ),
            };
            match outcome {
                Attempt::Done(done) => return Ok(done),
                Attempt::Retry(_, error) if attempt >= attempts => return Err(error),
                Attempt::Retry(delay, error) => {
                    tracing::warn!(
                        endpoint,
                        attempt,
                        ?delay,
                        error = &error as &dyn std::error::Error,
                        "report fetch failed; retrying"
                    );
                    tokio::time::sleep(delay).await;
                }
            }
            attempt += 1;
        }
    }

    async fn answer<T>(
        &self,
        endpoint: &str,
        response: Response,
        attempt: u32,
        parse: &impl Fn(&str) -> Result<T, ParseError>,
    ) -> Result<Attempt<(String, T)>, IngestError> {
        let status = response.status();
        let retry_after = retry_after(&response);
        let body = match self.body(endpoint, response).await {
            Ok(body) => body,
            Err(IngestError::Transport { source, .. }) => {
                let error = IngestError::Transport { endpoint: endpoint.into(), attempts: attempt, source };
                return Ok(Attempt::Retry(self.backoff(attempt), error));
            }
            Err(error) => return Err(error),
        };
        let message = || body.chars().take(300).collect::<String>();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(IngestError::WrongKey {
                endpoint: endpoint.into(),
                status: status.as_u16(),
                message: message(),
            });
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            let delay =
                retry_after.map_or_else(|| self.backoff(attempt), |s| Duration::from_secs(s).min(self.max_retry_after));
            let error = IngestError::RateLimited { endpoint: endpoint.into(), attempts: attempt, retry_after };
            return Ok(Attempt::Retry(delay, error));
        }
        if status.is_server_error() {
            let error = IngestError::Server { endpoint: endpoint.into(), status: status.as_u16(), attempts: attempt };
            return Ok(Attempt::Retry(self.backoff(attempt), error));
        }
        if !status.is_success() {
            return Err(IngestError::Rejected {
                endpoint: endpoint.into(),
                status: status.as_u16(),
                message: message(),
            });
        }
        match parse(&body) {
            Ok(parsed) => Ok(Attempt::Done((body, parsed))),
            Err(source) => {
                Ok(Attempt::Retry(self.backoff(attempt), IngestError::Malformed { attempts: attempt, source }))
            }
        }
    }

    /// The body as text, at most `max_body_bytes`.
    async fn body(&self, endpoint: &str, mut response: Response) -> Result<String, IngestError> {
        let mut bytes = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if bytes.len().saturating_add(chunk.len()) > self.max_body_bytes {
                        return Err(IngestError::TooLarge(format!(
                            "{endpoint} sent a page over {} bytes",
                            self.max_body_bytes
                        )));
                    }
                    bytes.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(source) => return Err(IngestError::Transport { endpoint: endpoint.into(), attempts: 1, source }),
            }
        }
        // Not UTF-8 is malformed; the lossy text keeps the parser's message meaningful.
        Ok(String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
    }
}

/// `retry-after` in seconds (the report APIs send seconds; an HTTP date is ignored and the backoff applies).
fn retry_after(response: &Response) -> Option<u64> {
    response.headers().get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim().parse().ok()
}

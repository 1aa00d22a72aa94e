//! The errors the gateway itself answers with, rendered in the client's own error format.

use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use serde_json::json;

/// Which error shape the client understands; decided by the path it called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorFormat {
    /// `{"error":{"message","type","param","code"}}`
    OpenAi,
    /// `{"type":"error","error":{"type","message"}}`
    Anthropic,
    /// `{"error":{"code","message","status"}}`
    Gemini,
}

/// Every error the gateway produces itself (a provider's own error passes through untouched).
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("{0}")]
    InvalidHeader(String),
    #[error("{0}")]
    InvalidJson(String),
    #[error("{0}")]
    UnknownModelPrefix(String),
    #[error("{0}")]
    InvalidMetadata(String),
    /// A request path the gateway will not route (dot segments, encoded slashes, control bytes, bad escapes,
    /// out-of-bounds segments); the message names the path and why.
    #[error("{0}")]
    InvalidPath(String),
    #[error("model is {chars} characters long; at most {max} are accepted (gateway.max_model_chars)")]
    ModelTooLong { chars: usize, max: usize },
    #[error("could not read the request body: {0}")]
    ClientBody(String),
    #[error("the request body did not arrive within {seconds} s (server.body_timeout)")]
    BodyTimeout { seconds: u64 },
    #[error(
        "no price is known for {provider}/{model}, and a spend limit applies to this request: it is refused so that \
         it cannot spend without being charged (add the model to pricing.file, or set pricing.unpriced = \"allow\")"
    )]
    UnpricedModel { provider: String, model: String },
    #[error("internal error: {0}")]
    Internal(String),
    #[error(
        "this gateway requires a token: send it as cf-aig-authorization: Bearer <token> or as the provider API key"
    )]
    GatewayAuthRequired,
    #[error("the gateway token is not valid")]
    GatewayAuthInvalid,
    #[error("unknown provider {0:?}")]
    UnknownProvider(String),
    #[error("{0}")]
    UnknownRoute(String),
    #[error("request body is larger than server.max_request_body ({limit} bytes)")]
    RequestTooLarge { limit: u64 },
    /// The upstream request failed (connect, TLS, protocol); `reason` is the cause chain as text for the
    /// client's message, `source` the cause itself for logs and callers that inspect it.
    #[error("could not reach the provider {provider}: {reason}")]
    UpstreamUnreachable {
        provider: String,
        reason: String,
        #[source]
        source: hyper_util::client::legacy::Error,
    },
    #[error("the provider {provider} sent no response within {timeout_ms} ms")]
    UpstreamTimeout { provider: String, timeout_ms: u64 },
    #[error(
        "spend limit {rule:?} is reached for bucket {bucket:?}: ${spent_usd} spent of ${budget_usd}; retry after \
         {retry_after_secs} s"
    )]
    SpendLimitExceeded {
        rule: String,
        bucket: String,
        budget_usd: f64,
        spent_usd: f64,
        resets_at: String,
        retry_after_secs: u64,
    },
    #[error("rate limit {rule:?} is reached for bucket {bucket:?}; retry after {retry_after_secs} s")]
    RateLimited { rule: String, bucket: String, retry_after_secs: u64 },
}

/// Every `code` a request can end with: the contract's error codes, and the two a request the client left
/// before its answer records. Metrics and dashboards count these, never the message text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidHeader,
    InvalidJson,
    UnknownModelPrefix,
    InvalidMetadata,
    InvalidPath,
    RequestTimeout,
    UnpricedModel,
    InternalError,
    GatewayAuthRequired,
    GatewayAuthInvalid,
    UnknownProvider,
    UnknownRoute,
    RequestTooLarge,
    UpstreamUnreachable,
    UpstreamTimeout,
    SpendLimitExceeded,
    RateLimited,
    ClientGoneBeforeRequestSent,
    ClientGoneBeforeResponseHead,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidHeader => "invalid_header",
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::UnknownModelPrefix => "unknown_model_prefix",
            ErrorCode::InvalidMetadata => "invalid_metadata",
            ErrorCode::InvalidPath => "invalid_path",
            ErrorCode::RequestTimeout => "request_timeout",
            ErrorCode::UnpricedModel => "unpriced_model",
            ErrorCode::InternalError => "internal_error",
            ErrorCode::GatewayAuthRequired => "gateway_auth_required",
            ErrorCode::GatewayAuthInvalid => "gateway_auth_invalid",
            ErrorCode::UnknownProvider => "unknown_provider",
            ErrorCode::UnknownRoute => "unknown_route",
            ErrorCode::RequestTooLarge => "request_too_large",
            ErrorCode::UpstreamUnreachable => "upstream_unreachable",
            ErrorCode::UpstreamTimeout => "upstream_timeout",
            ErrorCode::SpendLimitExceeded => "spend_limit_exceeded",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::ClientGoneBeforeRequestSent => "client_gone_before_request_sent",
            ErrorCode::ClientGoneBeforeResponseHead => "client_gone_before_response_head",
        }
    }
}

impl GatewayError {
    pub fn status(&self) -> StatusCode {
        match self {
            GatewayError::InvalidHeader(_)
            | GatewayError::InvalidJson(_)
            | GatewayError::UnknownModelPrefix(_)
            | GatewayError::InvalidMetadata(_)
            | GatewayError::InvalidPath(_)
            | GatewayError::ModelTooLong { .. }
            | GatewayError::ClientBody(_) => StatusCode::BAD_REQUEST,
            GatewayError::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            GatewayError::UnpricedModel { .. } => StatusCode::FORBIDDEN,
            GatewayError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            GatewayError::GatewayAuthRequired | GatewayError::GatewayAuthInvalid => StatusCode::UNAUTHORIZED,
            GatewayError::UnknownProvider(_) | GatewayError::UnknownRoute(_) => StatusCode::NOT_FOUND,
            GatewayError::RequestTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            GatewayError::UpstreamUnreachable { .. } => StatusCode::BAD_GATEWAY,
            GatewayError::UpstreamTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            GatewayError::SpendLimitExceeded { .. } | GatewayError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// The contract's `code`, typed: what metrics count (never the text).
    pub fn kind(&self) -> ErrorCode {
        match self {
            GatewayError::InvalidHeader(_) => ErrorCode::InvalidHeader,
            GatewayError::InvalidJson(_) | GatewayError::ModelTooLong { .. } | GatewayError::ClientBody(_) => {
                ErrorCode::InvalidJson
            }
            GatewayError::UnknownModelPrefix(_) => ErrorCode::UnknownModelPrefix,
            GatewayError::InvalidMetadata(_) => ErrorCode::InvalidMetadata,
            GatewayError::InvalidPath(_) => ErrorCode::InvalidPath,
            GatewayError::BodyTimeout { .. } => ErrorCode::RequestTimeout,
            GatewayError::UnpricedModel { .. } => ErrorCode::UnpricedModel,
            GatewayError::Internal(_) => ErrorCode::InternalError,
            GatewayError::GatewayAuthRequired => ErrorCode::GatewayAuthRequired,
            GatewayError::GatewayAuthInvalid => ErrorCode::GatewayAuthInvalid,
            GatewayError::UnknownProvider(_) => ErrorCode::UnknownProvider,
            GatewayError::UnknownRoute(_) => ErrorCode::UnknownRoute,
            GatewayError::RequestTooLarge { .. } => ErrorCode::RequestTooLarge,
            GatewayError::UpstreamUnreachable { .. } => ErrorCode::UpstreamUnreachable,
            GatewayError::UpstreamTimeout { .. } => ErrorCode::UpstreamTimeout,
            GatewayError::SpendLimitExceeded { .. } => ErrorCode::SpendLimitExceeded,
            GatewayError::RateLimited { .. } => ErrorCode::RateLimited,
        }
    }

    /// The contract's `code`; also the low-cardinality label for logs.
    pub fn code(&self) -> &'static str {
        self.kind().as_str()
    }

    /// The field a client should look at, for OpenAI's `param`.
    fn param(&self) -> Option<&'static str> {
        match self {
            GatewayError::UnknownModelPrefix(_)
            | GatewayError::ModelTooLong { .. }
            | GatewayError::UnpricedModel { .. } => Some("model"),
            GatewayError::InvalidMetadata(_) => Some("cf-aig-metadata"),
            _ => None,
        }
    }

    /// Seconds for the `Retry-After` header, for the errors that have one.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            GatewayError::SpendLimitExceeded { retry_after_secs, .. }
            | GatewayError::RateLimited { retry_after_secs, .. } => Some(*retry_after_secs),
            _ => None,
        }
    }

    /// Fields added to the error object beside the format's own (docs/errors.md: a spend-limit 429 says which
    /// rule and bucket, the budget, the spend and when it resets).
    fn extra_fields(&self) -> Option<serde_json::Map<String, serde_json::Value>> {
        let value = match self {
            GatewayError::SpendLimitExceeded { rule, bucket, budget_usd, spent_usd, resets_at, .. } => json!({
                "rule": rule, "bucket": bucket, "budget_usd": budget_usd, "spent_usd": spent_usd,
                "resets_at": resets_at,
            }),
            GatewayError::RateLimited { rule, bucket, .. } => json!({"rule": rule, "bucket": bucket}),
            _ => return None,
        };
        match value {
            serde_json::Value::Object(map) => Some(map),
            _ => None,
        }
    }

    /// Renders the error body in `format`.
    pub fn body(&self, format: ErrorFormat) -> Bytes {
        let status = self.status();
        let message = self.to_string();
        let code = self.code();
        let mut value = match format {
            ErrorFormat::OpenAi => json!({"error": {
                "message": message,
                "type": openai_type(status),
                "param": self.param(),
                "code": code,
            }}),
            // Anthropic's shape has no code; it is added beside type so clients can tell a gateway 429 from a
            // provider 429.
            ErrorFormat::Anthropic => json!({"type": "error", "error": {
                "type": anthropic_type(status),
                "message": message,
                "code": code,
            }}),
            ErrorFormat::Gemini => json!({"error": {
                "code": code,
                "message": message,
                "status": google_status(status),
            }}),
        };
        if let (Some(extra), Some(serde_json::Value::Object(error))) = (self.extra_fields(), value.get_mut("error")) {
            error.extend(extra);
        }
        Bytes::from(value.to_string())
    }

    pub fn content_type() -> HeaderValue {
        HeaderValue::from_static("application/json")
    }
}

fn openai_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        400 | 408 | 413 => "invalid_request_error",
        _ => "api_error",
    }
}

fn anthropic_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        408 | 504 => "timeout_error",
        400 => "invalid_request_error",
        _ => "api_error",
    }
}

fn google_status(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 | 413 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        408 | 504 => "DEADLINE_EXCEEDED",
        _ => "UNAVAILABLE",
    }
}

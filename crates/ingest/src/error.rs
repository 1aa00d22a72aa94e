//! What an ingest run can fail at, each with the low-cardinality `result` label of
//! `tollgate_ingest_runs_total`.

use crate::report::ParseError;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// 401/403: the key is not an admin key (OpenAI and Anthropic need their organisation Admin keys, a
    /// project or workspace key is refused), or the service account was refused.
    #[error(
        "{endpoint} refused the key ({status}): an admin key is needed (not a project or workspace key): {message}"
    )]
    WrongKey { endpoint: String, status: u16, message: String },
    /// 429 on every attempt, each wait as long as `retry-after` asked.
    #[error("{endpoint} rate limited the ingest {attempts} times (last retry-after: {retry_after:?} s)")]
    RateLimited { endpoint: String, attempts: u32, retry_after: Option<u64> },
    /// 5xx on every attempt.
    #[error("{endpoint} answered {status} {attempts} times")]
    Server { endpoint: String, status: u16, attempts: u32 },
    /// A page that did not parse on every attempt.
    #[error("{attempts} malformed pages in a row")]
    Malformed {
        attempts: u32,
        #[source]
        source: ParseError,
    },
    /// The request could not be sent or its answer not read, on every attempt.
    #[error("{endpoint} could not be reached ({attempts} attempts)")]
    Transport {
        endpoint: String,
        attempts: u32,
        #[source]
        source: reqwest::Error,
    },
    /// Another 4xx: the request itself is wrong (a bad parameter, an unknown table); retrying cannot help.
    #[error("{endpoint} refused the request ({status}): {message}")]
    Rejected { endpoint: String, status: u16, message: String },
    /// A page or a cursor chain past the bounds the ingest accepts.
    #[error("{0}")]
    TooLarge(String),
    /// The service account key could not sign the token request.
    #[error("service account key")]
    Key(#[source] jsonwebtoken::errors::Error),
    /// The store refused the run's rows (the run wrote nothing).
    #[error("database")]
    Store(#[source] tollgate_store::StoreError),
    /// The lease expired before the rows were written (the run wrote nothing; the next run covers its span).
    #[error("the ingest lease expired before the run could write")]
    LeaseLost,
}

impl IngestError {
    /// The `result` label: `unauthorized`, `rate_limited`, `server_error`, `malformed`, `unreachable`,
    /// `rejected`, `too_large`, `store_error`, `lease_lost`.
    pub fn label(&self) -> &'static str {
        match self {
            IngestError::WrongKey { .. } | IngestError::Key(_) => "unauthorized",
            IngestError::RateLimited { .. } => "rate_limited",
            IngestError::Server { .. } => "server_error",
            IngestError::Malformed { .. } => "malformed",
            IngestError::Transport { .. } => "unreachable",
            IngestError::Rejected { .. } => "rejected",
            IngestError::TooLarge(_) => "too_large",
            IngestError::Store(_) => "store_error",
            IngestError::LeaseLost => "lease_lost",
        }
    }
}

/// Every `result` label a run can end with.
pub const RESULTS: [&str; 11] = [
    "ok",
    "skipped",
    "unauthorized",
    "rate_limited",
    "server_error",
    "malformed",
    "unreachable",
    "rejected",
    "too_large",
    "store_error",
    "lease_lost",
];

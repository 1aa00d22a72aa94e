//! `[ingest]`: the providers' own usage and cost reports, pulled on a schedule and reconciled with the gateway's
//! spend. The file shape (as written) and the runtime shape (validated) side by side.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::Url;

use crate::Secret;

#[cfg(test)]
mod tests;

/// `[ingest]` as written. Each provider section is optional: a provider without one is not ingested.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestFile {
    pub interval: String,
    pub lookback: String,
    pub raw_retention: String,
    /// `|gateway − provider| / provider` above this marks a day as drift.
    pub drift_threshold: f64,
    pub openai: Option<OpenAiIngestFile>,
    pub anthropic: Option<AnthropicIngestFile>,
    pub google: Option<GoogleIngestFile>,
}

impl Default for IngestFile {
    fn default() -> Self {
        Self {
            interval: "1h".into(),
            lookback: "48h".into(),
            raw_retention: "90d".into(),
            drift_threshold: 0.01,
            openai: None,
            anthropic: None,
            google: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OpenAiIngestFile {
    pub admin_key: Option<String>,
    pub base_url: String,
    pub project_ids: Vec<String>,
    /// The gateway providers whose spend this report is compared with.
    pub gateway_providers: Vec<String>,
}

impl Default for OpenAiIngestFile {
    fn default() -> Self {
        Self {
            admin_key: None,
            base_url: "https://api.openai.com/v1".into(),
            project_ids: Vec::new(),
            gateway_providers: vec!["openai".into()],
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnthropicIngestFile {
    pub admin_key: Option<String>,
    pub base_url: String,
    pub gateway_providers: Vec<String>,
}

impl Default for AnthropicIngestFile {
    fn default() -> Self {
        Self {
            admin_key: None,
            base_url: "https://api.anthropic.com/v1".into(),
            gateway_providers: vec!["anthropic".into()],
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GoogleIngestFile {
    pub service_account_json: Option<String>,
    pub project: String,
    pub table: String,
    pub token_url: String,
    pub bigquery_url: String,
    pub gateway_providers: Vec<String>,
}

impl Default for GoogleIngestFile {
    fn default() -> Self {
        Self {
            service_account_json: None,
            project: String::new(),
            table: String::new(),
            token_url: "https://oauth2.googleapis.com/token".into(),
            bigquery_url: "https://bigquery.googleapis.com/bigquery/v2".into(),
            gateway_providers: vec!["google-vertex-ai".into(), "google-ai-studio".into()],
        }
    }
}

/// The validated `[ingest]`.
#[derive(Debug, Clone)]
pub struct Ingest {
    /// Time between two runs of each provider's ingest.
    pub interval: Duration,
    /// Each run covers `[now − lookback, now)`; days younger than this are `pending` in the reconciliation.
    pub lookback: Duration,
    /// Raw pages older than this are deleted.
    pub raw_retention: Duration,
    /// Non-negative, finite.
    pub drift_threshold: f64,
    pub openai: Option<OpenAiIngest>,
    pub anthropic: Option<AnthropicIngest>,
    pub google: Option<GoogleIngest>,
}

impl Ingest {
    /// Whether any provider is configured.
    pub fn any(&self) -> bool {
        self.openai.is_some() || self.anthropic.is_some() || self.google.is_some()
    }
}

#[derive(Debug, Clone)]
pub struct OpenAiIngest {
    pub admin_key: Secret,
    pub base_url: Url,
    pub project_ids: Vec<String>,
    pub gateway_providers: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct AnthropicIngest {
    pub admin_key: Secret,
    pub base_url: Url,
    pub gateway_providers: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct GoogleIngest {
    /// The service account key file's JSON (checked at load to hold `client_email` and `private_key`).
    pub service_account_json: Secret,
    pub project: String,
    /// `dataset.table` or `project.dataset.table`, letters, digits, `_` and `-` only (it is written into SQL).
    pub table: String,
    pub token_url: Url,
    pub bigquery_url: Url,
    pub gateway_providers: Vec<String>,
}

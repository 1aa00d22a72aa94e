//! The providers' report pages: which endpoint a page came from, and the rows and next cursor read from it. Pure:
//! the same functions read a page as it arrives and again from the raw page a recompute replays.

mod anthropic;
mod bigquery;
mod openai;

use jiff::Timestamp;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tollgate_store::{Grain, ProviderUsageRow, RawPage};

pub use bigquery::{BigQueryPage, PACIFIC};

#[cfg(test)]
mod tests;

/// Why a page could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed {endpoint} page: {message}")]
pub struct ParseError {
    pub endpoint: &'static str,
    pub message: String,
}

/// Every report endpoint read, named by the path (or BigQuery method) stored with its raw pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    OpenAiUsage,
    OpenAiCosts,
    AnthropicUsage,
    AnthropicCosts,
    BigQueryQuery,
    BigQueryResults,
}

impl Report {
    pub const ALL: [Report; 6] = [
        Report::OpenAiUsage,
        Report::OpenAiCosts,
        Report::AnthropicUsage,
        Report::AnthropicCosts,
        Report::BigQueryQuery,
        Report::BigQueryResults,
    ];

    /// The `endpoint` of its raw pages.
    pub fn endpoint(self) -> &'static str {
        match self {
            Report::OpenAiUsage => "/organization/usage/completions",
            Report::OpenAiCosts => "/organization/costs",
            Report::AnthropicUsage => "/organizations/usage_report/messages",
            Report::AnthropicCosts => "/organizations/cost_report",
            Report::BigQueryQuery => "jobs.query",
            Report::BigQueryResults => "jobs.getQueryResults",
        }
    }

    pub fn grain(self) -> Grain {
        match self {
            Report::OpenAiUsage | Report::AnthropicUsage => Grain::Hour,
            Report::OpenAiCosts | Report::AnthropicCosts | Report::BigQueryQuery | Report::BigQueryResults => {
                Grain::Day
            }
        }
    }

    pub fn from_endpoint(endpoint: &str) -> Option<Report> {
        Report::ALL.into_iter().find(|report| report.endpoint() == endpoint)
    }

    /// The page's rows and, while the report has more, the cursor of the next page.
    pub fn parse(self, body: &str) -> Result<Page, ParseError> {
        let endpoint = self.endpoint();
        let fail = |message: String| ParseError { endpoint, message };
        match self {
            Report::OpenAiUsage => openai::usage(body).map_err(fail),
            Report::OpenAiCosts => openai::costs(body).map_err(fail),
            Report::AnthropicUsage => anthropic::usage(body).map_err(fail),
            Report::AnthropicCosts => anthropic::costs(body).map_err(fail),
            Report::BigQueryQuery | Report::BigQueryResults => {
                bigquery::parse(body).map(|page| Page { rows: page.rows, next: page.page_token }).map_err(fail)
            }
        }
    }
}

/// A BigQuery response with its job state, for the client's paging.
pub fn bigquery_page(body: &str) -> Result<BigQueryPage, ParseError> {
    bigquery::parse(body).map_err(|message| ParseError { endpoint: Report::BigQueryQuery.endpoint(), message })
}

/// What one page holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub rows: Vec<ProviderUsageRow>,
    /// The next page's cursor; `None` on the last page.
    pub next: Option<String>,
}

/// The rows of a stored page, for the rebuild from raw pages (`None`: it no longer parses).
pub fn parse_raw_page(page: &RawPage) -> Option<Vec<ProviderUsageRow>> {
    let report = Report::from_endpoint(&page.page.endpoint)?;
    match report.parse(&page.page.body) {
        Ok(parsed) => Some(parsed.rows),
        Err(error) => {
            tracing::warn!(%error, id = page.id, provider = %page.provider, "stored raw page does not parse");
            None
        }
    }
}

/// The page envelope OpenAI and Anthropic share: the buckets of one page, and the cursor protocol (`has_more`
/// with a `next_page` string). Each provider's bucket type names its own start field.
#[derive(Deserialize)]
struct Envelope<B> {
    data: Vec<B>,
    has_more: bool,
    #[serde(default)]
    next_page: Option<String>,
}

/// An OpenAI or Anthropic page: its envelope read, each bucket's rows added by `bucket` (in page order; its first
/// error refuses the page), then the next cursor.
fn enveloped<B: DeserializeOwned>(
    body: &str,
    mut bucket: impl FnMut(B, &mut Vec<ProviderUsageRow>) -> Result<(), String>,
) -> Result<Page, String> {
    let page: Envelope<B> = serde_json::from_str(body).map_err(|e| e.to_string())?;
    let mut rows = Vec::new();
    for data in page.data {
        bucket(data, &mut rows)?;
    }
    Ok(Page { rows, next: next_cursor(page.has_more, page.next_page)? })
}

fn next_cursor(has_more: bool, next_page: Option<String>) -> Result<Option<String>, String> {
    match (has_more, next_page) {
        (false, _) => Ok(None),
        (true, Some(next)) if !next.is_empty() && next.len() <= 4_096 => Ok(Some(next)),
        (true, _) => Err("has_more is true without a usable next_page".into()),
    }
}

fn timestamp_seconds(seconds: i64) -> Result<Timestamp, String> {
    Timestamp::from_second(seconds).map_err(|_| format!("{seconds} is not a time"))
}

/// A usage row of tokens only (cost comes from the cost reports).
fn token_row(bucket_start: Timestamp, model: Option<String>, tokens: [u64; 3]) -> ProviderUsageRow {
    let [tokens_in, tokens_out, tokens_cached] = tokens;
    ProviderUsageRow {
        grain: Grain::Hour,
        bucket_start,
        model: model.unwrap_or_default(),
        tokens_in,
        tokens_out,
        tokens_cached,
        cost_nanos: 0,
    }
}

/// A day's cost row, not split by model.
fn cost_row(bucket_start: Timestamp, cost_nanos: i64) -> ProviderUsageRow {
    ProviderUsageRow {
        grain: Grain::Day,
        bucket_start,
        model: String::new(),
        tokens_in: 0,
        tokens_out: 0,
        tokens_cached: 0,
        cost_nanos,
    }
}

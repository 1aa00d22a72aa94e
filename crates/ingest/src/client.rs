//! The report clients: what each provider is asked for, with which credentials, page after page. Each fetch
//! returns the raw pages it read (every one parsed before it is kept), for the run to write in one go.

mod anthropic;
mod google;
mod openai;

use std::collections::HashSet;

use jiff::Timestamp;
use reqwest::header::HeaderMap;
use tollgate_store::NewRawPage;

use crate::error::IngestError;
use crate::fetch::RetryPolicy;
use crate::report::Report;

pub use anthropic::AnthropicClient;
pub use google::GoogleClient;
pub use openai::OpenAiClient;

/// Most pages one cursor chain may have: 48 h at 168 buckets a page is one page; this bounds a provider that
/// never says `has_more: false`.
pub const MAX_PAGES: usize = 1_000;

/// What every client needs for a run.
pub struct Fetch<'a> {
    pub http: &'a reqwest::Client,
    pub policy: &'a RetryPolicy,
    /// The run covers `[start, now)`; each report aligns `start` down to its bucket width.
    pub start: Timestamp,
    pub now: Timestamp,
}

/// One configured provider's client.
pub enum Client {
    OpenAi(OpenAiClient),
    Anthropic(AnthropicClient),
    Google(Box<GoogleClient>),
}

impl Client {
    pub fn name(&self) -> &'static str {
        match self {
            Client::OpenAi(_) => "openai",
            Client::Anthropic(_) => "anthropic",
            Client::Google(_) => "google",
        }
    }

    /// Every page of every report this provider has for the span.
    pub async fn fetch(&self, fetch: &Fetch<'_>) -> Result<Vec<NewRawPage>, IngestError> {
        match self {
            Client::OpenAi(client) => client.fetch(fetch).await,
            Client::Anthropic(client) => client.fetch(fetch).await,
            Client::Google(client) => client.fetch(fetch).await,
        }
    }
}

/// One cursor-paged GET report (OpenAI and Anthropic): `query` on every page, plus `page=<cursor>` after the
/// first, until `has_more` is false.
pub(crate) async fn paged(
    fetch: &Fetch<'_>,
    report: Report,
    url: &str,
    query: &[(&str, String)],
    headers: &HeaderMap,
    span: (Timestamp, Timestamp),
) -> Result<Vec<NewRawPage>, IngestError> {
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    let mut seen = HashSet::new();
    for _ in 0..MAX_PAGES {
        // Built in a block: the serializer is not `Send`, and the future holding it across an await would not be.
        let query_string = {
            let mut pairs = url::form_urlencoded::Serializer::new(String::new());
            for (name, value) in query {
                pairs.append_pair(name, value);
            }
            if let Some(cursor) = &cursor {
                pairs.append_pair("page", cursor);
            }
            pairs.finish()
        };
        let target = format!("{url}?{query_string}");
        let (body, page) = fetch
            .policy
            .fetch(report.endpoint(), || fetch.http.get(&target).headers(headers.clone()), |body| report.parse(body))
            .await?;
        pages.push(NewRawPage {
            endpoint: report.endpoint().to_owned(),
            grain: report.grain(),
            span_start: span.0,
            span_end: span.1,
            query: query_string,
            cursor: cursor.take(),
            fetched_at: Timestamp::now(),
            body,
        });
        match page.next {
            None => return Ok(pages),
            Some(next) if !seen.insert(next.clone()) => {
                return Err(IngestError::TooLarge(format!("{} repeated the cursor {next:?}", report.endpoint())));
            }
            Some(next) => cursor = Some(next),
        }
    }
    Err(IngestError::TooLarge(format!("{} has more than {MAX_PAGES} pages", report.endpoint())))
}

/// `base` and an endpoint path joined with one slash.
pub(crate) fn join(base: &url::Url, path: &str) -> String {
    format!("{}{path}", base.as_str().trim_end_matches('/'))
}

/// `at` rounded down to the hour (UTC).
pub(crate) fn floor_hour(at: Timestamp) -> Timestamp {
    Timestamp::from_second(at.as_second().div_euclid(3_600) * 3_600).unwrap_or(at)
}

/// `at` rounded down to the UTC day.
pub(crate) fn floor_day(at: Timestamp) -> Timestamp {
    Timestamp::from_second(at.as_second().div_euclid(86_400) * 86_400).unwrap_or(at)
}

/// Whole seconds, RFC 3339 in UTC (`2026-12-01T00:00:00Z`).
pub(crate) fn rfc3339(at: Timestamp) -> String {
    Timestamp::from_second(at.as_second()).unwrap_or(at).to_string()
}

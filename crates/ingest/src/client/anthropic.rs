//! Anthropic Admin API: `/organizations/usage_report/messages` (1h buckets by model) and
//! `/organizations/cost_report` (1d), with `x-api-key: <admin key>` and `anthropic-version`.

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use tollgate_config::AnthropicIngest;
use tollgate_store::NewRawPage;

use super::{Fetch, floor_day, floor_hour, join, paged, rfc3339};
use crate::error::IngestError;
use crate::report::Report;

/// The API version the report shapes are read in.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

pub struct AnthropicClient {
    config: AnthropicIngest,
}

impl AnthropicClient {
    pub fn new(config: AnthropicIngest) -> Self {
        Self { config }
    }

    fn headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Ok(mut value) = HeaderValue::from_str(self.config.admin_key.expose()) {
            value.set_sensitive(true);
            headers.insert(HeaderName::from_static("x-api-key"), value);
        }
        headers.insert(HeaderName::from_static("anthropic-version"), HeaderValue::from_static(ANTHROPIC_VERSION));
        headers
    }

    pub async fn fetch(&self, fetch: &Fetch<'_>) -> Result<Vec<NewRawPage>, IngestError> {
        let headers = self.headers();
        let end = rfc3339(fetch.now);
        let usage_start = floor_hour(fetch.start);
        let query: Vec<(&str, String)> = vec![
            ("starting_at", rfc3339(usage_start)),
            ("ending_at", end.clone()),
            ("bucket_width", "1h".into()),
            ("group_by[]", "model".into()),
            ("limit", "168".into()),
        ];
        let url = join(&self.config.base_url, Report::AnthropicUsage.endpoint());
        let mut pages = paged(fetch, Report::AnthropicUsage, &url, &query, &headers, (usage_start, fetch.now)).await?;
        let cost_start = floor_day(fetch.start);
        let query: Vec<(&str, String)> = vec![
            ("starting_at", rfc3339(cost_start)),
            ("ending_at", end),
            ("bucket_width", "1d".into()),
            ("limit", "31".into()),
        ];
        let url = join(&self.config.base_url, Report::AnthropicCosts.endpoint());
        pages.extend(paged(fetch, Report::AnthropicCosts, &url, &query, &headers, (cost_start, fetch.now)).await?);
        Ok(pages)
    }
}

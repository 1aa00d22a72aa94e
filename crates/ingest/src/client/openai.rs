//! OpenAI Admin API: `/organization/usage/completions` (1h buckets by model) and `/organization/costs` (1d),
//! with `Authorization: Bearer <admin key>`.

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use tollgate_config::OpenAiIngest;
use tollgate_store::NewRawPage;

use super::{Fetch, floor_day, floor_hour, join, paged};
use crate::error::IngestError;
use crate::report::Report;

pub struct OpenAiClient {
    config: OpenAiIngest,
}

impl OpenAiClient {
    pub fn new(config: OpenAiIngest) -> Self {
        Self { config }
    }

    fn headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let bearer = format!("Bearer {}", self.config.admin_key.expose());
        if let Ok(mut value) = HeaderValue::from_str(&bearer) {
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        headers
    }

    pub async fn fetch(&self, fetch: &Fetch<'_>) -> Result<Vec<NewRawPage>, IngestError> {
        let headers = self.headers();
        let end = fetch.now.as_second().to_string();
        let projects = self.config.project_ids.iter().map(|id| ("project_ids", id.clone()));
        // 168 one-hour buckets (the maximum) and 180 days per page: a 48 h lookback is one page of each.
        let usage_start = floor_hour(fetch.start);
        let mut query: Vec<(&str, String)> = vec![
            ("start_time", usage_start.as_second().to_string()),
            ("end_time", end.clone()),
            ("bucket_width", "1h".into()),
            ("group_by", "model".into()),
            ("limit", "168".into()),
        ];
        query.extend(projects.clone());
        let url = join(&self.config.base_url, Report::OpenAiUsage.endpoint());
        let mut pages = paged(fetch, Report::OpenAiUsage, &url, &query, &headers, (usage_start, fetch.now)).await?;
        let cost_start = floor_day(fetch.start);
        let mut query: Vec<(&str, String)> = vec![
            ("start_time", cost_start.as_second().to_string()),
            ("end_time", end),
            ("bucket_width", "1d".into()),
            ("limit", "180".into()),
        ];
        query.extend(projects);
        let url = join(&self.config.base_url, Report::OpenAiCosts.endpoint());
        pages.extend(paged(fetch, Report::OpenAiCosts, &url, &query, &headers, (cost_start, fetch.now)).await?);
        Ok(pages)
    }
}

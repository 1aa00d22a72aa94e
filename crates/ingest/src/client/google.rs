//! Google Cloud billing: the BigQuery billing export read through `jobs.query` (then `jobs.getQueryResults`
//! while the job runs or more pages remain), authorised by an OAuth token for the service account, obtained with
//! a signed JWT (RS256) at `token_url` (the JWT-bearer grant).

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::Mutex;
use tollgate_config::GoogleIngest;
use tollgate_store::NewRawPage;

use super::{Fetch, MAX_PAGES, join, rfc3339};
use crate::error::IngestError;
use crate::report::{PACIFIC, ParseError, Report};

/// The OAuth scope the token asks for: reading BigQuery, nothing else.
pub const BIGQUERY_SCOPE: &str = "https://www.googleapis.com/auth/bigquery.readonly";
/// The grant type of a service-account assertion.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Rows per results page.
const MAX_RESULTS: u32 = 1_000;

#[derive(Deserialize)]
struct ServiceAccount {
    client_email: String,
    private_key: String,
    #[serde(default)]
    private_key_id: Option<String>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<i64>,
}

pub struct GoogleClient {
    config: GoogleIngest,
    email: String,
    key: jsonwebtoken::EncodingKey,
    key_id: Option<String>,
    /// The access token and when to stop using it.
    token: Mutex<Option<(String, Timestamp)>>,
}

impl GoogleClient {
    /// Reads the service account key (its JSON was checked at load; its PEM is checked here).
    pub fn new(config: GoogleIngest) -> Result<Self, IngestError> {
        let account: ServiceAccount = serde_json::from_str(config.service_account_json.expose())
            .map_err(|e| IngestError::Key(jsonwebtoken::errors::ErrorKind::Json(e.into()).into()))?;
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(account.private_key.as_bytes()).map_err(IngestError::Key)?;
        Ok(Self { config, email: account.client_email, key, key_id: account.private_key_id, token: Mutex::new(None) })
    }

    /// The SQL run over the export: Vertex AI rows, cost summed exactly (NUMERIC has 9 decimals: nanos) per US
    /// Pacific day, as Google bills. The table name was checked at load to be identifier characters only.
    pub fn sql(&self) -> String {
        format!(
            "SELECT FORMAT_DATE('%F', DATE(usage_start_time, '{PACIFIC}')) AS day, \
             CAST(SUM(CAST(cost AS NUMERIC)) AS STRING) AS cost, currency \
             FROM `{}` \
             WHERE service.description = 'Vertex AI' AND usage_start_time >= @start AND usage_start_time < @end \
             GROUP BY day, currency ORDER BY day",
            self.config.table
        )
    }

    async fn access_token(&self, fetch: &Fetch<'_>) -> Result<String, IngestError> {
        let mut cached = self.token.lock().await;
        let now = Timestamp::now();
        if let Some((token, until)) = cached.as_ref()
            && *until > now
        {
            return Ok(token.clone());
        }
        let iat = now.as_second();
        let claims = json!({
            "iss": self.email,
            "scope": BIGQUERY_SCOPE,
            "aud": self.config.token_url.as_str(),
            "iat": iat,
            "exp": iat + 3_600,
        });
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid.clone_from(&self.key_id);
        let assertion = jsonwebtoken::encode(&header, &claims, &self.key).map_err(IngestError::Key)?;
        let form = [("grant_type", JWT_BEARER), ("assertion", assertion.as_str())];
        let parse = |body: &str| {
            serde_json::from_str::<TokenAnswer>(body)
                .map_err(|e| ParseError { endpoint: "token", message: e.to_string() })
        };
        let (_, answer) =
            fetch.policy.fetch("token", || fetch.http.post(self.config.token_url.as_str()).form(&form), parse).await?;
        // Renewed a minute early, so a token never expires mid-run.
        let lifetime = answer.expires_in.unwrap_or(3_600).clamp(60, 86_400) - 60;
        let until = Timestamp::from_second(iat + lifetime).unwrap_or(now);
        *cached = Some((answer.access_token.clone(), until));
        Ok(answer.access_token)
    }

    pub async fn fetch(&self, fetch: &Fetch<'_>) -> Result<Vec<NewRawPage>, IngestError> {
        let token = self.access_token(fetch).await?;
        let pacific = TimeZone::get(PACIFIC).map_err(|e| IngestError::TooLarge(e.to_string()))?;
        let start = fetch
            .start
            .to_zoned_datetime(pacific)
            .start_of_day()
            .map(|z| z.timestamp())
            .map_err(|e| IngestError::TooLarge(e.to_string()))?;
        let span = (start, fetch.now);
        let parameter = |name: &str, at: Timestamp| json!({"name": name, "parameterType": {"type": "TIMESTAMP"}, "parameterValue": {"value": rfc3339(at)}});
        let body = json!({
            "query": self.sql(),
            "useLegacySql": false,
            "parameterMode": "NAMED",
            "queryParameters": [parameter("start", start), parameter("end", fetch.now)],
            "maxResults": MAX_RESULTS,
            "timeoutMs": 30_000,
        });
        let project = join(&self.config.bigquery_url, &format!("/projects/{}", self.config.project));
        let url = format!("{project}/queries");
        let report = Report::BigQueryQuery;
        let bearer = format!("Bearer {token}");
        let (text, mut page) = fetch
            .policy
            .fetch(
                report.endpoint(),
                || fetch.http.post(&url).header("authorization", &bearer).json(&body),
                crate::report::bigquery_page,
            )
            .await?;
        let mut pages = vec![raw(report, span, body.to_string(), None, text)];
        for _ in 0..MAX_PAGES {
            if page.job_complete && page.page_token.is_none() {
                return Ok(pages);
            }
            let job = page.job_id.clone().filter(|id| is_job_id(id)).ok_or_else(|| IngestError::Malformed {
                attempts: 1,
                source: ParseError { endpoint: report.endpoint(), message: "no usable jobReference.jobId".into() },
            })?;
            let cursor = page.page_token.clone();
            let query = {
                let mut query = url::form_urlencoded::Serializer::new(String::new());
                query.append_pair("maxResults", &MAX_RESULTS.to_string()).append_pair("timeoutMs", "30000");
                if let Some(location) = &page.location {
                    query.append_pair("location", location);
                }
                if let Some(token) = &cursor {
                    query.append_pair("pageToken", token);
                }
                query.finish()
            };
            let target = format!("{project}/queries/{job}?{query}");
            let results = Report::BigQueryResults;
            let (text, next) = fetch
                .policy
                .fetch(
                    results.endpoint(),
                    || fetch.http.get(&target).header("authorization", &bearer),
                    crate::report::bigquery_page,
                )
                .await?;
            pages.push(raw(results, span, query, cursor, text));
            page = next;
        }
        Err(IngestError::TooLarge(format!("BigQuery answered more than {MAX_PAGES} pages")))
    }
}

fn raw(
    report: Report,
    span: (Timestamp, Timestamp),
    query: String,
    cursor: Option<String>,
    body: String,
) -> NewRawPage {
    NewRawPage {
        endpoint: report.endpoint().to_owned(),
        grain: report.grain(),
        span_start: span.0,
        span_end: span.1,
        query,
        cursor,
        fetched_at: Timestamp::now(),
        body,
    }
}

/// A job id safe in a URL path: BigQuery's are letters, digits, `_` and `-`.
fn is_job_id(id: &str) -> bool {
    (1..=1_024).contains(&id.len()) && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

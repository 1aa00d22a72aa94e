//! Google's side: the OAuth token endpoint (JWT-bearer grant, RS256 assertion verified against the test service
//! account's public key, claims checked) and BigQuery `jobs.query` / `jobs.getQueryResults` over a billing
//! export held in memory, answered in BigQuery's shape (`schema`, `rows` of `f`/`v`, `pageToken`, `jobComplete`).

use std::sync::Mutex;

use http::StatusCode;
use serde::Deserialize;

use super::{Answer, Fixture, ReportRequest, json};

/// The test service account (its key is a fixed test key pair, for tests only).
pub const TEST_SERVICE_ACCOUNT_EMAIL: &str = "ingest@test-project.iam.gserviceaccount.com";
const PRIVATE_KEY: &str = include_str!("../../fixtures/gcp-test-key.pem");
const PUBLIC_KEY: &str = include_str!("../../fixtures/gcp-test-key.pub.pem");

/// The service account key file's JSON for the test account.
pub fn test_service_account_json() -> String {
    serde_json::json!({
        "type": "service_account",
        "project_id": "test-project",
        "private_key_id": "test-key-1",
        "private_key": PRIVATE_KEY,
        "client_email": TEST_SERVICE_ACCOUNT_EMAIL,
        "token_uri": "https://oauth2.googleapis.com/token",
    })
    .to_string()
}

/// One billing export row: the columns the reconciliation query reads.
#[derive(Debug, Clone)]
pub struct BillingRow {
    /// `service.description`, e.g. `Vertex AI`.
    pub service: String,
    /// `usage_start_time`, Unix seconds.
    pub usage_start: i64,
    /// `cost` in nano-dollars.
    pub cost_nanos: i64,
}

#[derive(Deserialize)]
struct Claims {
    iss: String,
    scope: String,
    aud: String,
    iat: i64,
    exp: i64,
}

fn oauth_error(error: &str, description: &str) -> Answer {
    json(StatusCode::BAD_REQUEST, serde_json::json!({"error": error, "error_description": description}).to_string())
}

pub(super) fn token(own_url: &str, body: &[u8], tokens: &Mutex<Vec<String>>) -> Answer {
    let form: Vec<(String, String)> = url::form_urlencoded::parse(body).into_owned().collect();
    let get = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    if get("grant_type").as_deref() != Some("urn:ietf:params:oauth:grant-type:jwt-bearer") {
        return oauth_error("unsupported_grant_type", "Invalid grant_type");
    }
    let Some(assertion) = get("assertion") else { return oauth_error("invalid_request", "Missing assertion") };
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(PUBLIC_KEY.as_bytes()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[own_url]);
    validation.set_issuer(&[TEST_SERVICE_ACCOUNT_EMAIL]);
    validation.set_required_spec_claims(&["exp", "iat", "aud", "iss"]);
    let claims = match jsonwebtoken::decode::<Claims>(&assertion, &key, &validation) {
        Ok(data) => data.claims,
        Err(error) => return oauth_error("invalid_grant", &format!("Invalid JWT Signature or claims: {error}")),
    };
    let now = jiff::Timestamp::now().as_second();
    if claims.exp - claims.iat > 3_600 || claims.iat > now + 60 {
        return oauth_error("invalid_grant", "Invalid JWT: Token must be a short-lived token (60 minutes)");
    }
    if !claims.scope.split(' ').any(|s| s.starts_with("https://www.googleapis.com/auth/bigquery")) {
        return oauth_error("invalid_scope", "The scope does not allow BigQuery");
    }
    let _ = (&claims.iss, &claims.aud);
    let token = format!("ya29.test-{}", uuid::Uuid::now_v7().simple());
    tokens.lock().unwrap().push(token.clone());
    json(
        StatusCode::OK,
        serde_json::json!({"access_token": token, "expires_in": 3599, "token_type": "Bearer"}).to_string(),
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueryRequest {
    query: String,
    #[serde(default)]
    use_legacy_sql: Option<bool>,
    #[serde(default)]
    query_parameters: Vec<Parameter>,
    #[serde(default)]
    max_results: Option<usize>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Parameter {
    name: String,
    parameter_value: ParameterValue,
}

#[derive(Deserialize)]
struct ParameterValue {
    value: String,
}

fn not_authorized() -> Answer {
    json(
        StatusCode::UNAUTHORIZED,
        r#"{"error":{"code":401,"message":"Request had invalid authentication credentials.","status":"UNAUTHENTICATED"}}"#.into(),
    )
}

/// The job ids the fake has run: the query's request, kept for the result pages.
static JOBS: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

pub(super) fn query(
    path: &str,
    pairs: &[(String, String)],
    request: &ReportRequest,
    fixture: &Fixture,
    tokens: &Mutex<Vec<String>>,
    slow: bool,
) -> Answer {
    let bearer = request.headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
    if !tokens.lock().unwrap().iter().any(|t| bearer == format!("Bearer {t}")) {
        return not_authorized();
    }
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        ["projects", _, "queries"] => {
            let Ok(body) = serde_json::from_slice::<QueryRequest>(&request.body) else {
                return json(
                    StatusCode::BAD_REQUEST,
                    r#"{"error":{"code":400,"message":"Invalid JSON payload"}}"#.into(),
                );
            };
            let job = format!("job_{}", uuid::Uuid::now_v7().simple());
            JOBS.lock().unwrap().push((job.clone(), String::from_utf8_lossy(&request.body).into_owned()));
            if slow {
                return json(
                    StatusCode::OK,
                    serde_json::json!({"kind": "bigquery#queryResponse", "jobComplete": false,
                    "jobReference": {"projectId": parts[1], "jobId": job, "location": "US"}})
                    .to_string(),
                );
            }
            results(&body, &job, parts[1], 0, body.max_results.unwrap_or(1_000), fixture)
        }
        ["projects", project, "queries", job] => {
            let stored = JOBS.lock().unwrap().iter().find(|(id, _)| id == job).map(|(_, b)| b.clone());
            let Some(stored) = stored else {
                return json(StatusCode::NOT_FOUND, r#"{"error":{"code":404,"message":"Not found: Job"}}"#.into());
            };
            let body: QueryRequest = serde_json::from_str(&stored).unwrap();
            let get = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
            let offset =
                get("pageToken").and_then(|t| t.strip_prefix("tok_")).and_then(|t| t.parse().ok()).unwrap_or(0);
            let max = get("maxResults").and_then(|t| t.parse().ok()).unwrap_or(1_000);
            results(&body, job, project, offset, max, fixture)
        }
        _ => json(StatusCode::NOT_FOUND, r#"{"error":{"code":404,"message":"Not found"}}"#.into()),
    }
}

/// What the reconciliation query computes over the export: Vertex AI rows in `[@start, @end)`, summed per US
/// Pacific day; rows `offset..offset + max` of it.
fn results(body: &QueryRequest, job: &str, project: &str, offset: usize, max: usize, fixture: &Fixture) -> Answer {
    let max = fixture.max_rows_per_page.map_or(max, |cap| max.min(cap));
    if body.use_legacy_sql != Some(false) || !body.query.contains("service.description = 'Vertex AI'") {
        return json(
            StatusCode::BAD_REQUEST,
            r#"{"error":{"code":400,"message":"the fake runs only the Vertex AI cost query"}}"#.into(),
        );
    }
    let param = |name: &str| {
        body.query_parameters
            .iter()
            .find(|p| p.name == name)
            .and_then(|p| p.parameter_value.value.parse::<jiff::Timestamp>().ok())
    };
    let (Some(start), Some(end)) = (param("start"), param("end")) else {
        return json(
            StatusCode::BAD_REQUEST,
            r#"{"error":{"code":400,"message":"Query parameters start and end are required"}}"#.into(),
        );
    };
    let pacific = jiff::tz::TimeZone::get("America/Los_Angeles").unwrap();
    let mut days: std::collections::BTreeMap<String, i64> = std::collections::BTreeMap::new();
    for row in &fixture.billing {
        if row.service != "Vertex AI" || row.usage_start < start.as_second() || row.usage_start >= end.as_second() {
            continue;
        }
        let day = jiff::Timestamp::from_second(row.usage_start)
            .unwrap()
            .to_zoned_datetime(pacific.clone())
            .date()
            .to_string();
        *days.entry(day).or_insert(0) += row.cost_nanos;
    }
    let all: Vec<(String, i64)> = days.into_iter().collect();
    let page: Vec<serde_json::Value> = all
        .iter()
        .skip(offset)
        .take(max)
        .map(|(day, nanos)| serde_json::json!({"f": [{"v": day}, {"v": super::buckets::decimal(*nanos, 9)}, {"v": "USD"}]}))
        .collect();
    let mut answer = serde_json::json!({
        "kind": "bigquery#queryResponse",
        "schema": {"fields": [
            {"name": "day", "type": "STRING", "mode": "NULLABLE"},
            {"name": "cost", "type": "STRING", "mode": "NULLABLE"},
            {"name": "currency", "type": "STRING", "mode": "NULLABLE"}]},
        "jobReference": {"projectId": project, "jobId": job, "location": "US"},
        "totalRows": all.len().to_string(),
        "rows": page,
        "totalBytesProcessed": "0",
        "jobComplete": true,
        "cacheHit": false,
    });
    if offset + max < all.len() {
        answer["pageToken"] = serde_json::Value::String(format!("tok_{}", offset + max));
    }
    json(StatusCode::OK, answer.to_string())
}

//! Fakes of the providers' usage and cost report APIs, on one in-process server: OpenAI's
//! `/organization/usage/completions` and `/organization/costs` (`Authorization: Bearer`), Anthropic's
//! `/organizations/usage_report/messages` and `/organizations/cost_report` (`x-api-key` + `anthropic-version`),
//! Google's OAuth token endpoint (verifies the JWT-bearer assertion's RS256 signature and claims) and BigQuery
//! `jobs.query` / `jobs.getQueryResults` over a billing export. Buckets are snapped to the bucket width, the end
//! is exclusive, every page holds at most `limit` buckets with an opaque `next_page`, and failures (401, 429 with
//! `retry-after`, 5xx, malformed bodies) are served on demand. Every request is recorded.

#![expect(clippy::result_large_err, reason = "test fake: the error is the answer to send, built once per request")]

mod bigquery;
mod buckets;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use crate::Gate;
pub use bigquery::{BillingRow, TEST_SERVICE_ACCOUNT_EMAIL, test_service_account_json};

/// The admin keys the fake accepts; any other key gets the provider's 401.
pub const OPENAI_ADMIN_KEY: &str = "sk-admin-test";
pub const ANTHROPIC_ADMIN_KEY: &str = "sk-ant-admin01-test";

/// One request's usage in the fixture (seconds since the epoch).
#[derive(Debug, Clone)]
pub struct UsageRecord {
    pub at: i64,
    pub model: String,
    /// OpenAI's `input_tokens` (cached included); for Anthropic, the uncached part.
    pub input: u64,
    pub output: u64,
    /// Cache reads.
    pub cached: u64,
    /// Anthropic cache writes (5-minute).
    pub cache_write: u64,
}

/// A cost in the fixture, nano-dollars at a time.
#[derive(Debug, Clone)]
pub struct CostRecord {
    pub at: i64,
    pub nanos: i64,
}

/// A failure to serve instead of the next answer.
#[derive(Debug, Clone)]
pub enum Failure {
    Status(u16),
    /// 429 with `retry-after: <seconds>`.
    RateLimited(u64),
    /// 200 with a body that is not the report's shape.
    Malformed,
}

/// What the fake serves.
#[derive(Default)]
pub struct Fixture {
    pub openai_usage: Vec<UsageRecord>,
    pub openai_costs: Vec<CostRecord>,
    pub anthropic_usage: Vec<UsageRecord>,
    pub anthropic_costs: Vec<CostRecord>,
    pub billing: Vec<BillingRow>,
    /// Serve at most this many buckets a page, whatever `limit` asks (so a short span still has many pages).
    pub max_buckets_per_page: Option<u64>,
    /// BigQuery: at most this many rows a results page.
    pub max_rows_per_page: Option<usize>,
}

/// One request received.
#[derive(Debug, Clone)]
pub struct ReportRequest {
    pub path: String,
    pub query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

#[derive(Default)]
struct State {
    fixture: Mutex<Fixture>,
    /// Failures to serve, per path prefix, in order.
    failures: Mutex<Vec<(String, VecDeque<Failure>)>>,
    requests: Mutex<Vec<ReportRequest>>,
    /// Requests wait here before they are answered, when set.
    gate: Mutex<Option<Gate>>,
    /// Issued access tokens (Google).
    tokens: Mutex<Vec<String>>,
    /// `jobs.query` answers `jobComplete: false` first, when set.
    slow_jobs: Mutex<bool>,
    addr: Mutex<Option<SocketAddr>>,
    /// Notified whenever a request arrives (before any gate).
    arrived: tokio::sync::Notify,
}

/// The fake server. Dropping it stops accepting.
pub struct ReportsFake {
    addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ReportsFake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ReportsFake {
    pub async fn start(fixture: Fixture) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State { fixture: Mutex::new(fixture), ..State::default() });
        *state.addr.lock().unwrap() = Some(addr);
        let task = tokio::spawn(accept(listener, state.clone()));
        Self { addr, state, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Google's token endpoint on this fake.
    pub fn token_url(&self) -> String {
        format!("{}/token", self.url())
    }

    pub fn set_fixture(&self, fixture: Fixture) {
        *self.state.fixture.lock().unwrap() = fixture;
    }

    /// Serves `failures` to the next requests whose path starts with `prefix`, in order.
    pub fn fail(&self, prefix: &str, failures: impl IntoIterator<Item = Failure>) {
        self.state.failures.lock().unwrap().push((prefix.to_owned(), failures.into_iter().collect()));
    }

    /// Holds every request until the gate opens.
    pub fn hold(&self, gate: Gate) {
        *self.state.gate.lock().unwrap() = Some(gate);
    }

    /// `jobs.query` answers "not complete yet" and the results come from `jobs.getQueryResults`.
    pub fn slow_jobs(&self) {
        *self.state.slow_jobs.lock().unwrap() = true;
    }

    /// Resolves when the next request arrives; take it before starting what sends the request.
    pub fn arrived(&self) -> tokio::sync::futures::Notified<'_> {
        self.state.arrived.notified()
    }

    pub fn requests(&self) -> Vec<ReportRequest> {
        self.state.requests.lock().unwrap().clone()
    }

    pub fn requests_to(&self, prefix: &str) -> Vec<ReportRequest> {
        self.requests().into_iter().filter(|r| r.path.starts_with(prefix)).collect()
    }
}

async fn accept(listener: TcpListener, state: Arc<State>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { return };
        let state = state.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| handle(req, state.clone()));
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

type Answer = Response<Full<Bytes>>;

pub(crate) fn json(status: StatusCode, body: String) -> Answer {
    Response::builder().status(status).header("content-type", "application/json").body(Full::new(body.into())).unwrap()
}

async fn handle(req: Request<Incoming>, state: Arc<State>) -> Result<Answer, std::convert::Infallible> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(http_body_util::Collected::to_bytes).unwrap_or_default();
    let path = parts.uri.path().to_owned();
    let query = parts.uri.query().unwrap_or("").to_owned();
    let recorded =
        ReportRequest { path: path.clone(), query: query.clone(), headers: parts.headers.clone(), body: body.clone() };
    state.requests.lock().unwrap().push(recorded.clone());
    state.arrived.notify_waiters();
    let gate = state.gate.lock().unwrap().clone();
    if let Some(gate) = gate {
        gate.wait().await;
    }
    if let Some(failure) = next_failure(&state, &path) {
        return Ok(match failure {
            Failure::Status(status) => json(
                StatusCode::from_u16(status).unwrap(),
                r#"{"error":{"message":"fake failure","type":"server_error"}}"#.into(),
            ),
            Failure::RateLimited(seconds) => {
                let mut answer = json(StatusCode::TOO_MANY_REQUESTS, r#"{"error":{"message":"slow down"}}"#.into());
                answer.headers_mut().insert("retry-after", seconds.to_string().parse().unwrap());
                answer
            }
            Failure::Malformed => json(StatusCode::OK, r#"{"data": "#.into()),
        });
    }
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    Ok(route(&state, &path, &pairs, &recorded))
}

fn next_failure(state: &State, path: &str) -> Option<Failure> {
    let mut failures = state.failures.lock().unwrap();
    failures.iter_mut().find(|(prefix, list)| path.starts_with(prefix.as_str()) && !list.is_empty())?.1.pop_front()
}

fn route(state: &State, path: &str, pairs: &[(String, String)], request: &ReportRequest) -> Answer {
    let fixture = state.fixture.lock().unwrap();
    match path {
        "/organization/usage/completions" | "/organization/costs" => match openai_auth(&request.headers) {
            Err(answer) => answer,
            Ok(()) => buckets::openai(path, pairs, &fixture),
        },
        "/organizations/usage_report/messages" | "/organizations/cost_report" => {
            match anthropic_auth(&request.headers) {
                Err(answer) => answer,
                Ok(()) => buckets::anthropic(path, pairs, &fixture),
            }
        }
        "/token" => {
            let addr = state.addr.lock().unwrap().unwrap();
            bigquery::token(&format!("http://{addr}/token"), &request.body, &state.tokens)
        }
        _ if path.starts_with("/projects/") => {
            let slow = std::mem::take(&mut *state.slow_jobs.lock().unwrap());
            bigquery::query(path, pairs, request, &fixture, &state.tokens, slow)
        }
        _ => json(StatusCode::NOT_FOUND, r#"{"error":{"message":"no such endpoint"}}"#.into()),
    }
}

fn openai_auth(headers: &HeaderMap) -> Result<(), Answer> {
    let sent = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
    if sent == format!("Bearer {OPENAI_ADMIN_KEY}") {
        return Ok(());
    }
    Err(json(
        StatusCode::UNAUTHORIZED,
        r#"{"error":{"message":"Incorrect API key provided. You must be an organization owner and use an Admin key.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#.into(),
    ))
}

fn anthropic_auth(headers: &HeaderMap) -> Result<(), Answer> {
    let key = headers.get("x-api-key").and_then(|v| v.to_str().ok()).unwrap_or("");
    if key != ANTHROPIC_ADMIN_KEY {
        return Err(json(
            StatusCode::UNAUTHORIZED,
            r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key: an Admin API key is required"}}"#.into(),
        ));
    }
    if headers.get("anthropic-version").and_then(|v| v.to_str().ok()) != Some("2023-06-01") {
        return Err(json(
            StatusCode::BAD_REQUEST,
            r#"{"type":"error","error":{"type":"invalid_request_error","message":"anthropic-version header is required"}}"#.into(),
        ));
    }
    Ok(())
}

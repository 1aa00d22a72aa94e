//! The passthrough's billing through the real proxy: every spelling of a billable path is billed or refused,
//! dot segments never reach a provider, and the providers' own OpenAI-compatible endpoints are accounted
//! like the drop-ins (tokens, cost, include_usage, spend limits).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests fail by panicking")]

mod harness;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use harness::{Harness, chat_body};
use http::{Method, StatusCode};
use serde_json::{Value, json};
use tollgate_accounting::{CostSource, PriceCatalog, Usage, estimate_prompt_tokens};
use tollgate_proxy::{Api, UsageRecord};
use tollgate_testkit::{Gate, Plan, Reply, TestResponse, UsageNumbers, next_data, served_path};

const INPUT: u64 = 1000;
const OUTPUT: u64 = 200;

fn today() -> jiff::civil::Date {
    jiff::Timestamp::now().to_zoned_datetime(jiff::tz::TimeZone::UTC).date()
}

/// The catalog price of the fake's fixed usage.
fn catalog_cost(provider: &str, model: &str) -> u64 {
    let usage = Usage { input: INPUT, output: OUTPUT, ..Usage::default() };
    let priced = PriceCatalog::bundled().unwrap().price(provider, model, &usage, today());
    assert_eq!(priced.source, CostSource::Catalog, "{provider}/{model} has a catalog price");
    assert!(priced.cost_nanos > 0);
    priced.cost_nanos
}

fn fixed_usage() -> Plan {
    Plan {
        reply: Some(Reply {
            text: "Hello there.".into(),
            usage: Some(UsageNumbers { input: INPUT, output: OUTPUT, cached: 0 }),
        }),
        ..Plan::default()
    }
}

/// The record of the response (by its log id), once the gateway has written it.
async fn record_of(h: &Harness, response: &TestResponse, recorded_so_far: usize) -> UsageRecord {
    let log_id = response.header("cf-aig-log-id").expect("every answer carries its log id").to_string();
    let records = h.recorder.wait_for(recorded_so_far).await;
    records.into_iter().find(|r| r.log_id == log_id).unwrap_or_else(|| panic!("no record for {log_id}"))
}

fn error_code(response: &TestResponse) -> Value {
    response.json()["error"]["code"].clone()
}

#[tokio::test]
async fn s6_percent_encoded_billable_paths_are_billed_or_refused() {
    let h = Harness::start().await;
    h.fake.set_default(fixed_usage());
    let openai = chat_body("gpt-4o-mini", false);
    let anthropic =
        json!({"model": "claude-haiku-4-5", "max_tokens": 300, "messages": [{"role": "user", "content": "hi"}]});
    let gemini = json!({"contents": [{"parts": [{"text": "hi"}]}]});
    // (path, body, provider, model, where a decoding upstream would serve it)
    let cases = [
        ("/openai/chat/completion%73", &openai, "openai", "gpt-4o-mini", "/openai/v1/chat/completions"),
        ("/openai/%63hat/completions", &openai, "openai", "gpt-4o-mini", "/openai/v1/chat/completions"),
        ("/openai//chat/completions/", &openai, "openai", "gpt-4o-mini", "/openai/v1/chat/completions"),
        ("/v1/acc/gw/openai/chat/completion%73", &openai, "openai", "gpt-4o-mini", "/openai/v1/chat/completions"),
        ("/v1/chat/completion%73", &openai, "openai", "gpt-4o-mini", "/openai/v1/chat/completions"),
        ("/anthropic/v1/messag%65s", &anthropic, "anthropic", "claude-haiku-4-5", "/anthropic/v1/messages"),
        ("/v1/messages/", &anthropic, "anthropic", "claude-haiku-4-5", "/anthropic/v1/messages"),
        ("/v1/messages/../messages", &anthropic, "anthropic", "claude-haiku-4-5", "/anthropic/v1/messages"),
        ("/anthropic/v1/x/../messages", &anthropic, "anthropic", "claude-haiku-4-5", "/anthropic/v1/messages"),
        (
            "/google-ai-studio/v1beta/models/gemini-2.5-pro%3AgenerateContent",
            &gemini,
            "google-ai-studio",
            "gemini-2.5-pro",
            "/google/v1beta/models/gemini-2.5-pro:generateContent",
        ),
        (
            "/google-ai-studio/v1beta/models/gemini-2.5-pro%3agenerateContent",
            &gemini,
            "google-ai-studio",
            "gemini-2.5-pro",
            "/google/v1beta/models/gemini-2.5-pro:generateContent",
        ),
        (
            "/google-ai-studio/v1beta/models/gemini-2.5-pro:generate%43ontent",
            &gemini,
            "google-ai-studio",
            "gemini-2.5-pro",
            "/google/v1beta/models/gemini-2.5-pro:generateContent",
        ),
    ];
    let mut recorded = 0;
    let mut billed = 0;
    for (path, body, provider, model, served) in cases {
        let before = h.fake.requests().len();
        let response = h.client.post_json(path, &[], body).await;
        recorded += 1;
        let record = record_of(&h, &response, recorded).await;
        match response.status {
            StatusCode::OK => {
                billed += 1;
                let got = h.fake.last_request();
                assert_eq!(got.uri, served, "{path}: the normalised path goes upstream");
                assert_eq!(served_path(&got.uri), served);
                assert_eq!((record.usage.input, record.usage.output), (INPUT, OUTPUT), "{path}");
                assert_eq!(record.cost_nanos, catalog_cost(provider, model), "{path}");
                assert_eq!(record.cost_source, CostSource::Catalog, "{path}");
                assert!(record.success, "{path}");
            }
            StatusCode::BAD_REQUEST => {
                assert_eq!(h.fake.requests().len(), before, "{path}: refused before going upstream");
                assert!(response.text().contains("invalid_path"), "{path}: {}", response.text());
                assert_eq!(record.status, 400);
            }
            other => panic!("{path}: {other} {}", response.text()),
        }
    }
    assert_eq!(billed, 10, "every spelling without a dot segment is billed");
}

#[tokio::test]
async fn s6_dot_segments_and_encoded_slashes_are_refused() {
    let h = Harness::start().await;
    let long = format!("/openai/{}", "a".repeat(3000));
    let bad_gateway = format!("/v1/acc/{}/openai/chat/completions", "g".repeat(65));
    // (path, what the message names, the client's error format)
    let cases: Vec<(&str, &str, &str)> = vec![
        ("/openai/chat/../chat/completions", "..", "openai"),
        ("/openai/./chat/completions", "\".\"", "openai"),
        ("/openai/%2e%2e/chat/completions", "..", "openai"),
        ("/openai/.%2E/chat/completions", "..", "openai"),
        ("/openai/chat%2Fcompletions", "%2F", "openai"),
        ("/openai/chat%2fcompletions", "%2F", "openai"),
        ("/openai/chat%5Ccompletions", "%5C", "openai"),
        ("/openai/chat/completions%00", "control", "openai"),
        ("/openai/chat/completions%0A", "control", "openai"),
        ("/openai/chat/completion%7", "percent-escape", "openai"),
        ("/openai/chat/completion%zz", "percent-escape", "openai"),
        ("/anthropic/v1/../v1/messages", "..", "anthropic"),
        ("/v1/messages/%2e%2e/messages", "..", "anthropic"),
        ("/anthropic/v1%2Fmessages", "%2F", "anthropic"),
        ("/google-ai-studio/v1beta/models/../models/gemini-2.5-pro:generateContent", "..", "gemini"),
        ("/google-ai-studio/v1beta/models%2Fgemini-2.5-pro:generateContent", "%2F", "gemini"),
        ("/v1/acc/gw/anthropic/v1/../v1/messages", "..", "anthropic"),
        ("/v1/acc/gw/google-ai-studio/v1beta/openai/../openai/chat/completions", "..", "openai"),
        ("/anthropic/v1/chat/../chat/completions", "..", "openai"),
        (&bad_gateway, "gateway", "openai"),
        ("/v1/acc/my.gw/openai/chat/completions", "gateway", "openai"),
        ("/v1/a%20c/gw/openai/chat/completions", "account", "openai"),
        (&long, "2048", "openai"),
    ];
    for (path, names, format) in &cases {
        let response = h.client.post_json(path, &[], &chat_body("gpt-4o-mini", false)).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{path}: {}", response.text());
        let body = response.json();
        let message = match *format {
            "openai" => {
                assert_eq!(body["error"]["code"], "invalid_path", "{path}");
                assert_eq!(body["error"]["type"], "invalid_request_error", "{path}");
                body["error"]["message"].as_str().unwrap().to_string()
            }
            "anthropic" => {
                assert_eq!(body["type"], "error", "{path}: {body}");
                assert_eq!(body["error"]["code"], "invalid_path", "{path}");
                body["error"]["message"].as_str().unwrap().to_string()
            }
            _ => {
                assert_eq!(body["error"]["status"], "INVALID_ARGUMENT", "{path}: {body}");
                assert_eq!(body["error"]["code"], "invalid_path", "{path}");
                body["error"]["message"].as_str().unwrap().to_string()
            }
        };
        assert!(message.contains(names), "{path}: {message}");
        let shown = if path.len() > 100 { &path[..100] } else { path };
        assert!(message.contains(shown), "{path}: the message names the path: {message}");
        assert!(message.len() < 600, "the message is bounded: {} bytes", message.len());
    }
    assert!(h.fake.requests().is_empty(), "no refused path reached the provider");
    let records = h.recorder.wait_for(cases.len()).await;
    assert!(records.iter().all(|r| r.status == 400 && r.error.as_deref() == Some("invalid_path")));
    // An unknown provider is still 404; a bounded valid gateway still routes.
    let response = h.client.post_json("/nope/chat/completions", &[], &chat_body("m", false)).await;
    assert_eq!(error_code(&response), "unknown_provider");
    let response = h.client.post_json("/v1/acc/gw_1-x/openai/chat/completions", &[], &chat_body("m", false)).await;
    assert_eq!(response.status, StatusCode::OK);
}

#[tokio::test]
async fn s18_dot_segments_never_reach_the_provider_with_the_stored_key() {
    let h = Harness::start().await;
    // What a normalising upstream would make of them: a path outside the provider's base URL.
    assert_eq!(served_path("/local/v1/../../x"), "/x");
    for (method, path) in [
        (Method::POST, "/local/../../x"),
        (Method::GET, "/local/../../x"),
        (Method::GET, "/local/%2e%2e/%2E%2E/admin"),
        (Method::DELETE, "/openai/../../organization/projects"),
        (Method::GET, "/v1/acc/gw/local/../x"),
        (Method::GET, "/v1/acc/gw/openai/files/..%2Ffile-1"),
        (Method::POST, "/local/v1/..%5C..%5Cx"),
        (Method::GET, "/ollama/%2E./api/tags"),
    ] {
        let response = h.client.request(method.clone(), path, &[], "").await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{method} {path}: {}", response.text());
        assert_eq!(error_code(&response), "invalid_path", "{method} {path}");
    }
    assert!(h.fake.requests().is_empty(), "no stored key went anywhere: {:?}", h.fake.requests());
    // The same provider with a plain path does get its stored key, so the check above could fail.
    let response = h.client.request(Method::GET, "/local/models", &[], "").await;
    assert_eq!(response.status, StatusCode::OK);
    let got = h.fake.last_request();
    assert_eq!(got.uri, "/local/v1/models");
    assert_eq!(got.headers["authorization"], "Bearer local-stored");
}

#[tokio::test]
async fn the_providers_openai_compatible_endpoints_are_billed_like_the_drop_ins() {
    let h = Harness::start().await;
    h.fake.set_default(fixed_usage());
    // (path, provider, model, upstream path)
    let cases = [
        ("/anthropic/v1/chat/completions", "anthropic", "claude-haiku-4-5", "/anthropic/v1/chat/completions"),
        (
            "/v1/acct/gw1/anthropic/v1/chat/completions",
            "anthropic",
            "claude-haiku-4-5",
            "/anthropic/v1/chat/completions",
        ),
        (
            "/google-ai-studio/v1beta/openai/chat/completions",
            "google-ai-studio",
            "gemini-2.5-flash",
            "/google/v1beta/openai/chat/completions",
        ),
        (
            "/v1/acct/gw1/google-ai-studio/v1beta/openai/chat/completions",
            "google-ai-studio",
            "gemini-2.5-flash",
            "/google/v1beta/openai/chat/completions",
        ),
    ];
    let mut recorded = 0;
    for (path, provider, model, upstream) in cases {
        for stream in [false, true] {
            let label = format!("{path} stream={stream}");
            let response = h.client.post_json(path, &[], &chat_body(model, stream)).await;
            assert_eq!(response.status, StatusCode::OK, "{label}: {}", response.text());
            recorded += 1;
            let record = record_of(&h, &response, recorded).await;
            let got = h.fake.last_request();
            assert_eq!(got.uri, upstream, "{label}");
            // The OpenAI-compatible endpoints take the key the way OpenAI SDKs send it.
            let stored = if provider == "anthropic" { "Bearer sk-anthropic-stored" } else { "Bearer google-stored" };
            assert_eq!(got.headers["authorization"], stored, "{label}");
            let sent: Value = serde_json::from_slice(&got.body).unwrap();
            let text = response.text();
            if stream {
                assert_eq!(sent["stream_options"]["include_usage"], true, "{label}: usage asked for upstream");
                assert!(!text.contains("prompt_tokens"), "{label}: the client never sees the usage chunk: {text}");
                assert!(text.ends_with("data: [DONE]\n\n"), "{label}");
            } else {
                assert!(sent.get("stream_options").is_none(), "{label}");
                assert_eq!(response.json()["usage"]["prompt_tokens"], INPUT, "{label}");
            }
            assert_eq!(record.api, Api::OpenAiChat, "{label}");
            assert_eq!(record.provider, provider, "{label}");
            assert_eq!(record.model.as_deref(), Some(model), "{label}");
            assert_eq!(record.stream, stream, "{label}");
            assert_eq!((record.usage.input, record.usage.output), (INPUT, OUTPUT), "{label}");
            assert_eq!(record.cost_nanos, catalog_cost(provider, model), "{label}");
            assert_eq!(record.cost_source, CostSource::Catalog, "{label}");
            assert!(record.success, "{label}");
            assert_eq!(record.error, None, "{label}: no 'client disconnected'");
        }
    }
    // A client that asks for usage gets it, and the record is the same.
    let mut body = chat_body("claude-haiku-4-5", true);
    body["stream_options"] = json!({"include_usage": true});
    let response = h.client.post_json("/anthropic/v1/chat/completions", &[], &body).await;
    assert!(response.text().contains("prompt_tokens"), "{}", response.text());
    recorded += 1;
    let record = record_of(&h, &response, recorded).await;
    assert_eq!(record.cost_nanos, catalog_cost("anthropic", "claude-haiku-4-5"));
    // Gemini's OpenAI-compatible embeddings are read as OpenAI embeddings.
    let response = h
        .client
        .post_json(
            "/google-ai-studio/v1beta/openai/embeddings",
            &[],
            &json!({"model": "gemini-embedding-001", "input": "hi"}),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK);
    recorded += 1;
    let record = record_of(&h, &response, recorded).await;
    assert_eq!(record.api, Api::OpenAiEmbeddings);
    assert_eq!(record.usage.input, INPUT);
    assert_eq!(h.fake.last_request().uri, "/google/v1beta/openai/embeddings");
}

#[tokio::test]
async fn gateway_errors_on_the_openai_compatible_endpoints_are_in_openai_format() {
    let h = Harness::with_config("[[spend_limits]]\nid = \"tiny\"\nbudget_usd = 0.0000001\nwindow = \"1d\"\n").await;
    for (path, model) in [
        ("/anthropic/v1/chat/completions", "claude-haiku-4-5"),
        ("/v1/a/g/google-ai-studio/v1beta/openai/chat/completions", "gemini-2.5-flash"),
    ] {
        let mut body = chat_body(model, false);
        body["max_tokens"] = json!(100);
        let response = h.client.post_json(path, &[], &body).await;
        assert_eq!(response.status, StatusCode::TOO_MANY_REQUESTS, "{path}: {}", response.text());
        let json = response.json();
        assert_eq!(json["error"]["code"], "spend_limit_exceeded", "{path}");
        // OpenAI's shape: `param` beside `code`, no top-level `type` (Anthropic's) and no `status` (Gemini's).
        assert!(json.get("type").is_none() && json["error"].get("param").is_some(), "{path}: {json}");
        assert!(json["error"].get("status").is_none(), "{path}: {json}");
    }
    assert!(h.fake.requests().is_empty());
}

/// The worst case the gateway reserves for `body` on `provider`/`model`.
fn worst_case(provider: &str, model: &str, body: &Value) -> u64 {
    let prompt = estimate_prompt_tokens(body.to_string().as_bytes());
    let max_tokens = body["max_tokens"].as_u64();
    PriceCatalog::bundled().unwrap().worst_case_cost(provider, model, prompt, max_tokens, today()).unwrap()
}

/// Sends `n` streamed requests at once; the admitted ones are held open at the fake's gate until every
/// request has its answer. Returns how many were admitted.
async fn concurrent(h: &Arc<Harness>, n: usize, path: &'static str, user: &'static str, body: &Value) -> usize {
    let gate = Gate::new();
    h.fake.set_default(Plan {
        gate: Some(gate.clone()),
        reply: Some(Reply { text: "ok then".into(), usage: Some(UsageNumbers { input: 40, output: 20, cached: 0 }) }),
        ..Plan::default()
    });
    let decided = Arc::new(AtomicUsize::new(0));
    let all_decided = Arc::new(tokio::sync::Notify::new());
    let mut tasks = Vec::new();
    for _ in 0..n {
        let (h, body, decided, all_decided) = (h.clone(), body.to_string(), decided.clone(), all_decided.clone());
        tasks.push(tokio::spawn(async move {
            let metadata = format!(r#"{{"user_id":"{user}"}}"#);
            let mut response = h.client.send(Method::POST, path, &[("cf-aig-metadata", metadata.as_str())], body).await;
            let status = response.status();
            if status == StatusCode::OK {
                next_data(response.body_mut()).await.unwrap().unwrap();
            }
            if decided.fetch_add(1, Ordering::SeqCst) + 1 == n {
                all_decided.notify_one();
            }
            while next_data(response.body_mut()).await.is_some() {}
            status
        }));
    }
    tokio::time::timeout(std::time::Duration::from_secs(30), all_decided.notified())
        .await
        .expect("every request got its answer while the admitted ones were held open");
    gate.open();
    let mut admitted = 0;
    for task in tasks {
        match task.await.unwrap() {
            StatusCode::OK => admitted += 1,
            StatusCode::TOO_MANY_REQUESTS => {}
            other => panic!("{path}: unexpected status {other}"),
        }
    }
    admitted
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_user_spend_rule_admits_only_what_fits_on_the_openai_compatible_endpoints() {
    const BUDGET_NANOS: u64 = 10_000_000; // $0.01
    let h = Arc::new(
        Harness::with_config(
            r#"
[[spend_limits]]
id = "per-user"
budget_usd = 0.01
window = "1d"
dimensions = [ { key = "metadata.user_id", mode = "split" } ]
"#,
        )
        .await,
    );
    // Honest max_tokens sized so that three worst cases fit in $0.01 and four do not.
    let mut claude = chat_body("claude-haiku-4-5", true);
    claude["max_tokens"] = json!(600);
    let mut gemini = chat_body("gemini-2.5-flash", true);
    gemini["max_tokens"] = json!(1200);
    let cases = [
        ("/anthropic/v1/chat/completions", "alice", &claude, "anthropic", "claude-haiku-4-5"),
        ("/v1/acct/gw1/anthropic/v1/chat/completions", "bob", &claude, "anthropic", "claude-haiku-4-5"),
        ("/google-ai-studio/v1beta/openai/chat/completions", "carol", &gemini, "google-ai-studio", "gemini-2.5-flash"),
        (
            "/v1/acct/gw1/google-ai-studio/v1beta/openai/chat/completions",
            "dave",
            &gemini,
            "google-ai-studio",
            "gemini-2.5-flash",
        ),
    ];
    let mut total = 0;
    for (path, user, body, provider, model) in cases {
        let fits = (BUDGET_NANOS / worst_case(provider, model, body)) as usize;
        assert_eq!(fits, 3, "{path}: the test's max_tokens should let three fit");
        let admitted = concurrent(&h, 8, path, user, body).await;
        assert_eq!(admitted, fits, "{path}: only the requests that fit the budget are admitted");
        total += 8;
        let records = h.recorder.wait_for(total).await;
        let theirs: Vec<&UsageRecord> =
            records.iter().filter(|r| r.metadata.get("user_id").and_then(Value::as_str) == Some(user)).collect();
        assert_eq!(theirs.len(), 8, "{path}");
        let billed: Vec<&&UsageRecord> = theirs.iter().filter(|r| r.status == 200).collect();
        assert_eq!(billed.len(), fits, "{path}");
        for r in &billed {
            assert!(r.success && r.cost_nanos > 0 && r.cost_source == CostSource::Catalog, "{path}: {r:?}");
            assert_eq!((r.usage.input, r.usage.output), (40, 20), "{path}");
        }
        let spent: u64 = theirs.iter().map(|r| r.cost_nanos).sum();
        assert!(spent <= BUDGET_NANOS, "{path}: {spent} nanos recorded against a $0.01 budget");
    }
}

/// The reported defect: one after the other, each request used to settle at $0, so all 8 passed a $0.01 rule
/// where 3 fit. Charged at their real cost, the fourth no longer fits.
#[tokio::test]
async fn a_per_user_spend_rule_stops_sequential_requests_once_their_actual_cost_fills_it() {
    const BUDGET_NANOS: u64 = 10_000_000; // $0.01
    let h = Harness::with_config(
        r#"
[[spend_limits]]
id = "per-user"
budget_usd = 0.01
window = "1d"
dimensions = [ { key = "metadata.user_id", mode = "split" } ]
"#,
    )
    .await;
    let cases = [
        ("/anthropic/v1/chat/completions", "erin", "claude-haiku-4-5", 600, false),
        ("/v1/acct/gw1/anthropic/v1/chat/completions", "frank", "claude-haiku-4-5", 600, true),
        ("/google-ai-studio/v1beta/openai/chat/completions", "grace", "gemini-2.5-flash", 1200, true),
        ("/v1/acct/gw1/google-ai-studio/v1beta/openai/chat/completions", "heidi", "gemini-2.5-flash", 1200, false),
    ];
    for (path, user, model, max_tokens, stream) in cases {
        // The provider uses every output token the client allowed.
        h.fake.set_default(Plan {
            reply: Some(Reply {
                text: "ok".into(),
                usage: Some(UsageNumbers { input: 20, output: max_tokens, cached: 0 }),
            }),
            ..Plan::default()
        });
        let mut body = chat_body(model, stream);
        body["max_tokens"] = json!(max_tokens);
        let metadata = format!(r#"{{"user_id":"{user}"}}"#);
        let mut statuses = Vec::new();
        for _ in 0..8 {
            let response = h.client.post_json(path, &[("cf-aig-metadata", metadata.as_str())], &body).await;
            statuses.push(response.status.as_u16());
        }
        assert_eq!(statuses, [200, 200, 200, 429, 429, 429, 429, 429], "{path}");
    }
    let records = h.recorder.wait_for(32).await;
    for (_, user, ..) in cases {
        let spent: u64 = records
            .iter()
            .filter(|r| r.metadata.get("user_id").and_then(Value::as_str) == Some(user))
            .map(|r| r.cost_nanos)
            .sum();
        assert!(spent > 9_000_000 && spent <= BUDGET_NANOS, "{user}: {spent} nanos");
    }
}

#[tokio::test]
async fn what_the_gateway_cannot_measure_is_recorded_as_unmetered_and_reads_are_not_generations() {
    let h = Harness::start().await;
    let body = json!({"model": "x", "prompt": "a cat"});
    // (method, path, how the record classifies it)
    let cases = [
        (Method::POST, "/openai/images/generations", Api::Unmetered),
        (Method::POST, "/openai/audio/speech", Api::Unmetered),
        (Method::POST, "/openai/batches", Api::Unmetered),
        (Method::POST, "/v1/acc/gw/openai/fine_tuning/jobs", Api::Unmetered),
        (Method::POST, "/anthropic/v1/messages/batches", Api::Unmetered),
        (Method::POST, "/v1/messages/batches", Api::Unmetered),
        (Method::POST, "/google-ai-studio/v1beta/models/text-embedding-004:embedContent", Api::Unmetered),
        (Method::POST, "/google-ai-studio/v1beta/models/gemini-2.5-flash:batchGenerateContent", Api::Unmetered),
        (Method::POST, "/google-ai-studio/v1beta/cachedContents", Api::Unmetered),
        (Method::POST, "/anthropic/v1/messages/count_tokens", Api::Other),
        (Method::POST, "/v1/messages/count_tokens", Api::Other),
        (Method::POST, "/google-ai-studio/v1beta/models/gemini-2.5-flash:countTokens", Api::Other),
        (Method::GET, "/openai/chat/completions", Api::Other),
        (Method::GET, "/openai/files", Api::Other),
        (Method::GET, "/google-ai-studio/v1beta/models", Api::Other),
    ];
    for (i, (method, path, api)) in cases.iter().enumerate() {
        let response =
            h.client.request(method.clone(), path, &[("content-type", "application/json")], body.to_string()).await;
        let record = record_of(&h, &response, i + 1).await;
        assert_eq!(record.api, *api, "{method} {path}");
        assert_eq!(record.cost_nanos, 0, "{method} {path}");
    }
    assert_eq!(h.fake.requests().len(), cases.len(), "classification alone refuses nothing");
}

#[tokio::test]
async fn an_azure_deployment_path_names_the_model_when_the_body_does_not() {
    let h = Harness::start().await;
    h.fake.set_default(fixed_usage());
    let body = json!({"messages": [{"role": "user", "content": "hi"}]});
    let response = h.client.post_json("/azure-openai/openai/deployments/gpt-4o/chat/completions", &[], &body).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    assert_eq!(h.fake.last_request().uri, "/azure/openai/v1/openai/deployments/gpt-4o/chat/completions");
    let record = record_of(&h, &response, 1).await;
    assert_eq!(record.api, Api::OpenAiChat);
    assert_eq!(record.model.as_deref(), Some("gpt-4o"));
    assert_eq!(record.cost_source, CostSource::Catalog);
    assert!(record.cost_nanos > 0);
}

/// Bytes an ordinary client library would refuse to send, written on a raw socket. The HTTP parser lets a
/// backslash through (the gateway refuses it: some servers read it as a slash) and refuses control bytes
/// itself; either way nothing is forwarded.
#[tokio::test]
async fn a_raw_backslash_or_control_byte_in_the_request_line_never_reaches_the_provider() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let h = Harness::start().await;
    let addr = h.url.trim_start_matches("http://").to_string();
    for (target, by_the_gateway) in [
        ("/openai/chat\\completions", true),
        ("/local/..\\..\\x", true),
        ("/openai/chat/completions\u{1}", false),
        ("/openai/chat/completions\t", false),
    ] {
        let mut socket = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let body = chat_body("gpt-4o-mini", false).to_string();
        let request = format!(
            "POST {target} HTTP/1.1\r\nhost: gateway\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        socket.write_all(request.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), socket.read_to_end(&mut answer)).await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 400"), "{target:?}: {answer}");
        if by_the_gateway {
            assert!(answer.contains("invalid_path") && answer.contains("backslash"), "{target:?}: {answer}");
        }
    }
    assert!(h.fake.requests().is_empty(), "{:?}", h.fake.requests());
}

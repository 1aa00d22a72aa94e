//! The ingest endpoints on a real socket, against the report fakes and a real SQLite store: a run through
//! `POST /api/ingest/run`, the raw pages, the reconciliation (equal is ok, 2% off is drift), `/status`
//! `last_ingest`, the metrics, and the recompute that rebuilds the provider rows from the raw pages.

#![allow(clippy::unwrap_used, reason = "tests fail by panicking")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use jiff::Timestamp;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tollgate_accounting::PriceCatalog;
use tollgate_admin::AdminState;
use tollgate_config::Config;
use tollgate_ingest::{Ingest, IngestOptions, RetryPolicy};
use tollgate_proxy::metrics::{MeteredSink, Metrics};
use tollgate_proxy::{Gateway, LogSink};
use tollgate_store::{CostSource, LogRecord, Store, StoreOptions};
use tollgate_testkit::TestClient;
use tollgate_testkit::reports::{CostRecord, Fixture, OPENAI_ADMIN_KEY, ReportsFake};

const AUTH: (&str, &str) = ("authorization", "Bearer admin-token");

fn record(at: Timestamp, cost_nanos: u64) -> LogRecord {
    LogRecord {
        id: uuid::Uuid::now_v7().to_string(),
        created_at: at,
        gateway: None,
        provider: "openai".into(),
        model: "gpt-4o".into(),
        path: "/v1/chat/completions".into(),
        status: 200,
        success: true,
        cached: false,
        stream: false,
        tokens_in: 100,
        tokens_out: 10,
        tokens_cached: 0,
        tokens_cache_write: 0,
        tokens_reasoning: 0,
        cost_nanos,
        // Custom: the recompute keeps these costs (it reprices catalog rows).
        cost_source: CostSource::Custom,
        duration_ms: 20,
        ttfb_ms: Some(5),
        metadata: serde_json::Map::new(),
        event_id: None,
        step: 0,
        rule_decisions: json!([]),
        error: None,
        request_body: None,
        response_body: None,
        listed: true,
        cache_key: None,
        saved_nanos: 0,
    }
}

fn noon(days_ago: i64) -> Timestamp {
    let today = Timestamp::now().as_second().div_euclid(86_400) * 86_400;
    Timestamp::from_second(today - days_ago * 86_400 + 12 * 3_600).unwrap()
}

async fn get(client: &TestClient, path: &str) -> (StatusCode, Value) {
    let response = client.request(Method::GET, path, &[AUTH], "").await;
    (response.status, response.json())
}

async fn post(client: &TestClient, path: &str, body: &Value) -> (StatusCode, Value) {
    let headers = [AUTH, ("content-type", "application/json")];
    let response = client.request(Method::POST, path, &headers, body.to_string()).await;
    (response.status, response.json())
}

#[tokio::test]
async fn ingest_run_raw_pages_reconciliation_status_metrics_and_recompute() {
    // The provider billed $8.20 three days ago and $10 four days ago; the gateway counted exactly $8.20 and 2%
    // more than $10.
    let fixture = Fixture {
        openai_costs: vec![
            CostRecord { at: noon(3).as_second(), nanos: 8_200_000_000 },
            CostRecord { at: noon(4).as_second(), nanos: 10_000_000_000 },
        ],
        max_buckets_per_page: Some(2),
        ..Fixture::default()
    };
    let fake = ReportsFake::start(fixture).await;
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions { spill_path: dir.path().join("spill.jsonl"), ..StoreOptions::default() };
    let store = Store::open(&format!("sqlite://{}", dir.path().join("db.sqlite").display()), options).await.unwrap();
    store.migrate().await.unwrap();
    store.insert_logs(&[record(noon(3), 8_200_000_000), record(noon(4), 10_200_000_000)]).await.unwrap();
    let toml = format!(
        "[admin]\ntoken = \"admin-token\"\n[ingest.openai]\nadmin_key = \"{OPENAI_ADMIN_KEY}\"\nbase_url = \"{}\"\n",
        fake.url()
    );
    let config = Arc::new(Config::from_toml(&toml, &[]).unwrap());
    let retry = RetryPolicy { base_delay: Duration::from_millis(1), ..RetryPolicy::default() };
    let ingest =
        Ingest::new(&config.ingest, store.clone(), IngestOptions { retry, ..IngestOptions::default() }).unwrap();
    // The days are past the 48 h lookback now; a run from back then is what fetched them: one with a longer one.
    let mut earlier = config.ingest.clone();
    earlier.lookback = Duration::from_hours(6 * 24);
    let back_then = Ingest::new(&earlier, store.clone(), IngestOptions { retry, ..IngestOptions::default() }).unwrap();
    assert!(back_then.run("openai").await.unwrap().ok);

    let metrics = Arc::new(Metrics::new(config.providers.keys().map(String::as_str)));
    let sink = MeteredSink { metrics: metrics.clone(), inner: LogSink };
    let gateway = Arc::new(Gateway::new(config.clone(), Arc::new(PriceCatalog::bundled().unwrap()), Arc::new(sink)));
    let state =
        AdminState { config, gateway, metrics, started: Instant::now(), store: Some(store), ingest: Some(ingest) };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TestClient::new(format!("http://{}", listener.local_addr().unwrap()));
    let shutdown = CancellationToken::new();
    tokio::spawn(tollgate_admin::serve(listener, state, shutdown.clone()));

    let (status, body) = post(&client, "/api/ingest/run", &json!({"provider": "openai"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["runs"][0]["ok"], true, "{body}");
    assert!(body["runs"][0]["pages"].as_u64().unwrap() >= 2, "{body}");
    let (status, body) = post(&client, "/api/ingest/run", &json!({"provider": "anthropic"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    let day = |n: i64| noon(n).to_string()[..10].to_owned();
    let (status, body) =
        get(&client, &format!("/api/reconciliation?from={}&to={}&provider=openai", day(4), day(3))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let rows = body["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{body}");
    assert_eq!((rows[0]["day"].as_str().unwrap(), rows[0]["status"].as_str().unwrap()), (day(4).as_str(), "drift"));
    assert!((rows[0]["diff_ratio"].as_f64().unwrap() - 0.02).abs() < 1e-9, "{body}");
    assert!((rows[0]["diff_usd"].as_f64().unwrap() - 0.2).abs() < 1e-9, "{body}");
    assert_eq!(rows[1]["status"], "ok", "{body}");
    assert_eq!(rows[1]["provider_cost_usd"], 8.2, "{body}");
    assert_eq!(rows[1]["gateway_tokens_in"], 100);
    for key in ["gateway_cost_usd", "provider_tokens_in", "provider_tokens_out", "gateway_tokens_out"] {
        assert!(rows[1].get(key).is_some(), "{key} in {body}");
    }
    let (_, body) = get(&client, &format!("/api/reconciliation?from={}", day(1))).await;
    assert!(body["rows"].as_array().unwrap().iter().all(|r| r["status"] == "pending"), "{body}");
    let (status, body) = get(&client, "/api/reconciliation?from=2026-01-01&to=2030-01-01").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // Raw pages, newest first, by cursor.
    let (status, body) = get(&client, "/providers/openai/raw?limit=1").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let first = &body["pages"][0];
    assert!(first["body"].as_str().unwrap().contains("\"object\":\"page\""), "{body}");
    let cursor = body["next_cursor"].as_str().unwrap().to_owned();
    let (_, next) = get(&client, &format!("/providers/openai/raw?limit=100&cursor={cursor}")).await;
    assert!(next["pages"].as_array().unwrap().iter().all(|p| p["id"].as_i64() < first["id"].as_i64()));
    assert_eq!(get(&client, "/providers/nope/raw").await.0, StatusCode::NOT_FOUND);
    assert_eq!(get(&client, "/providers/openai/raw?cursor=x").await.0, StatusCode::BAD_REQUEST);

    let (_, body) = get(&client, "/status").await;
    assert_eq!(body["last_ingest"]["openai"]["ok"], true, "{body}");
    assert!(body["last_ingest"]["openai"]["pages"].as_u64().unwrap() >= 2, "{body}");
    let metrics = client.request(Method::GET, "/metrics", &[AUTH], "").await.text();
    assert!(metrics.contains("tollgate_ingest_runs_total{provider=\"openai\",result=\"ok\"} 1"), "{metrics}");

    let (status, body) = post(&client, "/admin/recompute", &Value::Null).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["provider_pages"].as_u64().unwrap() >= 4, "{body}");
    assert_eq!(body["provider_unparsed_pages"], 0);
    let (_, again) = get(&client, &format!("/api/reconciliation?from={}&to={}&provider=openai", day(4), day(3))).await;
    assert_eq!(again["rows"], Value::Array(rows.clone()), "recompute gives the same rows");
    shutdown.cancel();
}

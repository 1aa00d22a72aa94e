//! A request sent with `cf-aig-collect-log: false` leaves no visible log row but still counts: in `/api/stats`,
//! `/spend` and the budget, and a recompute keeps its spend. The real binary on a real SQLite file.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests fail by panicking")]

mod common;

use std::time::{Duration, Instant};

use common::{Gateway, tempdir};
use http::{Method, StatusCode};
use serde_json::{Value, json};
use tollgate_testkit::{FakeProvider, Plan, Reply, TestClient, UsageNumbers};

/// 1000 × $0.15/M + 1000 × $0.60/M = $0.00075.
const COST_USD: f64 = 0.000_75;

async fn admin(gateway: &Gateway, method: Method, path: &str) -> Value {
    let response = TestClient::new(gateway.admin.clone()).request(method, path, &[], "").await;
    assert_eq!(response.status, StatusCode::OK, "{path}");
    response.json()
}

async fn spent_usd(gateway: &Gateway) -> f64 {
    let usage = admin(gateway, Method::GET, "/api/spend-limits/cap/usage").await;
    usage["buckets"].as_array().and_then(|b| b.first()).map_or(0.0, |b| b["spent_usd"].as_f64().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s12_collect_log_false_still_counts_and_recompute_keeps_it() {
    let fake = FakeProvider::start().await;
    fake.set_default(Plan {
        reply: Some(Reply { text: "ok".into(), usage: Some(UsageNumbers { input: 1000, output: 1000, cached: 0 }) }),
        ..Plan::default()
    });
    let dir = tempdir();
    let config = format!(
        "[database]\nurl = \"sqlite://tollgate.db\"\nflush_interval = \"200ms\"\n[providers.openai]\nbase_url = \
         \"{}/v1\"\napi_key = \"sk-e2e\"\n[[spend_limits]]\nid = \"cap\"\nbudget_usd = 1.0\nwindow = \"1d\"\n",
        fake.url()
    );
    let gateway = Gateway::start(&dir, &config);
    let body = json!({"model": "gpt-4o-mini", "max_tokens": 1000, "messages": [{"role": "user", "content": "hi"}]});
    let response = TestClient::new(gateway.proxy.clone())
        .post_json("/v1/chat/completions", &[("cf-aig-collect-log", "false")], &body)
        .await;
    assert_eq!(response.status, StatusCode::OK);

    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let stats = admin(&gateway, Method::GET, "/api/stats").await;
        if stats["total_requests"] == 1 {
            assert!((stats["spent_usd"].as_f64().unwrap() - COST_USD).abs() < 1e-12, "{stats}");
            break;
        }
        assert!(Instant::now() < deadline, "the spend-only row never reached the stats: {stats}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let logs = admin(&gateway, Method::GET, "/api/logs").await;
    assert_eq!(logs["logs"], json!([]), "the row is not listed: {logs}");
    let spend = admin(&gateway, Method::GET, "/spend").await;
    assert_eq!(spend["rows"][0]["requests"], 1, "{spend}");
    assert!((spent_usd(&gateway).await - COST_USD).abs() < 1e-12);

    admin(&gateway, Method::POST, "/admin/recompute").await;
    assert!((spent_usd(&gateway).await - COST_USD).abs() < 1e-12, "a recompute keeps the spend");
    let stats = admin(&gateway, Method::GET, "/api/stats").await;
    assert_eq!(stats["total_requests"], 1, "{stats}");
    assert_eq!(gateway.stop(), Some(0));
}

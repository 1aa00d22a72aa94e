//! The real binary against requests that used to break the books: absurd custom costs and unauthenticated
//! requests with huge path segments, on SQLite and on Postgres, across a restart.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests fail by panicking")]

mod common;

use std::time::Duration;

use common::{Gateway, tempdir};
use http::StatusCode;
use serde_json::json;
use sqlx::Row;
use tollgate_testkit::{FakeProvider, PgDb, TestClient};

const TOKEN: &str = "tg-e2e-hardening";

fn config(fake: &FakeProvider, database: &str, max_custom_cost_usd: f64) -> String {
    format!(
        "[database]\nurl = \"{database}\"\nflush_interval = \"200ms\"\n\
         [gateway]\nauth_token = \"{TOKEN}\"\nmax_custom_cost_usd = {max_custom_cost_usd:?}\n\
         [providers.openai]\nbase_url = \"{}/v1\"\napi_key = \"sk-e2e\"\n\
         [[spend_limits]]\nid = \"watch\"\nbudget_usd = 1.0\nwindow = \"1d\"\naction = \"monitor\"\n",
        fake.url()
    )
}

fn body() -> serde_json::Value {
    json!({"model": "gpt-4o-mini", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]})
}

async fn ask(gateway: &Gateway, custom_cost: Option<&str>) -> StatusCode {
    let auth = format!("Bearer {TOKEN}");
    let mut headers = vec![("cf-aig-authorization", auth.as_str())];
    if let Some(cost) = custom_cost {
        headers.push(("cf-aig-custom-cost", cost));
    }
    TestClient::new(gateway.proxy.clone()).post_json("/v1/chat/completions", &headers, &body()).await.status
}

async fn status(gateway: &Gateway) -> serde_json::Value {
    TestClient::new(gateway.admin.clone()).request(http::Method::GET, "/status", &[], "").await.json()
}

/// Waits until the database holds `rows` log rows and nothing is pending.
async fn settled(gateway: &Gateway, database: &str, rows: i64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let pending = status(gateway).await["database"]["pending_records"].as_u64().unwrap_or(u64::MAX);
        if pending == 0 && count_rows(database).await == rows {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "rows never settled at {rows}: {} stored, {pending} pending",
            count_rows(database).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn count_rows(url: &str) -> i64 {
    const QUERY: &str = "SELECT COUNT(*) AS n FROM request_logs";
    if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        let row = sqlx::query(QUERY).fetch_one(&pool).await.unwrap();
        pool.close().await;
        row.get("n")
    } else {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        let row = sqlx::query(QUERY).fetch_one(&pool).await.unwrap();
        pool.close().await;
        row.get("n")
    }
}

async fn s1_poison_attempts_leave_the_store_working_and_the_restart_clean(database: &str, file_url: &str) {
    let fake = FakeProvider::start().await;
    let dir = tempdir();
    // The default cap refuses an absurd price outright.
    let gateway = Gateway::start(&dir, &config(&fake, database, 100.0));
    assert_eq!(ask(&gateway, Some(r#"{"total_cost":10000000000}"#)).await, StatusCode::BAD_REQUEST);
    assert_eq!(ask(&gateway, Some(r#"{"total_cost":5000000000}"#)).await, StatusCode::BAD_REQUEST);
    assert_eq!(gateway.stop(), Some(0));

    // With the cap raised as far as it goes, ten requests of $1e9 sum past what a 64-bit nano-dollar counter
    // holds: every sum saturates, and every row is stored.
    let gateway = Gateway::start(&dir, &config(&fake, database, 1e9));
    for _ in 0..10 {
        assert_eq!(ask(&gateway, Some(r#"{"total_cost":1000000000}"#)).await, StatusCode::OK);
    }
    // Two refusals (authenticated, so recorded) and ten answers.
    settled(&gateway, file_url, 12).await;
    assert_eq!(status(&gateway).await["database"]["ok"], true);
    assert_eq!(gateway.stop(), Some(0));

    // The next start loads the saturated bucket and serves.
    let gateway = Gateway::start(&dir, &config(&fake, database, 1e9));
    assert_eq!(ask(&gateway, None).await, StatusCode::OK);
    settled(&gateway, file_url, 13).await;
    let usage = TestClient::new(gateway.admin.clone())
        .request(http::Method::GET, "/api/spend-limits/watch/usage", &[], "")
        .await
        .json();
    let spent = usage["buckets"][0]["spent_usd"].as_f64().unwrap();
    assert!(spent > 9.2e9 && spent.is_finite(), "the bucket saturated at the counter's maximum: {spent}");
    assert_eq!(gateway.stop(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s1_poisoned_custom_costs_on_sqlite() {
    let dir = tempdir();
    let file = format!("sqlite://{}", dir.join("s1.db").display());
    s1_poison_attempts_leave_the_store_working_and_the_restart_clean(&file, &file).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s1_poisoned_custom_costs_on_postgres() {
    let db = PgDb::create().await;
    s1_poison_attempts_leave_the_store_working_and_the_restart_clean(&db.url, &db.url).await;
}

async fn s3_an_unauthenticated_long_gateway_stores_nothing_and_blocks_nobody(database: &str) {
    let fake = FakeProvider::start().await;
    let dir = tempdir();
    let gateway = Gateway::start(&dir, &config(&fake, database, 100.0));
    let client = TestClient::new(gateway.proxy.clone());
    for i in 0..6 {
        if i == 3 {
            let long: String = (0..3000).map(|n| char::from(b'a' + (n % 26) as u8)).collect();
            let response = client.post_json(&format!("/v1/acct/{long}/openai/chat/completions"), &[], &body()).await;
            assert!(response.status.is_client_error(), "{}", response.status);
        } else {
            assert_eq!(ask(&gateway, None).await, StatusCode::OK);
        }
    }
    let unauthenticated = client.post_json("/v1/chat/completions", &[], &body()).await;
    assert_eq!(unauthenticated.status, StatusCode::UNAUTHORIZED);
    settled(&gateway, database, 5).await;
    assert_eq!(status(&gateway).await["database"]["ok"], true);
    assert_eq!(gateway.stop(), Some(0));
    assert_eq!(count_rows(database).await, 5, "only the authenticated requests left rows");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_long_gateway_segments_on_sqlite() {
    let dir = tempdir();
    let file = format!("sqlite://{}", dir.join("s3.db").display());
    s3_an_unauthenticated_long_gateway_stores_nothing_and_blocks_nobody(&file).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_long_gateway_segments_on_postgres() {
    let db = PgDb::create().await;
    s3_an_unauthenticated_long_gateway_stores_nothing_and_blocks_nobody(&db.url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s4_unauthenticated_requests_write_nothing_however_long_their_path() {
    let fake = FakeProvider::start().await;
    let dir = tempdir();
    let file = format!("sqlite://{}", dir.join("s4.db").display());
    let gateway = Gateway::start(&dir, &config(&fake, &file, 100.0));
    let client = TestClient::new(gateway.proxy.clone());
    let long = "x".repeat(65_000);
    for path in [format!("/v1/a/{long}/openai/x"), format!("/openai/{long}"), format!("/v1/chat/completions?{long}")] {
        for _ in 0..8 {
            let response = client.request(http::Method::GET, &path, &[], "").await;
            assert!(response.status.is_client_error(), "{path:.40}: {}", response.status);
        }
    }
    assert_eq!(ask(&gateway, None).await, StatusCode::OK);
    settled(&gateway, &file, 1).await;
    assert_eq!(fake.requests().len(), 1, "nothing unauthenticated reached the provider");
    assert_eq!(gateway.stop(), Some(0));
    let size: u64 = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("s4.db"))
        .map(|e| e.metadata().unwrap().len())
        .sum();
    assert!(size < 1_000_000, "24 long unauthenticated requests left {size} bytes in the database");
}

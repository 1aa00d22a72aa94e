//! Spend and logs outlive the process and are shared through the database: the real binary, a real SQLite
//! file and a real Postgres.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests fail by panicking")]

mod common;

use std::time::Duration;

use common::{Gateway, tempdir};
use http::StatusCode;
use serde_json::json;
use sqlx::Row;
use tollgate_testkit::{FakeProvider, Link, PgDb, Plan, Reply, UsageNumbers};

/// Each answer costs 1000 × $0.15/M + 1000 × $0.60/M = $0.00075; a $0.002 budget takes two, then the third's
/// worst case (1000 output tokens) no longer fits.
async fn priced_fake() -> FakeProvider {
    let fake = FakeProvider::start().await;
    fake.set_default(Plan {
        reply: Some(Reply { text: "ok".into(), usage: Some(UsageNumbers { input: 1000, output: 1000, cached: 0 }) }),
        ..Plan::default()
    });
    fake
}

fn config(fake: &FakeProvider, database: &str) -> String {
    format!(
        "[database]\nurl = \"{database}\"\nflush_interval = \"200ms\"\n[providers.openai]\nbase_url = \"{}/v1\"\napi_key = \"sk-e2e\"\n\
         [[spend_limits]]\nid = \"cap\"\nbudget_usd = 0.002\nwindow = \"1d\"\n",
        fake.url()
    )
}

fn body() -> serde_json::Value {
    json!({"model": "gpt-4o-mini", "max_tokens": 1000, "messages": [{"role": "user", "content": "hi"}]})
}

async fn ask(gateway: &Gateway) -> StatusCode {
    tollgate_testkit::TestClient::new(gateway.proxy.clone())
        .post_json("/v1/chat/completions", &[], &body())
        .await
        .status
}

async fn spent_usd(gateway: &Gateway) -> f64 {
    let usage = tollgate_testkit::TestClient::new(gateway.admin.clone())
        .request(http::Method::GET, "/api/spend-limits/cap/usage", &[], "")
        .await
        .json();
    usage["buckets"].as_array().and_then(|b| b.first()).map_or(0.0, |b| b["spent_usd"].as_f64().unwrap())
}

async fn count_rows(url: &str) -> (i64, i64) {
    const QUERY: &str = "SELECT COUNT(*) AS n, COUNT(DISTINCT id) AS d FROM request_logs";
    if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        let row = sqlx::query(QUERY).fetch_one(&pool).await.unwrap();
        pool.close().await;
        (row.get("n"), row.get("d"))
    } else {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        let row = sqlx::query(QUERY).fetch_one(&pool).await.unwrap();
        pool.close().await;
        (row.get("n"), row.get("d"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_resets_no_budget_and_keeps_every_log_row() {
    let fake = priced_fake().await;
    let dir = tempdir();
    let gateway = Gateway::start(&dir, &config(&fake, "sqlite://tollgate.db"));
    assert_eq!(ask(&gateway).await, StatusCode::OK);
    assert_eq!(ask(&gateway).await, StatusCode::OK);
    assert_eq!(ask(&gateway).await, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(gateway.stop(), Some(0));

    let gateway = Gateway::start(&dir, &config(&fake, "sqlite://tollgate.db"));
    assert!((spent_usd(&gateway).await - 0.0015).abs() < 1e-9, "spend survived the restart");
    assert_eq!(ask(&gateway).await, StatusCode::TOO_MANY_REQUESTS, "the budget is still spent");
    assert_eq!(gateway.stop(), Some(0));
    let url = format!("sqlite://{}", dir.join("tollgate.db").display());
    assert_eq!(count_rows(&url).await, (4, 4), "one row per request, refusals included");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_on_one_postgres_enforce_one_budget() {
    let fake = priced_fake().await;
    let db = PgDb::create().await;
    let database = db.url.clone();
    let (dir_a, dir_b) = (tempdir(), tempdir());
    let a = Gateway::start(&dir_a, &config(&fake, &database));
    let b = Gateway::start(&dir_b, &config(&fake, &database));
    assert_eq!(ask(&a).await, StatusCode::OK);
    assert_eq!(ask(&a).await, StatusCode::OK);
    // Replicas converge within a flush interval (200 ms here): B sees A's spend.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while spent_usd(&b).await < 0.0015 - 1e-9 {
        assert!(tokio::time::Instant::now() < deadline, "replica B never saw replica A's spend");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(ask(&b).await, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(a.stop(), Some(0));
    assert_eq!(b.stop(), Some(0));
    assert_eq!(count_rows(&database).await, (3, 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_outage_mid_load_loses_no_record_and_doubles_none() {
    let fake = FakeProvider::start().await;
    let db = PgDb::create().await;
    let database = db.url.clone();
    let (host_port, db_name) = database.trim_start_matches("postgres://postgres@").split_once('/').unwrap();
    let cutter = Link::start(host_port.to_string()).await;
    let via_cutter = format!("postgres://postgres@127.0.0.1:{}/{db_name}", cutter.port());
    let dir = tempdir();
    let config = format!(
        "[database]\nurl = \"{via_cutter}\"\nflush_interval = \"200ms\"\n[providers.openai]\nbase_url = \"{}/v1\"\napi_key = \"k\"\n",
        fake.url()
    );
    let gateway = Gateway::start(&dir, &config);
    let client = tollgate_testkit::TestClient::new(gateway.proxy.clone());
    let mut answered = 0;
    for phase in 0..3 {
        match phase {
            1 => cutter.down(),
            2 => cutter.up(),
            _ => {}
        }
        for _ in 0..30 {
            let response = client.post_json("/v1/chat/completions", &[], &body()).await;
            assert_eq!(response.status, StatusCode::OK, "the gateway keeps serving while the database is down");
            answered += 1;
        }
        if phase == 1 {
            // Let the writer hit the dead database and spill.
            tokio::time::sleep(Duration::from_millis(800)).await;
        }
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (rows, distinct) = count_rows(&database).await;
        assert_eq!(rows, distinct, "a record arrived twice");
        if rows == answered {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{rows} of {answered} records arrived");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(gateway.stop(), Some(0));
    assert_eq!(count_rows(&database).await, (answered, answered));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_loses_no_record() {
    let fake = FakeProvider::start().await;
    fake.set_default(Plan { chunk_delay: Duration::from_millis(5), ..Plan::default() });
    let dir = tempdir();
    let config = format!("[providers.openai]\nbase_url = \"{}/v1\"\napi_key = \"k\"\n", fake.url());
    let gateway = Gateway::start(&dir, &config);
    let client = tollgate_testkit::TestClient::new(gateway.proxy.clone());
    let mut stream = body();
    stream["stream"] = json!(true);
    let mut tasks = Vec::new();
    for _ in 0..60 {
        let (client, stream) = (client.clone(), stream.clone());
        tasks.push(tokio::spawn(async move { client.try_post_json("/v1/chat/completions", &stream).await }));
    }
    tokio::time::sleep(Duration::from_millis(30)).await;
    let pid = gateway.child.id();
    std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
    let mut answered = 0;
    for task in tasks {
        if let Ok(Some(status)) = task.await {
            assert_eq!(status, StatusCode::OK);
            answered += 1;
        }
    }
    assert_eq!(gateway.wait_exit(), Some(0));
    assert!(answered > 0);
    let url = format!("sqlite://{}", dir.join("tollgate.db").display());
    assert_eq!(count_rows(&url).await, (answered, answered), "every answered request has its row");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_created_on_one_replica_is_enforced_by_the_other_within_two_seconds() {
    let fake = priced_fake().await;
    let db = PgDb::create().await;
    let config = format!(
        "[database]\nurl = \"{}\"\nflush_interval = \"200ms\"\n[providers.openai]\nbase_url = \"{}/v1\"\napi_key = \"k\"\n",
        db.url,
        fake.url()
    );
    let (dir_a, dir_b) = (tempdir(), tempdir());
    let a = Gateway::start(&dir_a, &config);
    let b = Gateway::start(&dir_b, &config);
    assert_eq!(ask(&b).await, StatusCode::OK, "no rule yet");
    // A budget smaller than one request's worst case: once B knows the rule, B refuses.
    let rule = json!({"id": "tiny", "budget_usd": 0.0001, "window": "1d"});
    let created = tollgate_testkit::TestClient::new(a.admin.clone())
        .request(http::Method::POST, "/api/spend-limits", &[("content-type", "application/json")], rule.to_string())
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    let created_at = tokio::time::Instant::now();
    loop {
        if ask(&b).await == StatusCode::TOO_MANY_REQUESTS {
            break;
        }
        assert!(created_at.elapsed() < Duration::from_secs(2), "replica B did not follow the rule within 2 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // And a deletion on B frees A within the same bound.
    let deleted = tollgate_testkit::TestClient::new(b.admin.clone())
        .request(http::Method::DELETE, "/api/spend-limits/tiny", &[], "")
        .await;
    assert!(deleted.status.is_success(), "{}", deleted.status);
    let deleted_at = tokio::time::Instant::now();
    while ask(&a).await != StatusCode::OK {
        assert!(deleted_at.elapsed() < Duration::from_secs(2), "replica A kept a deleted rule past 2 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(a.stop(), Some(0));
    assert_eq!(b.stop(), Some(0));
}

//! Sustained request-log throughput through `LogWriter` into the local Postgres (`TOLLGATE_TEST_PG`, default
//! trust auth on 127.0.0.1:5432): pushes `BENCH_ROWS` records (default 200,000) as fast as `try_send` takes them,
//! waits for every row to be in the table, and prints rows/s. A throwaway database is created and dropped.
//!
//! `cargo bench -p tollgate-store --bench writer`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stdout, reason = "a benchmark binary")]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use sqlx::{Connection, PgConnection, Row};
use tollgate_store::{CostSource, Enqueued, LogRecord, LogWriter, Pool, Store, StoreOptions, WriterOptions};

fn record(n: u64, created_at: jiff::Timestamp) -> LogRecord {
    let mut metadata = Map::new();
    metadata.insert("user_id".into(), Value::String(format!("user-{}", n % 500)));
    metadata.insert("team".into(), Value::String(format!("team-{}", n % 7)));
    LogRecord {
        id: uuid::Uuid::now_v7().to_string(),
        created_at,
        gateway: None,
        provider: ["openai", "anthropic", "groq"][(n % 3) as usize].to_owned(),
        model: ["gpt-4o-mini", "claude-sonnet-4-5", "llama-3.3-70b", "gpt-4o"][(n % 4) as usize].to_owned(),
        path: "/v1/chat/completions".into(),
        status: 200,
        success: true,
        cached: false,
        stream: n.is_multiple_of(2),
        tokens_in: 500 + n % 1000,
        tokens_out: 200 + n % 300,
        tokens_cached: 0,
        tokens_cache_write: 0,
        tokens_reasoning: 0,
        cost_nanos: 12_345 + n,
        cost_source: CostSource::Catalog,
        duration_ms: 800,
        ttfb_ms: Some(120),
        metadata,
        event_id: None,
        step: 0,
        rule_decisions: json!([{"rule": "per-user-daily", "bucket": format!("metadata.user_id=user-{}", n % 500), "decision": "allowed"}]),
        error: None,
        request_body: None,
        response_body: None,
        listed: true,
        cache_key: None,
        saved_nanos: 0,
    }
}

async fn rows(store: &Store) -> i64 {
    let Pool::Postgres(pool) = store.pool() else { unreachable!() };
    sqlx::query("SELECT count(*) FROM request_logs").fetch_one(pool).await.unwrap().get(0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let total: u64 = std::env::var("BENCH_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(200_000);
    let admin =
        std::env::var("TOLLGATE_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let name = format!("tg_bench_{}", uuid::Uuid::now_v7().simple());
    let mut conn = PgConnection::connect(&admin).await.expect("Postgres is required for this benchmark");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await.unwrap();
    let url = format!("{}/{name}", admin.rsplit_once('/').unwrap().0);
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions {
        spill_path: dir.path().join("spill.jsonl"),
        rollup_metadata_keys: if std::env::var_os("BENCH_NO_META").is_some() {
            BTreeSet::new()
        } else {
            BTreeSet::from(["user_id".to_owned(), "team".to_owned()])
        },
        ..StoreOptions::default()
    };
    let store = Store::open(&url, options).await.unwrap();
    store.migrate().await.unwrap();
    let env = |key: &str, default: usize| std::env::var(key).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let writer = LogWriter::spawn(
        &store,
        WriterOptions {
            capacity: env("BENCH_CAPACITY", WriterOptions::default().capacity),
            batch_size: env("BENCH_BATCH", WriterOptions::default().batch_size),
            ..WriterOptions::default()
        },
    );

    let now = jiff::Timestamp::now();
    let start = Instant::now();
    let (mut queued, mut spilled) = (0u64, 0u64);
    for n in 0..total {
        match writer.try_send(record(n, now)) {
            Enqueued::Queued => queued += 1,
            Enqueued::Spilled => spilled += 1,
            Enqueued::Dropped => panic!("dropped a record"),
        }
        // Offer load at the pace a busy gateway would, yielding so the writer shares the two cores.
        if n % 256 == 0 {
            tokio::task::yield_now().await;
        }
    }
    let offered = start.elapsed();
    writer.close().await.unwrap();
    let elapsed = start.elapsed();
    let landed = rows(&store).await;
    assert_eq!(landed, total as i64, "every record lands exactly once");
    println!(
        "writer: {total} rows in {:.2}s = {:.0} rows/s sustained (offered in {:.2}s; {queued} queued, {spilled} via spill)",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64(),
        offered.as_secs_f64(),
    );
    store.close().await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
    sqlx::raw_sql(sqlx::AssertSqlSafe(drop)).execute(&mut conn).await.unwrap();
}

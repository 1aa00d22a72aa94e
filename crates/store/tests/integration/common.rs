//! Test databases, stores and records.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use jiff::Timestamp;
use serde_json::{Map, Value, json};
use tollgate_store::{CostSource, LogRecord, Store, StoreOptions};

pub use tollgate_testkit::PgDb;

pub fn options(dir: &Path) -> StoreOptions {
    StoreOptions {
        acquire_timeout: Duration::from_secs(2),
        spill_path: dir.join("spill.jsonl"),
        rollup_metadata_keys: BTreeSet::from(["team".to_owned(), "user_id".to_owned()]),
        max_rollup_keys_per_row: 8,
        ..StoreOptions::default()
    }
}

pub async fn pg_store(db: &PgDb, dir: &Path) -> Store {
    let store = Store::open(&db.url, options(dir)).await.unwrap();
    store.migrate().await.unwrap();
    store
}

pub async fn sqlite_store(dir: &Path) -> Store {
    let url = format!("sqlite://{}", dir.join("tollgate.db").display());
    let store = Store::open(&url, options(dir)).await.unwrap();
    store.migrate().await.unwrap();
    store
}

pub fn ts(text: &str) -> Timestamp {
    text.parse().unwrap()
}

/// A record whose numbers derive from `n`, so sums are easy to check.
pub fn record(n: u64, created_at: Timestamp) -> LogRecord {
    let mut metadata = Map::new();
    metadata.insert("user_id".into(), Value::String(format!("u{}", n % 3)));
    metadata.insert("team".into(), json!(n % 2));
    metadata.insert("trace".into(), Value::String(format!("t{n}")));
    LogRecord {
        id: uuid::Uuid::now_v7().to_string(),
        created_at,
        gateway: n.is_multiple_of(4).then(|| "gw".to_owned()),
        provider: if n.is_multiple_of(2) { "openai" } else { "anthropic" }.to_owned(),
        model: if n.is_multiple_of(2) { "gpt-4o-mini" } else { "claude-sonnet-4-5" }.to_owned(),
        path: "/v1/chat/completions".into(),
        status: if n.is_multiple_of(5) { 500 } else { 200 },
        success: !n.is_multiple_of(5),
        cached: n.is_multiple_of(7),
        stream: n % 2 == 1,
        tokens_in: 100 + n,
        tokens_out: 10 + n,
        tokens_cached: n % 10,
        tokens_cache_write: 0,
        tokens_reasoning: n % 3,
        cost_nanos: 1_000 * n + 7,
        cost_source: CostSource::Catalog,
        duration_ms: 50 + n,
        ttfb_ms: Some(5 + n),
        metadata,
        event_id: Some(format!("ev{n}")),
        step: 0,
        rule_decisions: json!([{"rule": "daily", "decision": "allowed"}]),
        error: n.is_multiple_of(5).then(|| "upstream 500".to_owned()),
        request_body: None,
        response_body: None,
        listed: true,
        cache_key: None,
        saved_nanos: 0,
    }
}

/// Row count of a table on either backend.
pub async fn count(store: &Store, sql: &'static str) -> i64 {
    use sqlx::Row;
    match store.pool() {
        tollgate_store::Pool::Postgres(pool) => sqlx::query(sql).fetch_one(pool).await.unwrap().get(0),
        tollgate_store::Pool::Sqlite(pool) => sqlx::query(sql).fetch_one(pool).await.unwrap().get(0),
    }
}

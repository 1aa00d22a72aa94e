//! `/spend` at scale: fills a throwaway Postgres database with `BENCH_ROWS` request log rows (default
//! 10,000,000) spread over 90 days, 3 gateways, 3 providers, 12 models and 500 users, through the same
//! `insert_logs` the writer uses (so the rollups are what production keeps), then times `Store::spend` for the
//! groupings the admin API offers. `/spend` reads only the rollups, so its time depends on hours × groups, not
//! on the number of log rows.
//!
//! `cargo bench -p tollgate-store --bench spend_query` (`BENCH_ROWS=1000000` for a quicker run). `BENCH_KEEP_DB=1`
//! keeps the filled database (its name is printed) for `EXPLAIN ANALYZE`; `BENCH_DB=<name>` times the queries on
//! such a kept database again without filling one.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stdout, reason = "a benchmark binary")]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use sqlx::{Connection, PgConnection};
use tollgate_store::{CostSource, GroupBy, LogRecord, Store, StoreOptions};

const DAYS: i64 = 90;
const BATCH: u64 = 10_000;

fn record(n: u64, rows: u64, start: jiff::Timestamp) -> LogRecord {
    let span = DAYS * 86_400_000_000;
    let micros = (i128::from(n) * i128::from(span) / i128::from(rows)) as i64;
    let created_at = start.checked_add(jiff::SignedDuration::from_micros(micros)).unwrap();
    let mut metadata = Map::new();
    metadata.insert("user".into(), Value::String(format!("user-{}", n % 500)));
    metadata.insert("team".into(), Value::String(format!("team-{}", n % 7)));
    LogRecord {
        id: format!("{micros:016x}-{n:016x}"),
        created_at,
        gateway: Some(["default", "prod", "batch"][(n % 3) as usize].to_owned()),
        provider: ["openai", "anthropic", "google-ai-studio"][(n % 3) as usize].to_owned(),
        model: format!("model-{}", n % 12),
        path: "/v1/chat/completions".into(),
        status: 200,
        success: !n.is_multiple_of(50),
        cached: false,
        stream: n.is_multiple_of(2),
        tokens_in: 500 + n % 1000,
        tokens_out: 200 + n % 300,
        tokens_cached: 0,
        tokens_cache_write: 0,
        tokens_reasoning: 0,
        cost_nanos: 12_345 + n % 10_000,
        cost_source: CostSource::Catalog,
        duration_ms: 800,
        ttfb_ms: Some(120),
        metadata,
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

#[tokio::main]
async fn main() {
    let rows: u64 = std::env::var("BENCH_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000_000);
    let admin =
        std::env::var("TOLLGATE_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let reuse = std::env::var("BENCH_DB").ok();
    let name = reuse.clone().unwrap_or_else(|| format!("tg_bench_spend_{}", std::process::id()));
    let mut conn = PgConnection::connect(&admin).await.expect("Postgres must run");
    if reuse.is_none() {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await.unwrap();
    }
    let url = format!("{}/{name}", admin.rsplit_once('/').unwrap().0);
    let options = StoreOptions {
        rollup_metadata_keys: BTreeSet::from(["team".to_owned(), "user".to_owned()]),
        spill_path: std::env::temp_dir().join(format!("{name}.spill")),
        ..StoreOptions::default()
    };
    let store = Store::open(&url, options).await.unwrap();
    store.migrate().await.unwrap();

    let start = jiff::Timestamp::now().checked_sub(jiff::SignedDuration::from_hours(DAYS * 24)).unwrap();
    if reuse.is_none() {
        let filling = Instant::now();
        let mut n = 0;
        while n < rows {
            let batch: Vec<LogRecord> = (n..(n + BATCH).min(rows)).map(|i| record(i, rows, start)).collect();
            store.insert_logs(&batch).await.unwrap();
            n += batch.len() as u64;
            if n.is_multiple_of(1_000_000) {
                println!("  {n} rows in {:.0?}", filling.elapsed());
            }
        }
        println!(
            "filled {rows} log rows in {:.1?} ({:.0} rows/s)",
            filling.elapsed(),
            rows as f64 / filling.elapsed().as_secs_f64()
        );
        sqlx::raw_sql("VACUUM ANALYZE").execute(&mut PgConnection::connect(&url).await.unwrap()).await.unwrap();
    }

    let (from, to) = (start, jiff::Timestamp::now());
    println!("| group_by | rows | best of 5 | median of 5 |");
    println!("|---|---|---|---|");
    for groups in [
        "",
        "provider",
        "provider,model",
        "day",
        "provider,model,day",
        "gateway,hour",
        "metadata.team",
        "metadata.user",
        "metadata.user,day",
        "metadata.user,provider",
    ] {
        let group_by = GroupBy::parse_list(groups).unwrap();
        let mut times: Vec<Duration> = Vec::new();
        let mut count = 0;
        for _ in 0..5 {
            let t = Instant::now();
            count = store.spend(from, to, &group_by).await.unwrap().len();
            times.push(t.elapsed());
        }
        times.sort();
        println!(
            "| {} | {count} | {:.1?} | {:.1?} |",
            if groups.is_empty() { "(none)" } else { groups },
            times[0],
            times[2]
        );
    }
    store.close().await;
    if reuse.is_some() || std::env::var_os("BENCH_KEEP_DB").is_some() {
        println!("database kept: {name}");
    } else {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE {name}"))).execute(&mut conn).await.unwrap();
    }
}

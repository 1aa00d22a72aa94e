//! The store-backed admin endpoints on a real socket: stats, spend, logs, spend-limit CRUD (shared by two
//! replicas on one Postgres), recompute. Rows are written with `Store::insert_logs`, as the log writer does.
//! Postgres tests use a database of their own on `TOLLGATE_TEST_PG` (default the local trust-auth server) and
//! fail when it is unreachable.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests fail by panicking")]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tollgate_accounting::PriceCatalog;
use tollgate_admin::AdminState;
use tollgate_config::Config;
use tollgate_proxy::metrics::{MeteredSink, Metrics};
use tollgate_proxy::{Gateway, LogSink};
use tollgate_store::{CostSource, LogRecord, Store, StoreOptions};
use tollgate_testkit::TestClient;

/// A query string and the rows it must return.
type FilterCase = (&'static str, Box<dyn Fn(&LogRecord) -> bool>);

const TOKEN: &str = "admin-token-xyz";
const AUTH: (&str, &str) = ("authorization", "Bearer admin-token-xyz");

use tollgate_testkit::PgDb;

async fn open_store(url: &str, dir: &Path) -> Store {
    let options = StoreOptions {
        // Generous: on a loaded 2-core machine, migrating a new database can take a few seconds.
        acquire_timeout: Duration::from_secs(10),
        spill_path: dir.join("spill.jsonl"),
        rollup_metadata_keys: BTreeSet::from(["user".to_owned()]),
        ..StoreOptions::default()
    };
    let store = Store::open(url, options).await.unwrap();
    store.migrate().await.unwrap();
    store
}

async fn sqlite(dir: &Path) -> Store {
    open_store(&format!("sqlite://{}", dir.join("tollgate.db").display()), dir).await
}

/// One replica: a gateway (not listening: rows are inserted directly) and its admin server.
struct Replica {
    admin: TestClient,
    state: AdminState,
    shutdown: CancellationToken,
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn replica(store: Option<Store>, stats_window: &str) -> Replica {
    let toml = format!(
        r#"
[admin]
token = "{TOKEN}"
public_metrics = true
[providers.openai]
base_url = "http://127.0.0.1:9/v1"
[providers.local]
kind = "openai-compatible"
base_url = "http://127.0.0.1:9/v1"
hosted = true
[stats]
cap_usd = 1.0
window = "{stats_window}"
[[spend_limits]]
id = "daily"
budget_usd = 10.0
window = "1d"
"#
    );
    let config = Arc::new(Config::from_toml(&toml, &[]).unwrap());
    let metrics = Arc::new(Metrics::new(config.providers.keys().map(String::as_str)));
    let sink = MeteredSink { metrics: metrics.clone(), inner: LogSink };
    let catalog = Arc::new(PriceCatalog::bundled().unwrap());
    let gateway = Arc::new(Gateway::new(config.clone(), catalog, Arc::new(sink)));
    let shutdown = CancellationToken::new();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let ingest = store
        .clone()
        .map(|s| tollgate_ingest::Ingest::new(&config.ingest, s, tollgate_ingest::IngestOptions::default()).unwrap());
    let state = AdminState { config, gateway, metrics, started: Instant::now(), store, ingest };
    tollgate_admin::load_rules(&state).await.unwrap();
    tokio::spawn(tollgate_admin::serve(listener, state.clone(), shutdown.clone()));
    tokio::spawn(follow_rules(state.clone(), shutdown.clone()));
    tokio::spawn(follow_rule_keys(state.clone(), shutdown.clone()));
    Replica { admin: TestClient::new(url), state, shutdown }
}

/// The binary's `rule_sync` task, as each replica runs it: every second, reload the rules when their version moved.
async fn follow_rules(state: AdminState, shutdown: CancellationToken) {
    let Some(store) = state.store.clone() else { return };
    let mut seen = None;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Ok(version) = store.spend_rules_version().await
            && seen != Some(version)
        {
            seen = tollgate_admin::load_rules(&state).await.ok();
        }
    }
}

/// The binary's `rollup_key_sync` task, as each replica runs it: every second, add the metadata keys of the rules
/// in force to the rollups.
async fn follow_rule_keys(state: AdminState, shutdown: CancellationToken) {
    let Some(store) = state.store.clone() else { return };
    let mut counted = BTreeSet::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let wanted: BTreeSet<String> = state
            .gateway
            .spend
            .rules()
            .iter()
            .flat_map(tollgate_limits::SpendRule::dimensions)
            .filter_map(|dimension| match &dimension.key {
                tollgate_limits::DimensionKey::Metadata(key) => Some(key.clone()),
                _ => None,
            })
            .collect();
        if !wanted.is_subset(&counted) && store.add_rollup_metadata_keys(&wanted).await.is_ok() {
            counted.extend(wanted);
        }
    }
}

/// Row `n` at `at`: provider openai on even n, the hosted `local` on odd n; user u0..u2; cost n cents + 1.
fn record(n: u64, provider: &str, at: Timestamp) -> LogRecord {
    let mut metadata = Map::new();
    metadata.insert("user".into(), json!(format!("u{}", n % 3)));
    metadata.insert("team".into(), json!(n % 2));
    LogRecord {
        id: uuid::Uuid::now_v7().to_string(),
        created_at: at,
        gateway: None,
        provider: provider.to_owned(),
        model: "m1".into(),
        path: "/v1/chat/completions".into(),
        status: if n == 4 { 429 } else { 200 },
        success: n != 4,
        cached: n == 2,
        stream: false,
        tokens_in: 100 + n,
        tokens_out: 10 + n,
        tokens_cached: 0,
        tokens_cache_write: 0,
        tokens_reasoning: 0,
        cost_nanos: 10_000_000 * n + 1,
        cost_source: CostSource::Catalog,
        duration_ms: 20,
        ttfb_ms: Some(5),
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

async fn get(replica: &Replica, path: &str) -> (StatusCode, Value) {
    let response = replica.admin.request(Method::GET, path, &[AUTH], "").await;
    let body = if response.body.is_empty() { Value::Null } else { response.json() };
    (response.status, body)
}

async fn send(replica: &Replica, method: Method, path: &str, body: &Value) -> (StatusCode, Value) {
    let headers = [AUTH, ("content-type", "application/json")];
    let response = replica.admin.request(method, path, &headers, body.to_string()).await;
    let body = if response.body.is_empty() { Value::Null } else { response.json() };
    (response.status, body)
}

fn assert_bad(status: StatusCode, body: &Value, field: &str) {
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "invalid_request", "{body}");
    assert_eq!(body["error"]["field"], field, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains(field), "message names {field}: {body}");
}

#[tokio::test]
async fn every_new_endpoint_needs_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let r = replica(Some(sqlite(dir.path()).await), "lifetime").await;
    let cases = [
        (Method::GET, "/api/stats"),
        (Method::GET, "/spend"),
        (Method::GET, "/api/logs"),
        (Method::GET, "/api/logs/x"),
        (Method::POST, "/api/spend-limits"),
        (Method::PUT, "/api/spend-limits/x"),
        (Method::DELETE, "/api/spend-limits/x"),
        (Method::POST, "/admin/recompute"),
    ];
    for (method, path) in cases {
        for headers in [&[][..], &[("authorization", "Bearer wrong")][..]] {
            let response = r.admin.request(method.clone(), path, headers, "{}").await;
            assert_eq!(response.status, StatusCode::UNAUTHORIZED, "{method} {path}");
            assert_eq!(response.json()["error"]["code"], "unauthorized");
        }
    }
}

#[tokio::test]
async fn without_a_store_the_database_endpoints_answer_503() {
    let r = replica(None, "lifetime").await;
    for path in ["/api/stats", "/spend", "/api/logs", "/api/logs/x"] {
        let (status, body) = get(&r, path).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert_eq!(body["error"]["code"], "unavailable");
    }
    let (status, _) = send(&r, Method::POST, "/admin/recompute", &Value::Null).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let (status, _) =
        send(&r, Method::POST, "/api/spend-limits", &json!({"id": "x", "budget_usd": 1, "window": "1d"})).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let (status, body) = get(&r, "/status").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["database"]["kind"], "none");
}

#[tokio::test]
async fn status_reports_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let r = replica(Some(sqlite(dir.path()).await), "lifetime").await;
    let (_, body) = get(&r, "/status").await;
    assert_eq!(body["database"]["kind"], "sqlite");
    assert_eq!(body["database"]["ok"], true);
    assert_eq!(body["database"]["pending_records"], 0);
    assert_eq!(body["database"]["quarantined_records"], 0);
    assert_eq!(body["database"]["unreadable_rows"], 0);
    let metrics = r.admin.request(Method::GET, "/metrics", &[], "").await.text();
    assert!(metrics.contains("tollgate_database_up 1"), "{metrics}");
}

#[tokio::test]
async fn stats_has_exactly_eight_fields() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(dir.path()).await;
    let now = Timestamp::now();
    // Two days ago (inside the last 7 full days): 0.01 + 0.02 + 0.03 USD, on both providers.
    let two_days_ago = now - SignedDuration::from_hours(48);
    let rows: Vec<_> = (1..=3).map(|n| record(n, if n == 2 { "openai" } else { "local" }, two_days_ago)).collect();
    store.insert_logs(&rows).await.unwrap();
    let r = replica(Some(store.clone()), "lifetime").await;
    let (status, body) = get(&r, "/api/stats").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let keys: BTreeSet<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "cap_usd",
            "spent_usd",
            "remaining_usd",
            "burn_per_day_usd",
            "total_requests",
            "total_tokens_in",
            "total_tokens_out",
            "hosted_only_ok"
        ])
    );
    let spent = 0.060_000_003;
    assert_eq!(body["cap_usd"], 1.0);
    assert!((body["spent_usd"].as_f64().unwrap() - spent).abs() < 1e-12, "{body}");
    assert!((body["remaining_usd"].as_f64().unwrap() - (1.0 - spent)).abs() < 1e-12);
    assert!((body["burn_per_day_usd"].as_f64().unwrap() - spent / 7.0).abs() < 1e-12);
    assert_eq!(body["total_requests"], 3);
    assert_eq!(body["total_tokens_in"], 306);
    assert_eq!(body["total_tokens_out"], 36);
    assert_eq!(body["hosted_only_ok"], false, "openai is not hosted");

    // A 1d window holds today only: the rows of two days ago are outside; burn still counts them.
    store.insert_logs(&[record(50, "local", now)]).await.unwrap();
    let today = replica(Some(store.clone()), "1d").await;
    let (_, body) = get(&today, "/api/stats").await;
    assert_eq!(body["total_requests"], 1, "{body}");
    assert_eq!(body["hosted_only_ok"], true, "only the hosted provider today");
    assert!((body["remaining_usd"].as_f64().unwrap() - 0.499_999_999).abs() < 1e-12, "{body}");
    assert!((body["burn_per_day_usd"].as_f64().unwrap() - spent / 7.0).abs() < 1e-12);
    // Spent over the cap: remaining stops at 0.
    store.insert_logs(&[record(200, "local", now)]).await.unwrap();
    let (_, body) = get(&today, "/api/stats").await;
    assert_eq!(body["remaining_usd"], 0.0, "{body}");
}

#[tokio::test]
async fn spend_groups_by_provider_day_and_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(dir.path()).await;
    let base: Timestamp = "2026-05-01T23:30:00Z".parse().unwrap();
    let rows: Vec<_> = (0..6)
        .map(|n| {
            record(n, if n % 2 == 0 { "openai" } else { "local" }, base + SignedDuration::from_mins(n as i64 * 15))
        })
        .collect();
    store.insert_logs(&rows).await.unwrap();
    let r = replica(Some(store), "lifetime").await;

    let (status, body) = get(&r, "/spend?from=2026-05-01&to=2026-05-02&group_by=provider,day").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["from"], "2026-05-01T00:00:00Z");
    assert_eq!(body["to"], "2026-05-03T00:00:00Z", "an end date includes its day");
    assert_eq!(body["group_by"], json!(["provider", "day"]));
    let rows = body["rows"].as_array().unwrap();
    let summary: Vec<(String, String, u64)> = rows
        .iter()
        .map(|row| {
            for key in ["groups", "requests", "tokens_in", "tokens_out", "cost_usd"] {
                assert!(row.get(key).is_some(), "{key} in {row}");
            }
            (
                row["groups"]["provider"].as_str().unwrap().to_owned(),
                row["groups"]["day"].as_str().unwrap().to_owned(),
                row["requests"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("local".into(), "2026-05-01".into(), 1),
            ("local".into(), "2026-05-02".into(), 2),
            ("openai".into(), "2026-05-01".into(), 1),
            ("openai".into(), "2026-05-02".into(), 2),
        ]
    );
    let total: f64 = rows.iter().map(|r| r["cost_usd"].as_f64().unwrap()).sum();
    assert!((total - 0.150_000_006).abs() < 1e-9, "{total}");

    let (_, body) = get(&r, "/spend?from=2026-05-01T00:00:00Z&to=2026-05-03T00:00:00Z&group_by=metadata.user").await;
    let users: Vec<&str> =
        body["rows"].as_array().unwrap().iter().map(|r| r["groups"]["metadata.user"].as_str().unwrap()).collect();
    assert_eq!(users, ["u0", "u1", "u2"]);
    let (_, body) = get(&r, "/spend?from=2026-05-01&to=2026-05-02").await;
    assert_eq!(body["rows"].as_array().unwrap().len(), 1, "no grouping: one total row");
    assert_eq!(body["rows"][0]["requests"], 6);
    let (status, body) = get(&r, "/spend").await;
    assert_eq!(status, StatusCode::OK, "defaults to the last 30 days: {body}");
    assert_eq!(body["rows"], json!([]));

    assert_eq!(body["source"], "rollup", "{body}");
    assert_eq!(body["truncated"], false, "{body}");

    let (status, body) = get(&r, "/spend?group_by=colour").await;
    assert_bad(status, &body, "group_by");
    let (status, body) = get(&r, "/spend?group_by=metadata.user,metadata.user2").await;
    assert_bad(status, &body, "group_by");
    let (status, body) = get(&r, "/spend?from=yesterday").await;
    assert_bad(status, &body, "from");
    let (status, body) = get(&r, "/spend?from=2026-05-03&to=2026-05-01").await;
    assert_bad(status, &body, "from");
    let (status, body) = get(&r, "/spend?colour=red").await;
    assert_bad(status, &body, "colour");
}

/// `/spend?group_by=metadata.app` with no rule on `app`: 200 with the sums of the rows that have it, answered from
/// a scan of the log (`source: log_scan`), with provider too.
async fn spend_by_a_key_no_rule_uses(store: Store) {
    let base: Timestamp = "2026-05-01T10:00:00Z".parse().unwrap();
    let rows: Vec<_> = (0..12)
        .map(|n| {
            let mut r =
                record(n, if n % 2 == 0 { "openai" } else { "local" }, base + SignedDuration::from_mins(n as i64));
            if n % 4 != 3 {
                r.metadata.insert("app".into(), json!(if n % 3 == 0 { "web" } else { "cli" }));
            }
            r
        })
        .collect();
    store.insert_logs(&rows).await.unwrap();
    let r = replica(Some(store), "lifetime").await;
    let (status, body) = get(&r, "/spend?from=2026-05-01&to=2026-05-01&group_by=metadata.app").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["source"], "log_scan", "{body}");
    assert_eq!(body["truncated"], false, "{body}");
    let mut want = BTreeMap::<String, (u64, u64)>::new();
    for row in rows.iter().filter(|r| r.metadata.contains_key("app")) {
        let e = want.entry(row.metadata["app"].as_str().unwrap().to_owned()).or_default();
        e.0 += 1;
        e.1 += row.cost_nanos;
    }
    let mut got = BTreeMap::<String, (u64, u64)>::new();
    for row in body["rows"].as_array().unwrap() {
        let e = got.entry(row["groups"]["metadata.app"].as_str().unwrap().to_owned()).or_default();
        e.0 += row["requests"].as_u64().unwrap();
        e.1 += (row["cost_usd"].as_f64().unwrap() * 1e9).round() as u64;
    }
    assert_eq!(got, want);
    let (status, body) = get(&r, "/spend?from=2026-05-01&to=2026-05-01&group_by=provider,metadata.app").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let requests: u64 = body["rows"].as_array().unwrap().iter().map(|r| r["requests"].as_u64().unwrap()).sum();
    assert_eq!(requests, want.values().map(|v| v.0).sum::<u64>());
    // The OpenAPI document describes what is served.
    let (_, doc) = get(&r, "/openapi.json").await;
    let view = &doc["components"]["schemas"]["SpendView"];
    for field in ["source", "truncated"] {
        assert!(view["properties"].get(field).is_some(), "{field} in {view}");
        assert!(view["required"].as_array().unwrap().iter().any(|f| f == field), "{field} required in {view}");
    }
    let row = &doc["components"]["schemas"]["SpendRowView"];
    for (field, kind) in [("cached_requests", "integer"), ("saved_usd", "number")] {
        assert_eq!(row["properties"][field]["type"], kind, "{field} in {row}");
        assert!(row["required"].as_array().unwrap().iter().any(|f| f == field), "{field} required in {row}");
    }
    let db = &doc["components"]["schemas"]["DatabaseStatus"]["properties"];
    assert!(db.get("quarantined_records").is_some() && db.get("unreadable_rows").is_some(), "{db}");
}

#[tokio::test]
async fn sqlite_spend_groups_by_a_metadata_key_no_rule_uses() {
    let dir = tempfile::tempdir().unwrap();
    spend_by_a_key_no_rule_uses(sqlite(dir.path()).await).await;
}

#[tokio::test]
async fn postgres_spend_groups_by_a_metadata_key_no_rule_uses() {
    let db = PgDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    spend_by_a_key_no_rule_uses(open_store(&db.url, dir.path()).await).await;
}

#[tokio::test]
async fn logs_filter_page_and_read_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(dir.path()).await;
    let base: Timestamp = "2026-05-01T10:00:00Z".parse().unwrap();
    let rows: Vec<_> = (0..9)
        .map(|n| record(n, if n % 2 == 0 { "openai" } else { "local" }, base + SignedDuration::from_mins(n as i64)))
        .collect();
    store.insert_logs(&rows).await.unwrap();
    let r = replica(Some(store), "lifetime").await;

    // Pages of 4, newest first, each row once.
    let mut seen = Vec::new();
    let mut path = "/api/logs?limit=4".to_owned();
    loop {
        let (status, body) = get(&r, &path).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        seen.extend(body["logs"].as_array().unwrap().iter().map(|l| l["id"].as_str().unwrap().to_owned()));
        match body["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/logs?limit=4&cursor={cursor}"),
            None => break,
        }
    }
    let expected: Vec<String> = rows.iter().rev().map(|r| r.id.clone()).collect();
    assert_eq!(seen, expected);

    let ids = |body: &Value| -> Vec<String> {
        body["logs"].as_array().unwrap().iter().map(|l| l["id"].as_str().unwrap().to_owned()).collect()
    };
    let want = |keep: &dyn Fn(&LogRecord) -> bool| -> Vec<String> {
        rows.iter().rev().filter(|r| keep(r)).map(|r| r.id.clone()).collect()
    };
    let cases: Vec<FilterCase> = vec![
        ("provider=local", Box::new(|r| r.provider == "local")),
        ("model=m1&status=429", Box::new(|r| r.status == 429)),
        ("success=false", Box::new(|r| !r.success)),
        ("cached=true", Box::new(|r| r.cached)),
        ("min_cost=0.03&max_cost=0.05", Box::new(|r| (30_000_000..=50_000_000).contains(&r.cost_nanos))),
        ("start=2026-05-01T10:03:00Z&end=2026-05-01T10:05:00Z", Box::new(|r| (3..5).contains(&(r.tokens_in - 100)))),
        ("metadata.user=u1", Box::new(|r| r.metadata["user"] == "u1")),
        ("metadata.team=1&provider=local", Box::new(|r| r.metadata["team"] == 1)),
        ("end=2026-04-30", Box::new(|_| false)),
    ];
    for (query, keep) in cases {
        let (status, body) = get(&r, &format!("/api/logs?{query}")).await;
        assert_eq!(status, StatusCode::OK, "{query}: {body}");
        assert_eq!(ids(&body), want(&*keep), "{query}");
    }

    let (_, body) = get(&r, "/api/logs?limit=1").await;
    let row = &body["logs"][0];
    for field in [
        "id",
        "created_at",
        "gateway",
        "provider",
        "model",
        "path",
        "status",
        "success",
        "cached",
        "stream",
        "tokens_in",
        "tokens_out",
        "tokens_cached",
        "tokens_reasoning",
        "cost_usd",
        "cost_source",
        "duration_ms",
        "ttfb_ms",
        "metadata",
        "event_id",
        "step",
        "rule_decisions",
        "error",
    ] {
        assert!(row.get(field).is_some(), "{field} in {row}");
    }
    assert_eq!(row["created_at"], "2026-05-01T10:08:00Z");
    assert_eq!(row["cost_usd"], 0.080_000_001);
    assert_eq!(row["metadata"], json!({"user": "u2", "team": 0}));

    let id = row["id"].as_str().unwrap();
    let (status, one) = get(&r, &format!("/api/logs/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["id"], id);
    let (status, body) = get(&r, "/api/logs/no-such-row").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");

    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("status=abc", "status"),
        ("success=maybe", "success"),
        ("min_cost=-1", "min_cost"),
        ("start=tomorrow", "start"),
        ("cursor=zzzz", "cursor"),
        ("colour=red", "colour"),
    ] {
        let (status, body) = get(&r, &format!("/api/logs?{query}")).await;
        assert_bad(status, &body, field);
    }
}

#[tokio::test]
async fn spend_limit_crud_reaches_a_second_replica_within_two_seconds() {
    let db = PgDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let a = replica(Some(open_store(&db.url, dir.path()).await), "lifetime").await;
    let b = replica(Some(open_store(&db.url, dir.path()).await), "lifetime").await;
    let rule = json!({"id": "team-weekly", "budget_usd": 25.0, "window": "7d",
        "dimensions": [{"key": "metadata.team", "mode": "split"}]});

    let (status, body) = send(&a, Method::POST, "/api/spend-limits", &rule).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["source"], "api");
    assert_eq!(body["budget_usd"], 25.0);
    assert!(a.state.gateway.spend.rules().iter().any(|r| r.id() == "team-weekly"), "in force on A at once");
    let budget_on_b = |expected: Option<u64>| {
        let engine = b.state.gateway.spend.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(2);
            loop {
                let found = engine
                    .rules()
                    .iter()
                    .find(|r| r.id() == "team-weekly")
                    .map(tollgate_limits::SpendRule::budget_nanos);
                if found == expected {
                    return;
                }
                assert!(Instant::now() < deadline, "B has {found:?}, expected {expected:?} within 2 s");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    budget_on_b(Some(25_000_000_000)).await;
    let (_, list) = get(&b, "/api/spend-limits").await;
    let sources: Vec<(&str, &str)> = list["spend_limits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["id"].as_str().unwrap(), r["source"].as_str().unwrap()))
        .collect();
    assert_eq!(sources, [("daily", "file"), ("team-weekly", "api")]);
    let (status, one) = get(&b, "/api/spend-limits/team-weekly").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["source"], "api");
    let (status, usage) = get(&b, "/api/spend-limits/team-weekly/usage").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(usage["buckets"], json!([]));

    // Conflicts: the same id again, and any write to a file rule.
    let (status, body) = send(&b, Method::POST, "/api/spend-limits", &rule).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "conflict");
    let file_rule = json!({"id": "daily", "budget_usd": 1.0, "window": "1d"});
    let (status, _) = send(&a, Method::POST, "/api/spend-limits", &file_rule).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = send(&a, Method::PUT, "/api/spend-limits/daily", &file_rule).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = send(&a, Method::DELETE, "/api/spend-limits/daily", &Value::Null).await;
    assert_eq!(status, StatusCode::CONFLICT);

    // Validation names the field.
    let (status, body) =
        send(&a, Method::POST, "/api/spend-limits", &json!({"id": "x", "budget_usd": 1.0, "window": "1 day"})).await;
    assert_bad(status, &body, "window");
    let (status, body) =
        send(&a, Method::POST, "/api/spend-limits", &json!({"id": "x", "budget_usd": -1.0, "window": "1d"})).await;
    assert_bad(status, &body, "budget_usd");
    let (status, body) = send(&a, Method::POST, "/api/spend-limits", &json!({"id": "x", "budget_usd": 1.0})).await;
    assert_bad(status, &body, "window");
    let (status, body) = send(
        &a,
        Method::POST,
        "/api/spend-limits",
        &json!({"id": "x", "budget_usd": 1.0, "window": "1d", "colour": 1}),
    )
    .await;
    assert_bad(status, &body, "colour");
    let (status, body) =
        send(&a, Method::PUT, "/api/spend-limits/x", &json!({"id": "y", "budget_usd": 1.0, "window": "1d"})).await;
    assert_bad(status, &body, "id");
    let response = a
        .admin
        .request(Method::POST, "/api/spend-limits", &[AUTH, ("content-type", "application/json")], "not json")
        .await;
    assert_bad(response.status, &response.json(), "body");

    // PUT replaces (200) or creates (201; the id may come from the path only).
    let (status, body) =
        send(&b, Method::PUT, "/api/spend-limits/team-weekly", &json!({"budget_usd": 30.0, "window": "7d"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["id"], "team-weekly");
    budget_on_b(Some(30_000_000_000)).await;
    let deadline = Instant::now() + Duration::from_secs(2);
    while a
        .state
        .gateway
        .spend
        .rules()
        .iter()
        .find(|r| r.id() == "team-weekly")
        .map(tollgate_limits::SpendRule::budget_nanos)
        != Some(30_000_000_000)
    {
        assert!(Instant::now() < deadline, "A sees B's change within 2 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, _) =
        send(&a, Method::PUT, "/api/spend-limits/other", &json!({"budget_usd": 1.0, "window": "1h"})).await;
    assert_eq!(status, StatusCode::CREATED);

    // Survives a restart: a new replica loads it at start.
    let c = replica(Some(open_store(&db.url, dir.path()).await), "lifetime").await;
    let ids: Vec<String> = c.state.gateway.spend.rules().iter().map(|r| r.id().to_owned()).collect();
    assert_eq!(ids, ["daily", "team-weekly", "other"]);

    // DELETE: 204, then 404; gone from B within 2 s.
    let (status, _) = send(&a, Method::DELETE, "/api/spend-limits/team-weekly", &Value::Null).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = send(&a, Method::DELETE, "/api/spend-limits/team-weekly", &Value::Null).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    budget_on_b(None).await;
    let (status, _) = get(&b, "/api/spend-limits/team-weekly").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn recompute_rebuilds_the_rollups_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(dir.path()).await;
    let base: Timestamp = "2026-05-01T10:00:00Z".parse().unwrap();
    let rows: Vec<_> = (0..5).map(|n| record(n, "openai", base + SignedDuration::from_mins(n as i64 * 20))).collect();
    store.insert_logs(&rows).await.unwrap();
    let tollgate_store::Pool::Sqlite(pool) = store.pool() else { panic!("sqlite") };
    sqlx::query("DELETE FROM spend_rollup_hourly").execute(pool).await.unwrap();
    sqlx::query("UPDATE spend_rollup_metadata_hourly SET cost_nanos = 0").execute(pool).await.unwrap();
    let r = replica(Some(store), "lifetime").await;
    let (_, body) = get(&r, "/api/stats").await;
    assert_eq!(body["total_requests"], 0, "rollups damaged");

    let (status, body) = send(&r, Method::POST, "/admin/recompute", &Value::Null).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["rows"], 5);
    let (_, body) = get(&r, "/api/stats").await;
    assert_eq!(body["total_requests"], 5);
    assert!((body["spent_usd"].as_f64().unwrap() - 0.100_000_005).abs() < 1e-12);
    let (_, body) = get(&r, "/spend?from=2026-05-01&to=2026-05-01&group_by=metadata.user").await;
    let cost: f64 = body["rows"].as_array().unwrap().iter().map(|r| r["cost_usd"].as_f64().unwrap()).sum();
    assert!((cost - 0.100_000_005).abs() < 1e-12, "{body}");
}

#[tokio::test]
async fn recompute_reprices_the_log_and_rebuilds_the_buckets() {
    let db = PgDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&db.url, dir.path()).await;
    let r = replica(Some(store.clone()), "lifetime").await;
    let engine = &r.state.gateway.spend;
    let daily = engine.rules().into_iter().find(|rule| rule.id() == "daily").unwrap();
    let (start, _) = daily.window().bounds(engine.clock().now());
    // gpt-4o-mini at $0.15 / $0.60 per million: 1000 in + 1000 out = 750,000 nano-dollars.
    let priced = |n: u64, source: CostSource, cost: u64, at: Timestamp| LogRecord {
        model: "gpt-4o-mini".into(),
        tokens_in: 1000,
        tokens_out: 1000,
        cost_source: source,
        cost_nanos: cost,
        ..record(n, "openai", at)
    };
    let rows = vec![
        priced(0, CostSource::Catalog, 1, start),
        priced(1, CostSource::Estimated, 5, start + SignedDuration::from_secs(1)),
        priced(2, CostSource::Custom, 123, start + SignedDuration::from_secs(2)),
        priced(3, CostSource::Unpriced, 0, start + SignedDuration::from_secs(3)),
        // Before the current window: repriced and rolled up, but in no bucket.
        priced(4, CostSource::Catalog, 7, start - SignedDuration::from_hours(48)),
    ];
    store.insert_logs(&rows).await.unwrap();
    // A wrong, too high bucket total, in the database and in the engine.
    let tollgate_store::Pool::Postgres(pool) = store.pool() else { panic!("postgres") };
    let start_ns = i64::try_from(start.as_nanosecond()).unwrap();
    sqlx::query(
        "INSERT INTO spend_buckets (rule_id, bucket_key, window_start_ns, spent_nanos) VALUES ('daily', $1, $2, $3)",
    )
    .bind(tollgate_limits::SINGLE_BUCKET_KEY)
    .bind(start_ns)
    .bind(9_000_000_000_i64)
    .execute(pool)
    .await
    .unwrap();
    engine.load_totals([tollgate_limits::BucketTotal {
        rule_id: "daily".into(),
        bucket_key: tollgate_limits::SINGLE_BUCKET_KEY.into(),
        window_start: start,
        total_nanos: 9_000_000_000,
    }]);

    let (status, body) = send(&r, Method::POST, "/admin/recompute", &Value::Null).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["rows"], 5);
    assert_eq!(body["repriced_rows"], 4);

    let costs: Vec<(String, i64, String)> =
        sqlx::query_as("SELECT id, cost_nanos, cost_source FROM request_logs ORDER BY created_at DESC")
            .fetch_all(pool)
            .await
            .unwrap();
    let by_id =
        |row: &LogRecord| costs.iter().find(|(id, _, _)| *id == row.id).map(|(_, c, s)| (*c, s.as_str())).unwrap();
    assert_eq!(by_id(&rows[0]), (750_000, "catalog"));
    assert_eq!(by_id(&rows[1]), (750_000, "estimated"));
    assert_eq!(by_id(&rows[2]), (123, "custom"), "a custom cost is kept");
    assert_eq!(by_id(&rows[3]), (750_000, "catalog"), "now priced");
    assert_eq!(by_id(&rows[4]), (750_000, "catalog"));

    let (rollup,): (i64,) =
        sqlx::query_as("SELECT sum(cost_nanos)::int8 FROM spend_rollup_hourly").fetch_one(pool).await.unwrap();
    assert_eq!(rollup, 4 * 750_000 + 123);

    let in_window = 3 * 750_000 + 123;
    let usage = engine.usage("daily").unwrap();
    assert_eq!(usage.len(), 1, "{usage:?}");
    assert_eq!(usage[0].spent_nanos, in_window, "the engine adopts the lower total");
    let buckets: Vec<(String, i64, i64)> =
        sqlx::query_as("SELECT bucket_key, window_start_ns, spent_nanos FROM spend_buckets WHERE rule_id = 'daily'")
            .fetch_all(pool)
            .await
            .unwrap();
    assert_eq!(buckets, [(tollgate_limits::SINGLE_BUCKET_KEY.to_owned(), start_ns, i64::try_from(in_window).unwrap())]);
}

/// (requests, cost, cached requests, saved) in nano-dollars per value of grouping `name` in a `/spend` answer;
/// every row must carry the two cache fields.
fn cache_sums(body: &Value, name: &str) -> BTreeMap<String, (u64, u64, u64, u64)> {
    let nanos = |v: &Value| (v.as_f64().unwrap() * 1e9).round() as u64;
    let mut out = BTreeMap::new();
    for row in body["rows"].as_array().expect("rows") {
        assert!(row["cached_requests"].is_u64() && row["saved_usd"].is_f64(), "{row}");
        let e: &mut (u64, u64, u64, u64) = out.entry(row["groups"][name].as_str().unwrap().to_owned()).or_default();
        e.0 += row["requests"].as_u64().unwrap();
        e.1 += nanos(&row["cost_usd"]);
        e.2 += row["cached_requests"].as_u64().unwrap();
        e.3 += nanos(&row["saved_usd"]);
    }
    out
}

/// `/spend` per provider, per rolled-up key (`user`) and per key answered by a log scan (`app`): cache hits count
/// into `cached_requests` and `saved_usd` and never into `cost_usd`, after a recompute and across a restart too.
async fn spend_counts_cache_hits(url: &str, dir: &Path) {
    let store = open_store(url, dir).await;
    let base: Timestamp = "2026-05-01T10:00:00Z".parse().unwrap();
    let rows: Vec<LogRecord> = (0..9)
        .map(|n| {
            let mut row =
                record(n, if n % 2 == 0 { "openai" } else { "local" }, base + SignedDuration::from_mins(n as i64 * 9));
            row.metadata.insert("app".into(), json!(if n < 5 { "web" } else { "cli" }));
            if n % 3 == 1 {
                // A cache hit as the proxy logs it.
                LogRecord {
                    cached: true,
                    cost_nanos: 0,
                    cost_source: CostSource::Cache,
                    saved_nanos: 30_000_000 * n + 7,
                    cache_key: Some(format!("{n:064x}")),
                    ..row
                }
            } else {
                LogRecord { cached: false, ..row }
            }
        })
        .collect();
    assert_eq!(store.insert_logs(&rows).await.unwrap(), 9);
    let want = |key: &dyn Fn(&LogRecord) -> String| {
        let mut out = BTreeMap::<String, (u64, u64, u64, u64)>::new();
        for row in &rows {
            let e = out.entry(key(row)).or_default();
            *e = (e.0 + 1, e.1 + row.cost_nanos, e.2 + u64::from(row.cached), e.3 + row.saved_nanos);
        }
        out
    };
    let by_provider = want(&|r| r.provider.clone());
    assert_eq!(by_provider["local"].2, 2, "hits at n = 1 and 7");
    let expected = [
        ("provider", "rollup", by_provider),
        ("metadata.user", "rollup", want(&|r| r.metadata["user"].as_str().unwrap().to_owned())),
        ("metadata.app", "log_scan", want(&|r| r.metadata["app"].as_str().unwrap().to_owned())),
    ];
    let check = async |r: &Replica| {
        for (group_by, source, want) in &expected {
            let (status, body) = get(r, &format!("/spend?from=2026-05-01&to=2026-05-01&group_by={group_by}")).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            assert_eq!(body["source"], *source, "{body}");
            assert_eq!(&cache_sums(&body, group_by), want, "{body}");
        }
    };
    let r = replica(Some(store.clone()), "lifetime").await;
    check(&r).await;

    // The rollups lose their cache sums; a recompute rebuilds them from the log and leaves the hits' cost at 0.
    for sql in [
        "UPDATE spend_rollup_hourly SET cached_requests = 0, saved_nanos = 0",
        "UPDATE spend_rollup_metadata_hourly SET cached_requests = 0, saved_nanos = 0",
        "UPDATE spend_rollup_metadata_daily SET cached_requests = 0, saved_nanos = 0",
        "UPDATE spend_rollup_metadata_value_daily SET cached_requests = 0, saved_nanos = 0",
    ] {
        match store.pool() {
            tollgate_store::Pool::Postgres(pool) => sqlx::query(sql).execute(pool).await.map(drop).unwrap(),
            tollgate_store::Pool::Sqlite(pool) => sqlx::query(sql).execute(pool).await.map(drop).unwrap(),
        }
    }
    let (_, body) = get(&r, "/spend?from=2026-05-01&to=2026-05-01").await;
    assert_eq!(body["rows"][0]["cached_requests"], 0, "damaged: {body}");
    let (status, body) = send(&r, Method::POST, "/admin/recompute", &Value::Null).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    check(&r).await;

    // A restart: a new store and admin server on the same database.
    drop(r);
    store.close().await;
    check(&replica(Some(open_store(url, dir).await), "lifetime").await).await;
}

#[tokio::test]
async fn sqlite_spend_counts_cache_hits_and_savings() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("tollgate.db").display());
    spend_counts_cache_hits(&url, dir.path()).await;
}

#[tokio::test]
async fn postgres_spend_counts_cache_hits_and_savings() {
    let db = PgDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    spend_counts_cache_hits(&db.url, dir.path()).await;
}

/// (requests, cost in nano-dollars) per `metadata.team` value in a `/spend` answer.
fn per_team(body: &Value) -> BTreeMap<String, (u64, u64)> {
    let mut out = BTreeMap::new();
    for row in body["rows"].as_array().unwrap() {
        let e: &mut (u64, u64) = out.entry(row["groups"]["metadata.team"].as_str().unwrap().to_owned()).or_default();
        e.0 += row["requests"].as_u64().unwrap();
        e.1 += (row["cost_usd"].as_f64().unwrap() * 1e9).round() as u64;
    }
    out
}

#[tokio::test]
async fn an_api_rule_on_a_new_metadata_key_rolls_it_up_with_its_history() {
    let db = PgDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&db.url, dir.path()).await;
    let a = replica(Some(store.clone()), "lifetime").await;
    let b = replica(Some(open_store(&db.url, dir.path()).await), "lifetime").await;
    let base: Timestamp = "2026-05-01T20:00:00Z".parse().unwrap();
    let at = |n: u64| base + SignedDuration::from_mins(n as i64 * 7);
    // Written before any rule uses `team`: /spend answers from a scan of the log rows.
    let before: Vec<_> = (0..40).map(|n| record(n, "openai", at(n))).collect();
    store.insert_logs(&before).await.unwrap();
    let span = "from=2026-05-01&to=2026-05-03";
    let (status, body) = get(&a, &format!("/spend?{span}&group_by=metadata.team")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["source"], "log_scan", "{body}");
    assert_eq!(per_team(&body).values().map(|v| v.0).sum::<u64>(), 40);

    let rule = json!({"id": "per-team", "budget_usd": 50.0, "window": "1d",
        "dimensions": [{"key": "metadata.team", "mode": "split"}]});
    let (status, body) = send(&a, Method::POST, "/api/spend-limits", &rule).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // Written while the key may be being added, and once it is: each counted once, by the backfill or the writer.
    let during: Vec<_> = (40..55).map(|n| record(n, "local", at(n))).collect();
    store.insert_logs(&during).await.unwrap();
    // The key's history is added in the background: answered from the log until then, then from the rollups,
    // which count every row once.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = get(&a, &format!("/spend?{span}&group_by=metadata.team")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if body["source"] == "rollup" {
            break;
        }
        assert_eq!(body["source"], "log_scan", "{body}");
        assert!(Instant::now() < deadline, "metadata.team rolled up within 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after: Vec<_> = (55..70).map(|n| record(n, "local", at(n))).collect();
    store.insert_logs(&after).await.unwrap();
    let mut want = BTreeMap::<String, (u64, u64)>::new();
    for r in before.iter().chain(&during).chain(&after) {
        let e = want.entry(r.metadata["team"].to_string()).or_default();
        e.0 += 1;
        e.1 += r.cost_nanos;
    }
    assert_eq!(want.values().map(|v| v.0).sum::<u64>(), 70);
    for replica in [&a, &b] {
        for group_by in ["metadata.team", "metadata.team,day", "metadata.team,hour,provider"] {
            let (status, body) = get(replica, &format!("/spend?{span}&group_by={group_by}")).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            assert_eq!(body["source"], "rollup", "{body}");
            assert_eq!(per_team(&body), want, "{group_by}: each row once, before and after the rule");
        }
    }
    // A key no rule uses (and no row has) is an empty scan; a key stays rolled up once its rule is gone.
    let (status, body) = get(&b, &format!("/spend?{span}&group_by=metadata.colour")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!((body["source"].as_str(), body["rows"].as_array().map(Vec::len)), (Some("log_scan"), Some(0)));
    let (status, _) = send(&a, Method::DELETE, "/api/spend-limits/per-team", &Value::Null).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = get(&a, &format!("/spend?{span}&group_by=metadata.team")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["source"], "rollup", "{body}");
    assert_eq!(per_team(&body), want);
}

#[tokio::test]
async fn recompute_rebuilds_the_slots_of_rolling_windows() {
    let db = PgDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&db.url, dir.path()).await;
    let r = replica(Some(store.clone()), "lifetime").await;
    // A rolling hour (one-minute slots), one bucket per user, openai only.
    let rule = json!({"id": "rolling-hour", "budget_usd": 5.0, "window": "1h", "window_kind": "rolling",
        "dimensions": [{"key": "metadata.user", "mode": "split"},
                       {"key": "provider", "mode": "filter", "values": ["openai"]}]});
    let (status, body) = send(&r, Method::POST, "/api/spend-limits", &rule).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let engine = &r.state.gateway.spend;
    let now = engine.clock().now();
    let slot = |at: Timestamp| {
        let ns = at.as_nanosecond();
        i64::try_from(ns - ns.rem_euclid(60_000_000_000)).unwrap()
    };
    let ago = |mins: i64| now - SignedDuration::from_mins(mins);
    // gpt-4o-mini at $0.15 / $0.60 per million: 1000 in + 1000 out = 750,000 nano-dollars.
    let priced = |n: u64, provider: &str, source: CostSource, cost: u64, at: Timestamp| LogRecord {
        model: "gpt-4o-mini".into(),
        tokens_in: 1000,
        tokens_out: 1000,
        cost_source: source,
        cost_nanos: cost,
        ..record(n, provider, at)
    };
    let rows = vec![
        priced(0, "openai", CostSource::Catalog, 1, ago(30)), // u0, repriced to 750,000
        priced(3, "openai", CostSource::Custom, 123, ago(20)), // u0, custom: kept
        priced(1, "openai", CostSource::Estimated, 5, ago(10)), // u1, repriced to 750,000
        priced(6, "local", CostSource::Catalog, 9, ago(5)),   // u0, filtered out (not openai)
        priced(9, "openai", CostSource::Catalog, 11, ago(120)), // u0, before the span
    ];
    store.insert_logs(&rows).await.unwrap();
    // Wrong slot totals, in the database and in the engine: too high for u0, and u2 with no row in the log.
    let tollgate_store::Pool::Postgres(pool) = store.pool() else { panic!("postgres") };
    let wrong = [("metadata.user=u0", ago(30), 9_000_000_000_i64), ("metadata.user=u2", ago(40), 7_000_000_000)];
    for (key, at, nanos) in wrong {
        sqlx::query(
            "INSERT INTO spend_buckets (rule_id, bucket_key, window_start_ns, spent_nanos)
             VALUES ('rolling-hour', $1, $2, $3)",
        )
        .bind(key)
        .bind(slot(at))
        .bind(nanos)
        .execute(pool)
        .await
        .unwrap();
    }
    engine.load_totals(wrong.map(|(key, at, nanos)| tollgate_limits::BucketTotal {
        rule_id: "rolling-hour".into(),
        bucket_key: key.into(),
        window_start: Timestamp::from_nanosecond(i128::from(slot(at))).unwrap(),
        total_nanos: u64::try_from(nanos).unwrap(),
    }));
    let (_, usage) = get(&r, "/api/spend-limits/rolling-hour/usage").await;
    assert_eq!(usage["buckets"].as_array().unwrap().len(), 2, "{usage}");

    let (status, body) = send(&r, Method::POST, "/admin/recompute", &Value::Null).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["rows"], 5);

    let (status, usage) = get(&r, "/api/spend-limits/rolling-hour/usage").await;
    assert_eq!(status, StatusCode::OK);
    let spent: BTreeMap<String, f64> = usage["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["bucket"].as_str().unwrap().to_owned(), b["spent_usd"].as_f64().unwrap()))
        .collect();
    let usd = |nanos: u64| nanos as f64 / 1e9;
    assert_eq!(
        spent,
        BTreeMap::from([
            ("metadata.user=u0".to_owned(), usd(750_123)),
            ("metadata.user=u1".to_owned(), usd(750_000)),
            ("metadata.user=u2".to_owned(), 0.0),
        ]),
        "{usage}"
    );
    let buckets: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT bucket_key, window_start_ns, spent_nanos FROM spend_buckets WHERE rule_id = 'rolling-hour'
         ORDER BY bucket_key, window_start_ns",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(
        buckets,
        [
            ("metadata.user=u0".to_owned(), slot(ago(30)), 750_000),
            ("metadata.user=u0".to_owned(), slot(ago(20)), 123),
            ("metadata.user=u1".to_owned(), slot(ago(10)), 750_000),
        ],
        "one row per bucket and slot; u2's slot is gone"
    );
    // The fixed-window rule was rebuilt in the same pass, from the same rows.
    let daily = engine.usage("daily").unwrap();
    let (day_start, _) = engine.rules().iter().find(|rule| rule.id() == "daily").unwrap().window().bounds(now);
    let (in_day,): (i64,) = sqlx::query_as(
        "SELECT COALESCE(sum(cost_nanos), 0)::int8 FROM request_logs
         WHERE created_at >= 'epoch'::timestamptz + $1 * interval '1 microsecond'",
    )
    .bind(day_start.as_microsecond())
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(daily.iter().map(|b| b.spent_nanos).sum::<u64>(), u64::try_from(in_day).unwrap());
}

#[tokio::test]
async fn openapi_lists_every_endpoint() {
    let r = replica(None, "lifetime").await;
    let (_, doc) = get(&r, "/openapi.json").await;
    for (path, method) in [
        ("/status", "get"),
        ("/metrics", "get"),
        ("/config", "get"),
        ("/api/stats", "get"),
        ("/spend", "get"),
        ("/api/logs", "get"),
        ("/api/logs/{id}", "get"),
        ("/api/spend-limits", "get"),
        ("/api/spend-limits", "post"),
        ("/api/spend-limits/{id}", "get"),
        ("/api/spend-limits/{id}", "put"),
        ("/api/spend-limits/{id}", "delete"),
        ("/api/spend-limits/{id}/usage", "get"),
        ("/admin/recompute", "post"),
        ("/openapi.json", "get"),
    ] {
        assert!(doc["paths"][path][method].is_object(), "{method} {path} missing");
    }
    let stats = &doc["components"]["schemas"]["StatsView"]["properties"];
    assert_eq!(stats.as_object().unwrap().len(), 8);
}

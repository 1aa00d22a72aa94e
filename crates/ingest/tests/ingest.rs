//! Ingest runs against the report fakes on real sockets, writing to real SQLite and Postgres stores: every page
//! of every cursor, exact nanos, idempotent runs, failures reported per provider, the lease, and the rebuild
//! from raw pages.
#![expect(clippy::unwrap_used, reason = "tests")]

use std::time::{Duration, Instant};

use jiff::Timestamp;
use tollgate_config::{AnthropicIngest, GoogleIngest, Ingest as IngestConfig, OpenAiIngest, Secret};
use tollgate_ingest::{Ingest, IngestOptions, RetryPolicy, parse_raw_page};
use tollgate_store::{Grain, Store, StoreOptions, StoredUsageRow};
use tollgate_testkit::reports::{
    ANTHROPIC_ADMIN_KEY, BillingRow, CostRecord, Failure, Fixture, OPENAI_ADMIN_KEY, ReportsFake, UsageRecord,
    test_service_account_json,
};
use tollgate_testkit::{Gate, PgDb};

fn now() -> i64 {
    Timestamp::now().as_second()
}

fn usage(at: i64, model: &str, input: u64) -> UsageRecord {
    UsageRecord { at, model: model.into(), input, output: input / 10, cached: input / 4, cache_write: 3 }
}

/// Two days of usage every hour for two models, and a cost each day, in amounts a float would get wrong.
fn fixture() -> Fixture {
    let start = now() - 47 * 3_600;
    let mut fixture = Fixture { max_buckets_per_page: Some(5), max_rows_per_page: Some(1), ..Fixture::default() };
    for hour in 0..47 {
        let at = start + hour * 3_600;
        fixture.openai_usage.push(usage(at, "gpt-4o", 1_000 + hour as u64));
        fixture.openai_usage.push(usage(at, "gpt-4o-mini", 10));
        fixture.anthropic_usage.push(usage(at, "claude-sonnet-4-5", 500));
    }
    for day in 0..3 {
        // A minute in the past: data at the very second a run ends would be new to the next run.
        let at = now() - day * 86_400 - 60;
        fixture.openai_costs.push(CostRecord { at, nanos: 8_200_000_001 });
        fixture.anthropic_costs.push(CostRecord { at, nanos: 1_234_500_000 });
        fixture.billing.push(BillingRow { service: "Vertex AI".into(), usage_start: at, cost_nanos: 12_345_678_901 });
        fixture.billing.push(BillingRow { service: "Compute Engine".into(), usage_start: at, cost_nanos: 99 });
    }
    fixture
}

fn config(fake: &ReportsFake) -> IngestConfig {
    let url = |path: &str| format!("{}{path}", fake.url()).parse().unwrap();
    IngestConfig {
        interval: Duration::from_hours(1),
        lookback: Duration::from_hours(48),
        raw_retention: Duration::from_hours(90 * 24),
        drift_threshold: 0.01,
        openai: Some(OpenAiIngest {
            admin_key: Secret::new(OPENAI_ADMIN_KEY),
            base_url: url(""),
            project_ids: vec![],
            gateway_providers: vec!["openai".into()],
        }),
        anthropic: Some(AnthropicIngest {
            admin_key: Secret::new(ANTHROPIC_ADMIN_KEY),
            base_url: url(""),
            gateway_providers: vec!["anthropic".into()],
        }),
        google: Some(GoogleIngest {
            service_account_json: Secret::new(test_service_account_json()),
            project: "billing-project".into(),
            table: "billing.gcp_billing_export_v1_TEST".into(),
            token_url: fake.token_url().parse().unwrap(),
            bigquery_url: url(""),
            gateway_providers: vec!["google-vertex-ai".into()],
        }),
    }
}

fn options() -> IngestOptions {
    IngestOptions {
        retry: RetryPolicy {
            attempts: 3,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
            ..RetryPolicy::default()
        },
        ..IngestOptions::default()
    }
}

async fn sqlite(dir: &std::path::Path) -> Store {
    let options = StoreOptions { spill_path: dir.join("spill.jsonl"), ..StoreOptions::default() };
    let store = Store::open(&format!("sqlite://{}", dir.join("db.sqlite").display()), options).await.unwrap();
    store.migrate().await.unwrap();
    store
}

async fn postgres(db: &PgDb, dir: &std::path::Path) -> Store {
    let options = StoreOptions {
        spill_path: dir.join(format!("spill-{}.jsonl", uuid::Uuid::now_v7())),
        acquire_timeout: Duration::from_secs(10),
        ..StoreOptions::default()
    };
    let store = Store::open(&db.url, options).await.unwrap();
    store.migrate().await.unwrap();
    store
}

async fn rows(store: &Store) -> Vec<StoredUsageRow> {
    store
        .provider_usage(
            Timestamp::from_second(0).unwrap(),
            Timestamp::now().checked_add(jiff::SignedDuration::from_hours(48)).unwrap(),
        )
        .await
        .unwrap()
}

async fn every_provider_every_page(store: Store) {
    let fake = ReportsFake::start(fixture()).await;
    fake.slow_jobs();
    let ingest = Ingest::new(&config(&fake), store.clone(), options()).unwrap();
    let runs = ingest.run_all().await;
    for run in &runs {
        assert!(run.ok && !run.skipped, "{run:?}");
    }
    // 48 or 49 hourly buckets at 5 a page: 10 pages of usage; 3 days of cost at 5 a page: 1.
    let openai = fake.requests_to("/organization/usage/completions");
    assert!(openai.len() >= 10, "{} usage pages", openai.len());
    assert!(openai.iter().skip(1).all(|r| r.query.contains("page=page_")));
    assert!(openai[0].query.contains("group_by=model") && openai[0].query.contains("bucket_width=1h"));
    assert!(fake.requests_to("/organizations/usage_report/messages")[0].query.contains("group_by%5B%5D=model"));
    // Google: a token, the query (not complete yet), then one results page per day.
    assert_eq!(fake.requests_to("/token").len(), 1);
    let results = fake.requests_to("/projects/billing-project/queries/");
    assert!(
        results.len() >= 2,
        "{:?}",
        fake.requests_to("/projects").iter().map(|r| (&r.path, &r.query)).collect::<Vec<_>>()
    );
    let first = rows(&store).await;
    let cost = |provider: &str| -> Vec<i64> {
        first.iter().filter(|r| r.provider == provider && r.row.grain == Grain::Day).map(|r| r.row.cost_nanos).collect()
    };
    assert!(cost("openai").contains(&8_200_000_001), "{:?}", cost("openai"));
    assert!(cost("anthropic").contains(&1_234_500_000));
    assert!(cost("google").iter().all(|c| *c == 12_345_678_901) && !cost("google").is_empty());
    let tokens: u64 =
        first.iter().filter(|r| r.provider == "openai" && r.row.model == "gpt-4o").map(|r| r.row.tokens_in).sum();
    assert_eq!(tokens, (0..47).map(|h| 1_000 + h).sum::<u64>());
    let anthropic_in: Vec<u64> = first
        .iter()
        .filter(|r| r.provider == "anthropic" && r.row.grain == Grain::Hour)
        .map(|r| r.row.tokens_in)
        .collect();
    assert!(
        anthropic_in.iter().all(|t| *t == 500 + 3 + 125),
        "uncached + cache writes + cache reads: {anthropic_in:?}"
    );
    // The same run again changes nothing.
    for run in ingest.run_all().await {
        assert!(run.ok, "{run:?}");
    }
    assert_eq!(rows(&store).await, first);
    // Rebuilding from the raw pages gives the same rows.
    let report = store.rebuild_provider_usage(&parse_raw_page).await.unwrap();
    assert_eq!(report.unparsed_pages, 0);
    assert!(report.pages > 20);
    assert_eq!(rows(&store).await, first);
    let status = ingest.last_runs();
    assert_eq!(status.len(), 3);
    assert!(status["openai"].pages >= 11);
}

#[tokio::test]
async fn sqlite_ingests_every_page_of_every_provider() {
    let dir = tempfile::tempdir().unwrap();
    every_provider_every_page(sqlite(dir.path()).await).await;
}

#[tokio::test]
async fn postgres_ingests_every_page_of_every_provider() {
    let db = PgDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    every_provider_every_page(postgres(&db, dir.path()).await).await;
}

#[tokio::test]
async fn a_wrong_key_is_reported_while_the_others_ingest() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(dir.path()).await;
    let fake = ReportsFake::start(fixture()).await;
    let mut config = config(&fake);
    config.anthropic.as_mut().unwrap().admin_key = Secret::new("sk-ant-api03-workspace-key");
    let ingest = Ingest::new(&config, store.clone(), options()).unwrap();
    let runs = ingest.run_all().await;
    let anthropic = runs.iter().find(|r| r.provider == "anthropic").unwrap();
    assert!(!anthropic.ok);
    assert_eq!(anthropic.result, "unauthorized");
    assert!(anthropic.error.as_deref().unwrap().contains("admin key"), "{anthropic:?}");
    assert_eq!(fake.requests_to("/organizations/").len(), 1, "a 401 is not retried");
    assert!(runs.iter().filter(|r| r.provider != "anthropic").all(|r| r.ok));
    let stored = rows(&store).await;
    assert!(stored.iter().any(|r| r.provider == "openai"));
    assert!(!stored.iter().any(|r| r.provider == "anthropic"));
    let far = Timestamp::now().checked_add(jiff::SignedDuration::from_hours(1)).unwrap();
    assert!(store.raw_pages("anthropic", Timestamp::from_second(0).unwrap(), far, 10, None).await.unwrap().is_empty());
    let counted = ingest.runs_total();
    assert!(counted.contains(&("anthropic", "unauthorized", 1)));
    assert!(counted.contains(&("openai", "ok", 1)));
}

#[tokio::test]
async fn rate_limits_wait_for_retry_after_and_server_errors_are_retried_then_reported() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(dir.path()).await;
    let fake = ReportsFake::start(fixture()).await;
    let mut config = config(&fake);
    config.google = None;
    config.anthropic = None;
    let ingest = Ingest::new(&config, store.clone(), options()).unwrap();
    fake.fail("/organization/usage", [Failure::RateLimited(1), Failure::Status(503), Failure::Malformed]);
    let started = Instant::now();
    let run = ingest.run("openai").await.unwrap();
    // 429 (waits its 1 s retry-after), 503, malformed: the policy allows 3 attempts, so the run fails, reported
    // by the last failure.
    assert!(started.elapsed() >= Duration::from_secs(1), "retry-after was honoured");
    assert!(!run.ok);
    assert_eq!(run.result, "malformed");
    assert!(rows(&store).await.is_empty(), "nothing half-written");
    // Two failures then an answer: the run succeeds.
    fake.fail("/organization/costs", [Failure::Status(500), Failure::Malformed]);
    let run = ingest.run("openai").await.unwrap();
    assert!(run.ok, "{run:?}");
    assert!(!rows(&store).await.is_empty());
    // A server that keeps failing is reported as such.
    fake.fail("/organization/costs", [Failure::Status(502), Failure::Status(502), Failure::Status(502)]);
    let run = ingest.run("openai").await.unwrap();
    assert_eq!(run.result, "server_error");
    assert!(run.error.unwrap().contains("502"));
}

#[tokio::test]
async fn the_lease_keeps_two_replicas_from_ingesting_together() {
    let db = PgDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let fake = ReportsFake::start(fixture()).await;
    let mut config = config(&fake);
    config.google = None;
    config.anthropic = None;
    let a = Ingest::new(&config, postgres(&db, dir.path()).await, options()).unwrap();
    let b = Ingest::new(&config, postgres(&db, dir.path()).await, options()).unwrap();
    let gate = Gate::new();
    fake.hold(gate.clone());
    let arrived = fake.arrived();
    let first = tokio::spawn(async move { a.run("openai").await.unwrap() });
    arrived.await;
    // Replica A is fetching (held at the gate): replica B's run is skipped and sends nothing.
    let before = fake.requests().len();
    let second = b.run("openai").await.unwrap();
    assert!(second.skipped, "{second:?}");
    assert_eq!(fake.requests().len(), before);
    gate.open();
    let first = first.await.unwrap();
    assert!(first.ok && !first.skipped, "{first:?}");
    // Once A is done, B takes its turn.
    let third = b.run("openai").await.unwrap();
    assert!(third.ok && !third.skipped, "{third:?}");
    assert!(b.runs_total().contains(&("openai", "skipped", 1)));
}

//! The provider-ingest aggregate on both backends: leases, one-transaction commits that replace their spans,
//! raw page paging, and the rebuild from raw pages.

use std::time::Duration;

use jiff::Timestamp;
use tollgate_testkit::PgDb;

use super::*;
use crate::store::StoreOptions;

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(seconds).unwrap()
}

const H: i64 = 3_600;

async fn sqlite(dir: &std::path::Path) -> Store {
    let options = StoreOptions { spill_path: dir.join("spill.jsonl"), ..StoreOptions::default() };
    let store = Store::open(&format!("sqlite://{}", dir.join("db.sqlite").display()), options).await.unwrap();
    store.migrate().await.unwrap();
    store
}

async fn postgres(db: &PgDb, dir: &std::path::Path) -> Store {
    let options = StoreOptions {
        spill_path: dir.join("spill.jsonl"),
        acquire_timeout: Duration::from_secs(10),
        ..StoreOptions::default()
    };
    let store = Store::open(&db.url, options).await.unwrap();
    store.migrate().await.unwrap();
    store
}

fn page(grain: Grain, start: i64, end: i64, fetched: i64, body: &str) -> NewRawPage {
    NewRawPage {
        endpoint: "/usage".into(),
        grain,
        span_start: at(start),
        span_end: at(end),
        query: format!("start={start}&end={end}"),
        cursor: None,
        fetched_at: at(fetched),
        body: body.into(),
    }
}

fn row(grain: Grain, start: i64, model: &str, tokens: u64, cost: i64) -> ProviderUsageRow {
    ProviderUsageRow {
        grain,
        bucket_start: at(start),
        model: model.into(),
        tokens_in: tokens,
        tokens_out: tokens / 2,
        tokens_cached: 1,
        cost_nanos: cost,
    }
}

/// The rows a body like `m:tokens:cost;m2:…` at hour `start` stands for (what a provider parser would read).
fn parse(page: &RawPage) -> Option<Vec<ProviderUsageRow>> {
    let start = page.page.span_start.as_second();
    page.page
        .body
        .split(';')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut fields = part.split(':');
            let model = fields.next()?;
            let tokens = fields.next()?.parse().ok()?;
            let cost = fields.next()?.parse().ok()?;
            Some(row(page.page.grain, start, model, tokens, cost))
        })
        .collect()
}

async fn leases_exclude_each_other(a: &Store, b: &Store) {
    let now = at(1_000 * H);
    let until = at(1_000 * H + 600);
    assert!(a.acquire_ingest_lease("openai", "run-a", now, until).await.unwrap());
    assert!(!b.acquire_ingest_lease("openai", "run-b", now, until).await.unwrap(), "lease is held by run-a");
    assert!(b.acquire_ingest_lease("anthropic", "run-b", now, until).await.unwrap(), "leases are per provider");
    // A commit by a run without the lease writes nothing.
    let pages = [page(Grain::Hour, 0, H, 1, "m:1:1")];
    assert!(!b.commit_ingest("openai", "run-b", now, &pages, vec![row(Grain::Hour, 0, "m", 1, 1)]).await.unwrap());
    assert!(b.provider_usage(at(0), at(H)).await.unwrap().is_empty());
    assert!(b.raw_pages("openai", at(0), at(10 * H), 10, None).await.unwrap().is_empty());
    // Released, the other run takes it; expired, anyone does.
    a.release_ingest_lease("openai", "run-a").await.unwrap();
    assert!(b.acquire_ingest_lease("openai", "run-b", now, until).await.unwrap());
    assert!(!a.acquire_ingest_lease("openai", "run-a", now, until).await.unwrap());
    assert!(a.acquire_ingest_lease("openai", "run-a", until, at(1_000 * H + 1_200)).await.unwrap(), "expired");
    // The holder whose lease expired cannot commit.
    assert!(!b.commit_ingest("openai", "run-b", until, &pages, vec![]).await.unwrap());
}

async fn commits_replace_their_spans_and_rebuild(store: &Store) {
    let now = at(10 * H);
    assert!(store.acquire_ingest_lease("openai", "run-1", now, at(11 * H)).await.unwrap());
    let first = [page(Grain::Hour, 0, H, 2 * H, "a:10:100;b:20:200"), page(Grain::Hour, H, 2 * H, 2 * H, "a:5:50")];
    let rows: Vec<ProviderUsageRow> = first.iter().flat_map(|p| parse(&stored(p)).unwrap()).collect();
    assert!(store.commit_ingest("openai", "run-1", now, &first, rows.clone()).await.unwrap());
    let once = store.provider_usage(at(0), at(10 * H)).await.unwrap();
    assert_eq!(once.len(), 3);
    // The same run twice changes no row.
    assert!(store.commit_ingest("openai", "run-1", now, &first, rows).await.unwrap());
    assert_eq!(store.provider_usage(at(0), at(10 * H)).await.unwrap(), once);
    // A later run over the first hour only: model b is gone from it, the second hour is untouched.
    store.release_ingest_lease("openai", "run-1").await.unwrap();
    assert!(store.acquire_ingest_lease("openai", "run-2", now, at(11 * H)).await.unwrap());
    let second = [page(Grain::Hour, 0, H, 3 * H, "a:11:110")];
    let rows = parse(&stored(&second[0])).unwrap();
    assert!(store.commit_ingest("openai", "run-2", now, &second, rows).await.unwrap());
    let after = store.provider_usage(at(0), at(10 * H)).await.unwrap();
    let summary: Vec<(i64, &str, u64, i64)> = after
        .iter()
        .map(|r| (r.row.bucket_start.as_second(), r.row.model.as_str(), r.row.tokens_in, r.row.cost_nanos))
        .collect();
    assert_eq!(summary, [(0, "a", 11, 110), (H, "a", 5, 50)]);
    // Raw pages: newest first, paged by cursor.
    let one = store.raw_pages("openai", at(0), at(10 * H), 1, None).await.unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].page.body, "a:11:110");
    let cursor = RawCursor { fetched_at_us: one[0].page.fetched_at.as_microsecond(), id: one[0].id };
    let rest = store.raw_pages("openai", at(0), at(10 * H), 10, Some(cursor)).await.unwrap();
    assert_eq!(rest.len(), 4, "two pages, written twice");
    assert!(rest.iter().all(|p| p.id < one[0].id));
    // Rebuilding from the raw pages gives the same rows, even after they were damaged.
    assert!(store.commit_ingest("openai", "run-2", now, &[], vec![row(Grain::Hour, 0, "a", 999, 9)]).await.unwrap());
    let report = store.rebuild_provider_usage(&parse).await.unwrap();
    assert_eq!(report.pages, 5);
    assert_eq!(report.unparsed_pages, 0);
    assert_eq!(store.provider_usage(at(0), at(10 * H)).await.unwrap(), after);
    // A page that no longer parses leaves its fetch out instead of erasing what it covered.
    assert!(
        store.commit_ingest("openai", "run-2", now, &[page(Grain::Hour, 0, 2 * H, 5 * H, "x")], vec![]).await.unwrap()
    );
    let report = store.rebuild_provider_usage(&parse).await.unwrap();
    assert_eq!(report.unparsed_pages, 1);
    assert_eq!(store.provider_usage(at(0), at(10 * H)).await.unwrap(), after);
    // Retention deletes old pages only.
    assert_eq!(store.delete_raw_pages_before(at(3 * H)).await.unwrap(), 4);
    assert_eq!(store.provider_usage(at(0), at(10 * H)).await.unwrap(), after);
}

/// A page's cursor is stored as sent: text on a later page, NULL on a report's first.
async fn raw_pages_keep_their_cursor(store: &Store) {
    let now = at(10 * H);
    assert!(store.acquire_ingest_lease("openai", "run-1", now, at(11 * H)).await.unwrap());
    let first = page(Grain::Hour, 0, H, 2 * H, "a:1:1");
    let next = NewRawPage { cursor: Some("page_2".into()), fetched_at: at(3 * H), ..first.clone() };
    assert!(store.commit_ingest("openai", "run-1", now, &[first, next], vec![]).await.unwrap());
    let pages = store.raw_pages("openai", at(0), at(10 * H), 10, None).await.unwrap();
    let cursors: Vec<Option<&str>> = pages.iter().map(|p| p.page.cursor.as_deref()).collect();
    assert_eq!(cursors, [Some("page_2"), None], "newest first");
    assert!(pages.iter().all(|p| p.run_id == "run-1" && p.provider == "openai"));
}

/// The gateway's hourly rollups summed per provider and hour (over models and gateways), inside the window.
async fn gateway_hours_sum_the_rollups(store: &Store) {
    let rows = [
        (5 * H, "openai", "gpt-a", "", 10, 1, 100),
        (5 * H, "openai", "gpt-b", "eu", 20, 2, 200),
        (6 * H, "openai", "gpt-a", "", 1, 1, 7),
        (5 * H, "anthropic", "claude", "", 3, 3, 30),
        (5 * H, "google", "gemini", "", 9, 9, 90),
        (9 * H, "openai", "gpt-a", "", 1, 1, 1),
    ];
    for (hour, provider, model, gateway, tokens_in, tokens_out, cost) in rows {
        insert_rollup(store, hour * 1_000_000, provider, model, gateway, [tokens_in, tokens_out, cost]).await;
    }
    let providers = ["openai".to_owned(), "anthropic".to_owned()];
    let mut hours = store.gateway_hours(&providers, at(5 * H), at(9 * H)).await.unwrap();
    hours.sort_by(|a, b| (&a.provider, a.hour).cmp(&(&b.provider, b.hour)));
    let summary: Vec<(&str, i64, u64, u64, u64)> = hours
        .iter()
        .map(|h| (h.provider.as_str(), h.hour.as_second(), h.tokens_in, h.tokens_out, h.cost_nanos))
        .collect();
    assert_eq!(summary, [("anthropic", 5 * H, 3, 3, 30), ("openai", 5 * H, 30, 3, 300), ("openai", 6 * H, 1, 1, 7)]);
}

/// One `spend_rollup_hourly` row, written straight into the table (its `hour` is a TIMESTAMPTZ on Postgres).
async fn insert_rollup(store: &Store, hour_us: i64, provider: &str, model: &str, gateway: &str, sums: [i64; 3]) {
    const PG: &str = "INSERT INTO spend_rollup_hourly (hour, provider, model, gateway, requests, tokens_in,
         tokens_out, tokens_cached, tokens_reasoning, cost_nanos, errors)
         VALUES ('epoch'::timestamptz + interval '1 microsecond' * $1, $2, $3, $4, 1, $5, $6, 0, 0, $7, 0)";
    const SQLITE: &str = "INSERT INTO spend_rollup_hourly (hour, provider, model, gateway, requests, tokens_in,
         tokens_out, tokens_cached, tokens_reasoning, cost_nanos, errors)
         VALUES ($1, $2, $3, $4, 1, $5, $6, 0, 0, $7, 0)";
    let [tokens_in, tokens_out, cost] = sums;
    match store.pool() {
        Pool::Postgres(pool) => {
            let query = sqlx::query(PG).bind(hour_us).bind(provider).bind(model).bind(gateway);
            query.bind(tokens_in).bind(tokens_out).bind(cost).execute(pool).await.unwrap();
        }
        Pool::Sqlite(pool) => {
            let query = sqlx::query(SQLITE).bind(hour_us).bind(provider).bind(model).bind(gateway);
            query.bind(tokens_in).bind(tokens_out).bind(cost).execute(pool).await.unwrap();
        }
    }
}

fn stored(page: &NewRawPage) -> RawPage {
    RawPage { id: 0, provider: "openai".into(), run_id: "r".into(), page: page.clone() }
}

#[tokio::test]
async fn sqlite_leases_exclude_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let a = sqlite(dir.path()).await;
    let b = Store::open(
        &format!("sqlite://{}", dir.path().join("db.sqlite").display()),
        StoreOptions { spill_path: dir.path().join("spill2.jsonl"), ..StoreOptions::default() },
    )
    .await
    .unwrap();
    leases_exclude_each_other(&a, &b).await;
}

#[tokio::test]
async fn postgres_leases_exclude_each_other() {
    let db = PgDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let a = postgres(&db, dir.path()).await;
    let b = postgres(&db, dir.path()).await;
    leases_exclude_each_other(&a, &b).await;
}

#[tokio::test]
async fn sqlite_commits_replace_spans_and_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    commits_replace_their_spans_and_rebuild(&sqlite(dir.path()).await).await;
}

#[tokio::test]
async fn postgres_commits_replace_spans_and_rebuild() {
    let db = PgDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    commits_replace_their_spans_and_rebuild(&postgres(&db, dir.path()).await).await;
}

#[tokio::test]
async fn sqlite_raw_pages_keep_their_cursor() {
    let dir = tempfile::tempdir().unwrap();
    raw_pages_keep_their_cursor(&sqlite(dir.path()).await).await;
}

#[tokio::test]
async fn postgres_raw_pages_keep_their_cursor() {
    let db = PgDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    raw_pages_keep_their_cursor(&postgres(&db, dir.path()).await).await;
}

#[tokio::test]
async fn sqlite_gateway_hours_sum_the_rollups() {
    let dir = tempfile::tempdir().unwrap();
    gateway_hours_sum_the_rollups(&sqlite(dir.path()).await).await;
}

#[tokio::test]
async fn postgres_gateway_hours_sum_the_rollups() {
    let db = PgDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    gateway_hours_sum_the_rollups(&postgres(&db, dir.path()).await).await;
}

#[test]
fn merging_sums_rows_of_one_key_saturating() {
    let rows = merge_usage_rows([
        row(Grain::Day, 0, "", u64::MAX, i64::MAX),
        row(Grain::Day, 0, "", 5, 5),
        row(Grain::Hour, 0, "", 1, -3),
    ]);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].grain, Grain::Hour);
    assert_eq!((rows[1].tokens_in, rows[1].cost_nanos), (u64::MAX, i64::MAX));
}

#[test]
fn raw_cursor_round_trips() {
    let cursor = RawCursor { fetched_at_us: 1_733_000_000_000_000, id: 42 };
    assert_eq!(RawCursor::decode(&cursor.encode()), Some(cursor));
    assert_eq!(RawCursor::decode("nope"), None);
}

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

//! Migrations, idempotent batch insert, rollups, retention, on both backends.

use jiff::{SignedDuration, Timestamp};
use sqlx::Row;
use tollgate_store::{Pool, Store, StoreKind};

use crate::common::{PgDb, count, pg_store, record, sqlite_store, ts};

async fn idempotent_insert(store: &Store) {
    let at = ts("2026-05-01T10:15:00Z");
    let first: Vec<_> = (0..10).map(|n| record(n, at)).collect();
    assert_eq!(store.insert_logs(&first).await.unwrap(), 10);
    // The same batch retried, plus 5 new rows: only the new ones count.
    let mut retry = first.clone();
    retry.extend((10..15).map(|n| record(n, at)));
    assert_eq!(store.insert_logs(&retry).await.unwrap(), 5);
    assert_eq!(store.insert_logs(&first).await.unwrap(), 0);
    assert_eq!(count(store, "SELECT count(*) FROM request_logs").await, 15);
    assert_eq!(count(store, "SELECT CAST(sum(requests) AS BIGINT) FROM spend_rollup_hourly").await, 15);
}

#[tokio::test]
async fn postgres_migrations_apply_twice() {
    let db = PgDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let store = pg_store(&db, dir.path()).await;
    store.migrate().await.unwrap();
    assert_eq!(store.kind(), StoreKind::Postgres);
    assert_eq!(store.status().kind, "postgres");
    assert_eq!(count(&store, "SELECT count(*) FROM spend_buckets").await, 0);
}

#[tokio::test]
async fn sqlite_migrations_apply_twice() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(dir.path()).await;
    store.migrate().await.unwrap();
    assert_eq!(store.kind(), StoreKind::Sqlite);
    assert_eq!(count(&store, "SELECT count(*) FROM spend_buckets").await, 0);
    let Pool::Sqlite(pool) = store.pool() else { panic!("sqlite") };
    let mode: String = sqlx::query("PRAGMA journal_mode").fetch_one(pool).await.unwrap().get(0);
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn postgres_batch_insert_is_idempotent() {
    let db = PgDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    idempotent_insert(&pg_store(&db, dir.path()).await).await;
}

#[tokio::test]
async fn sqlite_batch_insert_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    idempotent_insert(&sqlite_store(dir.path()).await).await;
}

/// Sums of the raw rows and of the rollups, per (hour, provider, model, gateway) and per (key, value).
async fn rollups_match_rows(store: &Store) {
    let base = ts("2026-05-01T10:00:00Z");
    let records: Vec<_> = (0..240).map(|n| record(n, base + SignedDuration::from_secs(n as i64 * 60))).collect();
    for chunk in records.chunks(70) {
        store.insert_logs(chunk).await.unwrap();
    }
    store.insert_logs(&records[..50]).await.unwrap();
    let hour_of = |t: Timestamp| t.as_second().div_euclid(3600);
    let mut expected = std::collections::BTreeMap::<(i64, String, String, String), [i64; 7]>::new();
    let mut by_user = std::collections::BTreeMap::<(String, String), [i64; 2]>::new();
    for r in &records {
        let e = expected
            .entry((hour_of(r.created_at), r.provider.clone(), r.model.clone(), r.gateway.clone().unwrap_or_default()))
            .or_default();
        let add =
            [1, r.tokens_in, r.tokens_out, r.tokens_cached, r.tokens_reasoning, r.cost_nanos, u64::from(!r.success)];
        for (slot, v) in e.iter_mut().zip(add) {
            *slot += v as i64;
        }
        let user = r.metadata["user_id"].as_str().unwrap().to_owned();
        let u = by_user.entry(("user_id".into(), user)).or_default();
        u[0] += 1;
        u[1] += r.cost_nanos as i64;
        let team = r.metadata["team"].to_string();
        let t = by_user.entry(("team".into(), team)).or_default();
        t[0] += 1;
        t[1] += r.cost_nanos as i64;
    }
    let (hourly, meta): (Vec<_>, Vec<_>) = match store.pool() {
        Pool::Postgres(pool) => {
            let h = sqlx::query(
                "SELECT (extract(epoch FROM hour) / 3600)::int8, provider, model, gateway, requests, tokens_in,
                     tokens_out, tokens_cached, tokens_reasoning, cost_nanos, errors FROM spend_rollup_hourly",
            )
            .fetch_all(pool)
            .await
            .unwrap()
            .iter()
            .map(|r| {
                (
                    (r.get::<i64, _>(0), r.get(1), r.get(2), r.get(3)),
                    [r.get(4), r.get(5), r.get(6), r.get(7), r.get(8), r.get(9), r.get(10)],
                )
            })
            .collect();
            let m = sqlx::query(
                "SELECT meta_key, meta_value, sum(requests)::int8, sum(cost_nanos)::int8
                 FROM spend_rollup_metadata_hourly GROUP BY 1, 2",
            )
            .fetch_all(pool)
            .await
            .unwrap()
            .iter()
            .map(|r| ((r.get(0), r.get(1)), [r.get(2), r.get(3)]))
            .collect();
            (h, m)
        }
        Pool::Sqlite(pool) => {
            let h = sqlx::query(
                "SELECT hour / 3600000000, provider, model, gateway, requests, tokens_in, tokens_out, tokens_cached,
                     tokens_reasoning, cost_nanos, errors FROM spend_rollup_hourly",
            )
            .fetch_all(pool)
            .await
            .unwrap()
            .iter()
            .map(|r| {
                (
                    (r.get::<i64, _>(0), r.get(1), r.get(2), r.get(3)),
                    [r.get(4), r.get(5), r.get(6), r.get(7), r.get(8), r.get(9), r.get(10)],
                )
            })
            .collect();
            let m = sqlx::query(
                "SELECT meta_key, meta_value, sum(requests), sum(cost_nanos)
                 FROM spend_rollup_metadata_hourly GROUP BY 1, 2",
            )
            .fetch_all(pool)
            .await
            .unwrap()
            .iter()
            .map(|r| ((r.get(0), r.get(1)), [r.get(2), r.get(3)]))
            .collect();
            (h, m)
        }
    };
    assert_eq!(hourly.into_iter().collect::<std::collections::BTreeMap<_, _>>(), expected);
    // `trace` is not a rollup key: only user_id and team appear.
    assert_eq!(meta.into_iter().collect::<std::collections::BTreeMap<_, _>>(), by_user);
}

#[tokio::test]
async fn postgres_rollups_equal_the_sum_of_the_rows() {
    let db = PgDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    rollups_match_rows(&pg_store(&db, dir.path()).await).await;
}

#[tokio::test]
async fn sqlite_rollups_equal_the_sum_of_the_rows() {
    let dir = tempfile::tempdir().unwrap();
    rollups_match_rows(&sqlite_store(dir.path()).await).await;
}

async fn retention(store: &Store) {
    let old = ts("2026-01-01T00:00:00Z");
    let new = ts("2026-05-01T00:00:00Z");
    let mut records: Vec<_> = (0..25).map(|n| record(n, old)).collect();
    records.extend((0..7).map(|n| record(n, new)));
    store.insert_logs(&records).await.unwrap();
    let report = store.delete_older_than_in_batches(ts("2026-03-01T00:00:00Z"), 10).await.unwrap();
    assert_eq!(report.deleted, 25);
    assert_eq!(report.statements, 3, "10 + 10 + 5");
    assert_eq!(count(store, "SELECT count(*) FROM request_logs").await, 7);
    // Rollups are kept.
    assert_eq!(count(store, "SELECT CAST(sum(requests) AS BIGINT) FROM spend_rollup_hourly").await, 32);
    let again = store.delete_older_than(ts("2026-03-01T00:00:00Z")).await.unwrap();
    assert_eq!((again.deleted, again.statements), (0, 1));
}

#[tokio::test]
async fn postgres_retention_deletes_only_old_rows_in_batches() {
    let db = PgDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    retention(&pg_store(&db, dir.path()).await).await;
}

#[tokio::test]
async fn sqlite_retention_deletes_only_old_rows_in_batches() {
    let dir = tempfile::tempdir().unwrap();
    retention(&sqlite_store(dir.path()).await).await;
}

#[tokio::test]
async fn postgres_stores_every_field() {
    let db = PgDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let store = pg_store(&db, dir.path()).await;
    let mut r = record(3, ts("2026-05-01T10:15:00.123456Z"));
    r.error = Some("bad\0byte".into());
    r.request_body = Some("{\"messages\":[]}".into());
    r.metadata.insert("nul".into(), serde_json::Value::String("a\0b".into()));
    store.insert_logs(std::slice::from_ref(&r)).await.unwrap();
    let Pool::Postgres(pool) = store.pool() else { panic!("postgres") };
    let row = sqlx::query(
        "SELECT created_at = '2026-05-01T10:15:00.123456Z'::timestamptz, provider, tokens_in, cost_nanos,
             cost_source, metadata->>'user_id', error, request_body, ttfb_ms, gateway IS NULL
         FROM request_logs WHERE id = $1",
    )
    .bind(&r.id)
    .fetch_one(pool)
    .await
    .unwrap();
    assert!(row.get::<bool, _>(0));
    assert_eq!(row.get::<String, _>(1), "anthropic");
    assert_eq!(row.get::<i64, _>(2), 103);
    assert_eq!(row.get::<i64, _>(3), 3_007);
    assert_eq!(row.get::<String, _>(4), "catalog");
    assert_eq!(row.get::<String, _>(5), "u0");
    assert_eq!(row.get::<String, _>(6), "bad\u{FFFD}byte");
    assert_eq!(row.get::<String, _>(7), "{\"messages\":[]}");
    assert_eq!(row.get::<i64, _>(8), 8);
    assert!(row.get::<bool, _>(9));
}

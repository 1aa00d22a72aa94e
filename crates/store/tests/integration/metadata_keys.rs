//! Adding a metadata key to the rollups: its history is counted, each row exactly once, while a writer keeps
//! inserting; on both backends.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use jiff::{SignedDuration, Timestamp};
use serde_json::json;
use tokio::sync::watch;
use tollgate_store::{GroupBy, LogRecord, QueryError, Store};

use crate::common::{PgDb, pg_store, record, sqlite_store, ts};

/// `record(n)` with a `region` metadata entry (r0..r3), at `at`.
fn regional(n: u64, at: Timestamp) -> LogRecord {
    let mut r = record(n, at);
    r.metadata.insert("region".into(), json!(format!("r{}", n % 4)));
    r
}

/// region → (requests, cost) from the raw records.
fn expected(records: &[LogRecord]) -> BTreeMap<String, (u64, u64)> {
    let mut out = BTreeMap::new();
    for r in records {
        let e: &mut (u64, u64) = out.entry(r.metadata["region"].as_str().unwrap().to_owned()).or_default();
        e.0 += 1;
        e.1 += r.cost_nanos;
    }
    out
}

/// region → (requests, cost) from `/spend` grouped by `group_by` (`metadata.region` first).
async fn by_region(store: &Store, group_by: &[GroupBy]) -> BTreeMap<String, (u64, u64)> {
    let rows = store.spend(ts("2026-04-01T00:00:00Z"), ts("2026-06-01T00:00:00Z"), group_by).await.unwrap();
    let mut out = BTreeMap::new();
    for row in rows {
        let e: &mut (u64, u64) = out.entry(row.values[0].clone().unwrap()).or_default();
        e.0 += row.requests;
        e.1 += row.cost_nanos;
    }
    out
}

async fn added_key_counts_every_row_once(store: Store) {
    let base = ts("2026-05-01T22:10:00Z");
    let at = move |n: u64| base + SignedDuration::from_mins(n as i64 * 3);
    // History: 300 rows over 15 hours, before anyone rolls `region` up.
    let mut records: Vec<LogRecord> = (0..300).map(|n| regional(n, at(n))).collect();
    for chunk in records.chunks(60) {
        store.insert_logs(chunk).await.unwrap();
    }
    let region = [GroupBy::Metadata("region".into())];
    let error = store.spend(ts("2026-04-01T00:00:00Z"), ts("2026-06-01T00:00:00Z"), &region).await.unwrap_err();
    assert!(matches!(&error, QueryError::NotRolledUp { key, .. } if key == "region"), "{error:?}");

    // A writer keeps inserting batches while the key is added: it starts before, and stops only after.
    let stop = Arc::new(AtomicBool::new(false));
    let (batches_tx, mut batches) = watch::channel(0_u64);
    let writer = tokio::spawn({
        let (store, stop) = (store.clone(), Arc::clone(&stop));
        async move {
            let mut written = Vec::new();
            let mut n = 300;
            while !stop.load(Ordering::Relaxed) || written.len() < 600 {
                let batch: Vec<LogRecord> = (n..n + 20).map(|i| regional(i, at(i % 400))).collect();
                store.insert_logs(&batch).await.unwrap();
                written.extend(batch);
                n += 20;
                batches_tx.send_replace(n);
            }
            written
        }
    });
    batches.wait_for(|n| *n >= 400).await.unwrap();
    let added = store.add_rollup_metadata_keys(&BTreeSet::from(["region".to_owned(), "team".to_owned()])).await;
    assert_eq!(added.unwrap(), ["region"], "team was rolled up already");
    stop.store(true, Ordering::Relaxed);
    records.extend(writer.await.unwrap());
    assert!(records.len() >= 900);

    let want = expected(&records);
    assert_eq!(by_region(&store, &region).await, want, "history and new rows, each once");
    assert_eq!(by_region(&store, &[GroupBy::Metadata("region".into()), GroupBy::Day]).await, want, "daily rollup");
    assert_eq!(by_region(&store, &[GroupBy::Metadata("region".into()), GroupBy::Hour]).await, want, "hourly rollup");
    assert_eq!(store.rollup_metadata_keys().await.unwrap(), ["team", "user_id", "region"], "oldest first");

    // Adding it again changes nothing; a rebuild from the log agrees with the incremental sums.
    assert!(store.add_rollup_metadata_keys(&BTreeSet::from(["region".to_owned()])).await.unwrap().is_empty());
    store.rebuild_rollups().await.unwrap();
    assert_eq!(by_region(&store, &region).await, want);
    // Later rows count under the key as any other.
    let late: Vec<LogRecord> = (5000..5010).map(|n| regional(n, at(10))).collect();
    store.insert_logs(&late).await.unwrap();
    records.extend(late);
    assert_eq!(by_region(&store, &region).await, expected(&records));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_added_key_counts_every_row_once() {
    let db = PgDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    added_key_counts_every_row_once(pg_store(&db, dir.path()).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_added_key_counts_every_row_once() {
    let dir = tempfile::tempdir().unwrap();
    added_key_counts_every_row_once(sqlite_store(dir.path()).await).await;
}

/// Keys rolled up by one store (one replica) are rolled up by every store on the database, whatever its options.
#[tokio::test]
async fn postgres_keys_are_shared_by_every_replica() {
    let db = PgDb::create().await;
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = pg_store(&db, a_dir.path()).await;
    let b = pg_store(&db, b_dir.path()).await;
    a.add_rollup_metadata_keys(&BTreeSet::from(["region".to_owned()])).await.unwrap();
    let records: Vec<LogRecord> = (0..40).map(|n| regional(n, ts("2026-05-02T10:00:00Z"))).collect();
    b.insert_logs(&records).await.unwrap();
    let region = [GroupBy::Metadata("region".into())];
    assert_eq!(by_region(&a, &region).await, expected(&records));
    assert_eq!(by_region(&b, &region).await, expected(&records));
}

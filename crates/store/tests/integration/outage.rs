//! Database down → spill → database back → every record and delta arrives exactly once; queue full → spill.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tollgate_store::{Enqueued, LogWriter, SpendSync, SpendSyncOptions, Store, WriterOptions};

use crate::common::{PgDb, count, pg_store, record, sqlite_store, ts};

async fn wait_for(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn writer(store: &Store, capacity: usize) -> LogWriter {
    LogWriter::spawn(
        store,
        WriterOptions {
            capacity,
            max_queue_bytes: WriterOptions::default().max_queue_bytes,
            batch_size: 100,
            max_delay: Duration::from_millis(10),
            max_backoff: Duration::from_millis(200),
        },
    )
}

#[tokio::test]
async fn postgres_outage_spills_and_replays_exactly_once() {
    let db = PgDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let store = pg_store(&db, dir.path()).await;
    let at = ts("2026-05-01T10:00:00Z");
    let log = writer(&store, 1_000);
    let engine = Arc::new(tollgate_limits::SpendEngine::new(
        vec![
            tollgate_limits::SpendRuleSpec {
                id: "all".into(),
                budget_usd: 1000.0,
                window: "1d".into(),
                window_kind: tollgate_limits::WindowKind::Fixed,
                timezone: "UTC".into(),
                dimensions: vec![],
                action: tollgate_limits::Action::Block,
                reserve: tollgate_limits::Reserve::WorstCase,
            }
            .validate()
            .unwrap(),
        ],
        Arc::new(tollgate_limits::SystemClock),
    ));
    let spend_sync = SpendSync::new(&store, Arc::clone(&engine), SpendSyncOptions::default());
    spend_sync.load().await.unwrap();
    let settle = |nanos: u64| {
        engine.admit(&tollgate_limits::RequestDims::new("openai", "m"), Some(nanos)).unwrap().settle(nanos);
    };

    // Up: 50 rows land.
    for n in 0..50 {
        assert_eq!(log.try_send(record(n, at)), Enqueued::Queued);
    }
    settle(1_000);
    spend_sync.flush_now().await.unwrap();
    wait_for("first rows", async || count(&store, "SELECT count(*) FROM request_logs").await == 50).await;

    // Down: rows and spend go to the spill file.
    db.set_up(false).await;
    for n in 50..150 {
        assert_eq!(log.try_send(record(n, at)), Enqueued::Queued);
    }
    wait_for("rows to spill", async || store.status().pending_records == 100 && !store.status().ok).await;
    settle(2_000);
    assert!(spend_sync.flush_now().await.is_err());
    settle(4_000);
    assert!(spend_sync.flush_now().await.is_err());
    assert_eq!(spend_sync.pending_batches(), 0, "flush_now spills what it cannot write");
    assert_eq!(store.status().pending_records, 102);

    // Back: close drains and replays; a second replay finds nothing.
    db.set_up(true).await;
    log.close().await.unwrap();
    assert_eq!(store.status().pending_records, 0);
    assert!(store.status().ok);
    assert!(store.status().last_flush_at.is_some());
    assert_eq!(store.replay_spill().await.unwrap(), 0);
    assert_eq!(count(&store, "SELECT count(*) FROM request_logs").await, 150);
    assert_eq!(count(&store, "SELECT count(DISTINCT id) FROM request_logs").await, 150);
    assert_eq!(count(&store, "SELECT CAST(sum(requests) AS BIGINT) FROM spend_rollup_hourly").await, 150);
    assert_eq!(count(&store, "SELECT CAST(sum(spent_nanos) AS BIGINT) FROM spend_buckets").await, 7_000);
    spend_sync.flush_now().await.unwrap();
    assert_eq!(count(&store, "SELECT CAST(sum(spent_nanos) AS BIGINT) FROM spend_buckets").await, 7_000);
}

/// The writer task cannot run while this single-threaded test loops without yielding: the queue fills and the
/// overflow goes to the spill file, then `close` writes all of it.
async fn queue_full(store: &Store) {
    let at = ts("2026-05-01T10:00:00Z");
    let log = writer(store, 4);
    let outcomes: Vec<_> = (0..200).map(|n| log.try_send(record(n, at))).collect();
    assert_eq!(outcomes.iter().filter(|o| **o == Enqueued::Queued).count(), 4);
    assert_eq!(outcomes.iter().filter(|o| **o == Enqueued::Spilled).count(), 196);
    assert_eq!(store.status().pending_records, 200);
    log.close().await.unwrap();
    assert_eq!(store.status().pending_records, 0);
    assert_eq!(log.dropped(), 0);
    assert_eq!(count(store, "SELECT count(*) FROM request_logs").await, 200);
    assert_eq!(count(store, "SELECT CAST(sum(requests) AS BIGINT) FROM spend_rollup_hourly").await, 200);
    // After close, records still go somewhere: the spill, for the next start.
    assert_eq!(log.try_send(record(999, at)), Enqueued::Spilled);
    assert_eq!(store.replay_spill().await.unwrap(), 1);
    assert_eq!(count(store, "SELECT count(*) FROM request_logs").await, 201);
}

#[tokio::test]
async fn postgres_queue_full_spills_and_drops_nothing() {
    let db = PgDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    queue_full(&pg_store(&db, dir.path()).await).await;
}

#[tokio::test]
async fn sqlite_queue_full_spills_and_drops_nothing() {
    let dir = tempfile::tempdir().unwrap();
    queue_full(&sqlite_store(dir.path()).await).await;
}

#[tokio::test]
async fn spill_left_by_a_previous_run_is_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let at = ts("2026-05-01T10:00:00Z");
    {
        let store = sqlite_store(dir.path()).await;
        let log = writer(&store, 1);
        log.close().await.unwrap();
        for n in 0..5 {
            assert_eq!(log.try_send(record(n, at)), Enqueued::Spilled);
        }
        store.close().await;
    }
    let store = sqlite_store(dir.path()).await;
    assert_eq!(store.status().pending_records, 5);
    assert_eq!(store.replay_spill().await.unwrap(), 5);
    assert_eq!(count(&store, "SELECT count(*) FROM request_logs").await, 5);
}

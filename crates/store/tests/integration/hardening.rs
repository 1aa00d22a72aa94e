//! One bad value never poisons the store: sums saturate, long strings are cut, refused records are quarantined
//! while the rest are written, unreadable rows are skipped at load, spend-only rows still count, and the log queue
//! is bounded in bytes. Each scenario runs on Postgres and SQLite.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tollgate_limits::{
    Action, DimensionModeSpec, DimensionSpec, RequestDims, Reserve, SpendEngine, SpendRuleSpec, SystemClock, WindowKind,
};
use tollgate_store::{
    Enqueued, GroupBy, LogFilter, LogRecord, LogWriter, Pool, SpendSource, SpendSync, SpendSyncOptions, Store,
    WriterOptions,
};

use crate::common::{PgDb, count, pg_store, record, sqlite_store, ts};

/// Runs `$body(store)` as one Postgres and one SQLite test.
macro_rules! both {
    ($pg:ident, $lite:ident, $body:ident) => {
        #[tokio::test]
        async fn $pg() {
            let db = PgDb::create().await;
            let dir = tempfile::tempdir().unwrap();
            $body(&pg_store(&db, dir.path()).await).await;
        }

        #[tokio::test]
        async fn $lite() {
            let dir = tempfile::tempdir().unwrap();
            $body(&sqlite_store(dir.path()).await).await;
        }
    };
}

async fn exec(store: &Store, sql: &str) {
    match store.pool() {
        Pool::Postgres(pool) => sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned())).execute(pool).await.map(drop),
        Pool::Sqlite(pool) => sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned())).execute(pool).await.map(drop),
    }
    .unwrap();
}

/// Makes the database refuse (as a constraint violation, a data error) any row of `table` whose `column` is
/// `'poison'`: a stand-in for any value the database cannot store.
async fn refuse_poison(store: &Store, table: &str, column: &str) {
    let sql = match store.pool() {
        Pool::Postgres(_) => format!(
            "CREATE FUNCTION refuse_poison_{table}() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 IF NEW.{column} = 'poison' THEN
                     RAISE EXCEPTION 'poison refused' USING ERRCODE = 'check_violation';
                 END IF;
                 RETURN NEW;
             END $$;
             CREATE TRIGGER refuse_poison BEFORE INSERT ON {table}
                 FOR EACH ROW EXECUTE FUNCTION refuse_poison_{table}();"
        ),
        Pool::Sqlite(_) => format!(
            "CREATE TRIGGER refuse_poison_{table} BEFORE INSERT ON {table} WHEN NEW.{column} = 'poison'
             BEGIN SELECT RAISE(ABORT, 'poison refused'); END;"
        ),
    };
    exec(store, &sql).await;
}

fn rule(id: &str, dimension: &str) -> SpendRuleSpec {
    SpendRuleSpec {
        id: id.into(),
        budget_usd: 100.0,
        window: "1d".into(),
        window_kind: WindowKind::Fixed,
        timezone: "UTC".into(),
        dimensions: vec![DimensionSpec { key: dimension.into(), mode: DimensionModeSpec::Split, values: None }],
        // Monitor: a bucket far over its budget still takes the next settlement.
        action: Action::Monitor,
        reserve: Reserve::WorstCase,
    }
}

fn engine() -> Arc<SpendEngine> {
    Arc::new(SpendEngine::new(vec![rule("per_model", "model").validate().unwrap()], Arc::new(SystemClock)))
}

/// Settles `nanos` for `model` without a reservation (worst case unknown), as a request with a custom cost does.
fn spend(engine: &SpendEngine, model: &str, nanos: u64) {
    engine.admit(&RequestDims::new("openai", model), None).unwrap().settle(nanos);
}

fn spent(engine: &SpendEngine, model: &str) -> u64 {
    let key = format!("model={model}");
    engine.usage("per_model").unwrap().into_iter().find(|u| *u.bucket == *key).map_or(0, |u| u.spent_nanos)
}

/// A delta above `i64::MAX` is clamped, two large deltas saturate the stored sum at `i64::MAX` (on SQLite it stays
/// an INTEGER), the queue never sticks, and a restart loads the bucket.
async fn s1_spend(store: &Store) {
    let a = engine();
    let sync = SpendSync::new(store, Arc::clone(&a), SpendSyncOptions::default());
    sync.load().await.unwrap();
    spend(&a, "gpt", u64::MAX);
    sync.flush_now().await.unwrap();
    assert_eq!(sync.pending_batches(), 0, "the clamped batch is written, not retried for ever");
    spend(&a, "gpt", 5_000_000_000_000_000_000);
    sync.flush_now().await.unwrap();
    spend(&a, "other", 5_000_000_000_000_000_000);
    sync.flush_now().await.unwrap();
    spend(&a, "other", 5_000_000_000_000_000_000);
    sync.flush_now().await.unwrap();
    assert_eq!(sync.pending_batches(), 0);
    assert_eq!(count(store, "SELECT max(spent_nanos) FROM spend_buckets").await, i64::MAX);
    if let Pool::Sqlite(_) = store.pool() {
        assert_eq!(
            count(store, "SELECT count(*) FROM spend_buckets WHERE typeof(spent_nanos) <> 'integer'").await,
            0,
            "the sum never turns into a REAL"
        );
    }
    let b = engine();
    SpendSync::new(store, Arc::clone(&b), SpendSyncOptions::default()).load().await.unwrap();
    assert_eq!(spent(&b, "gpt"), i64::MAX as u64);
    assert_eq!(spent(&b, "other"), i64::MAX as u64);
    assert_eq!(store.status().unreadable_rows, 0);
}
both!(s1_postgres_spend_deltas_saturate_and_reload, s1_sqlite_spend_deltas_saturate_and_reload, s1_spend);

/// Log rows with numbers above `i64::MAX` are stored clamped (not dropped), and the rollups, `/api/stats` and
/// `/spend` saturate instead of failing.
async fn s1_logs(store: &Store) {
    let mut rows = Vec::new();
    for (n, at) in [(0, "2026-05-01T10:00:00Z"), (2, "2026-05-01T10:30:00Z"), (4, "2026-05-01T12:00:00Z")] {
        let mut r = record(n, ts(at));
        r.cost_nanos = u64::MAX;
        r.tokens_in = u64::MAX;
        r.tokens_out = u64::MAX;
        r.duration_ms = u64::MAX;
        r.ttfb_ms = Some(u64::MAX);
        r.cached = true;
        r.saved_nanos = u64::MAX;
        r.metadata.insert("app".into(), "a".into());
        rows.push(r);
    }
    assert_eq!(store.insert_logs(&rows).await.unwrap(), 3, "every row is stored");
    assert_eq!(count(store, "SELECT max(cost_nanos) FROM request_logs").await, i64::MAX);
    assert_eq!(count(store, "SELECT max(cost_nanos) FROM spend_rollup_hourly").await, i64::MAX);
    let totals = store.stats(None, None).await.unwrap();
    assert_eq!(totals.cost_nanos, i64::MAX as u64);
    assert_eq!(totals.tokens_in, i64::MAX as u64);
    assert_eq!(totals.requests, 3);
    let rows = store.spend(ts("2026-05-01T00:00:00Z"), ts("2026-05-02T00:00:00Z"), &[GroupBy::Provider]).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].cost_nanos, i64::MAX as u64);
    assert_eq!(rows[0].requests, 3);
    assert_eq!((rows[0].cached_requests, rows[0].saved_nanos), (3, i64::MAX as u64));
    let (from, to) = (ts("2026-05-01T00:00:00Z"), ts("2026-05-02T00:00:00Z"));
    let rows = store.spend(from, to, &[GroupBy::Metadata("team".into())]).await.unwrap();
    assert_eq!(rows[0].cost_nanos, i64::MAX as u64);
    assert_eq!(rows[0].saved_nanos, i64::MAX as u64);
    // `app` is not rolled up: the log scan adds up the same way.
    let scan = store.spend_report(from, to, &[GroupBy::Metadata("app".into())], 100).await.unwrap();
    assert_eq!(scan.source, tollgate_store::SpendSource::LogScan);
    assert_eq!(scan.rows.len(), 1);
    assert_eq!((scan.rows[0].cached_requests, scan.rows[0].saved_nanos), (3, i64::MAX as u64));
    store.rebuild_rollups().await.unwrap();
    assert_eq!(store.stats(None, None).await.unwrap().cost_nanos, i64::MAX as u64);
    assert_eq!(store.spend(from, to, &[]).await.unwrap()[0].saved_nanos, i64::MAX as u64);
}
both!(s1_postgres_log_numbers_clamp_and_sums_saturate, s1_sqlite_log_numbers_clamp_and_sums_saturate, s1_logs);

/// SQLite: a REAL written into `spend_buckets.spent_nanos` (what older versions left after an overflow) is
/// skipped at load, counted, and the other rows load; the next delta writes an integer back.
#[tokio::test]
async fn s1_sqlite_real_in_a_bucket_is_skipped_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(dir.path()).await;
    let a = engine();
    let sync = SpendSync::new(&store, Arc::clone(&a), SpendSyncOptions::default());
    sync.load().await.unwrap();
    spend(&a, "gpt", 7);
    spend(&a, "bad", 1);
    sync.flush_now().await.unwrap();
    exec(&store, "UPDATE spend_buckets SET spent_nanos = 1.0e19 WHERE bucket_key = 'model=bad'").await;
    assert_eq!(count(&store, "SELECT count(*) FROM spend_buckets WHERE typeof(spent_nanos) = 'real'").await, 1);

    let b = engine();
    let sync_b = SpendSync::new(&store, Arc::clone(&b), SpendSyncOptions::default());
    assert_eq!(sync_b.load().await.unwrap(), 1, "the readable row loads");
    assert_eq!(spent(&b, "gpt"), 7);
    assert_eq!(store.status().unreadable_rows, 1);

    spend(&b, "bad", 1);
    sync_b.flush_now().await.unwrap();
    assert_eq!(count(&store, "SELECT count(*) FROM spend_buckets WHERE typeof(spent_nanos) = 'real'").await, 0);
    let c = engine();
    SpendSync::new(&store, Arc::clone(&c), SpendSyncOptions::default()).load().await.unwrap();
    assert_eq!(spent(&c, "bad"), i64::MAX as u64, "the REAL above i64::MAX saturated into an integer");
}

/// A 3,000-character gateway (over the Postgres b-tree row limit in the rollup key) is cut to its bound: all six
/// records of the batch are stored, and later batches too.
async fn s3_long_gateway(store: &Store) {
    let at = ts("2026-05-01T10:00:00Z");
    let mut batch: Vec<LogRecord> = (1..=5).map(|n| record(n, at)).collect();
    let mut poison = record(6, at);
    poison.gateway = Some("g".repeat(3_000));
    poison.model = "é".repeat(2_000);
    poison.path = format!("/v1/a/{}", "p".repeat(65_000));
    poison.error = Some("e".repeat(10_000));
    batch.insert(2, poison);
    assert_eq!(store.insert_logs(&batch).await.unwrap(), 6);
    assert_eq!(count(store, "SELECT CAST(max(length(gateway)) AS BIGINT) FROM request_logs").await, 256);
    assert_eq!(count(store, "SELECT CAST(max(length(path)) AS BIGINT) FROM request_logs").await, 2_048);
    assert_eq!(count(store, "SELECT CAST(max(length(error)) AS BIGINT) FROM request_logs").await, 1_024);
    assert_eq!(count(store, "SELECT count(*) FROM spend_rollup_hourly WHERE length(gateway) = 256").await, 1);
    assert_eq!(store.status().quarantined_records, 0);
    let later: Vec<LogRecord> = (7..=9).map(|n| record(n, at)).collect();
    assert_eq!(store.insert_logs(&later).await.unwrap(), 3);
    assert!(store.status().ok);
}
both!(s3_postgres_long_gateway_is_cut_and_stored, s3_sqlite_long_gateway_is_cut_and_stored, s3_long_gateway);

/// A record the database refuses is quarantined with its error; the five others of its batch are written with
/// their rollups, and later batches too.
async fn s3_quarantine(store: &Store) {
    refuse_poison(store, "request_logs", "model").await;
    let at = ts("2026-05-01T10:00:00Z");
    let mut batch: Vec<LogRecord> = (1..=5).map(|n| record(n, at)).collect();
    let mut poison = record(6, at);
    poison.model = "poison".into();
    batch.insert(3, poison.clone());
    assert_eq!(store.insert_logs(&batch).await.unwrap(), 5);
    assert_eq!(count(store, "SELECT count(*) FROM request_logs").await, 5);
    assert_eq!(count(store, "SELECT CAST(sum(requests) AS BIGINT) FROM spend_rollup_hourly").await, 5);
    assert_eq!(count(store, "SELECT count(*) FROM quarantine WHERE kind = 'log'").await, 1);
    let stored: String = match store.pool() {
        Pool::Postgres(pool) => sqlx::query_scalar("SELECT record FROM quarantine").fetch_one(pool).await.unwrap(),
        Pool::Sqlite(pool) => sqlx::query_scalar("SELECT record FROM quarantine").fetch_one(pool).await.unwrap(),
    };
    let back: LogRecord = serde_json::from_str(&stored).unwrap();
    assert_eq!(back.id, poison.id, "the record is kept whole");
    assert_eq!(store.status().quarantined_records, 1);
    let later: Vec<LogRecord> = (7..=9).map(|n| record(n, at)).collect();
    assert_eq!(store.insert_logs(&later).await.unwrap(), 3);
}
both!(
    s3_postgres_refused_record_is_quarantined_and_the_rest_written,
    s3_sqlite_refused_record_is_quarantined_and_the_rest_written,
    s3_quarantine
);

/// A spill file holding a record the database refuses: the replay quarantines it, writes the rest and removes the
/// file, so later spills are not blocked behind it.
async fn s3_replay(dir: &std::path::Path, open: impl AsyncFnOnce() -> Store) {
    let at = ts("2026-05-01T10:00:00Z");
    let mut records: Vec<LogRecord> = (1..=5).map(|n| record(n, at)).collect();
    let mut poison = record(6, at);
    poison.model = "poison".into();
    records.insert(1, poison);
    let mut lines = String::new();
    for r in &records {
        let mut line = serde_json::to_value(r).unwrap();
        line["kind"] = json!("log");
        lines.push_str(&line.to_string());
        lines.push('\n');
    }
    std::fs::write(dir.join("spill.jsonl.replay"), lines).unwrap();
    let store = open().await;
    refuse_poison(&store, "request_logs", "model").await;
    assert_eq!(store.status().pending_records, 6);
    assert_eq!(store.replay_spill().await.unwrap(), 6);
    assert_eq!(count(&store, "SELECT count(*) FROM request_logs").await, 5);
    assert_eq!(store.status().quarantined_records, 1);
    assert_eq!(store.status().pending_records, 0);
    assert!(!dir.join("spill.jsonl.replay").exists(), "the replayed file is gone");
}

#[tokio::test]
async fn s3_postgres_replay_quarantines_and_finishes() {
    let db = PgDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    s3_replay(dir.path(), async || pg_store(&db, dir.path()).await).await;
}

#[tokio::test]
async fn s3_sqlite_replay_quarantines_and_finishes() {
    let dir = tempfile::tempdir().unwrap();
    s3_replay(dir.path(), async || sqlite_store(dir.path()).await).await;
}

/// A spend delta the database refuses is quarantined; the other deltas of its batch land, nothing stays pending,
/// and later batches land as usual. (`model=poison` is the bucket key of model `poison` under the per-model rule.)
async fn s1_spend_delta_quarantine(store: &Store) {
    let sql = match store.pool() {
        Pool::Postgres(_) => {
            "CREATE FUNCTION refuse_key() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 IF NEW.bucket_key = 'model=poison' THEN
                     RAISE EXCEPTION 'poison refused' USING ERRCODE = 'check_violation';
                 END IF;
                 RETURN NEW;
             END $$;
             CREATE TRIGGER refuse_key BEFORE INSERT ON spend_buckets FOR EACH ROW EXECUTE FUNCTION refuse_key();"
        }
        Pool::Sqlite(_) => {
            "CREATE TRIGGER refuse_key BEFORE INSERT ON spend_buckets
             WHEN NEW.bucket_key = 'model=poison' BEGIN SELECT RAISE(ABORT, 'poison refused'); END;"
        }
    };
    exec(store, sql).await;
    let a = engine();
    let sync = SpendSync::new(store, Arc::clone(&a), SpendSyncOptions::default());
    sync.load().await.unwrap();
    spend(&a, "gpt", 10);
    spend(&a, "poison", 20);
    spend(&a, "other", 30);
    sync.flush_now().await.unwrap();
    assert_eq!(sync.pending_batches(), 0, "the refused delta never blocks the queue");
    assert_eq!(count(store, "SELECT count(*) FROM spend_buckets").await, 2);
    assert_eq!(count(store, "SELECT count(*) FROM quarantine WHERE kind = 'spend'").await, 1);
    assert_eq!(store.status().quarantined_records, 1);
    // The next batches land as usual.
    spend(&a, "gpt", 5);
    sync.flush_now().await.unwrap();
    let b = engine();
    SpendSync::new(store, Arc::clone(&b), SpendSyncOptions::default()).load().await.unwrap();
    assert_eq!(spent(&b, "gpt"), 15);
    assert_eq!(spent(&b, "other"), 30);
}
both!(
    s1_postgres_refused_spend_delta_is_quarantined,
    s1_sqlite_refused_spend_delta_is_quarantined,
    s1_spend_delta_quarantine
);

/// A `cf-aig-collect-log: false` record is stored as a spend-only row: absent from `/api/logs` (list and by id),
/// without bodies or event id, but counted in the stats, `/spend`, a rollup rebuild and a recompute's visit.
async fn s12_spend_only(store: &Store) {
    let at = ts("2026-05-01T10:00:00Z");
    let shown = record(1, at);
    let mut hidden = record(3, at);
    hidden.listed = false;
    hidden.request_body = Some("secret prompt".into());
    hidden.response_body = Some("secret answer".into());
    assert!(hidden.event_id.is_some());
    assert_eq!(store.insert_logs(&[shown.clone(), hidden.clone()]).await.unwrap(), 2);

    let (page, _) = store.logs(&LogFilter::default(), None, 50).await.unwrap();
    assert_eq!(page.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), [shown.id.as_str()]);
    assert!(store.log(&hidden.id).await.unwrap().is_none());
    assert!(store.log(&shown.id).await.unwrap().is_some());
    assert_eq!(
        count(store, "SELECT count(*) FROM request_logs WHERE request_body IS NOT NULL OR event_id IS NOT NULL").await,
        1,
        "the spend-only row keeps no body and no event id"
    );

    let expected = shown.cost_nanos + hidden.cost_nanos;
    assert_eq!(store.stats(None, None).await.unwrap().cost_nanos, expected);
    let (from, to) = (ts("2026-05-01T00:00:00Z"), ts("2026-05-02T00:00:00Z"));
    let spend = store.spend(from, to, &[]).await.unwrap();
    assert_eq!((spend[0].requests, spend[0].cost_nanos), (2, expected));
    let mut visited = Vec::new();
    store.recompute(&|_| None, &mut |r| visited.push(r.id.clone())).await.unwrap();
    assert!(visited.contains(&hidden.id), "a recompute rebuilds the buckets with the spend-only row");
    assert_eq!(store.stats(None, None).await.unwrap().cost_nanos, expected);
}
both!(
    s12_postgres_spend_only_row_counts_but_is_not_listed,
    s12_sqlite_spend_only_row_counts_but_is_not_listed,
    s12_spend_only
);

/// The writer's queue is bounded in bytes: records that would take it over the bound go to the spill file (as
/// when the queue is full), and all of them still reach the database.
#[tokio::test]
async fn s13_sqlite_log_queue_is_bounded_in_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(dir.path()).await;
    let writer = LogWriter::spawn(
        &store,
        WriterOptions {
            capacity: 1_000,
            max_queue_bytes: 20_000,
            batch_size: 100,
            max_delay: Duration::from_millis(10),
            max_backoff: Duration::from_millis(100),
        },
    );
    let at = ts("2026-05-01T10:00:00Z");
    let mut outcomes = Vec::new();
    // A current-thread runtime: the writer task cannot take records off between these sends.
    for n in 0..10 {
        let mut r = record(n, at);
        r.request_body = Some("x".repeat(8_000));
        outcomes.push(writer.try_send(r));
    }
    let queued = outcomes.iter().filter(|o| **o == Enqueued::Queued).count();
    let spilled = outcomes.iter().filter(|o| **o == Enqueued::Spilled).count();
    assert_eq!((queued, spilled), (2, 8), "{outcomes:?}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while count(&store, "SELECT count(*) FROM request_logs").await < 10 {
        assert!(Instant::now() < deadline, "the spilled records never arrived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    writer.close().await.unwrap();
    assert_eq!(store.status().pending_records, 0);
}

/// `/spend` grouped by a metadata key the rollups do not count is answered from the log rows that have it, with
/// the same sums the rollups would give; a scan cut at its bound says so.
async fn metadata_scan(store: &Store) {
    let mut records = Vec::new();
    for n in 0..40u64 {
        let at = ts("2026-05-01T00:00:00Z") + jiff::SignedDuration::from_mins(i64::try_from(n).unwrap() * 97);
        let mut r = record(n, at);
        if n % 5 != 0 {
            r.metadata.insert("app".into(), json!(format!("app{}", n % 3)));
        }
        records.push(r);
    }
    store.insert_logs(&records).await.unwrap();
    let (from, to) = (ts("2026-05-01T03:00:00Z"), ts("2026-05-03T00:00:00Z"));
    let report = store.spend_report(from, to, &[GroupBy::Metadata("app".into())], 1_000).await.unwrap();
    assert_eq!(report.source, SpendSource::LogScan);
    assert!(!report.truncated);
    let counted = |r: &&LogRecord| r.created_at >= from && r.created_at < to && r.metadata.contains_key("app");
    for app in ["app0", "app1", "app2"] {
        let of: Vec<&LogRecord> = records.iter().filter(counted).filter(|r| r.metadata["app"] == app).collect();
        let row = report.rows.iter().find(|row| row.values == [Some(app.to_owned())]).unwrap();
        assert_eq!(row.requests, of.len() as u64, "{app}");
        assert_eq!(row.cost_nanos, of.iter().map(|r| r.cost_nanos).sum::<u64>(), "{app}");
        assert_eq!(row.tokens_in, of.iter().map(|r| r.tokens_in).sum::<u64>(), "{app}");
    }
    assert_eq!(report.rows.len(), 3);

    // With provider and day too, the scan groups like the rollups.
    let group_by = [GroupBy::Provider, GroupBy::Metadata("app".into()), GroupBy::Day];
    let report = store.spend_report(from, to, &group_by, 1_000).await.unwrap();
    let total: u64 = report.rows.iter().map(|r| r.requests).sum();
    assert_eq!(total, records.iter().filter(counted).count() as u64);

    // A rolled-up key answers from the rollups, and must agree with a scan of the same rows.
    let report = store.spend_report(from, to, &[GroupBy::Metadata("user_id".into())], 1_000).await.unwrap();
    assert_eq!(report.source, SpendSource::Rollup);

    let cut = store.spend_report(from, to, &[GroupBy::Metadata("app".into())], 5).await.unwrap();
    assert!(cut.truncated);
    assert_eq!(cut.rows.iter().map(|r| r.requests).sum::<u64>(), 5);
}
both!(
    postgres_spend_by_a_key_not_rolled_up_scans_the_log,
    sqlite_spend_by_a_key_not_rolled_up_scans_the_log,
    metadata_scan
);

/// Postgres, with no trigger: a bucket key too large for the b-tree index (a model name of 16 KB of random
/// characters, which no compression brings under 2,704 bytes) is refused as a program limit; that delta is
/// quarantined and the others land.
#[tokio::test]
async fn s3_postgres_oversized_bucket_key_is_quarantined() {
    let db = PgDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let store = pg_store(&db, dir.path()).await;
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let huge: String = (0..16_384)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            char::from(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"[(state % 62) as usize])
        })
        .collect();
    let a = engine();
    let sync = SpendSync::new(&store, Arc::clone(&a), SpendSyncOptions::default());
    sync.load().await.unwrap();
    spend(&a, "gpt", 10);
    spend(&a, &huge, 20);
    sync.flush_now().await.unwrap();
    assert_eq!(sync.pending_batches(), 0);
    assert_eq!(count(&store, "SELECT count(*) FROM spend_buckets").await, 1);
    assert_eq!(store.status().quarantined_records, 1);
    let error: String = match store.pool() {
        Pool::Postgres(pool) => sqlx::query_scalar("SELECT error FROM quarantine").fetch_one(pool).await.unwrap(),
        Pool::Sqlite(_) => unreachable!(),
    };
    assert!(error.contains("index row"), "{error}");
}

//! Spend buckets: replicas converge, a restart keeps spend, rolling slots round-trip exactly.

use std::sync::Arc;

use tollgate_limits::{
    Action, DimensionModeSpec, DimensionSpec, Metadata, RequestDims, Reserve, SpendEngine, SpendRuleSpec, SystemClock,
    WindowKind,
};
use tollgate_store::{SpendSync, SpendSyncOptions, Store};

use crate::common::{PgDb, count, pg_store, sqlite_store};

const USD: u64 = 1_000_000_000;

fn rule(id: &str, window: &str, kind: WindowKind) -> SpendRuleSpec {
    SpendRuleSpec {
        id: id.into(),
        budget_usd: 100.0,
        window: window.into(),
        window_kind: kind,
        timezone: "UTC".into(),
        dimensions: vec![DimensionSpec {
            key: "metadata.user_id".into(),
            mode: DimensionModeSpec::Split,
            values: None,
        }],
        action: Action::Block,
        reserve: Reserve::WorstCase,
    }
}

fn engine() -> Arc<SpendEngine> {
    let rules = [rule("daily", "1d", WindowKind::Fixed), rule("rolling", "7m", WindowKind::Rolling)]
        .iter()
        .map(|s| s.validate().unwrap())
        .collect();
    Arc::new(SpendEngine::new(rules, Arc::new(SystemClock)))
}

fn spend(engine: &SpendEngine, user: &str, nanos: u64) {
    let metadata = Metadata::parse(&format!(r#"{{"user_id":"{user}"}}"#), 20).unwrap();
    engine.admit(&RequestDims::new("openai", "gpt-4o").with_metadata(&metadata), Some(nanos)).unwrap().settle(nanos);
}

/// Spent nano-dollars of `user`'s bucket under `rule`, as the engine sees it.
fn spent(engine: &SpendEngine, rule: &str, user: &str) -> u64 {
    let key = format!("metadata.user_id={user}");
    engine.usage(rule).unwrap().into_iter().find(|u| *u.bucket == *key).map_or(0, |u| u.spent_nanos)
}

fn sync(store: &Store, engine: &Arc<SpendEngine>) -> SpendSync {
    SpendSync::new(store, Arc::clone(engine), SpendSyncOptions::default())
}

async fn replicas_converge(store_a: &Store, store_b: &Store) {
    let (a, b) = (engine(), engine());
    let (sync_a, sync_b) = (sync(store_a, &a), sync(store_b, &b));
    sync_a.load().await.unwrap();
    sync_b.load().await.unwrap();
    spend(&a, "u1", USD);
    spend(&b, "u1", 2 * USD);
    spend(&b, "u2", 5 * USD);
    sync_a.flush_now().await.unwrap();
    sync_b.flush_now().await.unwrap();
    sync_a.flush_now().await.unwrap();
    for rule in ["daily", "rolling"] {
        assert_eq!(spent(&a, rule, "u1"), 3 * USD, "{rule}: a sees b's spend");
        assert_eq!(spent(&b, rule, "u1"), 3 * USD, "{rule}: b sees a's spend");
        assert_eq!(spent(&a, rule, "u2"), 5 * USD, "{rule}: a sees b's new bucket");
    }
    // Flushing again adds nothing.
    sync_a.flush_now().await.unwrap();
    sync_b.flush_now().await.unwrap();
    assert_eq!(spent(&a, "daily", "u1"), 3 * USD);
    assert_eq!(count(store_a, "SELECT CAST(sum(spent_nanos) AS BIGINT) FROM spend_buckets").await, 2 * 8 * USD as i64);

    // A restart: a new engine loads the totals before serving.
    let c = engine();
    sync(store_a, &c).load().await.unwrap();
    assert_eq!(spent(&c, "daily", "u1"), 3 * USD);
    assert_eq!(spent(&c, "rolling", "u1"), 3 * USD);
    assert_eq!(spent(&c, "daily", "u2"), 5 * USD);
}

#[tokio::test]
async fn postgres_replicas_converge_and_restart_keeps_spend() {
    let db = PgDb::create().await;
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let store_a = pg_store(&db, dir_a.path()).await;
    let store_b = pg_store(&db, dir_b.path()).await;
    replicas_converge(&store_a, &store_b).await;
}

#[tokio::test]
async fn sqlite_restart_keeps_spend() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(dir.path()).await;
    let a = engine();
    let sync_a = sync(&store, &a);
    sync_a.load().await.unwrap();
    spend(&a, "u1", 4 * USD);
    sync_a.flush_now().await.unwrap();
    sync_a.flush_now().await.unwrap();
    let b = engine();
    assert_eq!(sync(&store, &b).load().await.unwrap(), 2);
    assert_eq!(spent(&b, "daily", "u1"), 4 * USD);
    assert_eq!(spent(&b, "rolling", "u1"), 4 * USD);
}

#[tokio::test]
async fn postgres_periodic_task_flushes() {
    let db = PgDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let store = pg_store(&db, dir.path()).await;
    let a = engine();
    let sync_a = SpendSync::new(
        &store,
        Arc::clone(&a),
        SpendSyncOptions { flush_interval: std::time::Duration::from_millis(20), ..SpendSyncOptions::default() },
    );
    sync_a.load().await.unwrap();
    let task = sync_a.spawn();
    spend(&a, "u9", USD);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while count(&store, "SELECT count(*) FROM spend_buckets").await < 2 {
        assert!(std::time::Instant::now() < deadline, "periodic flush never landed");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    task.abort();
    sync_a.flush_now().await.unwrap();
    assert_eq!(count(&store, "SELECT CAST(sum(spent_nanos) AS BIGINT) FROM spend_buckets").await, 2 * USD as i64);
}

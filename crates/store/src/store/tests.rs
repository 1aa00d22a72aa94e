//! Unit tests for `store`: URL schemes, in-memory SQLite, status before any write.

use super::*;

fn options(dir: &std::path::Path) -> StoreOptions {
    StoreOptions { spill_path: dir.join("spill.jsonl"), ..StoreOptions::default() }
}

#[tokio::test]
async fn refuses_unknown_schemes() {
    let dir = tempfile::tempdir().unwrap();
    let err = Store::open("mysql://localhost/x", options(dir.path())).await.unwrap_err();
    assert!(matches!(err, StoreError::UnsupportedUrl(_)));
}

#[tokio::test]
async fn in_memory_sqlite_migrates_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open("sqlite::memory:", options(dir.path())).await.unwrap();
    store.migrate().await.unwrap();
    let status = store.status();
    assert_eq!(
        status,
        StoreStatus {
            kind: "sqlite",
            ok: true,
            last_flush_at: None,
            pending_records: 0,
            quarantined_records: 0,
            unreadable_rows: 0
        }
    );
}

#[tokio::test]
async fn postgres_opens_lazily_when_down() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on port 1: opening still succeeds, the first statement fails.
    let options = StoreOptions { acquire_timeout: std::time::Duration::from_millis(300), ..options(dir.path()) };
    let store = Store::open("postgres://postgres@127.0.0.1:1/none", options).await.unwrap();
    assert_eq!(store.kind(), StoreKind::Postgres);
    assert!(store.migrate().await.is_err());
}

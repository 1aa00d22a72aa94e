//! Unit tests for `sql`: SQLite takes Postgres-style `$N` placeholders, bound by index.

use sqlx::Row;

/// sqlx-sqlite binds `$N` to the N-th bound value (not by order of appearance), so a statement written with `$1`
/// placeholders runs unchanged on both backends, even when it uses a value twice or out of order.
#[tokio::test]
async fn sqlite_binds_dollar_placeholders_by_index() {
    let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
    let row = sqlx::query("SELECT $2 || $1 || $2 AS joined, $3 + 1 AS next")
        .bind("a")
        .bind("b")
        .bind(41_i64)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(row.get::<String, _>("joined"), "bab");
    assert_eq!(row.get::<i64, _>("next"), 42);
}

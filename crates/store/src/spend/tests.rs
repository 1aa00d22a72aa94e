//! Unit tests for `spend`: a batch split around a refused delta is claimed, so replaying it adds nothing twice.

use super::*;
use crate::model::SpendDelta;
use crate::store::StoreOptions;

fn delta(bucket_key: &str, delta_nanos: u64) -> SpendDelta {
    SpendDelta { rule_id: "r".into(), bucket_key: bucket_key.into(), window_start_ns: 0, delta_nanos }
}

async fn spent(store: &Store) -> Vec<(String, i64)> {
    let Pool::Sqlite(pool) = store.pool() else { unreachable!() };
    sqlx::query_as("SELECT bucket_key, spent_nanos FROM spend_buckets ORDER BY bucket_key")
        .fetch_all(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn s1_a_split_batch_is_claimed_so_a_replay_adds_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions { spill_path: dir.path().join("spill.jsonl"), ..StoreOptions::default() };
    let store = Store::open(&format!("sqlite://{}", dir.path().join("t.db").display()), options).await.unwrap();
    store.migrate().await.unwrap();
    let Pool::Sqlite(pool) = store.pool() else { unreachable!() };
    sqlx::raw_sql(
        "CREATE TRIGGER refuse BEFORE INSERT ON spend_buckets WHEN NEW.bucket_key = 'poison'
         BEGIN SELECT RAISE(ABORT, 'refused'); END;",
    )
    .execute(pool)
    .await
    .unwrap();
    let batch = SpendBatch { id: "b1".into(), deltas: vec![delta("good", 5), delta("poison", 7), delta("more", 9)] };
    store.store_spend_batch(&batch).await.unwrap();
    assert_eq!(spent(&store).await, [("good".to_owned(), 5), ("more".to_owned(), 9)]);
    assert_eq!(store.status().quarantined_records, 1);

    // The refused value becomes storable; the batch comes back (a spill replay): nothing is added again.
    sqlx::raw_sql("DROP TRIGGER refuse").execute(pool).await.unwrap();
    assert!(!store.apply_spend_batch(&batch).await.unwrap(), "the batch id was claimed");
    store.store_spend_batch(&batch).await.unwrap();
    assert_eq!(spent(&store).await, [("good".to_owned(), 5), ("more".to_owned(), 9)]);

    // A delta above i64::MAX is clamped, and the stored sum saturates.
    let huge = SpendBatch { id: "b2".into(), deltas: vec![delta("good", u64::MAX)] };
    store.store_spend_batch(&huge).await.unwrap();
    assert_eq!(spent(&store).await[0], ("good".to_owned(), i64::MAX));
}

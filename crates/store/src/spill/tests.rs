//! Unit tests for `spill`: append, rotate for replay, size bound, torn lines.

use std::io::Write;

use super::*;
use crate::model::{SpendBatch, SpendDelta};

fn entry(n: u64) -> SpillEntry {
    SpillEntry::Spend(SpendBatch {
        id: format!("b{n}"),
        deltas: vec![SpendDelta { rule_id: "r".into(), bucket_key: "*".into(), window_start_ns: 1, delta_nanos: n }],
    })
}

#[tokio::test]
async fn appends_rotates_and_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spill.jsonl");
    let spill = Spill::open(path.clone(), 1 << 20).await.unwrap();
    spill.append(&[entry(1), entry(2)], true).unwrap();
    assert_eq!(spill.pending_records(), 2);
    let replay = spill.begin_replay().unwrap().unwrap();
    // New lines go to a fresh active file while the old one is replayed.
    spill.append(&[entry(3)], false).unwrap();
    let lines: Vec<_> = read_entries(&replay).unwrap().collect();
    assert_eq!(lines, [entry(1), entry(2)]);
    // A replay that is interrupted resumes on the same file.
    assert_eq!(spill.begin_replay().unwrap(), Some(replay.clone()));
    spill.finish_replay().unwrap();
    assert!(!replay.exists());
    assert_eq!(spill.pending_records(), 1);
    // A restart counts the backlog.
    drop(spill);
    let spill = Spill::open(path, 1 << 20).await.unwrap();
    assert_eq!(spill.pending_records(), 1);
}

#[tokio::test]
async fn refuses_past_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let spill = Spill::open(dir.path().join("s.jsonl"), 150).await.unwrap();
    spill.append(&[entry(1)], false).unwrap();
    assert!(matches!(spill.append(&[entry(2), entry(3)], false), Err(StoreError::SpillFull { .. })));
    assert_eq!(spill.pending_records(), 1);
}

#[tokio::test]
async fn torn_line_is_skipped_and_does_not_swallow_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.jsonl");
    std::fs::File::create(&path).unwrap().write_all(b"{\"kind\":\"spend\",\"id\":\"b0\",\"del").unwrap();
    let spill = Spill::open(path.clone(), 1 << 20).await.unwrap();
    spill.append(&[entry(1)], true).unwrap();
    let lines: Vec<_> = read_entries(&path).unwrap().collect();
    assert_eq!(lines, [entry(1)]);
}

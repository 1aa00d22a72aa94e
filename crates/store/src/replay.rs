//! Replaying the spill file into the database once it is reachable again (see `spill` for the file protocol).

use crate::error::StoreError;
use crate::model::LogRecord;
use crate::spill::{SpillEntry, read_entries};
use crate::store::Store;

/// Log rows per insert during a replay.
const REPLAY_BATCH: usize = 1_000;
/// Files replayed per call at most.
const MAX_ROUNDS: usize = 4;

impl Store {
    /// Writes the spill file's backlog into the database through the same idempotent writes as live traffic, and
    /// deletes the replayed file only when all of it is in. A record the database refuses for its values is
    /// quarantined and the replay goes on (see `quarantine`), so only an outage can leave the file for the next
    /// attempt. Returns the number of lines replayed (0 when there
    /// was no backlog or another replay is running). On error the file stays for the next attempt.
    pub async fn replay_spill(&self) -> Result<u64, StoreError> {
        let Ok(_guard) = self.inner.replay.try_lock() else { return Ok(0) };
        // A failed earlier attempt leaves `<path>.replay` while newer lines go to `<path>`: take both, but not
        // forever when lines keep arriving as fast as they are replayed.
        let mut replayed = 0;
        for _ in 0..MAX_ROUNDS {
            match self.replay_one_file().await? {
                Some(lines) => replayed += lines,
                None => break,
            }
        }
        Ok(replayed)
    }

    /// Replays one spill file; `None` when there was none.
    async fn replay_one_file(&self) -> Result<Option<u64>, StoreError> {
        let spill = std::sync::Arc::clone(self.spill());
        let Some(path) = ({
            let spill = std::sync::Arc::clone(&spill);
            tokio::task::spawn_blocking(move || spill.begin_replay()).await.map_err(join_error)??
        }) else {
            return Ok(None);
        };
        // A blocking reader feeds chunks through a small channel: the file is never held in memory whole.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<SpillEntry>>(2);
        let reader = tokio::task::spawn_blocking(move || -> Result<(), StoreError> {
            let mut chunk = Vec::with_capacity(REPLAY_BATCH);
            for entry in read_entries(&path)? {
                chunk.push(entry);
                if chunk.len() == REPLAY_BATCH && tx.blocking_send(std::mem::take(&mut chunk)).is_err() {
                    return Ok(());
                }
            }
            if !chunk.is_empty() {
                let _ = tx.blocking_send(chunk);
            }
            Ok(())
        });
        let mut replayed = 0u64;
        let mut logs: Vec<LogRecord> = Vec::with_capacity(REPLAY_BATCH);
        let written = async {
            while let Some(chunk) = rx.recv().await {
                for entry in chunk {
                    replayed += 1;
                    match entry {
                        SpillEntry::Log(record) => logs.push(record),
                        SpillEntry::Spend(batch) => {
                            self.store_spend_batch(&batch).await?;
                        }
                    }
                }
                if !logs.is_empty() {
                    self.insert_logs(&logs).await?;
                    logs.clear();
                }
            }
            Ok::<(), StoreError>(())
        }
        .await;
        drop(rx);
        let read = reader.await.map_err(join_error)?;
        if let Err(error) = written {
            self.record_write(false);
            return Err(error);
        }
        read?;
        self.record_write(true);
        tokio::task::spawn_blocking(move || spill.finish_replay()).await.map_err(join_error)??;
        tracing::info!(lines = replayed, "spill file replayed into the database");
        Ok(Some(replayed))
    }
}

fn join_error(error: tokio::task::JoinError) -> StoreError {
    StoreError::Spill { path: std::path::PathBuf::new(), source: std::io::Error::other(error) }
}

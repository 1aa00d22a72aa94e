//! The spill file: an append-only JSON-lines file for what the database could not take (it is down, or the
//! writer's queue is full), replayed into the database once it is back.
//!
//! # Files
//!
//! `<path>` is appended to. A replay first renames it to `<path>.replay` (under the lock, so appends continue
//! into a fresh `<path>`), reads it in batches through the same idempotent writes as live traffic, and deletes it
//! only once every line is in. A replay that fails keeps `<path>.replay` and starts over from its first line next
//! time: log rows are keyed by id and spend batches by batch id, so lines already in are skipped, never doubled.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::model::LogRecord;
use crate::model::SpendBatch;

#[cfg(test)]
mod tests;

/// One line of the spill file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[expect(
    clippy::large_enum_variant,
    reason = "entries live only while a batch is spilled or replayed; boxing would allocate once more per log row"
)]
pub(crate) enum SpillEntry {
    /// A request log row.
    Log(LogRecord),
    /// A batch of spend deltas with its idempotency id.
    Spend(SpendBatch),
}

#[derive(Debug)]
pub(crate) struct Spill {
    path: PathBuf,
    replay_path: PathBuf,
    max_bytes: u64,
    state: Mutex<State>,
    /// Lines in both files, readable without the lock (for `/status`).
    pending: AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    /// The open `<path>`, created on first append.
    file: Option<File>,
    active_bytes: u64,
    active_records: u64,
    replay_bytes: u64,
    replay_records: u64,
    /// Written since the last fsync.
    dirty: bool,
}

impl Spill {
    /// Opens the spill at `path`, counting any backlog a previous run left.
    pub(crate) async fn open(path: PathBuf, max_bytes: u64) -> Result<Self, StoreError> {
        let replay_path = with_suffix(&path, ".replay");
        let (active, replay) = {
            let (path, replay_path) = (path.clone(), replay_path.clone());
            tokio::task::spawn_blocking(move || Ok::<_, StoreError>((count(&path)?, count(&replay_path)?)))
                .await
                .map_err(|e| io_error(&PathBuf::new(), std::io::Error::other(e)))??
        };
        let state = State {
            file: None,
            active_bytes: active.0,
            active_records: active.1,
            replay_bytes: replay.0,
            replay_records: replay.1,
            dirty: false,
        };
        Ok(Self {
            path,
            replay_path,
            max_bytes,
            pending: AtomicU64::new(active.1 + replay.1),
            state: Mutex::new(state),
        })
    }

    /// The active file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Lines waiting in both files.
    pub(crate) fn pending_records(&self) -> u64 {
        self.pending.load(Ordering::Relaxed)
    }

    /// Appends `entries`; with `sync`, fsyncs before returning. Blocking: async callers use
    /// [`Spill::append_async`]; the request path calls it without `sync` (one buffered `write(2)` under the
    /// lock, the fsync is left to the writer's next tick).
    pub(crate) fn append(&self, entries: &[SpillEntry], sync: bool) -> Result<(), StoreError> {
        let mut buf = Vec::with_capacity(entries.len() * 512);
        for entry in entries {
            // Serialising these types cannot fail (string keys, no non-finite floats in serde_json::Value).
            serde_json::to_writer(&mut buf, entry).map_err(|e| io_error(&self.path, e.into()))?;
            buf.push(b'\n');
        }
        let mut state = self.lock();
        let len = buf.len() as u64;
        if state.active_bytes + state.replay_bytes + len > self.max_bytes {
            return Err(StoreError::SpillFull { path: self.path.clone(), max_bytes: self.max_bytes });
        }
        let file = match &mut state.file {
            Some(file) => file,
            slot @ None => slot.insert(open_append(&self.path)?),
        };
        file.write_all(&buf).map_err(|e| io_error(&self.path, e))?;
        if sync {
            file.sync_data().map_err(|e| io_error(&self.path, e))?;
        }
        state.dirty = !sync;
        state.active_bytes += len;
        state.active_records += entries.len() as u64;
        self.pending.fetch_add(entries.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// [`Spill::append`] with fsync, on the blocking pool.
    pub(crate) async fn append_async(self: &Arc<Self>, entries: Vec<SpillEntry>) -> Result<(), StoreError> {
        let spill = Arc::clone(self);
        tokio::task::spawn_blocking(move || spill.append(&entries, true))
            .await
            .map_err(|e| io_error(&self.path, std::io::Error::other(e)))?
    }

    /// Fsyncs what the request path appended since the last sync, on the blocking pool.
    pub(crate) async fn sync_async(self: &Arc<Self>) -> Result<(), StoreError> {
        if !self.lock().dirty {
            return Ok(());
        }
        let spill = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let mut state = spill.lock();
            if let Some(file) = &state.file {
                file.sync_data().map_err(|e| io_error(&spill.path, e))?;
            }
            state.dirty = false;
            Ok(())
        })
        .await
        .map_err(|e| io_error(&self.path, std::io::Error::other(e)))?
    }

    /// Starts (or resumes) a replay: returns the file to read, or `None` when there is no backlog.
    pub(crate) fn begin_replay(&self) -> Result<Option<PathBuf>, StoreError> {
        let mut state = self.lock();
        if state.replay_records > 0 || self.replay_path.exists() {
            return Ok(Some(self.replay_path.clone()));
        }
        if state.active_records == 0 {
            return Ok(None);
        }
        if let Some(file) = state.file.take() {
            file.sync_data().map_err(|e| io_error(&self.path, e))?;
        }
        std::fs::rename(&self.path, &self.replay_path).map_err(|e| io_error(&self.path, e))?;
        state.replay_bytes = state.active_bytes;
        state.replay_records = state.active_records;
        state.active_bytes = 0;
        state.active_records = 0;
        state.dirty = false;
        Ok(Some(self.replay_path.clone()))
    }

    /// Ends a replay whose every line is in the database: the replayed file goes.
    pub(crate) fn finish_replay(&self) -> Result<(), StoreError> {
        let mut state = self.lock();
        match std::fs::remove_file(&self.replay_path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(&self.replay_path, e)),
        }
        self.pending.fetch_sub(state.replay_records.min(self.pending.load(Ordering::Relaxed)), Ordering::Relaxed);
        state.replay_bytes = 0;
        state.replay_records = 0;
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Reads a spill file line by line; a line that does not parse (torn by a crash mid-write) is reported and
/// skipped, it cannot be recovered and must not block the lines after it.
pub(crate) fn read_entries(path: &Path) -> Result<impl Iterator<Item = SpillEntry>, StoreError> {
    let file = File::open(path).map_err(|e| io_error(path, e))?;
    let path = path.to_owned();
    Ok(BufReader::new(file).lines().enumerate().filter_map(move |(n, line)| match line {
        Ok(line) if line.trim().is_empty() => None,
        Ok(line) => match serde_json::from_str(&line) {
            Ok(entry) => Some(entry),
            Err(e) => {
                tracing::error!(path = %path.display(), line = n + 1, error = %e, "unreadable spill line skipped");
                None
            }
        },
        Err(e) => {
            tracing::error!(path = %path.display(), line = n + 1, error = %e, "unreadable spill line skipped");
            None
        }
    }))
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn open_append(path: &Path) -> Result<File, StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
    }
    let mut file = OpenOptions::new().create(true).append(true).read(true).open(path).map_err(|e| io_error(path, e))?;
    // A line torn by a crash must not swallow the next one: start on a fresh line.
    let len = file.metadata().map_err(|e| io_error(path, e))?.len();
    if len > 0 {
        let mut last = [0u8; 1];
        file.seek(SeekFrom::Start(len - 1)).map_err(|e| io_error(path, e))?;
        file.read_exact(&mut last).map_err(|e| io_error(path, e))?;
        if last[0] != b'\n' {
            file.write_all(b"\n").map_err(|e| io_error(path, e))?;
        }
    }
    Ok(file)
}

/// (bytes, lines) of a file, (0, 0) if absent.
fn count(path: &Path) -> Result<(u64, u64), StoreError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, 0)),
        Err(e) => return Err(io_error(path, e)),
    };
    let mut reader = BufReader::new(file);
    let (mut bytes, mut lines) = (0u64, 0u64);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = reader.read_until(b'\n', &mut buf).map_err(|e| io_error(path, e))?;
        if n == 0 {
            break;
        }
        bytes += n as u64;
        if buf.iter().any(|b| !b.is_ascii_whitespace()) {
            lines += 1;
        }
    }
    Ok((bytes, lines))
}

fn io_error(path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Spill { path: path.to_owned(), source }
}

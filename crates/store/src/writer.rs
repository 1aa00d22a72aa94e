//! `LogWriter`: takes request log records off the request path and writes them in batches.
//!
//! # Path of a record
//!
//! 1. `try_send` puts it in a bounded queue without waiting. When the queue is full (the database is slow or
//!    down and the backlog reached `capacity` records or `max_queue_bytes` of approximate record size), the record is appended to the spill file instead, as one
//!    buffered `write(2)`; the fsync is left to the writer's next batch. A record is dropped only when the spill
//!    file is full or unwritable, and that is logged.
//! 2. The writer task collects up to `batch_size` records or waits at most `max_delay` after the first one, and
//!    inserts them in one transaction with their rollups (`Store::insert_logs`).
//! 3. A failed batch goes to the spill file (fsynced) and the database is left alone for a back-off (doubling up
//!    to `max_backoff`), during which batches go straight to the spill: a down database costs no request a wait
//!    and holds no memory.
//! 4. After a successful batch, or every `max_backoff` when idle, a spill backlog is replayed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::error::StoreError;
use crate::model::LogRecord;
use crate::spill::SpillEntry;
use crate::store::Store;

/// Tunables of a [`LogWriter`].
#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// Queue capacity in records.
    pub capacity: usize,
    /// Queue capacity in bytes of approximate record size ([`approx_size`]): records are not bounded in size (a
    /// logged body can be megabytes), so a count alone does not bound memory while the database is slow.
    pub max_queue_bytes: u64,
    /// Most records per insert. Large, because a batch's cost is mostly its rollup upserts, which grow with the
    /// distinct (hour, provider, model, metadata value) keys in it rather than with its rows: on a 2-core machine
    /// 1,000-row batches sustained ~10k rows/s into Postgres, 5,000-row batches ~29k. Under light load a batch is
    /// whatever arrived within `max_delay`, so the size only matters when it is busy.
    pub batch_size: usize,
    /// Longest a record waits in the queue for its batch to fill.
    pub max_delay: Duration,
    /// Longest back-off after a failed write, and the idle interval between spill replay attempts.
    pub max_backoff: Duration,
}

impl Default for WriterOptions {
    fn default() -> Self {
        Self {
            capacity: 65_536,
            max_queue_bytes: 64 << 20,
            batch_size: 5_000,
            max_delay: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
        }
    }
}

/// Where [`LogWriter::try_send`] put a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// In the queue.
    Queued,
    /// The queue was full (or closed): appended to the spill file, replayed later.
    Spilled,
    /// Neither the queue nor the spill file could take it (logged).
    Dropped,
}

/// Handle on the background log writer. Cheap to clone.
#[derive(Clone)]
pub struct LogWriter {
    inner: Arc<Inner>,
}

struct Inner {
    tx: mpsc::Sender<LogRecord>,
    store: Store,
    closing: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
    dropped: AtomicU64,
    /// Approximate bytes of the records in the queue (shared with the writer task, which takes them off).
    queued_bytes: Arc<AtomicU64>,
    max_queue_bytes: u64,
}

impl std::fmt::Debug for LogWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogWriter").field("dropped", &self.dropped()).finish_non_exhaustive()
    }
}

impl LogWriter {
    /// Starts the writer task (named `log_writer` in traces) on the current Tokio runtime.
    pub fn spawn(store: &Store, options: WriterOptions) -> Self {
        let (tx, rx) = mpsc::channel(options.capacity.max(1));
        let (closing, closing_rx) = watch::channel(false);
        let queued_bytes = Arc::new(AtomicU64::new(0));
        let max_queue_bytes = options.max_queue_bytes.max(1);
        let task = tokio::spawn(run(store.clone(), options, rx, closing_rx, Arc::clone(&queued_bytes)));
        Self {
            inner: Arc::new(Inner {
                tx,
                store: store.clone(),
                closing,
                task: Mutex::new(Some(task)),
                dropped: AtomicU64::new(0),
                queued_bytes,
                max_queue_bytes,
            }),
        }
    }

    /// Queues `record` without ever waiting (see the module docs).
    pub fn try_send(&self, record: LogRecord) -> Enqueued {
        let queued = &self.inner.store.inner.queued;
        let size = approx_size(&record);
        let bytes = &self.inner.queued_bytes;
        // Claimed before sending, so concurrent senders never overshoot the bound together.
        let fits = bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |held| {
                let total = held.saturating_add(size);
                // One record larger than the whole bound still goes through an empty queue.
                (total <= self.inner.max_queue_bytes || held == 0).then_some(total)
            })
            .is_ok();
        let record = if fits {
            queued.fetch_add(1, Ordering::Relaxed);
            match self.inner.tx.try_send(record) {
                Ok(()) => return Enqueued::Queued,
                Err(mpsc::error::TrySendError::Full(record) | mpsc::error::TrySendError::Closed(record)) => {
                    queued.fetch_sub(1, Ordering::Relaxed);
                    bytes.fetch_sub(size, Ordering::Relaxed);
                    record
                }
            }
        } else {
            record
        };
        let id = record.id.clone();
        match self.inner.store.spill().append(&[SpillEntry::Log(record)], false) {
            Ok(()) => Enqueued::Spilled,
            Err(error) => {
                self.inner.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::error!(%id, %error, "log record dropped: queue full and spill file unavailable");
                Enqueued::Dropped
            }
        }
    }

    /// Records dropped so far (queue full and spill file unavailable).
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    /// Stops taking records (later ones go to the spill file), writes everything queued to the database, or to the
    /// spill file when it is down, then tries one last spill replay. Returns once the writer task has ended.
    pub async fn close(&self) -> Result<(), StoreError> {
        self.inner.closing.send_replace(true);
        let task = self.inner.task.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(task) = task {
            task.await.map_err(|e| StoreError::Spill {
                path: self.inner.store.spill().path().to_owned(),
                source: std::io::Error::other(e),
            })?;
        }
        Ok(())
    }
}

async fn run(
    store: Store,
    options: WriterOptions,
    mut rx: mpsc::Receiver<LogRecord>,
    mut closing: watch::Receiver<bool>,
    queued_bytes: Arc<AtomicU64>,
) {
    let batch_size = options.batch_size.max(1);
    let mut backoff = Backoff::new(options.max_backoff);
    let mut closed = false;
    loop {
        let mut batch = Vec::with_capacity(batch_size);
        // Wait for the first record, the close signal, or (with a backlog) the next replay attempt.
        let idle = tokio::time::sleep(options.max_backoff);
        tokio::select! {
            biased;
            changed = closing.changed(), if !closed => {
                if changed.is_err() || *closing.borrow() {
                    closed = true;
                    rx.close();
                }
                continue;
            }
            n = rx.recv_many(&mut batch, batch_size) => {
                if n == 0 {
                    break;
                }
            }
            () = idle => {
                if store.spill().pending_records() > 0 {
                    replay(&store).await;
                }
                continue;
            }
        }
        // Fill the batch until it is full or the first record has waited `max_delay`.
        let deadline = Instant::now() + options.max_delay;
        while batch.len() < batch_size && !closed {
            let room = batch_size - batch.len();
            tokio::select! {
                biased;
                n = rx.recv_many(&mut batch, room) => if n == 0 { break },
                () = tokio::time::sleep_until(deadline) => break,
                _ = closing.changed() => {
                    closed = true;
                    rx.close();
                }
            }
        }
        let size = batch.iter().map(approx_size).fold(0u64, u64::saturating_add);
        queued_bytes.fetch_sub(size.min(queued_bytes.load(Ordering::Relaxed)), Ordering::Relaxed);
        write(&store, batch, &mut backoff, closed).await;
    }
    // Closed and drained: a last chance for the backlog (costs at most `acquire_timeout` if the database is down).
    if store.spill().pending_records() > 0 {
        replay(&store).await;
    }
}

async fn write(store: &Store, batch: Vec<LogRecord>, backoff: &mut Backoff, closing: bool) {
    let n = batch.len() as u64;
    let try_db = closing || backoff.ready();
    let result = if try_db { store.insert_logs(&batch).await.map(|_| ()).map_err(Some) } else { Err(None) };
    match result {
        Ok(()) => {
            store.record_write(true);
            backoff.reset();
            store.inner.queued.fetch_sub(n, Ordering::Relaxed);
            if let Err(error) = store.spill().sync_async().await {
                tracing::error!(%error, "spill file fsync failed");
            }
            if store.spill().pending_records() > 0 {
                replay(store).await;
            }
        }
        Err(error) => {
            if let Some(error) = error {
                store.record_write(false);
                backoff.failed();
                tracing::warn!(records = n, %error, "log batch not written; spilling to disk");
            }
            let entries: Vec<SpillEntry> = batch.into_iter().map(SpillEntry::Log).collect();
            if let Err(error) = store.spill().append_async(entries).await {
                tracing::error!(records = n, %error, "log batch dropped: database and spill file unavailable");
            }
            store.inner.queued.fetch_sub(n, Ordering::Relaxed);
        }
    }
}

/// A record's approximate size in memory, in bytes: its strings and metadata plus a fixed part for the rest. Cheap
/// (no serialisation) and the same for a record whenever it is asked, so what `try_send` adds the writer takes off.
pub(crate) fn approx_size(record: &LogRecord) -> u64 {
    fn opt(text: Option<&String>) -> usize {
        text.map_or(0, String::len)
    }
    let metadata: usize = record.metadata.iter().map(|(k, v)| k.len() + json_size(v)).sum();
    let size = 256
        + record.id.len()
        + opt(record.gateway.as_ref())
        + record.provider.len()
        + record.model.len()
        + record.path.len()
        + metadata
        + opt(record.event_id.as_ref())
        + json_size(&record.rule_decisions)
        + opt(record.error.as_ref())
        + opt(record.request_body.as_ref())
        + opt(record.response_body.as_ref());
    u64::try_from(size).unwrap_or(u64::MAX)
}

/// Approximate bytes of a JSON value (strings and keys by length, anything else a few bytes).
fn json_size(value: &serde_json::Value) -> usize {
    match value {
        serde_json::Value::String(s) => s.len() + 8,
        serde_json::Value::Array(items) => items.iter().map(json_size).sum::<usize>() + 8,
        serde_json::Value::Object(map) => map.iter().map(|(k, v)| k.len() + json_size(v)).sum::<usize>() + 8,
        serde_json::Value::Null | serde_json::Value::Bool(_) | serde_json::Value::Number(_) => 8,
    }
}

async fn replay(store: &Store) {
    if let Err(error) = store.replay_spill().await {
        tracing::warn!(%error, "spill replay failed; will retry");
    }
}

/// Doubling back-off after failed writes.
struct Backoff {
    max: Duration,
    current: Duration,
    until: Option<Instant>,
}

impl Backoff {
    fn new(max: Duration) -> Self {
        Self { max, current: Duration::ZERO, until: None }
    }

    fn ready(&self) -> bool {
        self.until.is_none_or(|until| Instant::now() >= until)
    }

    fn failed(&mut self) {
        self.current = (self.current * 2).max(Duration::from_millis(250)).min(self.max);
        self.until = Some(Instant::now() + self.current);
    }

    fn reset(&mut self) {
        self.current = Duration::ZERO;
        self.until = None;
    }
}

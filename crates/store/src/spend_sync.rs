//! `SpendSync`: keeps one replica's `SpendEngine` and the shared `spend_buckets` table in step.
//!
//! # One sync cycle (every `flush_interval`, and on `flush_now`)
//!
//! 1. `engine.drain_deltas()`, merged into one batch with a fresh batch id, appended to the pending queue. The
//!    queue lives in this handle, not in the cycle's future, so a cycle cancelled mid-write (task aborted at
//!    shutdown) loses nothing: `flush_now` picks the batch up.
//! 2. Each pending batch, oldest first, is added in its own statement that also claims its id (see
//!    `spend_batches_applied`), so a retry after an ambiguous commit is a no-op. A batch the database refuses for
//!    its values is written one delta at a time and the refused delta quarantined (`Store::store_spend_batch`), so
//!    it can never block the queue. On an outage the batches stay queued; past `max_pending_batches` the oldest
//!    go to the spill file, so a long outage holds bounded memory (failed flushes are never kept in RAM forever).
//! 3. Read back every row any replica changed since the previous read (minus a margin for transactions that
//!    committed late), plus the full current windows of rules this replica has not loaded yet, and
//!    `engine.load_totals(..)`: replicas converge within one interval. Reading "changed since" costs what changed,
//!    not the number of live buckets (a per-user rule can have 100k of them).
//! 4. `engine.sweep()`, then replay the spill if it has a backlog.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::task::JoinHandle;
use tollgate_limits::SpendEngine;

use crate::error::StoreError;
use crate::model::SpendBatch;
use crate::spend::RuleSpan;
use crate::spill::SpillEntry;
use crate::sql::timestamp_nanos;
use crate::store::Store;

/// Re-read rows changed this long before the previous read: covers a transaction whose `now()` was taken before
/// that read but which committed after it.
const CHANGED_MARGIN_US: i64 = 5_000_000;

/// Tunables of a [`SpendSync`].
#[derive(Debug, Clone)]
pub struct SpendSyncOptions {
    /// Time between cycles (`database.flush_interval`).
    pub flush_interval: Duration,
    /// Batches kept in memory while the database is down; older ones go to the spill file.
    pub max_pending_batches: usize,
}

impl Default for SpendSyncOptions {
    fn default() -> Self {
        Self { flush_interval: Duration::from_secs(1), max_pending_batches: 60 }
    }
}

/// Persists one replica's spend and loads every replica's. Cheap to clone.
#[derive(Clone)]
pub struct SpendSync {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    engine: Arc<SpendEngine>,
    options: SpendSyncOptions,
    state: Mutex<State>,
    /// One cycle at a time.
    cycle: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct State {
    pending: VecDeque<SpendBatch>,
    /// Rules whose current windows were read in full.
    loaded_rules: HashSet<String>,
    /// Database time of the previous read-back, Unix µs.
    last_read_us: Option<i64>,
}

impl std::fmt::Debug for SpendSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpendSync").field("options", &self.inner.options).finish_non_exhaustive()
    }
}

impl SpendSync {
    /// A sync for `engine` on `store`. Call [`SpendSync::load`] before serving, then [`SpendSync::spawn`].
    pub fn new(store: &Store, engine: Arc<SpendEngine>, options: SpendSyncOptions) -> Self {
        Self {
            inner: Arc::new(Inner {
                store: store.clone(),
                engine,
                options,
                state: Mutex::new(State::default()),
                cycle: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// Loads the totals of every rule's current window into the engine, so a restart resets no budget. Returns the
    /// number of bucket rows loaded. A row that cannot be read is logged, counted in `/status`
    /// (`database.unreadable_rows`) and skipped; only an unreachable database fails the load.
    pub async fn load(&self) -> Result<usize, StoreError> {
        let _cycle = self.inner.cycle.lock().await;
        self.read_back(true).await
    }

    /// Runs one full cycle now (see the module docs); at shutdown, after aborting the task from
    /// [`SpendSync::spawn`]. When the database is down, the batches go to the spill file instead and this returns
    /// the database error.
    pub async fn flush_now(&self) -> Result<(), StoreError> {
        let result = self.cycle().await;
        if result.is_err() {
            self.spill_pending(0).await?;
        }
        result
    }

    /// Starts the periodic cycle, named in traces `spend_sync`. Abort the handle to stop it (safe at any point:
    /// see the module docs), then call [`SpendSync::flush_now`].
    pub fn spawn(&self) -> JoinHandle<()> {
        let sync = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(sync.inner.options.flush_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(error) = sync.cycle().await {
                    tracing::warn!(task = "spend_sync", %error, "spend sync failed; deltas kept for the next cycle");
                }
            }
        })
    }

    /// Batches drained but not yet in the database (for tests and metrics).
    pub fn pending_batches(&self) -> usize {
        self.lock().pending.len()
    }

    async fn cycle(&self) -> Result<(), StoreError> {
        let _cycle = self.inner.cycle.lock().await;
        let store = &self.inner.store;
        // 1. Drain.
        let deltas = self.inner.engine.drain_deltas();
        if !deltas.is_empty() {
            self.lock().pending.push_back(SpendBatch::new(deltas));
        }
        // 2. Write, oldest first.
        loop {
            let Some(batch) = self.lock().pending.front().cloned() else { break };
            match store.store_spend_batch(&batch).await {
                Ok(()) => {
                    store.record_write(true);
                    let mut state = self.lock();
                    if state.pending.front().is_some_and(|b| b.id == batch.id) {
                        state.pending.pop_front();
                    }
                }
                Err(error) => {
                    store.record_write(false);
                    self.spill_pending(self.inner.options.max_pending_batches).await?;
                    return Err(error);
                }
            }
        }
        // 3. Read back.
        self.read_back(false).await?;
        // 4. Sweep and replay.
        self.inner.engine.sweep();
        if store.spill().pending_records() > 0 {
            store.replay_spill().await?;
        }
        Ok(())
    }

    /// Reads totals and loads them into the engine: the full current windows of `all` rules or of rules not yet
    /// loaded, plus (when not `all`) the rows changed since the previous read.
    async fn read_back(&self, all: bool) -> Result<usize, StoreError> {
        let engine = &self.inner.engine;
        let now = engine.clock().now();
        let (spans, since) = {
            let state = self.lock();
            let spans: Vec<RuleSpan> = engine
                .rules()
                .iter()
                .filter(|rule| all || !state.loaded_rules.contains(rule.id()))
                .map(|rule| {
                    let (start, end) = rule.window().bounds(now);
                    RuleSpan {
                        rule_id: rule.id().to_owned(),
                        start_ns: timestamp_nanos(start),
                        end_ns: timestamp_nanos(end),
                    }
                })
                .collect();
            (spans, if all { None } else { state.last_read_us })
        };
        let mut loaded = 0;
        let mut read_at = None;
        if !spans.is_empty() {
            let read = self.inner.store.read_spend_spans(&spans).await?;
            loaded += read.totals.len();
            read_at = Some(read.read_at_us);
            engine.load_totals(read.totals);
        }
        if let Some(since) = since {
            let read = self.inner.store.read_spend_changed(since - CHANGED_MARGIN_US).await?;
            loaded += read.totals.len();
            read_at = Some(read_at.map_or(read.read_at_us, |t: i64| t.min(read.read_at_us)));
            engine.load_totals(read.totals);
        }
        let mut state = self.lock();
        state.loaded_rules.extend(spans.into_iter().map(|s| s.rule_id));
        if let Some(at) = read_at {
            state.last_read_us = Some(state.last_read_us.map_or(at, |prev| prev.max(at)));
        }
        Ok(loaded)
    }

    /// Moves the oldest pending batches to the spill file until at most `keep` remain.
    async fn spill_pending(&self, keep: usize) -> Result<(), StoreError> {
        let overflow: Vec<SpillEntry> = {
            let mut state = self.lock();
            let excess = state.pending.len().saturating_sub(keep);
            state.pending.drain(..excess).map(SpillEntry::Spend).collect()
        };
        if overflow.is_empty() {
            return Ok(());
        }
        let count = overflow.len();
        if let Err(error) = self.inner.store.spill().append_async(overflow.clone()).await {
            // Nowhere to put them: keep them in memory rather than lose spend.
            let mut state = self.lock();
            for batch in overflow.into_iter().rev() {
                if let SpillEntry::Spend(batch) = batch {
                    state.pending.push_front(batch);
                }
            }
            return Err(error);
        }
        tracing::warn!(batches = count, "spend batches spilled to disk while the database is unavailable");
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

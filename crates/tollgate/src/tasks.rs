//! The gateway's background work, each task a loop over one [`Poll`] until the supervisor stops it.

mod ingest;
mod replicas;
mod retention;
mod rollup_keys;
mod rule_sync;
mod sweep;

use std::future::Future;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::{Interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

pub use ingest::ingest;
pub use replicas::replica_heartbeat;
pub use retention::retention;
pub use rollup_keys::rollup_key_sync;
pub use rule_sync::rule_sync;
pub use sweep::sweep_rate_buckets;

/// The skeleton every poll loop shares: a tick every `interval` (the first at once; a late tick is delayed, never
/// bunched) until `stop` is cancelled.
pub struct Poll {
    tick: Interval,
    stop: CancellationToken,
}

impl Poll {
    pub fn every(interval: Duration, stop: CancellationToken) -> Self {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Self { tick, stop }
    }

    /// Waits for the next tick: `false` once the loop should end.
    pub async fn tick(&mut self) -> bool {
        tokio::select! {
            () = self.stop.cancelled() => false,
            _ = self.tick.tick() => true,
        }
    }

    /// Runs one step unless `stop` comes first (`None`: the step is dropped and the loop should end).
    pub async fn or_stop<T>(&self, step: impl Future<Output = T>) -> Option<T> {
        tokio::select! {
            () = self.stop.cancelled() => None,
            out = step => Some(out),
        }
    }
}

/// Runs a task spawned elsewhere until `stop`, then aborts it; a panic of its own reaches the supervisor.
pub async fn until_stopped(mut handle: JoinHandle<()>, stop: CancellationToken) {
    tokio::select! {
        () = stop.cancelled() => handle.abort(),
        outcome = &mut handle => {
            if let Err(error) = outcome
                && error.is_panic()
            {
                std::panic::resume_unwind(error.into_panic());
            }
        }
    }
}

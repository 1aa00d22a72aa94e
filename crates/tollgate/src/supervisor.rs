//! Named tasks under one supervisor: the first to end, or panic, before shutdown shuts the process down.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The process's tasks, each registered by name, and the two moments of its shutdown.
pub struct Supervisor {
    tracker: TaskTracker,
    /// Cancelled by a signal or by the first task that ends: the listeners stop accepting.
    shutdown: CancellationToken,
    /// Cancelled once the proxy has drained: the background tasks stop.
    stop: CancellationToken,
    /// A task ended (or panicked) before `shutdown`.
    failed: Arc<AtomicBool>,
}

impl Supervisor {
    pub fn new() -> Self {
        Self {
            tracker: TaskTracker::new(),
            shutdown: CancellationToken::new(),
            stop: CancellationToken::new(),
            failed: Arc::new(AtomicBool::new(false)),
        }
    }

    /// What a listener watches: it stops accepting when this is cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// What background work watches: it returns when this is cancelled, after the proxy has drained.
    pub fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Runs `task` as `name`. It is meant to run until its token is cancelled: one that returns or panics
    /// before shutdown has begun is logged by name and shuts the process down (which then exits 1).
    pub fn spawn(&self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        let handle = tokio::spawn(task);
        let (shutdown, failed) = (self.shutdown.clone(), Arc::clone(&self.failed));
        self.tracker.spawn(async move {
            let outcome = handle.await;
            if shutdown.is_cancelled() {
                match outcome {
                    Ok(()) => tracing::debug!(task = name, "task stopped"),
                    Err(error) => tracing::error!(task = name, %error, "task failed while stopping"),
                }
                return;
            }
            match outcome {
                Ok(()) => tracing::error!(task = name, "task ended on its own; shutting down"),
                Err(error) => tracing::error!(task = name, %error, "task failed; shutting down"),
            }
            failed.store(true, Ordering::Relaxed);
            shutdown.cancel();
        });
    }

    /// Stops the background tasks and waits for every task to end. `false` when one of them ended before shutdown.
    pub async fn stop(&self) -> bool {
        self.shutdown.cancel();
        self.stop.cancel();
        self.tracker.close();
        self.tracker.wait().await;
        !self.failed.load(Ordering::Relaxed)
    }
}

//! Deletes request log rows older than `database.retention`, hourly, in small batches (rollups are kept).

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tollgate_store::Store;

use super::Poll;

const INTERVAL: Duration = Duration::from_hours(1);

pub async fn retention(store: Store, retention: Duration, stop: CancellationToken) {
    let mut poll = Poll::every(INTERVAL, stop);
    while poll.tick().await {
        let Ok(age) = jiff::SignedDuration::try_from(retention) else { continue };
        let Ok(cutoff) = jiff::Timestamp::now().checked_sub(age) else { continue };
        match store.delete_older_than(cutoff).await {
            Ok(report) if report.deleted > 0 => tracing::info!(deleted = report.deleted, "old request logs deleted"),
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "retention failed; will retry"),
        }
    }
}

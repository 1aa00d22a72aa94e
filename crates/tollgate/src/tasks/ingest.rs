//! Runs every configured provider's ingest every `ingest.interval` (the first at start-up), each under its lease
//! so one replica at a time fetches a provider, then deletes raw pages past `ingest.raw_retention`.

use tokio_util::sync::CancellationToken;
use tollgate_ingest::Ingest;

use super::Poll;

pub async fn ingest(ingest: Ingest, stop: CancellationToken) {
    let mut poll = Poll::every(ingest.config().interval, stop);
    while poll.tick().await {
        // A run is cut when the gateway stops: nothing of it is written (its rows land in one transaction).
        let Some(runs) = poll.or_stop(ingest.run_all()).await else { return };
        for run in runs.iter().filter(|r| !r.ok) {
            tracing::warn!(provider = %run.provider, error = run.error.as_deref().unwrap_or(""), "provider ingest failed");
        }
        match ingest.delete_expired_pages().await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, "old raw report pages deleted"),
            Err(error) => {
                tracing::warn!(error = &error as &dyn std::error::Error, "raw page retention failed; will retry");
            }
        }
    }
}

//! The shared rate limits' heartbeat: this replica marks itself alive in Redis and reads how many replicas share
//! the limits, which sets each shared limit's fallback share (`limit / replicas`) for when Redis is away. At
//! shutdown it leaves the set, so the others' shares grow at once.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tollgate_cache::SharedRates;
use tollgate_proxy::Gateway;

use super::Poll;

/// A third of [`tollgate_cache::REPLICA_TTL`]: a live replica is never dropped for one late beat.
const INTERVAL: Duration = Duration::from_secs(5);

pub async fn replica_heartbeat(gateway: Arc<Gateway>, shared: Arc<SharedRates>, stop: CancellationToken) {
    let mut poll = Poll::every(INTERVAL, stop);
    while poll.tick().await {
        match poll.or_stop(shared.beat()).await {
            None => break,
            Some(Ok(replicas)) => gateway.rates.set_replicas(replicas),
            // The last count stands; `/status` shows Redis's error.
            Some(Err(error)) => tracing::debug!(%error, "replica heartbeat failed"),
        }
    }
    if let Err(error) = shared.leave().await {
        tracing::debug!(%error, "could not leave the replica set");
    }
}

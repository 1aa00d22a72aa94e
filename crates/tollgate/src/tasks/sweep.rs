//! Drops the rate-limit buckets that no request has touched for a whole window: they hold nothing, and without
//! the sweep a client cycling through split values could grow memory without bound.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tollgate_proxy::Gateway;

use super::Poll;

const INTERVAL: Duration = Duration::from_mins(1);

pub async fn sweep_rate_buckets(gateway: Arc<Gateway>, stop: CancellationToken) {
    let mut poll = Poll::every(INTERVAL, stop);
    while poll.tick().await {
        let kept = gateway.rates.sweep();
        tracing::debug!(kept, "rate-limit buckets swept");
    }
}

//! Keeps the rollups counting every metadata key the spend rules in force split or filter on, so `/spend` can group
//! by the keys of rules created through the API too.
//!
//! # How a rule's key reaches the rollups
//!
//! 1. The file rules' keys are added when the store is migrated, before the gateway serves
//!    (`StoreOptions::rollup_metadata_keys`).
//! 2. [`rollup_key_sync`] looks at the engine's rules every [`POLL_INTERVAL`] (in memory: the database is
//!    asked only when some rule uses a key this task has not seen added yet) and adds the missing keys with
//!    `Store::add_rollup_metadata_keys`, which counts each key's history exactly once in the same transaction
//!    (see `tollgate_store`'s `metadata_keys` for why no row is lost or counted twice while writers insert).
//! 3. Until that transaction commits, `/spend` grouped by the key answers 503 (the key is being added), then
//!    the full history and every later row. The key set is the database's, shared by every replica: a replica
//!    that finds another adding the same key waits for it and finds it added.
//!
//! Keys are never removed: a key stays grouped-by after its last rule is deleted, since dropping it would leave
//! a hole in its history that the log, after retention, could not fill.

use std::collections::BTreeSet;

use tokio_util::sync::CancellationToken;
use tollgate_admin::AdminState;

use super::Poll;
use super::rule_sync::POLL_INTERVAL;

/// Adds the metadata keys of the rules in force to the rollups until `stop` (see the module docs). Spawn it once
/// per process; returns at once without a store. A failed attempt is retried at the next tick; one cut short by
/// `stop` rolls back and is made again at the next start.
pub async fn rollup_key_sync(state: AdminState, stop: CancellationToken) {
    let Some(store) = state.store.clone() else { return };
    // Keys this task has seen rolled up; the database is asked again only for a key outside this set.
    let mut counted: BTreeSet<String> = BTreeSet::new();
    let mut poll = Poll::every(POLL_INTERVAL, stop);
    while poll.tick().await {
        let wanted = tollgate_limits::rule_metadata_keys(&state.gateway.spend.rules());
        if wanted.is_subset(&counted) {
            continue;
        }
        let Some(added) = poll.or_stop(store.add_rollup_metadata_keys(&wanted)).await else { return };
        match added {
            // The store logs the keys it added.
            Ok(_) => counted.extend(wanted),
            Err(error) => tracing::warn!(
                task = "rollup_key_sync",
                error = &error as &dyn std::error::Error,
                "adding metadata keys to the rollups failed; retrying"
            ),
        }
    }
}

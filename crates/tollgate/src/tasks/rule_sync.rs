//! Keeps every replica's spend rules equal to the file rules plus the API rules in the database.
//!
//! # How a change reaches every replica
//!
//! 1. The replica that served the API call writes the rule and bumps `spend_rules_version` in one transaction,
//!    then reloads its own engine at once (the caller sees the rule in force when the response arrives).
//! 2. Every replica's [`rule_sync`] reads the version every [`POLL_INTERVAL`] (one row: cheap on both
//!    backends) and, when it moved, reloads with `tollgate_admin::load_rules`: file rules first, then the API
//!    rules, swapped in with `SpendEngine::replace_rules` (buckets of unchanged rules are kept). A change is in
//!    force everywhere within one interval plus one query. (A rule on a metadata key the rollups do not count yet
//!    also gets the key added, history included, by `rollup_key_sync`: a separate task, because counting a long
//!    history takes a while and must hold up neither this poll nor the API call.)
//! 3. A reload that raced with a newer change can install the older set; the version it recorded is the older
//!    one, so the next poll reloads again.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tollgate_admin::{AdminState, load_rules};

use super::Poll;

/// How often each replica checks the rules' version: the 2 s propagation promised in docs/admin-api.md minus a
/// query's worth.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Polls the rules' version until `stop` and reloads when it moves (see the module docs). Spawn it once per
/// process, after `load_rules`. Returns at once without a store.
pub async fn rule_sync(state: AdminState, stop: CancellationToken) {
    let Some(store) = state.store.clone() else { return };
    let mut seen: Option<i64> = None;
    let mut poll = Poll::every(POLL_INTERVAL, stop);
    while poll.tick().await {
        match store.spend_rules_version().await {
            Ok(version) if seen == Some(version) => continue,
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(
                    task = "rule_sync",
                    error = &error as &dyn std::error::Error,
                    "rules version read failed"
                );
                continue;
            }
        }
        match load_rules(&state).await {
            Ok(loaded) => {
                tracing::debug!(task = "rule_sync", version = loaded, "spend rules reloaded");
                seen = Some(loaded);
            }
            Err(error) => {
                tracing::warn!(
                    task = "rule_sync",
                    error = &error as &dyn std::error::Error,
                    "spend rules reload failed"
                );
            }
        }
    }
}

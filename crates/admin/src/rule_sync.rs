//! Keeps every replica's spend rules equal to the file rules plus the API rules in the database.
//!
//! # How a change reaches every replica
//!
//! 1. The replica that served the API call writes the rule and bumps `spend_rules_version` in one transaction,
//!    then reloads its own engine at once (the caller sees the rule in force when the response arrives).
//! 2. Every replica's [`run_rule_sync`] reads the version every [`POLL_INTERVAL`] (one row: cheap on both
//!    backends) and, when it moved, reloads: file rules first, then the API rules, swapped in with
//!    `SpendEngine::replace_rules` (buckets of unchanged rules are kept). A change is in force everywhere
//!    within one interval plus one query. (A rule on a metadata key the rollups do not count yet also gets the
//!    key added, history included, by `rollup_keys`: a separate task, because counting a long history takes
//!    a while and must hold up neither this poll nor the API call.)
//! 3. A reload that raced with a newer change can install the older set; the version it recorded is the older
//!    one, so the next poll reloads again.

use std::collections::HashSet;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tollgate_limits::SpendRule;
use tollgate_store::StoreError;

use crate::AdminState;

/// How often each replica checks the rules' version: the contract's 2 s propagation minus a query's worth.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Loads the API rules from the database into the gateway's engine, after the file rules. Returns the version
/// read (0 without a store). API rules whose id a file rule uses, or which no longer validate, are skipped
/// with a warning. (The metadata keys of the new rules reach the rollups through `run_rollup_key_sync`.)
pub async fn load_rules(state: &AdminState) -> Result<i64, StoreError> {
    let Some(store) = &state.store else { return Ok(0) };
    let api = store.api_spend_rules().await?;
    let file_ids: HashSet<&str> = state.config.spend_rules.iter().map(SpendRule::id).collect();
    let mut rules = state.config.spend_rules.clone();
    for spec in api.specs {
        if file_ids.contains(spec.id.as_str()) {
            tracing::warn!(rule = %spec.id, "API spend rule shadowed by the file rule with the same id; ignored");
            continue;
        }
        match spec.validate() {
            Ok(rule) => rules.push(rule),
            Err(errors) => {
                let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
                tracing::warn!(rule = %spec.id, errors = %errors.join("; "), "stored spend rule invalid; ignored");
            }
        }
    }
    state.gateway.spend.replace_rules(rules);
    Ok(api.version)
}

/// Polls the rules' version until `shutdown` and reloads when it moves (see the module docs). Spawn it once per
/// process, after [`load_rules`]. Returns at once without a store.
pub async fn run_rule_sync(state: AdminState, shutdown: CancellationToken) {
    let Some(store) = state.store.clone() else { return };
    let mut seen: Option<i64> = None;
    let mut tick = tokio::time::interval(POLL_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let version = match store.spend_rules_version().await {
            Ok(version) => version,
            Err(error) => {
                tracing::warn!(
                    task = "rule_sync",
                    error = &error as &dyn std::error::Error,
                    "rules version read failed"
                );
                continue;
            }
        };
        if seen == Some(version) {
            continue;
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

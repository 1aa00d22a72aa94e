//! The spend rules in force: the file rules, then the API rules stored in the database.

use std::collections::HashSet;

use tollgate_limits::SpendRule;
use tollgate_store::StoreError;

use crate::AdminState;

/// Loads the API rules from the database into the gateway's engine, after the file rules. Returns the version
/// read (0 without a store). API rules whose id a file rule uses, or which no longer validate, are skipped
/// with a warning. The handlers call it after each change; the binary's `rule_sync` task on every replica when
/// the rules' version moves.
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
